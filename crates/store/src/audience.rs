//! What the audience index is built from: each member's profile, points, orders, consents,
//! tags and event counts, read page by page (a rebuild) or for one member (a refresh after a
//! write); the recorded lifecycle stages and their transitions; RFM raw values computed from
//! scratch in SQL; and the CDP settings (RFM and lifecycle configuration).

use crate::db::{DbError, Tx, Value};
use crate::keyring::Keyring;
use crate::{Result, members, vals};
use ronghe_domain::dims::{OrderFact, Summary};
use ronghe_domain::lifecycle::{LifecycleConfig, Stage};
use ronghe_domain::rfm::RfmConfig;
use ronghe_domain::{Millis, calendar};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const DAY_MS: i64 = 86_400_000;

/// One member's data for the index.
#[derive(Debug, Clone, Default)]
pub struct MemberData {
    pub id: String,
    pub summary: Summary,
    pub tags: BTreeSet<String>,
    pub attrs: BTreeMap<String, serde_json::Value>,
    pub profiling: bool,
    /// Event name → tenant day → count, from `events_from` on.
    pub events: BTreeMap<String, BTreeMap<i32, u32>>,
    /// The stage last recorded, if any.
    pub recorded_stage: Option<Stage>,
}

/// Which members to load.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    One(&'a str),
    /// These members (a batch of refreshes).
    Ids(&'a [String]),
    /// Member numbers in `(after, upto]`.
    Seqs(i64, i64),
}

impl Which<'_> {
    fn sql(&self) -> (std::borrow::Cow<'static, str>, Vec<Value>) {
        match self {
            Which::One(id) => ("m.id = $1".into(), vec![Value::from(*id)]),
            Which::Ids(ids) => {
                let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
                (format!("m.id IN ({})", marks.join(", ")).into(), ids.iter().map(Value::from).collect())
            }
            Which::Seqs(a, b) => ("m.seq > $1 AND m.seq <= $2".into(), vec![Value::Int(*a), Value::Int(*b)]),
        }
    }
}

