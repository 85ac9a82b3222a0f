//! Benchmarks of the member API, each next to a baseline measured in the same run:
//! identity lookup over HTTP against a direct SQL lookup of the same identity in the same
//! store, and registration over HTTP against raw durable SQLite inserts.
//!
//! Data is generated through the store's bulk path (not HTTP) and cached under
//! `target/bench-data/`, so a second run starts at once.

pub mod cdp;
pub mod stock;

use rand::{Rng, SeedableRng};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::Profile;
use ronghe_server::clock::SystemClock;
use ronghe_server::ratelimit::Limit;
use ronghe_server::{AppState, Config};
use ronghe_store::members::{self, Registration, Source};
use ronghe_store::{Keyring, Location, Store, StoreOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fixed master key of benchmark data (it holds no real person).
pub const BENCH_KEY: &str = "be0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0c";

pub fn phone(i: u64) -> String {
    format!("+86139{:08}", i)
}

/// Open (creating and filling if needed) a store of `n` members under `dir`.
pub async fn members_store(dir: &Path, n: u64) -> anyhow::Result<Store> {
    let ready = dir.join("ready");
    let mut opts = StoreOptions::new(Location::Sqlite(dir.to_path_buf()));
    opts.master_key = Some(BENCH_KEY.into());
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let store = tokio::task::spawn_blocking(move || Store::open(&opts)).await??;
    if !ready.exists() {
        let started = Instant::now();
        let chunk = 5_000u64;
        let mut i = 0;
        while i < n {
            let end = (i + chunk).min(n);
            let regs: Vec<Registration> = (i..end).map(registration).collect();
            store
                .write(move |tx, kr| {
                    for r in &regs {
                        members::register(tx, kr, r, "bench", 1_767_225_600_000)?;
                    }
                    Ok(())
                })
                .await?;
            i = end;
            if i % 100_000 == 0 || i == n {
                eprintln!("  generated {i}/{n} members ({:.0} s)", started.elapsed().as_secs_f64());
            }
        }
        // Fold the bulk load's WAL into the database now, so that the checkpoint does not run
        // during the measurement.
        rusqlite::Connection::open(dir.join("ronghe.db"))?
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        std::fs::write(&ready, n.to_string())?;
    }
    Ok(store)
}

fn registration(i: u64) -> Registration {
    Registration {
        identities: vec![
            (Identity::from_stored(IdentityKind::Phone, phone(i), None), true),
            (Identity::from_stored(IdentityKind::MemberCard, format!("B{i:09}"), None), true),
        ],
        profile: Profile { name: Some(format!("会员{i}")), city: Some("杭州".into()), ..Default::default() },
        source: Source { channel: Some("pos".into()), store_id: Some("S001".into()), method: None },
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
    /// From per-operation latencies in microseconds over `seconds`.
    pub fn from_latencies(name: &str, lat: Vec<u64>, errors: u64, seconds: f64) -> Measured {
        Self::from(name, lat, errors, seconds)
    }

    fn from(name: &str, mut lat: Vec<u64>, errors: u64, seconds: f64) -> Measured {
        lat.sort_unstable();
        let q =
            |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
        Measured { name: name.into(), ops: lat.len() as u64, errors, seconds, p50_us: q(0.50), p99_us: q(0.99) }
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>10.0}/s  p50 {:>6} µs  p99 {:>6} µs  ({} ops, {} errors, {:.1} s)",
            self.name,
            self.per_second(),
            self.p50_us,
            self.p99_us,
            self.ops,
            self.errors,
            self.seconds
        )
    }
}

