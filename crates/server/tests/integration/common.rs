//! `TestApp`: the real server on an ephemeral port, a manual clock and an admin key.

use reqwest::StatusCode;
use ronghe_server::clock::ManualClock;
use ronghe_server::{AppState, Config};
use ronghe_store::{Location, Store, StoreOptions};
use serde_json::{Value, json};
use std::sync::Arc;

/// 2026-01-01T00:00:00Z
pub const START_MS: i64 = 1_767_225_600_000;
pub const PG_MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub clock: Arc<ManualClock>,
    pub dir: Option<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Run a scenario `async fn name(app: TestApp)` on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::common::TestApp::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match crate::common::TestApp::postgres(Default::default()).await {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("RONGHE_TEST_DATABASE_URL is not set: the PostgreSQL run of this scenario is skipped"),
                }
            }
        }
    )* };
}

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.rate_limit.per_second = 0.0;
    c.lookup_rate_limit.per_second = 0.0;
    c.offline_points_limits_by_store.insert("S002".into(), 100);
    c.webhook_interval_ms = 0;
    c
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(test_config()).await
    }

    pub async fn sqlite_with(config: Config) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::new(Location::Sqlite(dir.path().to_path_buf()));
        Self::spawn(opts, config, Some(dir)).await
    }

    pub async fn postgres(config: Option<Config>) -> Option<TestApp> {
        let url = std::env::var("RONGHE_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
        let schema = format!("t_{}", ronghe_store::members::new_member_id(0).trim_start_matches("m_"));
        let mut opts = StoreOptions::new(Location::Postgres(url));
        opts.pg_schema = Some(schema);
        opts.master_key = Some(PG_MASTER_KEY.into());
        Some(Self::spawn(opts, config.unwrap_or_else(test_config), None).await)
    }

    pub async fn spawn(opts: StoreOptions, config: Config, dir: Option<tempfile::TempDir>) -> TestApp {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
        let store = tokio::task::spawn_blocking(move || Store::open(&opts)).await.unwrap().unwrap();
        let admin = "rh_test_admin_key_0123456789".to_string();
        let a = admin.clone();
        store.write(move |tx, _| ronghe_store::keys::ensure_admin(tx, &a, START_MS)).await.unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let state = AppState::new(store, clock.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        tokio::spawn(async move {
            ronghe_server::serve(listener, s, async {
                let _ = rx.await;
            })
            .await
            .unwrap()
        });
        TestApp { base, client: reqwest::Client::new(), admin, clock, dir, _shutdown: tx }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(ctype, "application/problem+json", "errors are problem+json: {status} {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, key, None, &[]).await
    }
    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, key, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, key, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, key, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, key, None, &[]).await
    }

    /// Create an API key through the API and return its secret.
    pub async fn key(&self, role: &str, store_id: Option<&str>, channel: Option<&str>) -> String {
        let (s, b) =
            self.post("/v1/keys", &self.admin, json!({"role": role, "store_id": store_id, "channel": channel})).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["key"].as_str().unwrap().to_string()
    }

    /// Register a member as admin; returns its id.
    pub async fn register(&self, body: Value) -> String {
        let (s, b) = self.post("/v1/members", &self.admin, body).await;
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {b}");
        b["id"].as_str().unwrap().to_string()
    }

    pub async fn lookup(&self, key: &str, kind: &str, value: &str) -> (StatusCode, Value) {
        self.post("/v1/members/lookup", key, json!({"type": kind, "value": value})).await
    }
}

pub fn phone(i: u32) -> String {
    format!("139{:08}", 10_000_000 + i)
}
