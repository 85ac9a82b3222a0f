//! Benchmarks of the pool of stock, each next to a baseline in the same run:
//!
//! - availability of one SKU near a point over HTTP, with 5,000 stores carrying 2,000 SKUs each
//!   (10,000,000 stock rows, 50,000 SKUs), against the same question as one SQL query over the
//!   same SQLite file;
//! - routed online orders with reservation over HTTP against inserting the order's rows alone.
//!
//! The stock is generated once through the store's bulk path and cached under
//! `target/bench-data/`.

use crate::{BENCH_KEY, Measured};
use rand::{Rng, SeedableRng};
use ronghe_domain::stock::{Location, LocationKind};
use ronghe_store::{Location as Where, Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stores spread over a box around Hangzhou–Shanghai (about 250 × 200 km).
fn store_location(i: u64) -> Location {
    let mut rng = rand::rngs::StdRng::seed_from_u64(i ^ 0x10c);
    Location {
        id: format!("S{i:05}"),
        name: format!("门店{i}"),
        kind: LocationKind::Store,
        lat: 29.5 + rng.gen_range(0.0..2.0),
        lng: 119.5 + rng.gen_range(0.0..2.5),
        pickup: true,
        ship_from_store: true,
        delivery_radius_km: 3.0,
        safety_stock: 1,
        opening_hours: Some("09:00-22:00".into()),
    }
}

/// SKUs a store carries: 2,000 of `skus`, a deterministic spread.
fn carries(store: u64, sku: u64, skus: u64, per_store: u64) -> bool {
    // Each SKU is at `stores × per_store / skus` stores, spread by a prime stride.
    (store * 7919 + sku).is_multiple_of(skus / per_store)
}

pub async fn stock_store(root: &Path, stores: u64, skus: u64, per_store: u64) -> anyhow::Result<Store> {
    let dir = root.join(format!("stock-{stores}-{skus}-{per_store}-{}", ronghe_store::schema_fingerprint()));
    let ready = dir.join("ready");
    let mut opts = StoreOptions::new(Where::Sqlite(dir.clone()));
    opts.master_key = Some(BENCH_KEY.into());
    if ready.exists() {
        let store = Store::open(&opts)?;
        // Data cached by an older build may predate the widest-radius bound: setting one store
        // again records it.
        let first = store_location(0);
        store.write(move |tx, _| ronghe_store::stock::put_location(tx, &first, 0)).await?;
        return Ok(store);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&opts)?;
    let mut locations: Vec<Location> = (0..stores).map(store_location).collect();
    // The central warehouse: what no store near the shopper has comes from here.
    locations.push(Location {
        id: "C00000".into(),
        name: "总仓".into(),
        kind: LocationKind::CentralWarehouse,
        lat: 31.23,
        lng: 121.47,
        pickup: false,
        ship_from_store: false,
        delivery_radius_km: 0.0,
        safety_stock: 0,
        opening_hours: None,
    });
    store
        .write(move |tx, _| {
            for l in &locations {
                ronghe_store::stock::put_location(tx, l, 0)?;
            }
            Ok(())
        })
        .await?;
    // In key order (SKU, then store): the B-tree only appends.
    let mut batch = Vec::with_capacity(200_000);
    for sku in 0..skus {
        for s in 0..stores {
            if carries(s, sku, skus, per_store) {
                batch.push((format!("S{s:05}"), format!("SKU{sku:05}"), 5 + ((s + sku) % 20) as i64));
            }
        }
        if batch.len() >= 200_000 || sku + 1 == skus {
            let rows = std::mem::take(&mut batch);
            store.write(move |tx, _| ronghe_store::stock::bulk_levels(tx, &rows, 0)).await?;
        }
    }
    let central: Vec<(String, String, i64)> =
        (0..100).map(|i| ("C00000".to_string(), format!("SKU{i:05}"), 10_000_000)).collect();
    store.write(move |tx, _| ronghe_store::stock::bulk_levels(tx, &central, 0)).await?;
    let catalogue: Vec<ronghe_store::catalogue::Item> = (0..100)
        .map(|i| ronghe_store::catalogue::Item {
            sku: format!("SKU{i:05}"),
            name: format!("商品{i}"),
            category: "bench".into(),
            price_fen: 1990,
            channel_prices_fen: Default::default(),
            effective_from: 0,
        })
        .collect();
    store.write(move |tx, _| ronghe_store::catalogue::upsert(tx, &catalogue, 0)).await?;
    std::fs::write(&ready, b"")?;
    Ok(store)
}

pub struct StockFigures {
    pub rows: u64,
    pub availability: Measured,
    pub availability_sql: Measured,
    pub orders: Measured,
    pub orders_baseline: Measured,
}

pub async fn run(
    root: &Path,
    stores: u64,
    skus: u64,
    per_store: u64,
    d: Duration,
    concurrency: usize,
) -> anyhow::Result<StockFigures> {
    let store = stock_store(root, stores, skus, per_store).await?;
    let rows = store
        .read(|tx, _| Ok(tx.query_one("SELECT COUNT(*) FROM stock", &[])?.map(|r| r.i64(0)).transpose()?.unwrap_or(0)))
        .await? as u64;
    let admin = crate::key(&store, ronghe_domain::auth::Role::Admin, None).await?;
    let base = crate::start_server(store.clone()).await?;
    let client = reqwest::Client::new();

    // Availability: one client asking one question after another, for random SKUs and points.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut lat = Vec::new();
    let started = Instant::now();
    while started.elapsed() < d {
        let (sku, la, ln) = (rng.gen_range(0..skus), 29.5 + rng.gen_range(0.0..2.0), 119.5 + rng.gen_range(0.0..2.5));
        let url = format!("{base}/v1/availability?sku=SKU{sku:05}&lat={la:.4}&lng={ln:.4}&radius_km=50");
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(&admin).send().await?;
        let ok = r.status().is_success();
        let _ = r.bytes().await?;
        if ok {
            lat.push(t.elapsed().as_micros() as u64);
        }
    }
    let availability =
        Measured::from_latencies("availability over HTTP (1 client)", lat, 0, started.elapsed().as_secs_f64());
    let availability_sql = sql_availability(root, stores, skus, per_store, d)?;

    // Routed delivery orders: 32 clients, each order one unit of one of 100 SKUs to a random point.
    let channel = {
        let k = ronghe_store::keys::NewKey {
            role: ronghe_domain::auth::Role::Channel,
            name: "bench".into(),
            store_id: None,
            channel: Some("app".into()),
        };
        store.write(move |tx, _| ronghe_store::keys::create(tx, &k, 0)).await?.secret
    };
    let run_id = ronghe_server::clock::Clock::now_ms(&ronghe_server::clock::SystemClock);
    // Each shopper lives within a kilometre of a store that carries what they order, so most
    // orders ship from a store; when its few units are gone they come from the central warehouse.
    let body = Arc::new(move |i: u64| {
        let mut r = rand::rngs::StdRng::seed_from_u64(i);
        let sku = r.gen_range(0..100u64);
        let mut s = r.gen_range(0..stores);
        while !carries(s, sku, skus, per_store) {
            s = (s + 1) % stores;
        }
        let near = store_location(s);
        serde_json::json!({"order_ref": format!("B{run_id}-{i}"), "lines": [{"sku": format!("SKU{sku:05}"), "qty": 1}],
            "fulfillment": {"type": "delivery", "address": {"lat": near.lat + 0.004, "lng": near.lng + 0.004}, "allow_split": true}})
    });
    let orders = crate::http_load(
        "routed delivery orders over HTTP (reserve in the order's transaction)",
        &base,
        &channel,
        "/v1/orders",
        concurrency,
        d,
        body,
    )
    .await?;
    let orders_baseline = crate::raw_sqlite_inserts(root, d)?;
    Ok(StockFigures { rows, availability, availability_sql, orders, orders_baseline })
}

/// Baseline: the same question as one SQL query over the same SQLite file (planar distance
/// from degrees, which SQLite computes without math functions), 1 thread.
fn sql_availability(root: &Path, stores: u64, skus: u64, per_store: u64, d: Duration) -> anyhow::Result<Measured> {
    let dir = root.join(format!("stock-{stores}-{skus}-{per_store}-{}", ronghe_store::schema_fingerprint()));
    let conn = rusqlite::Connection::open(dir.join("ronghe.db"))?;
    let mut stmt = conn.prepare(
        "SELECT l.id, l.name, s.on_hand - s.reserved - l.safety_stock AS available,
                (l.lat - ?2) * (l.lat - ?2) + (l.lng - ?3) * (l.lng - ?3) * 0.75 AS d2
         FROM stock s JOIN locations l ON l.id = s.location_id
         WHERE s.sku = ?1 AND s.on_hand - s.reserved - l.safety_stock > 0 ORDER BY d2",
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut lat = Vec::new();
    let started = Instant::now();
    while started.elapsed() < d {
        let (sku, la, ln) = (rng.gen_range(0..skus), 29.5 + rng.gen_range(0.0..2.0), 119.5 + rng.gen_range(0.0..2.5));
        let t = Instant::now();
        let n = stmt.query_map(rusqlite::params![format!("SKU{sku:05}"), la, ln], |r| r.get::<_, String>(0))?.count();
        lat.push(t.elapsed().as_micros() as u64);
        std::hint::black_box(n);
    }
    Ok(Measured::from_latencies(
        "baseline: the same question in SQL, same file (1 thread)",
        lat,
        0,
        started.elapsed().as_secs_f64(),
    ))
}
