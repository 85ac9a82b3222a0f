//! The `ronghe` command as a library: its options (flags and environment from one struct)
//! and the demo data set, so that tests and benchmarks can reuse them.

pub mod demo;
pub mod opt;
