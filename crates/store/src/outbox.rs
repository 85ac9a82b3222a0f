//! The outbox: every command appends what happened, in its own transaction, so that derived
//! indexes, other nodes and webhooks can follow the committed change stream. Payloads carry
//! ids only, never personal data.

use crate::db::{DbError, Tx};
use crate::{Result, vals};
use ronghe_domain::Millis;

pub fn append(
    tx: &mut dyn Tx,
    topic: &str,
    member_id: Option<&str>,
    payload: &serde_json::Value,
    now: Millis,
) -> Result<()> {
    let payload = serde_json::to_string(payload).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO outbox (at, topic, member_id, payload) VALUES ($1, $2, $3, $4)",
        vals![now, topic, member_id, payload],
    )?;
    Ok(())
}
