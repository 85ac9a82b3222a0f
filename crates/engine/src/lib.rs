//! The derived, in-memory side of Ronghe. Everything here can be rebuilt from the store:
//! the audience index answers segment rules with roaring bitmaps over dense member numbers.

pub mod audience;
pub mod dense;

pub use audience::AudienceIndex;
