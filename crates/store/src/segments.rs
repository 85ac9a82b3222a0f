//! Saved segments (a name and a rule) and their daily size history.

use crate::db::{DbError, Tx};
use crate::{Result, vals};
use ronghe_domain::{Code, DomainError, Millis};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub rule: serde_json::Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

fn row(r: &crate::db::Row) -> Result<Segment> {
    Ok(Segment {
        id: r.string(0)?,
        name: r.string(1)?,
        rule: serde_json::from_str(&r.string(2)?).map_err(|e| DbError::Other(e.to_string()))?,
        created_at: r.i64(3)?,
        updated_at: r.i64(4)?,
    })
}

pub fn create(tx: &mut dyn Tx, id: &str, name: &str, rule: &serde_json::Value, now: Millis) -> Result<Segment> {
    if tx.query_one("SELECT 1 FROM segments WHERE name = $1", vals![name])?.is_some() {
        return Err(DomainError::new(Code::Conflict, format!("a segment named {name:?} exists")).into());
    }
    tx.exec(
        "INSERT INTO segments (id, name, rule, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        vals![id, name, rule.to_string(), now],
    )?;
    get(tx, id)
}

pub fn get(tx: &mut dyn Tx, id: &str) -> Result<Segment> {
    let r = tx
        .query_one("SELECT id, name, rule, created_at, updated_at FROM segments WHERE id = $1", vals![id])?
        .ok_or_else(|| DomainError::not_found("segment"))?;
    row(&r)
}

pub fn list(tx: &mut dyn Tx) -> Result<Vec<Segment>> {
    tx.query("SELECT id, name, rule, created_at, updated_at FROM segments ORDER BY name", &[])?
        .iter()
        .map(row)
        .collect()
}

/// Record a segment's size on a day (the latest measurement of the day wins).
pub fn record_size(tx: &mut dyn Tx, id: &str, day: i32, count: u64) -> Result<()> {
    tx.exec(
        "INSERT INTO segment_sizes (segment_id, day, count) VALUES ($1, $2, $3)
         ON CONFLICT (segment_id, day) DO UPDATE SET count = excluded.count",
        vals![id, i64::from(day), count as i64],
    )?;
    Ok(())
}

/// (day, count), oldest first.
pub fn sizes(tx: &mut dyn Tx, id: &str) -> Result<Vec<(i32, i64)>> {
    tx.query("SELECT day, count FROM segment_sizes WHERE segment_id = $1 ORDER BY day", vals![id])?
        .iter()
        .map(|r| Ok((r.i64(0)? as i32, r.i64(1)?)))
        .collect()
}
