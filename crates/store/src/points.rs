//! The points ledger: append-only entries, each with a reason and a reference; a member's
//! balance is the sum of their entries and is never allowed below zero.

use crate::db::Tx;
use crate::{Result, vals};
use ronghe_domain::{Code, DomainError, Millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub delta: i64,
    pub reason: String,
    pub ref_type: String,
    pub ref_id: String,
    pub note: Option<String>,
    pub at: Millis,
}

pub fn balance(tx: &mut dyn Tx, member_id: &str) -> Result<i64> {
    // The cast keeps PostgreSQL from widening the sum to NUMERIC.
    let r = tx.query_one(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM points_ledger WHERE member_id = $1",
        vals![member_id],
    )?;
    Ok(r.map(|r| r.i64(0)).transpose()?.unwrap_or(0))
}

/// Append an entry, refusing one that would take the balance below zero. The caller holds
/// the member's row lock (PostgreSQL) or the single writer (SQLite).
pub fn append(
    tx: &mut dyn Tx,
    member_id: &str,
    delta: i64,
    reason: &str,
    ref_type: &str,
    ref_id: &str,
    note: Option<&str>,
    at: Millis,
) -> Result<()> {
    if delta == 0 {
        return Ok(());
    }
    if delta < 0 {
        let b = balance(tx, member_id)?;
        if b + delta < 0 {
            return Err(DomainError::new(
                Code::InsufficientPoints,
                format!("the balance is {b} points; {} are needed", -delta),
            )
            .into());
        }
    }
    tx.exec(
        "INSERT INTO points_ledger (member_id, delta, reason, ref_type, ref_id, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vals![member_id, delta, reason, ref_type, ref_id, note, at],
    )?;
    Ok(())
}

/// Newest first; `before` is the smallest id of the previous page.
pub fn ledger(tx: &mut dyn Tx, member_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<Entry>> {
    tx.query(
        "SELECT id, delta, reason, ref_type, ref_id, note, at FROM points_ledger
         WHERE member_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        vals![member_id, before.unwrap_or(i64::MAX), limit],
    )?
    .iter()
    .map(|r| {
        Ok(Entry {
            id: r.i64(0)?,
            delta: r.i64(1)?,
            reason: r.string(2)?,
            ref_type: r.string(3)?,
            ref_id: r.string(4)?,
            note: r.opt_string(5)?,
            at: r.i64(6)?,
        })
    })
    .collect()
}
