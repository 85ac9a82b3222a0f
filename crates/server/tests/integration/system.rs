//! Health, metrics and the OpenAPI document, with its gates.

use crate::common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(health_and_metrics_answer, openapi_describes_every_route_with_gates);

async fn health_and_metrics_answer(app: TestApp) {
    let r = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status":"ok"}));
    app.get("/v1/members/m_missing", &app.admin).await;
    let text = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"ronghe_http_requests_total{method="GET",route="/v1/members/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("ronghe_http_request_duration_seconds_bucket"), "{text}");
    assert!(!text.contains("m_missing"), "route templates, not paths");
}

async fn openapi_describes_every_route_with_gates(app: TestApp) {
    let doc: Value = app.client.get(format!("{}/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for required in [
        "/v1/members",
        "/v1/members/{id}",
        "/v1/members/lookup",
        "/v1/members/merge",
        "/v1/members/{id}/consents",
        "/v1/members/{id}/export",
        "/v1/members/{id}/qr",
        "/v1/audit",
        "/v1/keys",
        "/v1/attributes/{name}",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(required), "{required} is documented");
    }
    let mut ops = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            ops += 1;
            let at = format!("{method} {path}");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at} has a summary");
            assert!(op.get("security").is_some(), "{at} states its security");
            if !path.starts_with("/v1/") {
                continue; // operational endpoints take no input and no key
            }
            let has_problem = op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .any(|(code, r)| code.starts_with('4') && r["content"].get("application/problem+json").is_some());
            assert!(has_problem, "{at} documents a problem+json 4xx");
        }
    }
    assert!(ops >= 17, "{ops} operations");
}

/// The committed snapshot makes every change of the API visible in review. After an
/// intended change: `RONGHE_UPDATE_SNAPSHOTS=1 cargo test -p ronghe-server --test integration`.
#[test]
fn openapi_document_matches_its_snapshot() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = serde_json::to_string_pretty(&ronghe_server::openapi::document()).unwrap() + "\n";
    if std::env::var("RONGHE_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/openapi.json differs from the API: review the change, then run with RONGHE_UPDATE_SNAPSHOTS=1"
    );
}
