//! Benchmarks of the customer data platform, each next to a baseline measured in the same run:
//!
//! - event ingestion over HTTP `/v1/batch` (acknowledged when durable) against rusqlite
//!   inserting the same rows into the same `events` table, same indexes, same `synchronous`,
//!   same batch size;
//! - a five-predicate segment count over synthetic members against DuckDB (Python, from PyPI)
//!   running the equivalent SQL over the same data, and the memory of the audience index;
//! - RFM from scratch over stored orders against DuckDB computing the same in SQL.
//!
//! Large data is generated once through the store's bulk path and cached under
//! `target/bench-data/`; DuckDB reads the same rows from a CSV written next to it.

use crate::{BENCH_KEY, Measured};
use rand::{Rng, SeedableRng};
use ronghe_domain::dims::Dim;
use ronghe_domain::lifecycle::Stage;
use ronghe_domain::rfm::Scores;
use ronghe_domain::segment::{Facts, Rule, Vocabulary};
use ronghe_domain::{Millis, calendar};
use ronghe_engine::AudienceIndex;
use ronghe_store::{Location, Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages per batch, for the server and the baseline alike.
pub const BATCH: usize = 100;
const SLOT: &str = "XXXXXXXXXXXX";

fn store_at(dir: &Path) -> anyhow::Result<Store> {
    let mut opts = StoreOptions::new(Location::Sqlite(dir.to_path_buf()));
    opts.master_key = Some(BENCH_KEY.into());
    Ok(Store::open(&opts)?)
}

/// One pre-serialised batch whose message ids carry a 12-character slot that each request
/// overwrites with its own number (a copy and a few bytes written, no serialisation).
fn batch_template(now: Millis) -> (Vec<u8>, Vec<usize>) {
    let sent = jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default();
    let mut msgs = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        msgs.push(serde_json::json!({
            "type": "track", "event": "Product Viewed", "anonymousId": format!("anon-{SLOT}-{i:03}"),
            "messageId": format!("msg-{SLOT}-{i:03}"), "timestamp": sent,
            "properties": {"sku": format!("SKU-{:05}", i * 37 % 50_000), "category": "shoes", "price_fen": 39_900},
            "context": {"library": {"name": "bench", "version": "1"}, "channel": "app"}
        }));
    }
    let body = serde_json::json!({"batch": msgs, "sentAt": sent}).to_string().into_bytes();
    let slots = body.windows(SLOT.len()).enumerate().filter(|(_, w)| *w == SLOT.as_bytes()).map(|(i, _)| i).collect();
    (body, slots)
}

fn fill(template: &[u8], slots: &[usize], n: u64) -> Vec<u8> {
    let mut b = template.to_vec();
    let stamp = format!("{n:012x}");
    for s in slots {
        b[*s..*s + SLOT.len()].copy_from_slice(stamp.as_bytes());
    }
    b
}

