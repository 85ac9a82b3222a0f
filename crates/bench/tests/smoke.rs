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