/// Baseline: the same identity looked up with one SQL query on a connection to the same file.
pub fn direct_sql_lookup(dir: &Path, n: u64, duration: Duration) -> anyhow::Result<Measured> {
    let kr = Keyring::from_master(Keyring::parse_master(BENCH_KEY)?);
    let conn =
        rusqlite::Connection::open_with_flags(dir.join("ronghe.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute_batch("PRAGMA mmap_size = 17179869184; PRAGMA cache_size = -32768;")?;
    let mut stmt = conn.prepare("SELECT member_id FROM identities WHERE blind = ?1")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut lat = Vec::new();
    let mut errors = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        let i = rng.gen_range(0..n);
        let t = Instant::now();
        let id = Identity::parse(IdentityKind::Phone, &phone(i), None)?;
        let found: Option<String> = stmt.query_row([kr.blind(&id.canonical())], |r| r.get(0)).ok();
        lat.push(t.elapsed().as_micros() as u64);
        errors += found.is_none() as u64;
    }
    Ok(Measured::from("baseline: direct SQL lookup (1 thread)", lat, errors, started.elapsed().as_secs_f64()))
}

/// A server on an ephemeral port over `store`, with rate limits off; returns its base URL.
pub async fn start_server(store: Store) -> anyhow::Result<String> {
    let config = Config {
        rate_limit: Limit { per_second: 0.0, burst: 0.0 },
        lookup_rate_limit: Limit { per_second: 0.0, burst: 0.0 },
        ..Config::default()
    };
    let state = AppState::new(store, Arc::new(SystemClock), config);
    // Measure the steady state: the audience index is built before the clients start.
    let now = ronghe_server::clock::Clock::now_ms(&SystemClock);
    let started = Instant::now();
    drop(state.audience.get(&state.store, now).await.map_err(|e| anyhow::anyhow!("{:?}", e.error))?);
    eprintln!("  audience index built in {:.1} s", started.elapsed().as_secs_f64());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(ronghe_server::serve(listener, state, std::future::pending()));
    Ok(base)
}

pub async fn key(store: &Store, role: ronghe_domain::auth::Role, store_id: Option<&str>) -> anyhow::Result<String> {
    let k = ronghe_store::keys::NewKey {
        role,
        name: "bench".into(),
        store_id: store_id.map(str::to_string),
        channel: None,
    };
    Ok(store.write(move |tx, _| ronghe_store::keys::create(tx, &k, 0)).await?.secret)
}

/// Drive `concurrency` clients for `duration`, each sending what `body(i)` gives to `path`.
pub async fn http_load(
    name: &str,
    base: &str,
    key: &str,
    path: &str,
    concurrency: usize,
    duration: Duration,
    body: Arc<dyn Fn(u64) -> serde_json::Value + Send + Sync>,
) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let started = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, key, body, counter) =
            (client.clone(), format!("{base}{path}"), key.to_string(), body.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while started.elapsed() < duration {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = Instant::now();
                let ok = match client.post(&url).bearer_auth(&key).json(&body(i)).send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let text = r.bytes().await.unwrap_or_default();
                        if !ok && errors == 0 {
                            eprintln!("  first error of a client: {}", String::from_utf8_lossy(&text));
                        }
                        ok
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    Ok(Measured::from(name, lat, errors, started.elapsed().as_secs_f64()))
}

/// Baseline: raw durable SQLite inserts (one row per commit, WAL, synchronous=FULL), i.e. the
/// cost of one durable write without group commit.
pub fn raw_sqlite_inserts(dir: &Path, duration: Duration) -> anyhow::Result<Measured> {
    let path = dir.join("raw-baseline.db");
    let _ = std::fs::remove_file(&path);
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE m (id TEXT PRIMARY KEY, phone TEXT UNIQUE, name TEXT, created_at INTEGER);",
    )?;
    let mut stmt = conn.prepare("INSERT INTO m (id, phone, name, created_at) VALUES (?1, ?2, ?3, ?4)")?;
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < duration {
        let t = Instant::now();
        stmt.execute(rusqlite::params![format!("m_{i}"), phone(i), "会员", i as i64])?;
        lat.push(t.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok(Measured::from("baseline: raw SQLite insert, 1 row per commit", lat, 0, started.elapsed().as_secs_f64()))
}

/// The figures of one run; a part not asked for is `None`.
pub struct Report {
    pub lookup: Option<(Measured, Measured)>,
    pub register: Option<(Measured, Measured)>,
    pub orders: Option<(Measured, Measured)>,
}

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    All,
    Lookup,
    Register,
    Orders,
}

/// The whole member benchmark: `members` stored, `seconds` per measurement.
pub async fn run(
    data_root: &Path,
    members: u64,
    seconds: f64,
    concurrency: usize,
    parts: Parts,
) -> anyhow::Result<Report> {
    let d = Duration::from_secs_f64(seconds);
    let lookup = match parts {
        Parts::All | Parts::Lookup => Some(lookup(data_root, members, d, concurrency).await?),
        _ => None,
    };
    let register = match parts {
        Parts::All | Parts::Register => Some(register(data_root, d, concurrency).await?),
        _ => None,
    };
    let orders = match parts {
        Parts::All | Parts::Orders => Some(orders(data_root, d, concurrency).await?),
        _ => None,
    };
    Ok(Report { lookup, register, orders })
}

/// Lookup over HTTP, and its baseline.
async fn lookup(
    data_root: &Path,
    members: u64,
    d: Duration,
    concurrency: usize,
) -> anyhow::Result<(Measured, Measured)> {
    let dir: PathBuf = data_root.join(format!("members-{members}-schema-{}", ronghe_store::schema_fingerprint()));
    let store = members_store(&dir, members).await?;
    let lookup_sql = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || direct_sql_lookup(&dir, members, d)).await??
    };
    let base = start_server(store.clone()).await?;
    let till = key(&store, ronghe_domain::auth::Role::Store, Some("S001")).await?;
    let n = members;
    let lookup_http = http_load(
        "HTTP POST /v1/members/lookup (store key)",
        &base,
        &till,
        "/v1/members/lookup",
        concurrency,
        d,
        Arc::new(move |i| {
            let j = (i.wrapping_mul(2_654_435_761)) % n;
            serde_json::json!({"type": "phone", "value": phone(j)})
        }),
    )
    .await?;
    Ok((lookup_http, lookup_sql))
}