/// Ingestion over HTTP and its raw SQLite baseline.
pub async fn ingest(root: &Path, d: Duration, concurrency: usize) -> anyhow::Result<(Measured, Measured)> {
    let dir = root.join("ingest");
    let _ = std::fs::remove_dir_all(&dir);
    let store = store_at(&dir.join("server"))?;
    let key = {
        let k = ronghe_store::keys::NewKey {
            role: ronghe_domain::auth::Role::Tracker,
            name: "bench".into(),
            store_id: None,
            channel: Some("app".into()),
        };
        store.write(move |tx, _| ronghe_store::keys::create(tx, &k, 0)).await?.secret
    };
    let now = ronghe_server::clock::Clock::now_ms(&ronghe_server::clock::SystemClock);
    let (template, slots) = batch_template(now);
    let base = crate::start_server(store).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let (template, slots) = (Arc::new(template), Arc::new(slots));
    for _ in 0..concurrency {
        let (client, url, key, counter, template, slots) =
            (client.clone(), format!("{base}/v1/batch"), key.clone(), counter.clone(), template.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while started.elapsed() < d {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = fill(&template, &slots, n);
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .basic_auth(&key, Some(""))
                    .header("content-type", "text/plain")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    Ok(r) => {
                        if errors == 0 {
                            eprintln!("  first error of a client: {}", r.text().await.unwrap_or_default());
                        }
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    // One measured op is a batch; report events.
    let mut http = Measured::from_latencies(
        &format!("ingest over HTTP /v1/batch ({BATCH} events per batch, acknowledged when durable)"),
        lat,
        errors,
        secs,
    );
    http.ops *= BATCH as u64;
    let raw = raw_event_inserts(&dir.join("baseline"), d, now)?;
    Ok((http, raw))
}

/// Baseline: rusqlite inserting the same rows into the same `events` table (created by the
/// store's migrations, so the same indexes), same pragmas, one transaction per batch.
pub fn raw_event_inserts(dir: &Path, d: Duration, now: Millis) -> anyhow::Result<Measured> {
    drop(store_at(dir)?);
    let conn = rusqlite::Connection::open(dir.join("ronghe.db"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;
         PRAGMA mmap_size = 17179869184; PRAGMA cache_size = -32768;",
    )?;
    let keyring = ronghe_store::Keyring::from_master(ronghe_store::Keyring::parse_master(BENCH_KEY)?);
    let body = serde_json::json!({"properties": {"sku": "SKU-00001", "category": "shoes", "price_fen": 39_900},
        "context": {"library": {"name": "bench", "version": "1"}, "channel": "app"}})
    .to_string();
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < d {
        let t = Instant::now();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (message_id, at, received_at, kind, name, member_id, user_key, anon_key, source,
                    channel, store_id, body, traits_enc)
                 VALUES (?1, ?2, ?3, 'track', 'product_viewed', NULL, NULL, ?4, 'bench', 'app', NULL, ?5, NULL)
                 ON CONFLICT (message_id) DO NOTHING",
            )?;
            for i in 0..BATCH {
                let anon = ronghe_store::events::anon_key(&keyring, &format!("anon-{n:012x}-{i:03}"));
                stmt.execute(rusqlite::params![format!("msg-{n:012x}-{i:03}"), now, now, anon, body])?;
            }
        }
        tx.commit()?;
        lat.push(t.elapsed().as_micros() as u64);
        n += 1;
    }
    let mut m = Measured::from_latencies(
        &format!("baseline: rusqlite, same table and indexes, synchronous=FULL, {BATCH} rows per commit"),
        lat,
        0,
        started.elapsed().as_secs_f64(),
    );
    m.ops *= BATCH as u64;
    Ok(m)
}

pub const CITIES: usize = 50;

/// The synthetic member `i`: a tag held by 8 %, RFM scores uniform 1–5, one of 50 cities,
/// points uniform 0–20,000, and plausible values for every other built-in dimension.
fn synthetic(i: u64) -> (bool, u8, u8, u8, usize, i64, Facts) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(i ^ 0x5eed);
    let vip = rng.gen_bool(0.08);
    let (r, f, m) = (rng.gen_range(1..=5u8), rng.gen_range(1..=5u8), rng.gen_range(1..=5u8));
    let city = rng.gen_range(0..CITIES);
    let points = rng.gen_range(0..=20_000i64);
    let mut facts = Facts { points, profiling: rng.gen_bool(0.6), ..Facts::default() };
    if vip {
        facts.tags.insert("vip".into());
    }
    facts.rfm = Scores { r, f, m };
    facts.lifecycle = Stage::ALL[rng.gen_range(0..5)];
    let mut put = |d: Dim, v: String| {
        facts.dims.entry(d).or_default().insert(v);
    };
    put(Dim::City, format!("city-{city:02}"));
    put(Dim::AgeBand, ["under_18", "18-24", "25-34", "35-44", "45-54", "55+", "unknown"][rng.gen_range(0..7)].into());
    put(Dim::Gender, ["female", "male", "unknown"][rng.gen_range(0..3)].into());
    put(Dim::Tier, ["none", "silver", "gold", "platinum"][rng.gen_range(0..4)].into());
    put(Dim::PointsBand, ["0", "1-999", "1000-4999", "5000-19999", "20000+"][rng.gen_range(0..5)].into());
    put(Dim::AovBand, ["none", "under_100", "100-299", "300-999", "1000+"][rng.gen_range(0..5)].into());
    put(Dim::FrequencyBand, ["0", "1", "2-3", "4-9", "10+"][rng.gen_range(0..5)].into());
    put(Dim::FavouriteCategory, format!("cat-{:02}", rng.gen_range(0..12)));
    put(Dim::FavouriteChannel, ["pos", "mini_program", "app", "web", "none"][rng.gen_range(0..5)].into());
    put(Dim::ShopperType, ["none", "offline", "online", "omnichannel"][rng.gen_range(0..4)].into());
    put(Dim::PriceSensitivity, ["unknown", "low", "medium", "high"][rng.gen_range(0..4)].into());
    put(Dim::CouponSensitivity, ["unknown", "low", "medium", "high"][rng.gen_range(0..4)].into());
    put(Dim::TenureBand, ["under_30d", "30-179d", "180-364d", "1-2y", "2y+"][rng.gen_range(0..5)].into());
    put(Dim::Lifecycle, facts.lifecycle.as_str().into());
    put(Dim::RfmCell, facts.rfm.cell());
    put(Dim::RfmGroup, facts.rfm.group(5).map(|g| g.as_str()).unwrap_or("none").into());
    put(Dim::StoreVisitor, ["yes", "no"][rng.gen_range(0..2)].into());
    put(Dim::CartAbandoner, ["yes", "no"][rng.gen_range(0..2)].into());
    if rng.gen_bool(0.3) {
        put(Dim::BrowsedCategory, format!("cat-{:02}", rng.gen_range(0..12)));
    }
    (vip, r, f, m, city, points, facts)
}

/// The benchmark's rule, in Ronghe's language and in SQL.
pub fn segment_rule() -> (serde_json::Value, String) {
    let cities: Vec<usize> = (0..10).map(|i| i * 5).collect();
    let names: Vec<String> = cities.iter().map(|c| format!("city-{c:02}")).collect();
    let rule = serde_json::json!({"all": [
        {"tag": "vip"},
        {"rfm": {"r": [4, 5], "f": [3, 5]}},
        {"dim": "city", "in": names},
        {"points": {"ge": 1000}}
    ]});
    let list: Vec<String> = cities.iter().map(|c| c.to_string()).collect();
    let sql = format!(
        "SELECT count(*) FROM m WHERE vip AND r BETWEEN 4 AND 5 AND f BETWEEN 3 AND 5 AND city IN ({}) AND points >= 1000",
        list.join(",")
    );
    (rule, sql)
}

pub struct SegmentFigures {
    pub members: u64,
    pub count: u64,
    pub build_seconds: f64,
    pub ronghe: Measured,
    pub memory_bytes: usize,
    /// DuckDB's median and the count it found, when Python with DuckDB is available.
    pub duckdb: Option<(Measured, u64)>,
}

/// Build the audience index of `n` synthetic members and time the rule; the same rows go to a
/// cached CSV that DuckDB loads and queries.
pub fn segments(root: &Path, n: u64, runs: usize, python: Option<&Path>) -> anyhow::Result<SegmentFigures> {
    let started = Instant::now();
    let mut index = AudienceIndex::new(5);
    let csv_path = root.join(format!("segment-members-{n}.csv"));
    let write_csv = !csv_path.exists() && python.is_some();
    let mut csv = if write_csv {
        let tmp = csv_path.with_extension("tmp");
        Some((std::io::BufWriter::new(std::fs::File::create(&tmp)?), tmp))
    } else {
        None
    };
    if let Some((w, _)) = csv.as_mut() {
        writeln!(w, "id,vip,r,f,m,city,points")?;
    }
    for i in 0..n {
        let (vip, r, f, m, city, points, facts) = synthetic(i);
        index.upsert(&format!("m{i}"), &facts, true);
        if let Some((w, _)) = csv.as_mut() {
            writeln!(w, "{i},{vip},{r},{f},{m},{city},{points}")?;
        }
    }
    if let Some((mut w, tmp)) = csv {
        w.flush()?;
        drop(w);
        std::fs::rename(tmp, &csv_path)?;
    }
    let build_seconds = started.elapsed().as_secs_f64();
    let (json, sql) = segment_rule();
    let tags: BTreeSet<String> = ["vip".to_string()].into_iter().collect();
    let rule = Rule::parse(&json, &Vocabulary { tags: &tags, attributes: &BTreeMap::new(), rfm_k: 5 })?;
    let today = calendar::day_of(0);
    let mut lat = Vec::with_capacity(runs);
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        count = index.count(&rule, today);
        lat.push(t.elapsed().as_micros() as u64);
    }
    let total: f64 = lat.iter().sum::<u64>() as f64 / 1e6;
    let ronghe = Measured::from_latencies("5-predicate segment count, audience index", lat, 0, total);
    let memory_bytes = index.memory_bytes();
    let duckdb = match python {
        Some(py) => Some(duckdb_query(py, &csv_path, &sql, runs)?),
        None => None,
    };
    Ok(SegmentFigures { members: n, count, build_seconds, ronghe, memory_bytes, duckdb })
}

/// Run `sql` `runs` times in DuckDB over the CSV loaded into memory; the median per query.
fn duckdb_query(python: &Path, csv: &Path, sql: &str, runs: usize) -> anyhow::Result<(Measured, u64)> {
    let script = format!(
        r#"
import duckdb, json, time
con = duckdb.connect()
con.execute("CREATE TABLE m AS SELECT * FROM read_csv_auto('{csv}')")
lat = []
for _ in range({runs}):
    t = time.perf_counter()
    n = con.execute("{sql}").fetchone()[0]
    lat.append(int((time.perf_counter() - t) * 1e6))
print(json.dumps({{"count": n, "lat": lat}}))
"#,
        csv = csv.display(),
        sql = sql,
        runs = runs
    );
    run_python(python, &script).map(|v| {
        let lat: Vec<u64> =
            v["lat"].as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).collect()).unwrap_or_default();
        let total = lat.iter().sum::<u64>() as f64 / 1e6;
        (
            Measured::from_latencies("baseline: DuckDB, the same SQL over the same rows in memory", lat, 0, total),
            v["count"].as_u64().unwrap_or(0),
        )
    })
}

