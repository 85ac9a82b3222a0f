//! HTTP routes, one module per resource.

pub mod admin;
pub mod audience;
pub mod commerce;
pub mod coupons;
pub mod members;
pub mod system;
pub mod tracking;
