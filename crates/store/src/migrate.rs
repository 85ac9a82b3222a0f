//! Schema migrations, run by themselves at start on both backends. Each backend has its own
//! folder of numbered SQL files; a migration runs once and is recorded in `schema_migrations`.

use crate::db::DbError;

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_members.sql")),
    (2, include_str!("../migrations/sqlite/0002_orders.sql")),
    (3, include_str!("../migrations/sqlite/0003_coupons.sql")),
    (4, include_str!("../migrations/sqlite/0004_returns.sql")),
    (5, include_str!("../migrations/sqlite/0005_tiers.sql")),
    (6, include_str!("../migrations/sqlite/0006_pending_points.sql")),
    (7, include_str!("../migrations/sqlite/0007_cdp.sql")),
    (8, include_str!("../migrations/sqlite/0008_stock.sql")),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_members.sql")),
    (2, include_str!("../migrations/postgres/0002_orders.sql")),
    (3, include_str!("../migrations/postgres/0003_coupons.sql")),
    (4, include_str!("../migrations/postgres/0004_returns.sql")),
    (5, include_str!("../migrations/postgres/0005_tiers.sql")),
    (6, include_str!("../migrations/postgres/0006_pending_points.sql")),
    (7, include_str!("../migrations/postgres/0007_cdp.sql")),
    (8, include_str!("../migrations/postgres/0008_stock.sql")),
];

/// A short fingerprint of the schema, for caches of generated data (benchmarks).
pub fn schema_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (v, sql) in SQLITE.iter().chain(POSTGRES) {
        h.update(v.to_le_bytes());
        h.update(sql.as_bytes());
    }
    hex::encode(&h.finalize()[..4])
}

pub fn sqlite(conn: &mut rusqlite::Connection) -> Result<(), DbError> {
    let t = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    t.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    for (version, sql) in SQLITE {
        let done: bool =
            t.query_row("SELECT count(*) > 0 FROM schema_migrations WHERE version = ?1", [version], |r| r.get(0))?;
        if !done {
            tracing::info!(version, "applying migration");
            t.execute_batch(sql)?;
            t.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))", [version])?;
        }
    }
    t.commit()?;
    Ok(())
}

pub fn postgres(client: &mut postgres::Client) -> Result<(), DbError> {
    let mut t = client.transaction()?;
    // Several nodes may start at once: one migrates, the others wait and then see it done.
    t.batch_execute("SELECT pg_advisory_xact_lock(7262687365)")?;
    t.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")?;
    for (version, sql) in POSTGRES {
        let done = t.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])?.is_some();
        if !done {
            tracing::info!(version, "applying migration");
            t.batch_execute(sql)?;
            t.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])?;
        }
    }
    t.commit()?;
    Ok(())
}
