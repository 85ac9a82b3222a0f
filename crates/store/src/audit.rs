//! The audit log: every admin action and every read of unmasked personal data. Entries name
//! the key, the action and the target id; they never hold personal data themselves.

use crate::db::{DbError, Tx};
use crate::{Result, vals};
use ronghe_domain::Millis;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub at: Millis,
    pub key_id: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

pub fn append(
    tx: &mut dyn Tx,
    at: Millis,
    key_id: &str,
    role: &str,
    action: &str,
    target: Option<&str>,
    detail: &serde_json::Value,
) -> Result<()> {
    let detail = serde_json::to_string(detail).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO audit (at, key_id, role, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        vals![at, key_id, role, action, target, detail],
    )?;
    Ok(())
}

/// Newest first; `before` is the id of the last entry of the previous page.
pub fn list(tx: &mut dyn Tx, before: Option<i64>, limit: i64, target: Option<&str>) -> Result<Vec<Entry>> {
    let rows = tx.query(
        "SELECT id, at, key_id, role, action, target, detail FROM audit
         WHERE id < $1 AND ($2 = '' OR target = $2) ORDER BY id DESC LIMIT $3",
        vals![before.unwrap_or(i64::MAX), target.unwrap_or(""), limit],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                id: r.i64(0)?,
                at: r.i64(1)?,
                key_id: r.string(2)?,
                role: r.string(3)?,
                action: r.string(4)?,
                target: r.opt_string(5)?,
                detail: serde_json::from_str(&r.string(6)?).map_err(|e| DbError::Other(e.to_string()))?,
            })
        })
        .collect()
}
