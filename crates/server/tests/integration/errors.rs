//! The edges: authentication, roles, problem+json, body limits, idempotency keys, rate limits.

use crate::common::{TestApp, phone, test_config};
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends!(
    keys_authenticate_and_roles_authorise,
    bad_input_is_a_problem_naming_the_field,
    idempotency_keys_replay_the_first_answer,
);

async fn keys_authenticate_and_roles_authorise(app: TestApp) {
    let resp = app.client.get(format!("{}/v1/attributes", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (s, p) = app.get("/v1/attributes", "rh_not_a_key").await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    // HTTP Basic with the key as user name (the Segment write-key convention) also works.
    let resp =
        app.client.get(format!("{}/v1/attributes", app.base)).basic_auth(&app.admin, Some("")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let analyst = app.key("analyst", None, None).await;
    let (s, p) = app.post("/v1/members", &analyst, json!({"identities":[{"type":"phone","value":phone(20)}]})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, _) = app.post("/v1/keys", &analyst, json!({"role":"admin"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = app.post("/v1/keys", &app.admin, json!({"role":"store"})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("store_id")));
    let (s, p) = app.post("/v1/keys", &app.admin, json!({"role":"root"})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("role")));
}

async fn bad_input_is_a_problem_naming_the_field(app: TestApp) {
    let raw = app
        .client
        .post(format!("{}/v1/members", app.base))
        .bearer_auth(&app.admin)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let p: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(p["code"], "malformed_body");
    let (s, p) = app.post("/v1/members", &app.admin, json!({"identities":"phone"})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("identities")));
    let (s, p) = app
        .post("/v1/members", &app.admin, json!({"identities":[], "profile":{"birthday":"1990-13-01"}, "consents":[{"purpose":"marketing","channel":"fax","granted":true}], "on_conflict":"maybe"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["identities", "profile.birthday", "consents[0].channel", "on_conflict"]);
    let (s, p) = app.get("/v1/nowhere", &app.admin).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    let (s, p) = app.call(Method::PUT, "/v1/members/merge", &app.admin, Some(json!({})), &[]).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let (s, p) = app.get("/v1/members/m_missing", &app.admin).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

async fn idempotency_keys_replay_the_first_answer(app: TestApp) {
    let body = json!({"identities":[{"type":"phone","value":phone(21)}], "profile":{"name":"林平"}});
    let h = [("Idempotency-Key", "till-42-receipt-7")];
    let resp = |b| app.call(Method::POST, "/v1/members", &app.admin, Some(b), &h);
    let (s1, first) = resp(body.clone()).await;
    assert_eq!(s1, StatusCode::CREATED);
    // The till retries: same answer, same status, no second member.
    let raw = app
        .client
        .post(format!("{}/v1/members", app.base))
        .bearer_auth(&app.admin)
        .header("Idempotency-Key", "till-42-receipt-7")
        .body(r#"{"profile":{"name":"林平"},   "identities":[{"value":"13910000021","type":"phone"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::CREATED);
    assert_eq!(raw.headers()["idempotent-replayed"], "true");
    let replay: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(replay, first);
    let (s, p) = resp(json!({"identities":[{"type":"phone","value":phone(22)}]})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("idempotency_conflict")));
    // Errors are remembered too: a retry of a refused request is refused the same way.
    let bad = [("Idempotency-Key", "k-bad")];
    let (s, _) = app.call(Method::POST, "/v1/members", &app.admin, Some(json!({"identities":[]})), &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.call(Method::POST, "/v1/members", &app.admin, Some(json!({"identities":[]})), &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The same key on another path is another request.
    let (s, _) =
        app.call(Method::PUT, "/v1/attributes/shoe_size", &app.admin, Some(json!({"type":"number"})), &h).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.call(Method::POST, "/v1/members", &app.admin, Some(body), &[("Idempotency-Key", "")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an empty key is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_above_the_limit_are_413() {
    let mut config = test_config();
    config.max_body_bytes = 2048;
    let app = TestApp::sqlite_with(config).await;
    let big = json!({"identities":[{"type":"external_id","value":"x"}], "profile":{"address":"x".repeat(4096)}});
    let (s, p) = app.post("/v1/members", &app.admin, big.clone()).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let (s, _) = app.call(Method::POST, "/v1/members", &app.admin, Some(big), &[("Idempotency-Key", "big")]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_rate_limited_per_key_with_retry_after() {
    let mut config = test_config();
    config.lookup_rate_limit = ronghe_server::ratelimit::Limit { per_second: 0.01, burst: 3.0 };
    let app = TestApp::sqlite_with(config).await;
    let till = app.key("store", Some("S001"), None).await;
    let other = app.key("store", Some("S002"), None).await;
    for _ in 0..3 {
        let (s, _) = app.lookup(&till, "phone", &phone(30)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let resp = app
        .client
        .post(format!("{}/v1/members/lookup", app.base))
        .bearer_auth(&till)
        .json(&json!({"type":"phone","value":phone(31)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["code"], "rate_limited");
    let (s, _) = app.lookup(&other, "phone", &phone(30)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "limits are per key");
    let (s, _) = app.lookup(&app.admin, "phone", &phone(30)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "admin lookups have no lookup limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_requests_are_rate_limited_per_key() {
    let mut config = test_config();
    config.rate_limit = ronghe_server::ratelimit::Limit { per_second: 0.01, burst: 2.0 };
    let app = TestApp::sqlite_with(config).await;
    let (a, _) = app.get("/v1/attributes", &app.admin).await;
    let (b, _) = app.get("/v1/attributes", &app.admin).await;
    let (c, p) = app.get("/v1/attributes", &app.admin).await;
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    assert_eq!((c, p["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
}
