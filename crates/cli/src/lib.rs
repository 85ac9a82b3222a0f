//! The `ronghe` command as a library: its options (flags and environment from one struct)
//! the demo data set and the importers, so that tests and benchmarks can reuse them.

pub mod demo;
pub mod import;
pub mod opt;
pub mod transactions;
