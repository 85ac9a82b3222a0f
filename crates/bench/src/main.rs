//! `cargo run --release -p ronghe-bench -- members`: the member benchmarks with their
//! baselines, printed side by side with the ratio.

use clap::Parser;
use std::path::PathBuf;

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
    /// Where generated data is cached.
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let o = Opt::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(ronghe_bench::run(
        &o.data,
        o.members,
        o.seconds,
        o.concurrency,
    ))?;
    println!(
        "members stored: {}, concurrency {}, {} s per measurement",
        o.members, o.concurrency, o.seconds
    );
    println!("{}", r.lookup_http);
    println!("{}", r.lookup_sql);
    println!(
        "  → lookup over HTTP: {:.0}/s (target ≥ 20,000/s, p99 < 5 ms), {:.2}× the direct SQL baseline",
        r.lookup_http.per_second(),
        r.lookup_http.per_second() / r.lookup_sql.per_second()
    );
    println!("{}", r.register_http);
    println!("{}", r.insert_raw);
    println!(
        "  → registration over HTTP: {:.0}/s (target ≥ 5,000/s), {:.2}× raw durable SQLite inserts",
        r.register_http.per_second(),
        r.register_http.per_second() / r.insert_raw.per_second()
    );
    Ok(())
}
