//! Behaviour events: storing a batch once per messageId, stitching anonymous ids to members,
//! identify traits sealed (and, from trusted keys, applied with One ID's rules), orders as
//! events, the member timeline, NDJSON export pages, retention and the ingestion counts that
//! data quality reports.

use crate::db::{DbError, Tx};
use crate::keyring::Keyring;
use crate::members::{self, Registration};
use crate::{Result, vals};
use ronghe_domain::Millis;
use ronghe_domain::calendar;
use ronghe_domain::events::{Event, Kind};
use ronghe_domain::identity::{Identity, IdentityKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One checked message and what the server derived from it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: Event,
    /// `userId` as an `external_id` identity.
    pub user: Option<Identity>,
    /// For identify (and alias) from a trusted key: the identities and profile its traits
    /// assert, applied with One ID's rules (never merging).
    pub registration: Option<Registration>,
}

/// A batch from one API key.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source: String,
    /// A server-side channel key (or admin) whose identify may create and claim identities.
    pub trusted: bool,
    pub received_at: Millis,
    pub messages: Vec<Incoming>,
    /// Messages refused before storage, by reason, for the data-quality counts.
    pub rejected: BTreeMap<&'static str, i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Ingested {
    /// Per message: false when its messageId was already stored.
    pub stored: Vec<bool>,
    /// (member, event name, tenant day) of each new event of a known member.
    pub touched: Vec<(String, String, i32)>,
    /// Members whose stitched history changed: the index reloads them.
    pub refresh: BTreeSet<String>,
}

/// The blind index of an anonymous id (as a device identity, so that a member's known
/// device ids and stitched anonymous ids are the same key).
pub fn anon_key(kr: &Keyring, anonymous_id: &str) -> Vec<u8> {
    let id = Identity::from_stored(IdentityKind::DeviceId, anonymous_id.to_string(), None);
    kr.blind(&id.canonical())
}

pub fn ingest(tx: &mut dyn Tx, kr: &Keyring, batch: &Batch) -> Result<Ingested> {
    let mut out = Ingested::default();
    let mut owners: HashMap<Vec<u8>, Option<String>> = HashMap::new();
    let mut stats: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    let now = batch.received_at;
    for m in &batch.messages {
        let e = &m.event;
        let user_key = m.user.as_ref().map(|u| kr.blind(&u.canonical()));
        let anon = e.anonymous_id.as_deref().map(|a| anon_key(kr, a));

        // Trusted identify: the traits' identities join One ID (reject on conflict, never merge).
        if let (Some(reg), true) = (&m.registration, batch.trusted) {
            match members::register(tx, kr, reg, &batch.source, now) {
                Ok(r) => {
                    out.refresh.insert(r.id.clone());
                    for (identity, _) in &reg.identities {
                        owners.insert(kr.blind(&identity.canonical()), Some(r.id.clone()));
                    }
                }
                Err(crate::Error::Domain(_)) => {} // a conflict or bad trait: the event still counts
                Err(e) => return Err(e),
            }
        }
        let mut member = match &user_key {
            Some(k) => owner_of(tx, &mut owners, k, "SELECT member_id FROM identities WHERE blind = $1")?,
            None => None,
        };
        if member.is_none()
            && let Some(a) = &anon
        {
            member = owner_of(tx, &mut owners, a, "SELECT member_id FROM stitches WHERE anon_key = $1")?;
            if member.is_none() {
                member = owner_of(tx, &mut owners, a, "SELECT member_id FROM identities WHERE blind = $1")?;
            }
        }
        // identify / alias link an anonymous id (alias: previousId) to the known member.
        if let Some(mid) = &member
            && matches!(e.kind, Kind::Identify | Kind::Alias)
        {
            let linked = match e.kind {
                Kind::Alias => e.previous_id.as_deref().map(|p| anon_key(kr, p)),
                _ => anon.clone(),
            };
            if let Some(k) = linked {
                stitch(tx, &k, mid, batch.trusted, now)?;
                owners.insert(k.clone(), Some(mid.clone()));
                let claimed = tx.exec(
                    "UPDATE events SET member_id = $1 WHERE member_id IS NULL AND anon_key = $2",
                    vals![mid.as_str(), k],
                )?;
                if claimed > 0 {
                    out.refresh.insert(mid.clone());
                }
            }
            if let Some(k) = &user_key {
                let claimed = tx.exec(
                    "UPDATE events SET member_id = $1 WHERE member_id IS NULL AND user_key = $2",
                    vals![mid.as_str(), k.as_slice()],
                )?;
                if claimed > 0 {
                    out.refresh.insert(mid.clone());
                }
            }
        }
        let traits = e.traits.as_ref().map(|t| {
            let mut t = t.clone();
            t.insert("verified".into(), serde_json::Value::Bool(batch.trusted));
            kr.seal_traits(&e.message_id, serde_json::Value::Object(t).to_string().as_bytes())
        });
        let inserted = tx.exec(
            "INSERT INTO events (message_id, at, received_at, kind, name, member_id, user_key, anon_key, source,
                    channel, store_id, body, traits_enc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (message_id) DO NOTHING",
            vals![
                e.message_id.as_str(),
                e.at,
                now,
                e.kind.as_str(),
                e.name.as_str(),
                member.as_deref(),
                user_key,
                anon,
                batch.source.as_str(),
                e.channel.as_deref(),
                e.store_id.as_deref(),
                e.body.as_str(),
                traits
            ],
        )? > 0;
        out.stored.push(inserted);
        let lag = (now - e.at).max(0);
        let s = stats.entry(if inserted { "accepted" } else { "duplicate" }).or_default();
        *s = (s.0 + 1, s.1 + lag, s.2.max(lag));
        if inserted && let Some(mid) = member {
            out.touched.push((mid, e.name.clone(), calendar::day_of(e.at)));
        }
    }
    for (reason, n) in &batch.rejected {
        let s = stats.entry(reason).or_default();
        s.0 += n;
    }
    let day = i64::from(calendar::day_of(now));
    for (outcome, (n, lag_sum, lag_max)) in stats {
        tx.exec(
            "INSERT INTO ingest_stats (day, source, outcome, count, lag_ms_sum, lag_ms_max) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (day, source, outcome) DO UPDATE SET count = ingest_stats.count + excluded.count,
                lag_ms_sum = ingest_stats.lag_ms_sum + excluded.lag_ms_sum,
                lag_ms_max = CASE WHEN excluded.lag_ms_max > ingest_stats.lag_ms_max
                                  THEN excluded.lag_ms_max ELSE ingest_stats.lag_ms_max END",
            vals![day, batch.source.as_str(), outcome, n, lag_sum, lag_max],
        )?;
    }
    Ok(out)
}

