//! `cargo run --release -p ronghe-bench`: the benchmarks with their baselines, printed side by
//! side with the ratio. `--only` picks one: lookup, register, orders, ingest, segments, rfm, stock.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Ronghe benchmarks. Each figure is printed next to a baseline measured in the same run.
#[derive(Debug, Parser)]
struct Opt {
    /// Members stored for the lookup benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    members: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Run only `lookup`, `register`, `orders`, `ingest`, `segments` or `rfm`.
    #[arg(long)]
    only: Option<String>,
    /// Synthetic members in the audience index for the segment benchmark.
    #[arg(long, default_value_t = 10_000_000)]
    segment_members: u64,
    /// Times the segment count is measured, for Ronghe and DuckDB alike (the median is reported).
    #[arg(long, default_value_t = 1000)]
    segment_runs: usize,
    /// Stores carrying 2,000 of 50,000 SKUs each for the stock benchmark.
    #[arg(long, default_value_t = 5_000)]
    stock_stores: u64,
    /// Members and orders for the RFM-from-scratch benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    rfm_members: u64,
    #[arg(long, default_value_t = 10_000_000)]
    rfm_orders: u64,
    /// Where generated data is cached.
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let o = Opt::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let parts = match o.only.as_deref() {
        None => Some(ronghe_bench::Parts::All),
        Some("lookup") => Some(ronghe_bench::Parts::Lookup),
        Some("register") => Some(ronghe_bench::Parts::Register),
        Some("orders") => Some(ronghe_bench::Parts::Orders),
        Some("ingest" | "segments" | "rfm" | "stock") => None,
        Some(other) => {
            anyhow::bail!("--only takes lookup, register, orders, ingest, segments, rfm or stock, not {other}")
        }
    };
    std::fs::create_dir_all(&o.data)?;
    let cdp = |part: &str| o.only.is_none() || o.only.as_deref() == Some(part);
    if cdp("ingest") {
        let (http, raw) =
            rt.block_on(ronghe_bench::cdp::ingest(&o.data, Duration::from_secs_f64(o.seconds), o.concurrency))?;
        println!("{http}");
        println!("{raw}");
        println!(
            "  → ingestion: {:.0} events/s (context: ~160,000/s); {:.2}× the raw SQLite baseline (target ≥ 0.25×, stretch 0.5×)",
            http.per_second(),
            http.per_second() / raw.per_second()
        );
    }
    if cdp("segments") {
        let py = ronghe_bench::cdp::python();
        let f = ronghe_bench::cdp::segments(&o.data, o.segment_members, o.segment_runs, py.as_deref())?;
        println!("audience index of {} synthetic members built in {:.1} s", f.members, f.build_seconds);
        println!("{}", f.ronghe);
        println!(
            "  → 5-predicate count = {}: median {:.3} ms; memory {:.1} bytes per member (target ≤ 200)",
            f.count,
            f.ronghe.p50_us as f64 / 1000.0,
            f.memory_bytes as f64 / f.members as f64
        );
        match &f.duckdb {
            Some((d, n)) => {
                println!("{d}");
                println!(
                    "  → DuckDB counted {n} (same: {}); Ronghe is {:.1}× faster at the median (target ≥ 20×)",
                    *n == f.count,
                    d.p50_us as f64 / f.ronghe.p50_us.max(1) as f64
                );
            }
            None => println!("  (no Python with duckdb: set RONGHE_BENCH_PYTHON for the baseline)"),
        }
    }
    if cdp("rfm") {
        let py = ronghe_bench::cdp::python();
        let f = rt.block_on(ronghe_bench::cdp::rfm(&o.data, o.rfm_members, o.rfm_orders, py.as_deref()))?;
        println!(
            "RFM from scratch, {} orders of up to {} members ({} scored): Ronghe {:.2} s",
            f.orders, f.members, f.scored, f.ronghe_seconds
        );
        match (f.duckdb_seconds, f.mismatched_cells) {
            (Some(d), Some(diff)) => println!(
                "  → DuckDB {d:.2} s, cells that differ: {diff}; Ronghe takes {:.1}× DuckDB's time",
                f.ronghe_seconds / d
            ),
            _ => println!("  (no Python with duckdb: set RONGHE_BENCH_PYTHON for the baseline)"),
        }
    }
    if cdp("stock") {
        let f = rt.block_on(ronghe_bench::stock::run(
            &o.data,
            o.stock_stores,
            50_000,
            2_000,
            Duration::from_secs_f64(o.seconds),
            o.concurrency,
        ))?;
        println!("stock rows: {}", f.rows);
        println!("{}", f.availability);
        println!("{}", f.availability_sql);
        println!(
            "  → availability: median {:.3} ms over HTTP (target < 1 ms); the SQL alone {:.3} ms",
            f.availability.p50_us as f64 / 1000.0,
            f.availability_sql.p50_us as f64 / 1000.0
        );
        println!("{}", f.orders);
        println!("{}", f.orders_baseline);
        println!(
            "  → routed orders with reservation: {:.0}/s (target ≥ 3,000/s); {:.2}× raw durable SQLite inserts",
            f.orders.per_second(),
            f.orders.per_second() / f.orders_baseline.per_second()
        );
    }
    let Some(parts) = parts else { return Ok(()) };
    let r = rt.block_on(ronghe_bench::run(&o.data, o.members, o.seconds, o.concurrency, parts))?;
    println!("members stored: {}, concurrency {}, {} s per measurement", o.members, o.concurrency, o.seconds);
    if let Some((http, sql)) = &r.lookup {
        println!("{http}");
        println!("{sql}");
        println!(
            "  → lookup over HTTP: {:.0}/s (target ≥ 20,000/s), p99 {:.2} ms (target < 5 ms); {:.3}× the direct SQL baseline",
            http.per_second(),
            http.p99_us as f64 / 1000.0,
            http.per_second() / sql.per_second()
        );
    }
    if let Some((http, raw)) = &r.register {
        println!("{http}");
        println!("{raw}");
        println!(
            "  → registration over HTTP: {:.0}/s (target ≥ 5,000/s); {:.2}× raw durable SQLite inserts",
            http.per_second(),
            http.per_second() / raw.per_second()
        );
    }
    if let Some((http, raw)) = &r.orders {
        println!("{http}");
        println!("{raw}");
        println!(
            "  → orders over HTTP: {:.0}/s (target ≥ 5,000/s), p99 {:.1} ms (target < 20 ms); {:.2}× inserting the order rows alone",
            http.per_second(),
            http.p99_us as f64 / 1000.0,
            http.per_second() / raw.per_second()
        );
    }
    Ok(())
}
