//! Loyalty programme versions: each applies from its `effective_from`; orders use the version
//! in force at their `placed_at`. Without any version the default programme applies.

use crate::db::{DbError, Tx};
use crate::{Result, vals};
use ronghe_domain::Millis;
use ronghe_domain::loyalty::Program;

/// Store a new version; returns its number.
pub fn set(tx: &mut dyn Tx, program: &Program, effective_from: Millis, now: Millis) -> Result<i64> {
    let rules = serde_json::to_string(program).map_err(|e| DbError::Other(e.to_string()))?;
    let r = tx
        .query_one(
            "INSERT INTO loyalty_programs (effective_from, rules, created_at) VALUES ($1, $2, $3) RETURNING version",
            vals![effective_from, rules, now],
        )?
        .ok_or_else(|| DbError::Other("no version returned".into()))?;
    Ok(r.i64(0)?)
}

/// The version in force at `at` (the latest created among those already effective), or
/// version 0, the default programme.
pub fn at(tx: &mut dyn Tx, at: Millis) -> Result<(i64, Program, Millis)> {
    let row = tx.query_one(
        "SELECT version, rules, effective_from FROM loyalty_programs WHERE effective_from <= $1
         ORDER BY effective_from DESC, version DESC LIMIT 1",
        vals![at],
    )?;
    match row {
        None => Ok((0, Program::default(), 0)),
        Some(r) => {
            let p = serde_json::from_str(&r.string(1)?).map_err(|e| DbError::Other(e.to_string()))?;
            Ok((r.i64(0)?, p, r.i64(2)?))
        }
    }
}
