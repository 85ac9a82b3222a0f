//! Webhooks: deliveries signed as Standard Webhooks specifies, retried on schedule against a
//! receiver that fails at first, dead-lettered and replayed, and not lost across a restart.

use crate::common::{TestApp, test_config};
use reqwest::StatusCode;
use ronghe_store::{Location, StoreOptions};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

on_both_backends!(deliveries_are_signed_retried_dead_lettered_and_replayed);

/// A receiver on an ephemeral port that answers 500 to its first `fail` requests.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

async fn receiver(fail: usize) -> Receiver {
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let seen = got.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (seen, calls) = (seen.clone(), calls.clone());
            async move {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                seen.lock().unwrap().push((headers, body));
                if n < fail { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got }
}

async fn price(app: &TestApp, sku: &str, fen: i64) {
    let (s, b) = app
        .put("/v1/products", &app.admin, json!({"items":[{"sku":sku,"name":"茶","category":"drink","price_fen":fen}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn dispatch(app: &TestApp) -> Value {
    let (s, r) = app.post("/v1/webhooks/dispatch", &app.admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

async fn deliveries_are_signed_retried_dead_lettered_and_replayed(app: TestApp) {
    let rx = receiver(2).await;
    let (s, w) = app.post("/v1/webhooks", &app.admin, json!({"url": rx.url, "event_types": ["price.changed"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let secret = w["secret"].as_str().unwrap().to_string();
    let (s, e) = app.post("/v1/webhooks", &app.admin, json!({"url": "ftp://x", "event_types": ["nope"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    price(&app, "TEA", 1990).await;
    // Attempt 1 fails; the next waits 5 s, the one after 5 min.
    assert_eq!(dispatch(&app).await, json!({"created": 1, "delivered": 0, "failed": 1}));
    assert_eq!(dispatch(&app).await, json!({"created": 0, "delivered": 0, "failed": 0}), "not due yet");
    app.clock.advance(5_000);
    assert_eq!(dispatch(&app).await["failed"], 1);
    app.clock.advance(300_000);
    assert_eq!(dispatch(&app).await["delivered"], 1);

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let (headers, body) = &got[2];
    let id = headers["webhook-id"].to_str().unwrap();
    let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    let want = ronghe_domain::webhook::sign(&secret, id, ts, body).unwrap();
    assert_eq!(headers["webhook-signature"].to_str().unwrap(), want);
    assert_eq!(got[0].0["webhook-id"], headers["webhook-id"], "retries keep the message id");
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (payload["type"].as_str(), payload["data"]["sku"].as_str(), payload["data"]["price_fen"].as_i64()),
        (Some("price.changed"), Some("TEA"), Some(1990))
    );

    // A receiver that never answers: eight attempts in about a day, then a dead letter.
    let (_, dead) =
        app.post("/v1/webhooks", &app.admin, json!({"url": "http://127.0.0.1:9/never", "event_types": ["*"]})).await;
    let dead_id = dead["id"].as_str().unwrap();
    price(&app, "TEA", 2090).await;
    for _ in 0..8 {
        dispatch(&app).await;
        app.clock.advance(36_000_000);
    }
    let (_, list) = app.get(&format!("/v1/webhooks/{dead_id}/deliveries?status=dead"), &app.admin).await;
    let letters = list["deliveries"].as_array().unwrap();
    assert!(!letters.is_empty(), "{list}");
    assert_eq!(letters[0]["attempts"], 8);
    let (s, _) = app.post(&format!("/v1/webhooks/deliveries/{}/replay", letters[0]["id"]), &app.admin, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, list) = app.get(&format!("/v1/webhooks/{dead_id}/deliveries?status=pending"), &app.admin).await;
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 1);
}

/// A change made just before the server stops is delivered by the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_delivery_is_lost_across_a_restart() {
    let rx = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions::new(Location::Sqlite(dir.path().to_path_buf()));
    let first = TestApp::spawn(opts(), test_config(), None).await;
    let (s, _) =
        first.post("/v1/webhooks", &first.admin, json!({"url": rx.url, "event_types": ["price.changed"]})).await;
    assert_eq!(s, StatusCode::CREATED);
    price(&first, "TEA", 1990).await;
    drop(first);
    let second = TestApp::spawn(opts(), test_config(), None).await;
    assert_eq!(dispatch(&second).await["delivered"], 1);
    assert_eq!(rx.got.lock().unwrap().len(), 1);
}