/// Registration over HTTP, and its baseline.
async fn register(data_root: &Path, d: Duration, concurrency: usize) -> anyhow::Result<(Measured, Measured)> {
    // New members go to a separate store, so that the cached lookup data stays as it was.
    let reg_dir = data_root.join("registration-scratch");
    let _ = std::fs::remove_dir_all(&reg_dir);
    let reg_store = members_store(&reg_dir, 0).await?;
    let reg_base = start_server(reg_store.clone()).await?;
    let reg_key = key(&reg_store, ronghe_domain::auth::Role::Store, Some("S001")).await?;
    let register_http = http_load(
        "HTTP POST /v1/members (new member)",
        &reg_base,
        &reg_key,
        "/v1/members",
        concurrency,
        d,
        Arc::new(|i| {
            serde_json::json!({"identities":[{"type":"phone","value":phone(i)},{"type":"member_card","value":format!("R{i}")}],
                "profile":{"name":"新会员","city":"上海"},"consents":[{"purpose":"marketing","channel":"sms","granted":true}]})
        }),
    )
    .await?;
    let insert_raw = {
        let dir = reg_dir.clone();
        tokio::task::spawn_blocking(move || raw_sqlite_inserts(&dir, d)).await??
    };
    Ok((register_http, insert_raw))
}

/// Members of the order benchmark: each starts with a large points balance.
const ORDER_MEMBERS: u64 = 10_000;

fn order_member(i: u64) -> String {
    format!("m_bench{i:010}")
}

