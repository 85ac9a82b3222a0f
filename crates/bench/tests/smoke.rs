//! Runs the member benchmark once at a tiny size so that it cannot rot. No timing is asserted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_benchmark_runs_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let r = ronghe_bench::run(dir.path(), 300, 0.2, 4).await.unwrap();
    assert!(
        r.lookup_http.ops > 0 && r.lookup_http.errors == 0,
        "{}",
        r.lookup_http
    );
    assert!(
        r.lookup_sql.ops > 0 && r.lookup_sql.errors == 0,
        "{}",
        r.lookup_sql
    );
    assert!(
        r.register_http.ops > 0 && r.register_http.errors == 0,
        "{}",
        r.register_http
    );
    assert!(r.insert_raw.ops > 0);
}
