//! Idempotency keys: the first response to (key, method, path, Idempotency-Key) is kept (sealed,
//! since it may hold personal data) and replayed for the same body; another body, or a replay
//! while the first is still running, is a conflict.

use crate::db::Tx;
use crate::keyring::Keyring;
use crate::{Result, vals};
use ronghe_domain::Millis;

/// An in-flight claim older than this is taken over: its request died with its node.
pub const STALE_IN_FLIGHT_MS: Millis = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: run the request, then [`finish`] or [`abort`].
    Fresh,
    Replay {
        status: u16,
        body: Vec<u8>,
    },
    DifferentBody,
    InFlight,
}

pub fn begin(tx: &mut dyn Tx, kr: &Keyring, scope: &[u8], body_hash: &[u8], now: Millis) -> Result<Begin> {
    let sql = format!(
        "SELECT body_hash, state, status, response, created_at FROM idempotency WHERE scope = $1{}",
        tx.for_update()
    );
    let Some(r) = tx.query_one(&sql, vals![scope])? else {
        tx.exec(
            "INSERT INTO idempotency (scope, body_hash, state, created_at) VALUES ($1, $2, 'in_flight', $3)",
            vals![scope, body_hash, now],
        )?;
        return Ok(Begin::Fresh);
    };
    if r.blob(0)? != body_hash {
        return Ok(Begin::DifferentBody);
    }
    if r.string(1)? == "done" {
        let body = kr.open_response(scope, &r.blob(3)?)?;
        return Ok(Begin::Replay { status: r.i64(2)? as u16, body });
    }
    if now - r.i64(4)? > STALE_IN_FLIGHT_MS {
        tx.exec("UPDATE idempotency SET created_at = $2 WHERE scope = $1", vals![scope, now])?;
        return Ok(Begin::Fresh);
    }
    Ok(Begin::InFlight)
}

pub fn finish(
    tx: &mut dyn Tx,
    kr: &Keyring,
    scope: &[u8],
    status: u16,
    body: &[u8],
    member_id: Option<&str>,
) -> Result<()> {
    tx.exec(
        "UPDATE idempotency SET state = 'done', status = $2, response = $3, member_id = $4 WHERE scope = $1",
        vals![scope, status as i64, kr.seal_response(scope, body), member_id],
    )?;
    Ok(())
}

/// Forget a claim whose request failed on the server's side, so that a retry runs again.
pub fn abort(tx: &mut dyn Tx, scope: &[u8]) -> Result<()> {
    tx.exec("DELETE FROM idempotency WHERE scope = $1 AND state = 'in_flight'", vals![scope])?;
    Ok(())
}

/// Drop keys older than the retention (at least 30 days: offline tills resend late).
pub fn purge(tx: &mut dyn Tx, older_than: Millis) -> Result<u64> {
    Ok(tx.exec("DELETE FROM idempotency WHERE created_at < $1", vals![older_than])?)
}