/// A store of [`ORDER_MEMBERS`] members with points and a three-product catalogue.
/// With `RONGHE_BENCH_DATABASE_URL` set, the order benchmark runs on that PostgreSQL database.
fn bench_pg_url() -> Option<String> {
    std::env::var("RONGHE_BENCH_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

async fn orders_store(dir: &Path) -> anyhow::Result<Store> {
    let ready_file = dir.join("ready");
    let mut opts = match bench_pg_url() {
        Some(url) => {
            let mut o = StoreOptions::new(Location::Postgres(url));
            o.pg_schema = Some(format!("bench_orders_{}", ronghe_store::schema_fingerprint()));
            o.pool_size = 48;
            o
        }
        None => {
            if !ready_file.exists() {
                let _ = std::fs::remove_dir_all(dir);
            }
            StoreOptions::new(Location::Sqlite(dir.to_path_buf()))
        }
    };
    opts.master_key = Some(BENCH_KEY.into());
    let store = tokio::task::spawn_blocking(move || Store::open(&opts)).await??;
    let ready = match bench_pg_url() {
        Some(_) => store.read(|tx, _| members::count_active(tx)).await? >= ORDER_MEMBERS as i64,
        None => ready_file.exists(),
    };
    if !ready {
        // Credited now: points credited long ago would have expired.
        let credited = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let items: Vec<ronghe_store::catalogue::Item> = [("A", "food", 1299), ("B", "drink", 500), ("C", "food", 333)]
            .into_iter()
            .map(|(sku, cat, price)| ronghe_store::catalogue::Item {
                sku: sku.into(),
                name: format!("商品{sku}"),
                category: cat.into(),
                price_fen: price,
                channel_prices_fen: Default::default(),
                effective_from: 0,
            })
            .collect();
        store.write(move |tx, _| ronghe_store::catalogue::upsert(tx, &items, 0)).await?;
        for chunk in (0..ORDER_MEMBERS).collect::<Vec<_>>().chunks(2_000) {
            let regs: Vec<Registration> = chunk
                .iter()
                .map(|i| Registration { member_id: Some(order_member(*i)), ..registration(10_000_000 + i) })
                .collect();
            store
                .write(move |tx, kr| {
                    for r in &regs {
                        let id = members::register(tx, kr, r, "bench", 0)?.id;
                        ronghe_store::points::append(
                            tx,
                            &id,
                            100_000_000,
                            "adjustment",
                            "adjustment",
                            "bench",
                            Some("bench"),
                            credited,
                        )?;
                    }
                    Ok(())
                })
                .await?;
        }
        if bench_pg_url().is_none() {
            std::fs::write(&ready_file, ORDER_MEMBERS.to_string())?;
        }
    }
    Ok(store)
}

/// The full order path over HTTP (member, 3 lines, points redeemed and earned), and its
/// baseline: raw durable SQLite inserts of the same rows (one order and three lines per commit).
async fn orders(data_root: &Path, d: Duration, concurrency: usize) -> anyhow::Result<(Measured, Measured)> {
    let dir = data_root.join(format!("orders-{ORDER_MEMBERS}-schema-{}", ronghe_store::schema_fingerprint()));
    let store = orders_store(&dir).await?;
    let base = start_server(store.clone()).await?;
    let till = key(&store, ronghe_domain::auth::Role::Store, Some("S001")).await?;
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    // One fresh coupon per order (a code redeems once): issued up front through the store.
    let per_second = if bench_pg_url().is_some() { 5_000.0 } else { 20_000.0 };
    let wanted = (d.as_secs_f64() * per_second) as usize + 1_000;
    let template: ronghe_domain::coupon::Template = serde_json::from_value(serde_json::json!({
        "name": "满20减2", "benefit": {"type": "amount_off", "threshold_fen": 2000, "off_fen": 200},
        "validity": {"days_after_issue": 3650}}))?;
    let tid = store.write(move |tx, _| ronghe_store::coupons::create_template(tx, &template, 0)).await?;
    let mut codes = Vec::with_capacity(wanted);
    while codes.len() < wanted {
        let (tid, n) = (tid.clone(), (wanted - codes.len()).min(20_000));
        let batch = store
            .write(move |tx, _| {
                (0..n)
                    .map(|_| ronghe_store::coupons::issue(tx, &tid, None, run as i64).map(|c| c.code))
                    .collect::<ronghe_store::Result<Vec<_>>>()
            })
            .await?;
        codes.extend(batch);
    }
    let codes = Arc::new(codes);
    let http = http_load(
        if bench_pg_url().is_some() {
            "HTTP POST /v1/orders (member, 3 lines, 1 coupon, points) on PostgreSQL"
        } else {
            "HTTP POST /v1/orders (member, 3 lines, 1 coupon, points)"
        },
        &base,
        &till,
        "/v1/orders",
        concurrency,
        d,
        Arc::new(move |i| {
serde_json::json!({"order_ref": format!("{run}-{i}"), "member_id": order_member(i % ORDER_MEMBERS), "points_to_redeem": 100,
                "coupon_codes": codes.get(i as usize).into_iter().collect::<Vec<_>>(),
                "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 3}]})
        }),
    )
    .await?;
    let raw = {
        let dir = dir.clone();
        match bench_pg_url() {
            Some(url) => tokio::task::spawn_blocking(move || raw_order_inserts_pg(&url, d)).await??,
            None => tokio::task::spawn_blocking(move || raw_order_inserts(&dir, d)).await??,
        }
    };
    Ok((http, raw))
}

/// Baseline: the order's rows alone, one durable transaction per order.
pub fn raw_order_inserts(dir: &Path, duration: Duration) -> anyhow::Result<Measured> {
    let path = dir.join("raw-orders-baseline.db");
    let _ = std::fs::remove_file(&path);
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE o (id TEXT PRIMARY KEY, member_id TEXT, payable_fen INTEGER, created_at INTEGER);
         CREATE TABLE l (order_id TEXT, line_no INTEGER, sku TEXT, qty INTEGER, paid_fen INTEGER, PRIMARY KEY (order_id, line_no));",
    )?;
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < duration {
        let t = Instant::now();
        let tx = conn.transaction()?;
        let id = format!("o_{i:012}");
        tx.execute(
            "INSERT INTO o VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, order_member(i % ORDER_MEMBERS), 3097, i as i64],
        )?;
        for (n, sku) in ["A", "B", "C"].iter().enumerate() {
            tx.execute("INSERT INTO l VALUES (?1, ?2, ?3, ?4, ?5)", rusqlite::params![id, n as i64, sku, 1, 1000])?;
        }
        tx.commit()?;
        lat.push(t.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok(Measured::from("baseline: raw order + 3 lines, 1 order per commit", lat, 0, started.elapsed().as_secs_f64()))
}

/// Baseline on PostgreSQL: the order's rows alone, one transaction per order.
pub fn raw_order_inserts_pg(url: &str, duration: Duration) -> anyhow::Result<Measured> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    c.batch_execute(
        "DROP TABLE IF EXISTS bench_raw_o, bench_raw_l;
         CREATE TABLE bench_raw_o (id TEXT PRIMARY KEY, member_id TEXT, payable_fen BIGINT, created_at BIGINT);
         CREATE TABLE bench_raw_l (order_id TEXT, line_no BIGINT, sku TEXT, qty BIGINT, paid_fen BIGINT, PRIMARY KEY (order_id, line_no));",
    )?;
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut i = 0i64;
    while started.elapsed() < duration {
        let t = Instant::now();
        let mut tx = c.transaction()?;
        let id = format!("o_{i:012}");
        tx.execute(
            "INSERT INTO bench_raw_o VALUES ($1, $2, $3, $4)",
            &[&id, &order_member(i as u64 % ORDER_MEMBERS), &3097i64, &i],
        )?;
        for (n, sku) in ["A", "B", "C"].iter().enumerate() {
            tx.execute(
                "INSERT INTO bench_raw_l VALUES ($1, $2, $3, $4, $5)",
                &[&id, &(n as i64), sku, &1i64, &1000i64],
            )?;
        }
        tx.commit()?;
        lat.push(t.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok(Measured::from(
        "baseline: raw order + 3 lines on PostgreSQL, 1 order per commit",
        lat,
        0,
        started.elapsed().as_secs_f64(),
    ))
}
