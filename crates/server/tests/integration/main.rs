//! HTTP integration tests: each scenario starts the real server on an ephemeral port and
//! runs on SQLite (a temporary data folder) and, when `RONGHE_TEST_DATABASE_URL` names a
//! PostgreSQL database, on PostgreSQL too (a fresh schema per test).

#[macro_use]
mod common;
mod cdp;
mod commerce;
mod errors;
mod members;
mod privacy;
mod stock;
mod system;
mod webhooks;
