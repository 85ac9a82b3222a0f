//! Webhook subscriptions and deliveries. Deliveries are made from the outbox: a fan-out step
//! turns new outbox rows into one delivery per matching subscription and moves its cursor in
//! the same transaction; the sender marks each delivery delivered, retries it later, or
//! dead-letters it. All of it survives a restart.

use crate::db::{DbError, Row, Tx};
use crate::{Result, vals};
use ronghe_domain::{DomainError, Millis};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(skip)]
    pub secret: String,
    pub created_at: Millis,
}

fn subscription_row(r: &Row) -> Result<Subscription> {
    Ok(Subscription {
        id: r.string(0)?,
        url: r.string(1)?,
        event_types: serde_json::from_str(&r.string(2)?).map_err(|e| DbError::Other(e.to_string()))?,
        secret: r.string(3)?,
        created_at: r.i64(4)?,
    })
}

pub fn subscribe(
    tx: &mut dyn Tx,
    id: &str,
    url: &str,
    event_types: &[String],
    secret: &str,
    now: Millis,
) -> Result<Subscription> {
    let types = serde_json::to_string(event_types).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO webhook_subscriptions (id, url, event_types, secret, created_at, active) VALUES ($1, $2, $3, $4, $5, 1)",
        vals![id, url, types, secret, now],
    )?;
    Ok(Subscription {
        id: id.into(),
        url: url.into(),
        event_types: event_types.to_vec(),
        secret: secret.into(),
        created_at: now,
    })
}

pub fn subscriptions(tx: &mut dyn Tx) -> Result<Vec<Subscription>> {
    tx.query(
        "SELECT id, url, event_types, secret, created_at FROM webhook_subscriptions WHERE active = 1 ORDER BY id",
        &[],
    )?
    .iter()
    .map(subscription_row)
    .collect()
}

pub fn unsubscribe(tx: &mut dyn Tx, id: &str) -> Result<()> {
    if tx.exec("UPDATE webhook_subscriptions SET active = 0 WHERE id = $1 AND active = 1", vals![id])? == 0 {
        return Err(DomainError::not_found("webhook subscription").into());
    }
    tx.exec("UPDATE webhook_deliveries SET status = 'dead', last_error = 'unsubscribed' WHERE subscription_id = $1 AND status = 'pending'", vals![id])?;
    Ok(())
}

/// Turn outbox rows after the cursor into deliveries (at most `limit` rows a call). Returns
/// how many outbox rows were read and how many deliveries were created.
pub fn fan_out(tx: &mut dyn Tx, limit: i64, now: Millis) -> Result<(u64, u64)> {
    let cursor: i64 = tx
        .query_one(&format!("SELECT value FROM meta WHERE key = 'webhooks.cursor'{}", tx.for_update()), &[])?
        .map(|r| r.string(0))
        .transpose()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let subs = subscriptions(tx)?;
    if subs.is_empty() {
        // Nobody listens: skip what happened so far rather than read it (a later subscriber
        // hears of later changes, as from any webhook provider).
        let last =
            tx.query_one("SELECT COALESCE(MAX(id), 0) FROM outbox", &[])?.map(|r| r.i64(0)).transpose()?.unwrap_or(0);
        if last > cursor {
            tx.exec(
                "INSERT INTO meta (key, value) VALUES ('webhooks.cursor', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vals![last.to_string()],
            )?;
        }
        return Ok((0, 0));
    }
    let rows =
        tx.query("SELECT id, topic, payload, at FROM outbox WHERE id > $1 ORDER BY id LIMIT $2", vals![cursor, limit])?;
    let Some(last) = rows.last().map(|r| r.i64(0)).transpose()? else { return Ok((0, 0)) };
    let mut made = 0;
    for r in &rows {
        let (outbox_id, topic, payload, at) = (r.i64(0)?, r.string(1)?, r.string(2)?, r.i64(3)?);
        for s in subs.iter().filter(|s| s.event_types.iter().any(|t| t == "*" || *t == topic)) {
            let body = serde_json::json!({
                "type": topic,
                "timestamp": at,
                "data": serde_json::from_str::<serde_json::Value>(&payload).unwrap_or(serde_json::Value::Null),
            });
            tx.exec(
                "INSERT INTO webhook_deliveries (subscription_id, outbox_id, event_type, payload, status, attempts, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
                vals![s.id.as_str(), outbox_id, topic.as_str(), body.to_string(), now],
            )?;
            made += 1;
        }
    }
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ('webhooks.cursor', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vals![last.to_string()],
    )?;
    Ok((rows.len() as u64, made))
}

/// A delivery due to be sent.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub payload: String,
    pub attempts: i64,
}

pub fn due(tx: &mut dyn Tx, now: Millis, limit: i64) -> Result<Vec<Due>> {
    tx.query(
        "SELECT d.id, s.url, s.secret, d.payload, d.attempts FROM webhook_deliveries d
         JOIN webhook_subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 ORDER BY d.next_attempt_at, d.id LIMIT $2",
        vals![now, limit],
    )?
    .iter()
    .map(|r| {
        Ok(Due { id: r.i64(0)?, url: r.string(1)?, secret: r.string(2)?, payload: r.string(3)?, attempts: r.i64(4)? })
    })
    .collect()
}

/// Record an attempt: delivered, or retried at `retry_at`, or dead when there is none.
pub fn record_attempt(
    tx: &mut dyn Tx,
    id: i64,
    ok: bool,
    error: Option<&str>,
    retry_at: Option<Millis>,
    now: Millis,
) -> Result<()> {
    match (ok, retry_at) {
        (true, _) => tx.exec(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL WHERE id = $1",
            vals![id, now],
        )?,
        (false, Some(at)) => tx.exec(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            vals![id, at, error],
        )?,
        (false, None) => tx.exec(
            "UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, last_error = $2 WHERE id = $1",
            vals![id, error],
        )?,
    };
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub subscription_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    pub delivered_at: Option<Millis>,
}

pub fn deliveries(tx: &mut dyn Tx, subscription_id: &str, status: Option<&str>, limit: i64) -> Result<Vec<Delivery>> {
    let rows = tx.query(
        "SELECT id, subscription_id, event_type, status, attempts, next_attempt_at, last_error, delivered_at
         FROM webhook_deliveries WHERE subscription_id = $1 AND ($2 = '' OR status = $2) ORDER BY id DESC LIMIT $3",
        vals![subscription_id, status.unwrap_or(""), limit],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Delivery {
                id: r.i64(0)?,
                subscription_id: r.string(1)?,
                event_type: r.string(2)?,
                status: r.string(3)?,
                attempts: r.i64(4)?,
                next_attempt_at: r.i64(5)?,
                last_error: r.opt_string(6)?,
                delivered_at: r.opt_i64(7)?,
            })
        })
        .collect()
}

/// Send a delivery again (a dead letter, or one already delivered that the receiver lost).
pub fn replay(tx: &mut dyn Tx, id: i64, now: Millis) -> Result<()> {
    if tx.exec(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, attempts = 0 WHERE id = $1",
        vals![id, now],
    )? == 0
    {
        return Err(DomainError::not_found("webhook delivery").into());
    }
    Ok(())
}
