//! The points ledger: append-only entries, each with a reason and a reference; a member's
//! balance is the sum of their entries and is never allowed below zero.

use crate::db::Tx;
use crate::{Result, loyalty, vals};
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
/// the member's row lock (PostgreSQL) or the single writer (SQLite). A credit is a new lot
/// expiring as the programme in force at `at` says; a debit consumes lots first in, first out
/// (the soonest to expire first).
#[allow(clippy::too_many_arguments)]
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
    let (remaining, expires_at) = if delta > 0 {
        let (_, program, _) = loyalty::at(tx, at)?;
        (delta, program.expiry.expires_at(at))
    } else {
        let b = balance(tx, member_id)?;
        if b + delta < 0 {
            return Err(DomainError::new(
                Code::InsufficientPoints,
                format!("the balance is {b} points; {} are needed", -delta),
            )
            .into());
        }
        consume(tx, member_id, -delta)?;
        (0, None)
    };
    tx.exec(
        "INSERT INTO points_ledger (member_id, delta, reason, ref_type, ref_id, note, at, remaining, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vals![member_id, delta, reason, ref_type, ref_id, note, at, remaining, expires_at],
    )?;
    Ok(())
}

/// Take `points` from the member's lots, soonest to expire first (never-expiring last).
fn consume(tx: &mut dyn Tx, member_id: &str, mut points: i64) -> Result<()> {
    let lots = tx.query(
        "SELECT id, remaining FROM points_ledger WHERE member_id = $1 AND remaining > 0
         ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id",
        vals![member_id],
    )?;
    for lot in lots {
        if points == 0 {
            break;
        }
        let take = lot.i64(1)?.min(points);
        tx.exec("UPDATE points_ledger SET remaining = remaining - $2 WHERE id = $1", vals![lot.i64(0)?, take])?;
        points -= take;
    }
    Ok(())
}

/// Expire every lot whose time has come: one `expire` entry per lot for what is left of it.
/// Safe to repeat: an expired lot has nothing left.
pub fn expire(tx: &mut dyn Tx, now: Millis) -> Result<(i64, i64)> {
    let lots = tx.query(
        "SELECT id, member_id, remaining FROM points_ledger WHERE remaining > 0 AND expires_at <= $1 ORDER BY id",
        vals![now],
    )?;
    let (mut count, mut total) = (0, 0);
    for lot in lots {
        let (id, member, left) = (lot.i64(0)?, lot.string(1)?, lot.i64(2)?);
        tx.exec("UPDATE points_ledger SET remaining = 0 WHERE id = $1", vals![id])?;
        tx.exec(
            "INSERT INTO points_ledger (member_id, delta, reason, ref_type, ref_id, note, at, remaining)
             VALUES ($1, $2, 'expire', 'expiry', $3, NULL, $4, 0)",
            vals![member.as_str(), -left, id.to_string(), now],
        )?;
        count += 1;
        total += left;
    }
    Ok((count, total))
}

/// Points still held that will expire, by expiry time (soonest first).
pub fn expiring(tx: &mut dyn Tx, member_id: &str) -> Result<Vec<(Millis, i64)>> {
    tx.query(
        "SELECT expires_at, CAST(SUM(remaining) AS BIGINT) FROM points_ledger
         WHERE member_id = $1 AND remaining > 0 AND expires_at IS NOT NULL GROUP BY expires_at ORDER BY expires_at",
        vals![member_id],
    )?
    .iter()
    .map(|r| Ok((r.i64(0)?, r.i64(1)?)))
    .collect()
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

/// Credit the points an order earned: at once, or — for an online order under a programme
/// with `pending_days_online` — as pending points usable from the end of the return window.
pub fn credit_earned(
    tx: &mut dyn Tx,
    member_id: &str,
    order_id: &str,
    points: i64,
    online: bool,
    now: Millis,
) -> Result<()> {
    if points <= 0 {
        return Ok(());
    }
    let (_, program, _) = loyalty::at(tx, now)?;
    match program.earn.pending_days_online.filter(|_| online) {
        Some(days) => {
            tx.exec(
                "INSERT INTO pending_points (order_id, member_id, points, available_at) VALUES ($1, $2, $3, $4)",
                vals![order_id, member_id, points, now + days * 86_400_000],
            )?;
            Ok(())
        }
        None => append(tx, member_id, points, "earn", "order", order_id, None, now),
    }
}

/// Take back up to `points` of an order's pending points; returns how many were pending.
pub fn take_pending(tx: &mut dyn Tx, order_id: &str, points: i64) -> Result<i64> {
    let Some(r) = tx.query_one("SELECT points FROM pending_points WHERE order_id = $1", vals![order_id])? else {
        return Ok(0);
    };
    let held = r.i64(0)?;
    let taken = held.min(points);
    if taken == held {
        tx.exec("DELETE FROM pending_points WHERE order_id = $1", vals![order_id])?;
    } else {
        tx.exec("UPDATE pending_points SET points = points - $2 WHERE order_id = $1", vals![order_id, taken])?;
    }
    Ok(taken)
}

/// Make pending points whose window has passed usable (an `earn` entry each). Safe to repeat.
pub fn mature(tx: &mut dyn Tx, now: Millis) -> Result<i64> {
    let due = tx.query(
        "SELECT order_id, member_id, points FROM pending_points WHERE available_at <= $1 ORDER BY available_at, order_id",
        vals![now],
    )?;
    let mut n = 0;
    for d in due {
        let (order, member, pts) = (d.string(0)?, d.string(1)?, d.i64(2)?);
        tx.exec("DELETE FROM pending_points WHERE order_id = $1", vals![order.as_str()])?;
        append(tx, &member, pts, "earn", "order", &order, Some("after the return window"), now)?;
        n += 1;
    }
    Ok(n)
}

/// A member's pending points: (order, points, usable from).
pub fn pending(tx: &mut dyn Tx, member_id: &str) -> Result<Vec<(String, i64, Millis)>> {
    tx.query(
        "SELECT order_id, points, available_at FROM pending_points WHERE member_id = $1 ORDER BY available_at",
        vals![member_id],
    )?
    .iter()
    .map(|r| Ok((r.string(0)?, r.i64(1)?, r.i64(2)?)))
    .collect()
}
