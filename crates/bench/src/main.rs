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
    /// Run only `lookup`, `register` or `orders`.
    #[arg(long)]
    only: Option<String>,
    /// Where generated data is cached.
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let o = Opt::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let parts = match o.only.as_deref() {
        None => ronghe_bench::Parts::All,
        Some("lookup") => ronghe_bench::Parts::Lookup,
        Some("register") => ronghe_bench::Parts::Register,
        Some("orders") => ronghe_bench::Parts::Orders,
        Some(other) => anyhow::bail!("--only takes lookup, register or orders, not {other}"),
    };
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
