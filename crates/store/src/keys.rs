//! API keys. A key is `rh_` followed by 32 random bytes (base64url); only its SHA-256 is
//! stored, so a copy of the database gives no usable key.

use crate::db::Tx;
use crate::{Result, vals};
use base64::Engine;
use rand::RngCore;
use ronghe_domain::Millis;
use ronghe_domain::auth::{Principal, Role};
use sha2::{Digest, Sha256};

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("rh_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub role: Role,
    pub name: String,
    pub store_id: Option<String>,
    pub channel: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    /// Shown once; never stored.
    pub secret: String,
}

pub fn create(tx: &mut dyn Tx, key: &NewKey, now: Millis) -> Result<CreatedKey> {
    let secret = new_secret();
    let id = insert(tx, &hash(&secret), key, now)?;
    Ok(CreatedKey { id, secret })
}

fn insert(tx: &mut dyn Tx, hash: &str, key: &NewKey, now: Millis) -> Result<String> {
    let mut b = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let id = format!("key_{}", hex::encode(b));
    tx.exec(
        "INSERT INTO api_keys (hash, id, name, role, store_id, channel, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vals![hash, id.as_str(), key.name.as_str(), key.role.as_str(), key.store_id.clone(), key.channel.clone(), now],
    )?;
    Ok(id)
}

/// Make sure an admin key with this secret exists (`RONGHE_ADMIN_KEY`).
pub fn ensure_admin(tx: &mut dyn Tx, secret: &str, now: Millis) -> Result<()> {
    let h = hash(secret);
    let sql = format!("SELECT id FROM api_keys WHERE hash = $1{}", tx.for_update());
    if tx.query_one(&sql, vals![h.as_str()])?.is_none() {
        let key = NewKey { role: Role::Admin, name: "RONGHE_ADMIN_KEY".into(), store_id: None, channel: None };
        insert(tx, &h, &key, now)?;
    }
    Ok(())
}

pub fn count(tx: &mut dyn Tx) -> Result<i64> {
    Ok(tx.query_one("SELECT count(*) FROM api_keys", &[])?.map(|r| r.i64(0)).transpose()?.unwrap_or(0))
}

/// The principal of a presented secret, if it names a live key.
pub fn find(tx: &mut dyn Tx, secret: &str) -> Result<Option<Principal>> {
    let row = tx.query_one(
        "SELECT id, role, store_id, channel FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
        vals![hash(secret)],
    )?;
    let Some(r) = row else { return Ok(None) };
    let Some(role) = Role::parse(&r.string(1)?) else {
        return Ok(None);
    };
    Ok(Some(Principal { key_id: r.string(0)?, role, store_id: r.opt_string(2)?, channel: r.opt_string(3)? }))
}
