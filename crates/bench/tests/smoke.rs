//! Runs the member benchmark once at a tiny size so that it cannot rot. No timing is asserted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_benchmark_runs_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let r = ronghe_bench::run(dir.path(), 300, 0.2, 4, ronghe_bench::Parts::All).await.unwrap();
    let (http, sql) = r.lookup.unwrap();
    assert!(http.ops > 0 && http.errors == 0, "{http}");
    assert!(sql.ops > 0 && sql.errors == 0, "{sql}");
    let (http, raw) = r.register.unwrap();
    assert!(http.ops > 0 && http.errors == 0, "{http}");
    assert!(raw.ops > 0);
    let (http, raw) = r.orders.unwrap();
    assert!(http.ops > 0 && http.errors == 0, "{http}");
    assert!(raw.ops > 0);
}

/// The CDP benchmarks once at a tiny size (DuckDB baselines only when a Python with duckdb is
/// named, as in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdp_benchmarks_run_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let (http, raw) = ronghe_bench::cdp::ingest(dir.path(), std::time::Duration::from_millis(300), 2).await.unwrap();
    assert!(http.ops > 0 && http.errors == 0, "{http}");
    assert!(raw.ops > 0, "{raw}");
    let py = std::env::var("RONGHE_TEST_PYTHON").ok().map(std::path::PathBuf::from);
    let root = dir.path().to_path_buf();
    let py2 = py.clone();
    let seg = tokio::task::spawn_blocking(move || ronghe_bench::cdp::segments(&root, 3_000, 3, py2.as_deref()))
        .await
        .unwrap()
        .unwrap();
    assert!(seg.count > 0 && seg.memory_bytes > 0);
    if let Some((_, n)) = seg.duckdb {
        assert_eq!(n, seg.count, "DuckDB and the index count the same members");
    }
    let rfm = ronghe_bench::cdp::rfm(dir.path(), 200, 2_000, py.as_deref()).await.unwrap();
    assert!(rfm.scored > 0);
    if let Some(diff) = rfm.mismatched_cells {
        assert_eq!(diff, 0, "DuckDB and Ronghe score every member alike");
    }
}

/// The stock benchmark once at a tiny size: availability and routed orders answer without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_benchmark_runs_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = ronghe_bench::stock::run(dir.path(), 50, 50_000, 2_000, std::time::Duration::from_millis(300), 4)
        .await
        .unwrap();
    assert_eq!(f.rows, 100_100);
    assert!(f.availability.ops > 0 && f.availability_sql.ops > 0);
    assert!(f.orders.ops > 0 && f.orders.errors == 0, "{}", f.orders);
}