fn owner_of(
    tx: &mut dyn Tx,
    cache: &mut HashMap<Vec<u8>, Option<String>>,
    key: &[u8],
    sql: &str,
) -> Result<Option<String>> {
    if let Some(Some(m)) = cache.get(key) {
        return Ok(Some(m.clone()));
    }
    let found = tx.query_one(sql, vals![key])?.map(|r| r.string(0)).transpose()?;
    let found = match found {
        Some(id) => Some(members::resolve(tx, &id)?),
        None => None,
    };
    if found.is_some() {
        cache.insert(key.to_vec(), found.clone());
    }
    Ok(found)
}

/// Link an anonymous id to a member; a trusted link replaces an untrusted one, never the reverse.
fn stitch(tx: &mut dyn Tx, key: &[u8], member_id: &str, verified: bool, now: Millis) -> Result<()> {
    tx.exec(
        "INSERT INTO stitches (anon_key, member_id, verified, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (anon_key) DO UPDATE SET member_id = excluded.member_id, verified = excluded.verified,
            at = excluded.at
         WHERE excluded.verified >= stitches.verified",
        vals![key, member_id, verified, now],
    )?;
    Ok(())
}

/// Store events of known members as they are (the bulk path for demo data, migrations from
/// another CDP and benchmarks): no stitching, no traits. Returns how many were new.
pub fn insert_known(tx: &mut dyn Tx, rows: &[(String, Event)], source: &str, now: Millis) -> Result<u64> {
    let mut n = 0;
    for (member_id, e) in rows {
        n += tx.exec(
            "INSERT INTO events (message_id, at, received_at, kind, name, member_id, source, channel, store_id, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (message_id) DO NOTHING",
            vals![
                e.message_id.as_str(),
                e.at,
                now,
                e.kind.as_str(),
                e.name.as_str(),
                member_id.as_str(),
                source,
                e.channel.as_deref(),
                e.store_id.as_deref(),
                e.body.as_str()
            ],
        )?;
    }
    Ok(n)
}

/// An order as the timeline shows it.
#[derive(Debug, Clone, Copy)]
pub struct OrderEvent<'a> {
    pub order_id: &'a str,
    pub member_id: &'a str,
    pub channel: &'a str,
    pub store_id: Option<&'a str>,
    pub payable_fen: i64,
    pub placed_at: Millis,
}

/// An order as an event on the member's timeline (`order_completed`), written in the order's
/// own transaction so that callers never send it twice.
pub fn record_order(tx: &mut dyn Tx, o: OrderEvent, now: Millis) -> Result<()> {
    let OrderEvent { order_id, member_id, channel, store_id, payable_fen, placed_at } = o;
    let body = serde_json::json!({"properties": {"order_id": order_id, "payable_fen": payable_fen}}).to_string();
    tx.exec(
        "INSERT INTO events (message_id, at, received_at, kind, name, member_id, source, channel, store_id, body)
         VALUES ($1, $2, $3, 'track', 'order_completed', $4, 'orders', $5, $6, $7) ON CONFLICT (message_id) DO NOTHING",
        vals![format!("order:{order_id}"), placed_at.min(now), now, member_id, channel, store_id, body],
    )?;
    Ok(())
}

/// One event as the timeline and exports show it (never the sealed traits).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub message_id: String,
    pub at: Millis,
    pub received_at: Millis,
    pub kind: String,
    pub name: String,
    pub member_id: Option<String>,
    pub channel: Option<String>,
    pub store_id: Option<String>,
    pub body: serde_json::Value,
}