fn run_python(python: &Path, script: &str) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(python).arg("-c").arg(script).output()?;
    if !out.status.success() {
        anyhow::bail!("python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(text.lines().last().unwrap_or("{}"))?)
}

pub struct RfmFigures {
    pub members: u64,
    pub orders: u64,
    pub scored: u64,
    pub ronghe_seconds: f64,
    pub duckdb_seconds: Option<f64>,
    /// Cells that differ between the two (0 when they agree).
    pub mismatched_cells: Option<u64>,
}

/// Orders of `members` members, `per_member` each on average, stored through the store's bulk
/// path once and cached.
pub async fn orders_store(root: &Path, members: u64, orders: u64) -> anyhow::Result<(Store, PathBuf, Millis)> {
    let dir = root.join(format!("rfm-{members}-{orders}-{}", ronghe_store::schema_fingerprint()));
    let ready = dir.join("ready");
    let as_of: Millis = 1_767_196_800_000; // 2026-01-01 in Shanghai
    let csv = dir.join("orders.csv");
    if ready.exists() {
        return Ok((store_at(&dir)?, csv, as_of));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = store_at(&dir)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(w, "member_id,placed_at,amount")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let chunk = 100_000u64;
    let mut done = 0;
    while done < orders {
        let rows: Vec<(String, Millis, i64)> = (0..chunk.min(orders - done))
            .map(|_| {
                let m = rng.gen_range(0..members);
                let at = as_of - rng.gen_range(1..730 * 86_400_000i64);
                (format!("m{m:08}"), at, rng.gen_range(100..100_000i64))
            })
            .collect();
        for (m, at, fen) in &rows {
            writeln!(w, "{m},{at},{fen}")?;
        }
        done += rows.len() as u64;
        store.write(move |tx, _| ronghe_store::history::bulk_orders(tx, &rows)).await?;
    }
    w.flush()?;
    std::fs::write(&ready, b"")?;
    Ok((store, csv, as_of))
}

/// RFM (quintiles, 365-day window) for every member from scratch: Ronghe's SQL aggregate and
/// scoring against DuckDB computing the same in SQL over the same orders.
pub async fn rfm(root: &Path, members: u64, orders: u64, python: Option<&Path>) -> anyhow::Result<RfmFigures> {
    let (store, csv, as_of) = orders_store(root, members, orders).await?;
    let config = ronghe_domain::rfm::RfmConfig::default();
    let day = calendar::day_of(as_of - 1);
    let window_from = calendar::start_of(day - config.window_days as i32 + 1);
    let t = Instant::now();
    let rows =
        store.read(move |tx, _| ronghe_store::audience::rfm_raw(tx, calendar::start_of(day + 1), window_from)).await?;
    let view = ronghe_server::routes::audience::rfm_answer(&config, day, &rows, rows.len() as i64);
    let ronghe_seconds = t.elapsed().as_secs_f64();
    let mine: BTreeMap<String, u64> = view.cells.iter().map(|c| (c.cell.clone(), c.count)).collect();
    let (duckdb_seconds, mismatched_cells) = match python {
        None => (None, None),
        Some(py) => {
            let offset = i64::from(day) * 86_400_000 - calendar::start_of(day);
            let until = calendar::start_of(day + 1);
            let script = format!(
                r#"
import duckdb, json, time
con = duckdb.connect()
con.execute("CREATE TABLE orders AS SELECT * FROM read_csv_auto('{csv}')")
t = time.perf_counter()
rows = con.execute('''
WITH raw AS (
  SELECT member_id, (max(placed_at) + {offset}) // 86400000 AS last_day,
         sum(CASE WHEN placed_at >= {window_from} THEN 1 ELSE 0 END) AS f,
         sum(CASE WHEN placed_at >= {window_from} THEN amount ELSE 0 END) AS m
  FROM orders WHERE placed_at < {until} GROUP BY member_id),
n AS (SELECT count(*) AS n FROM raw),
scored AS (
  SELECT 1 + (5 * (rank() OVER (ORDER BY last_day) - 1)) // n AS r,
         1 + (5 * (rank() OVER (ORDER BY f) - 1)) // n AS f,
         1 + (5 * (rank() OVER (ORDER BY m) - 1)) // n AS m
  FROM raw, n)
SELECT r, f, m, count(*) FROM scored GROUP BY r, f, m''').fetchall()
secs = time.perf_counter() - t
print(json.dumps({{"secs": secs, "cells": {{f"R{{r}}F{{f}}M{{m}}": c for r, f, m, c in rows}}}}))
"#,
                csv = csv.display()
            );
            let v = run_python(py, &script)?;
            let theirs: BTreeMap<String, u64> = v["cells"]
                .as_object()
                .map(|o| o.iter().map(|(k, c)| (k.clone(), c.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default();
            let keys: BTreeSet<&String> = mine.keys().chain(theirs.keys()).collect();
            let diff = keys.into_iter().filter(|k| mine.get(*k) != theirs.get(*k)).count() as u64;
            (v["secs"].as_f64(), Some(diff))
        }
    };
    Ok(RfmFigures { members, orders, scored: view.scored, ronghe_seconds, duckdb_seconds, mismatched_cells })
}

/// The Python with DuckDB named by `RONGHE_BENCH_PYTHON` (or `RONGHE_TEST_PYTHON`), if any.
pub fn python() -> Option<PathBuf> {
    ["RONGHE_BENCH_PYTHON", "RONGHE_TEST_PYTHON"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()))
        .map(PathBuf::from)
        .or_else(|| {
            let venv = PathBuf::from("target/pyenv/bin/python");
            venv.exists().then_some(venv)
        })
}