/// The highest member number (for paging a rebuild).
pub fn max_seq(tx: &mut dyn Tx) -> Result<i64> {
    Ok(tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM members", &[])?.map(|r| r.i64(0)).transpose()?.unwrap_or(0))
}

/// Load the active members `which` selects, with their events since `events_from`.
pub fn load(tx: &mut dyn Tx, kr: &Keyring, which: Which, events_from: Millis) -> Result<Vec<MemberData>> {
    let (filter, params) = which.sql();
    let n = params.len();
    let with = |extra: &[Value]| -> Vec<Value> { params.iter().cloned().chain(extra.iter().cloned()).collect() };
    let mut out: Vec<MemberData> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for r in tx.query(
        &format!(
            "SELECT m.id, m.created_at, m.gender, m.city, m.birthday_enc, m.attributes, m.tier FROM members m
             WHERE m.status = 'active' AND {filter} ORDER BY m.seq"
        ),
        &params,
    )? {
        let id = r.string(0)?;
        let birthday = match r.opt_blob(4)? {
            Some(sealed) => Some(members::data_key(tx, kr, &id)?.open(&id, "birthday", &sealed)?),
            None => None,
        };
        let attrs: BTreeMap<String, serde_json::Value> = serde_json::from_str(&r.string(5)?).unwrap_or_default();
        at.insert(id.clone(), out.len());
        out.push(MemberData {
            summary: Summary {
                joined_day: calendar::day_of(r.i64(1)?),
                gender: r.opt_string(2)?,
                city: r.opt_string(3)?,
                birthday,
                tier: r.opt_string(6)?,
                ..Summary::default()
            },
            id,
            attrs,
            ..MemberData::default()
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let mut each = |tx: &mut dyn Tx,
                    sql: String,
                    extra: &[Value],
                    f: &mut dyn FnMut(&mut MemberData, &crate::db::Row) -> Result<()>|
     -> Result<()> {
        for r in tx.query(&sql, &with(extra))? {
            if let Some(i) = at.get(&r.string(0)?) {
                f(&mut out[*i], &r)?;
            }
        }
        Ok(())
    };
    each(
        tx,
        format!(
            "SELECT p.member_id, CAST(SUM(p.delta) AS BIGINT) FROM points_ledger p JOIN members m ON m.id = p.member_id WHERE {filter} GROUP BY p.member_id"
        ),
        &[],
        &mut |d, r| {
            d.summary.points = r.i64(1)?;
            Ok(())
        },
    )?;
    // Days are counted in the tenant's zone: shift by its offset before dividing.
    let today = calendar::day_of(events_from);
    let offset = i64::from(today) * DAY_MS - calendar::start_of(today);
    each(
        tx,
        format!(
            "SELECT o.member_id, (o.placed_at + ${a}) / {DAY_MS}, o.channel, COUNT(*), CAST(SUM(o.subtotal_fen) AS BIGINT),
                    CAST(SUM(o.discount_fen) AS BIGINT), CAST(SUM(o.points_value_fen) AS BIGINT), CAST(SUM(o.payable_fen) AS BIGINT),
                    CAST(SUM(CASE WHEN o.discount_fen > 0 THEN 1 ELSE 0 END) AS BIGINT)
             FROM orders o JOIN members m ON m.id = o.member_id
             WHERE {filter} AND o.status NOT IN ('cancelled', 'awaiting_payment')
             GROUP BY o.member_id, (o.placed_at + ${a}) / {DAY_MS}, o.channel",
            a = n + 1
        ),
        &[Value::Int(offset)],
        &mut |d, r| {
            d.summary.orders.push(OrderFact {
                day: r.i64(1)? as i32,
                channel: r.string(2)?,
                orders: r.i64(3)?,
                subtotal_fen: r.i64(4)?,
                discount_fen: r.i64(5)?,
                points_value_fen: r.i64(6)?,
                paid_fen: r.i64(7)?,
                coupon_orders: r.i64(8)?,
            });
            Ok(())
        },
    )?;
    each(
        tx,
        format!(
            "SELECT o.member_id, l.category, CAST(SUM(l.paid_fen) AS BIGINT) FROM order_lines l JOIN orders o ON o.id = l.order_id
             JOIN members m ON m.id = o.member_id
             WHERE {filter} AND o.status NOT IN ('cancelled', 'awaiting_payment') GROUP BY o.member_id, l.category"
        ),
        &[],
        &mut |d, r| {
            d.summary.category_spend.insert(r.string(1)?, r.i64(2)?);
            Ok(())
        },
    )?;
    each(
        tx,
        format!(
            "SELECT DISTINCT c.member_id FROM consents c JOIN members m ON m.id = c.member_id
             WHERE {filter} AND c.purpose = 'profiling' AND c.granted = 1"
        ),
        &[],
        &mut |d, _| {
            d.profiling = true;
            Ok(())
        },
    )?;
    each(
        tx,
        format!("SELECT t.member_id, t.tag FROM member_tags t JOIN members m ON m.id = t.member_id WHERE {filter}"),
        &[],
        &mut |d, r| {
            d.tags.insert(r.string(1)?);
            Ok(())
        },
    )?;
    each(
        tx,
        format!(
            "SELECT l.member_id, l.stage FROM member_lifecycle l JOIN members m ON m.id = l.member_id WHERE {filter}"
        ),
        &[],
        &mut |d, r| {
            d.recorded_stage = Stage::parse(&r.string(1)?);
            Ok(())
        },
    )?;
    each(
        tx,
        format!(
            "SELECT e.member_id, e.name, (e.at + ${a}) / {DAY_MS} AS day, COUNT(*) FROM events e
             JOIN members m ON m.id = e.member_id WHERE {filter} AND e.at >= ${b}
             GROUP BY e.member_id, e.name, (e.at + ${a}) / {DAY_MS}",
            a = n + 1,
            b = n + 2
        ),
        &[Value::Int(offset), Value::Int(events_from)],
        &mut |d, r| {
            let (name, day, count) = (r.string(1)?, r.i64(2)? as i32, r.i64(3)? as u32);
            match name.as_str() {
                "store_entry" => d.summary.last_store_entry = d.summary.last_store_entry.max(Some(day)),
                "product_added" => d.summary.last_cart = d.summary.last_cart.max(Some(day)),
                _ => {}
            }
            d.events.entry(name).or_default().insert(day, count);
            Ok(())
        },
    )?;
    let category = match tx.dialect() {
        // Not json_extract's '$.…' path: `$` marks parameters in our SQL.
        crate::db::Dialect::Sqlite => "(e.body -> 'properties' ->> 'category')",
        crate::db::Dialect::Postgres => "(e.body::jsonb -> 'properties' ->> 'category')",
    };
    each(
        tx,
        format!(
            "SELECT e.member_id, {category} AS category, MAX(e.at) FROM events e JOIN members m ON m.id = e.member_id
             WHERE {filter} AND e.name = 'product_viewed' AND e.at >= ${b} AND {category} IS NOT NULL
             GROUP BY e.member_id, {category}",
            b = n + 1
        ),
        &[Value::Int(events_from)],
        &mut |d, r| {
            d.summary.browsed.insert(r.string(1)?, calendar::day_of(r.i64(2)?));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Record a member's stage; a change is a transition with its time. Returns the old stage
/// when it changed.
pub fn record_stage(tx: &mut dyn Tx, member_id: &str, stage: Stage, now: Millis) -> Result<Option<Option<Stage>>> {
    let old = tx
        .query_one("SELECT stage FROM member_lifecycle WHERE member_id = $1", vals![member_id])?
        .map(|r| r.string(0))
        .transpose()?
        .and_then(|s| Stage::parse(&s));
    if old == Some(stage) {
        return Ok(None);
    }
    tx.exec(
        "INSERT INTO member_lifecycle (member_id, stage, since) VALUES ($1, $2, $3)
         ON CONFLICT (member_id) DO UPDATE SET stage = excluded.stage, since = excluded.since",
        vals![member_id, stage.as_str(), now],
    )?;
    tx.exec(
        "INSERT INTO lifecycle_transitions (member_id, from_stage, to_stage, at) VALUES ($1, $2, $3, $4)",
        vals![member_id, old.map(|s| s.as_str()), stage.as_str(), now],
    )?;
    crate::outbox::append(
        tx,
        "member.lifecycle_changed",
        Some(member_id),
        &serde_json::json!({"member_id": member_id, "from": old.map(|s| s.as_str()), "to": stage.as_str()}),
        now,
    )?;
    Ok(Some(old))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    pub from: Option<String>,
    pub to: String,
    pub at: Millis,
}

pub fn transitions(tx: &mut dyn Tx, member_id: &str) -> Result<Vec<Transition>> {
    tx.query(
        "SELECT from_stage, to_stage, at FROM lifecycle_transitions WHERE member_id = $1 ORDER BY id",
        vals![member_id],
    )?
    .iter()
    .map(|r| Ok(Transition { from: r.opt_string(0)?, to: r.string(1)?, at: r.i64(2)? }))
    .collect()
}

/// RFM raw values from scratch: per member who ever bought before `as_of`, the last order's
/// time, and the count and paid sum of the orders from `window_from`. One scan of the orders
/// in table order, aggregated here: SQLite's GROUP BY would walk the member index and fetch
/// every row by its key, several times slower.
pub fn rfm_raw(tx: &mut dyn Tx, as_of: Millis, window_from: Millis) -> Result<Vec<(String, Millis, i64, i64)>> {
    let mut by_member: HashMap<String, (Millis, i64, i64)> = HashMap::new();
    let mut bad = None;
    tx.query_each(
        "SELECT member_id, placed_at, payable_fen FROM orders
         WHERE member_id IS NOT NULL AND placed_at < $1 AND status NOT IN ('cancelled', 'awaiting_payment')",
        vals![as_of],
        &mut |r| {
            let (Ok(at), Ok(fen)) = (r.i64(1), r.i64(2)) else {
                bad = Some(DbError::Other("an order row without time or amount".into()));
                return;
            };
            let Ok(member) = r.str(0) else { return };
            let e = match by_member.get_mut(member) {
                Some(e) => e,
                None => by_member.entry(member.to_string()).or_insert((at, 0, 0)),
            };
            e.0 = e.0.max(at);
            if at >= window_from {
                e.1 += 1;
                e.2 += fen;
            }
        },
    )?;
    if let Some(e) = bad {
        return Err(e.into());
    }
    let mut out: Vec<(String, Millis, i64, i64)> = by_member.into_iter().map(|(m, (l, f, v))| (m, l, f, v)).collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// [`rfm_raw`] for one member: (last order, frequency, monetary), or None if never bought.
pub fn rfm_raw_of(
    tx: &mut dyn Tx,
    member_id: &str,
    as_of: Millis,
    window_from: Millis,
) -> Result<Option<(Millis, i64, i64)>> {
    let r = tx.query_one(
        "SELECT MAX(placed_at), CAST(SUM(CASE WHEN placed_at >= $3 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN placed_at >= $3 THEN payable_fen ELSE 0 END) AS BIGINT)
         FROM orders WHERE member_id = $1 AND placed_at < $2 AND status NOT IN ('cancelled', 'awaiting_payment')",
        vals![member_id, as_of, window_from],
    )?;
    match r {
        Some(r) => match r.opt_i64(0)? {
            Some(last) => Ok(Some((last, r.opt_i64(1)?.unwrap_or(0), r.opt_i64(2)?.unwrap_or(0)))),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

fn setting<T: serde::de::DeserializeOwned + Default>(tx: &mut dyn Tx, key: &str) -> Result<T> {
    match tx.query_one("SELECT value FROM meta WHERE key = $1", vals![key])? {
        Some(r) => Ok(serde_json::from_str(&r.string(0)?).map_err(|e| DbError::Other(e.to_string()))?),
        None => Ok(T::default()),
    }
}

fn put_setting<T: serde::Serialize>(tx: &mut dyn Tx, key: &str, value: &T) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vals![key, text],
    )?;
    Ok(())
}

pub fn rfm_config(tx: &mut dyn Tx) -> Result<RfmConfig> {
    setting(tx, "cdp.rfm")
}

pub fn set_rfm_config(tx: &mut dyn Tx, c: &RfmConfig) -> Result<()> {
    put_setting(tx, "cdp.rfm", c)
}

pub fn lifecycle_config(tx: &mut dyn Tx) -> Result<LifecycleConfig> {
    setting(tx, "cdp.lifecycle")
}

pub fn set_lifecycle_config(tx: &mut dyn Tx, c: &LifecycleConfig) -> Result<()> {
    put_setting(tx, "cdp.lifecycle", c)
}

/// How long events are kept, in days (default 400, so that "within a year" rules work).
pub fn retention_days(tx: &mut dyn Tx) -> Result<i64> {
    Ok(setting::<Option<i64>>(tx, "cdp.retention_days")?.unwrap_or(400))
}

pub fn set_retention_days(tx: &mut dyn Tx, days: i64) -> Result<()> {
    put_setting(tx, "cdp.retention_days", &Some(days))
}