const EVENT_COLUMNS: &str = "seq, message_id, at, received_at, kind, name, member_id, channel, store_id, body";

fn event_row(r: &crate::db::Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        seq: r.i64(0)?,
        message_id: r.string(1)?,
        at: r.i64(2)?,
        received_at: r.i64(3)?,
        kind: r.string(4)?,
        name: r.string(5)?,
        member_id: r.opt_string(6)?,
        channel: r.opt_string(7)?,
        store_id: r.opt_string(8)?,
        body: serde_json::from_str(&r.string(9)?).map_err(|e| DbError::Other(e.to_string()))?,
    })
}

/// A member's latest events, newest first.
pub fn timeline(tx: &mut dyn Tx, member_id: &str, limit: i64) -> Result<Vec<StoredEvent>> {
    tx.query(
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE member_id = $1 ORDER BY at DESC, seq DESC LIMIT $2"),
        vals![member_id, limit],
    )?
    .iter()
    .map(event_row)
    .collect()
}

/// A page of events in arrival order after `after_seq`, optionally only one member's.
pub fn page(tx: &mut dyn Tx, after_seq: i64, member_id: Option<&str>, limit: i64) -> Result<Vec<StoredEvent>> {
    let rows = match member_id {
        Some(m) => tx.query(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE member_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
            vals![m, after_seq, limit],
        )?,
        None => tx.query(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"),
            vals![after_seq, limit],
        )?,
    };
    rows.iter().map(event_row).collect()
}

/// Delete events received before `before`, oldest first, at most `limit` at a time.
pub fn purge(tx: &mut dyn Tx, before: Millis, limit: i64) -> Result<u64> {
    let edge = tx.query_one(
        "SELECT seq FROM events WHERE seq <= (SELECT MIN(seq) FROM events) + $2 AND received_at < $1 ORDER BY seq DESC LIMIT 1",
        vals![before, limit],
    )?;
    match edge {
        Some(r) => Ok(tx.exec("DELETE FROM events WHERE seq <= $1 AND received_at < $2", vals![r.i64(0)?, before])?),
        None => Ok(0),
    }
}

/// Everything about one member's events goes (erasure): their events, the events of their
/// stitched anonymous ids and unclaimed events of their identities, and the stitches.
pub fn erase_member(tx: &mut dyn Tx, member_id: &str) -> Result<()> {
    tx.exec(
        "DELETE FROM events WHERE member_id IS NULL AND user_key IN (SELECT blind FROM identities WHERE member_id = $1)",
        vals![member_id],
    )?;
    tx.exec(
        "DELETE FROM events WHERE member_id IS NULL AND anon_key IN (SELECT anon_key FROM stitches WHERE member_id = $1)",
        vals![member_id],
    )?;
    tx.exec("DELETE FROM events WHERE member_id = $1", vals![member_id])?;
    tx.exec("DELETE FROM stitches WHERE member_id = $1", vals![member_id])?;
    Ok(())
}

/// Ingestion counts per (source, outcome) since `from_day`, with the summed and largest lag.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestCount {
    pub source: String,
    pub outcome: String,
    pub count: i64,
    pub lag_ms_sum: i64,
    pub lag_ms_max: i64,
}

pub fn ingest_counts(tx: &mut dyn Tx, from_day: i32) -> Result<Vec<IngestCount>> {
    tx.query(
        "SELECT source, outcome, CAST(SUM(count) AS BIGINT), CAST(SUM(lag_ms_sum) AS BIGINT), MAX(lag_ms_max) FROM ingest_stats WHERE day >= $1
         GROUP BY source, outcome ORDER BY source, outcome",
        vals![i64::from(from_day)],
    )?
    .iter()
    .map(|r| {
        Ok(IngestCount {
            source: r.string(0)?,
            outcome: r.string(1)?,
            count: r.i64(2)?,
            lag_ms_sum: r.i64(3)?,
            lag_ms_max: r.i64(4)?,
        })
    })
    .collect()
}

/// How many active members have each key profile field.
pub fn completeness(tx: &mut dyn Tx) -> Result<(i64, BTreeMap<&'static str, i64>)> {
    let r = tx
        .query_one(
            "SELECT COUNT(*), COUNT(gender), COUNT(city), COUNT(birthday_enc), COUNT(name_enc),
                    CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM identities i WHERE i.member_id = m.id AND i.kind = 'phone')
                        THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM consents c WHERE c.member_id = m.id) THEN 1 ELSE 0 END) AS BIGINT)
             FROM members m WHERE status = 'active'",
            &[],
        )?
        .ok_or_else(|| DbError::Other("no count".into()))?;
    let total = r.i64(0)?;
    let n = |i: usize| r.opt_i64(i).map(|v| v.unwrap_or(0));
    let fields = [
        ("gender", n(1)?),
        ("city", n(2)?),
        ("birthday", n(3)?),
        ("name", n(4)?),
        ("phone", n(5)?),
        ("consent_recorded", n(6)?),
    ];
    Ok((total, fields.into_iter().collect()))
}
