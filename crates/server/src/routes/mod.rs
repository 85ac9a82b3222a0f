//! HTTP routes, one module per resource.

pub mod admin;
pub mod audience;
pub mod commerce;
pub mod coupons;
pub mod members;
pub mod stock;
pub mod system;
pub mod tracking;
pub mod webhooks;
