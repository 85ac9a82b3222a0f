//! The pure core of Ronghe: identities and their normalisation, masking, profiles and custom
//! attributes, consent, member merging, roles, money, the catalogue's prices, the loyalty
//! programme, order pricing, behaviour events, built-in dimensions, RFM, lifecycle, the segment
//! rule language and the error codes. No IO, no async, no clock:
//! time comes in as a parameter (Unix milliseconds), so every rule here is testable alone.

pub mod auth;
pub mod calendar;
pub mod catalogue;
pub mod consent;
pub mod coupon;
pub mod dims;
pub mod error;
pub mod events;
pub mod identity;
pub mod lifecycle;
pub mod loyalty;
pub mod mask;
pub mod merge;
pub mod money;
pub mod pricing;
pub mod profile;
pub mod qr;
pub mod returns;
pub mod rfm;
pub mod segment;
pub mod stock;
pub mod webhook;

pub use error::{Code, DomainError, FieldError};

/// A point in time as Unix milliseconds (UTC). The domain never reads a clock.
pub type Millis = i64;

#[cfg(test)]
pub(crate) mod tests_support {
    /// Property-test cases, capped by `PROPTEST_CASES` so that CI stays fast.
    pub fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}
