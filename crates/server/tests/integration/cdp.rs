//! The customer data platform: the Segment tracking API, stitching, tags, segments, RFM,
//! lifecycle, data quality and erasure reaching events.

use crate::common::{START_MS, TestApp, phone};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    segment_batches_are_stored_once_and_rejected_one_by_one,
    anonymous_events_are_stitched_and_trust_follows_the_key,
    segments_tags_rfm_and_lifecycle_follow_writes_and_time,
    rfm_analytics_from_scratch_as_of_a_date,
    erasure_reaches_events,
);

const DAY: i64 = 86_400_000;

/// POST a raw body the way SDKs do: HTTP Basic with the write key as user, text/plain.
async fn send(app: &TestApp, path: &str, key: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req =
        app.client.post(format!("{}{path}", app.base)).header("content-type", "text/plain").body(body.to_string());
    if let Some(k) = key {
        req = req.basic_auth(k, Some(""));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// NDJSON lines (the test client parses a one-line answer as JSON already).
fn ndjson(v: &Value) -> Vec<Value> {
    match v {
        Value::String(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        other => vec![other.clone()],
    }
}

fn ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

async fn segment_batches_are_stored_once_and_rejected_one_by_one(app: TestApp) {
    let tracker = app.key("tracker", None, Some("web")).await;
    let batch = json!({"batch":[
        {"type":"track","event":"Product Viewed","anonymousId":"a-1","messageId":"m-1","properties":{"sku":"A"},
         "timestamp": ts(START_MS - 60_000)},
        {"type":"page","anonymousId":"a-1","messageId":"m-2","name":"Home"},
        {"type":"track","anonymousId":"a-1","messageId":"m-3"},
        {"type":"launch","anonymousId":"a-1","messageId":"m-4"},
        "not an object"
    ], "sentAt": ts(START_MS)})
    .to_string();
    let (s, b) = send(&app, "/v1/batch", Some(&tracker), &batch).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["success"].as_bool(), b["accepted"].as_i64(), b["duplicates"].as_i64()),
        (Some(true), Some(2), Some(0))
    );
    let reasons: Vec<(i64, &str)> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_i64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons, vec![(2, "missing_event"), (3, "unknown_type"), (4, "not_an_object")]);
    assert_eq!(b["rejected"][0]["messageId"], "m-3");

    // A resent batch stores nothing twice.
    let (_, b) = send(&app, "/v1/batch", Some(&tracker), &batch).await;
    assert_eq!((b["accepted"].as_i64(), b["duplicates"].as_i64()), (Some(0), Some(2)));

    // The write key inside the body, the short path, no Authorization header.
    let single =
        json!({"type":"track","event":"Cart Viewed","userId":"C-9","messageId":"m-5","writeKey": tracker}).to_string();
    let (s, b) = send(&app, "/v1/t", None, &single).await;
    assert_eq!((s, b["accepted"].as_i64()), (StatusCode::OK, Some(1)), "{b}");
    // An invalid single message is 400 with its reason; an unknown key 401; a huge batch 400.
    let (s, b) = send(&app, "/v1/track", Some(&tracker), r#"{"type":"track","userId":"u"}"#).await;
    assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("event")), "{b}");
    let (s, _) = send(&app, "/v1/batch", Some("rh_nobody"), &batch).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let huge =
        json!({"batch":[{"type":"track","event":"x","userId":"u","properties":{"p":"x".repeat(600_000)}}]}).to_string();
    let (s, _) = send(&app, "/v1/batch", Some(&tracker), &huge).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(&app, "/v1/batch", Some(&tracker), "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A tracker key reaches nothing but the tracking API.
    let (s, _) = app.get("/v1/segments", &tracker).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The export carries the corrected time and never personal data.
    let (s, text) = app.get("/v1/events/export", &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    let lines = ndjson(&text);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["event"], "product_viewed");
    // Sent one minute before sentAt, received at START_MS: it happened a minute ago.
    assert_eq!(lines[0]["timestamp"], ronghe_server::clock::rfc3339(START_MS - 60_000));
    assert_eq!(lines[1]["event"], "page_viewed");

    // Retention: configurable; events older than it are refused as too old.
    let (s, r) = app.put("/v1/events/retention", &app.admin, json!({"days": 7})).await;
    assert_eq!((s, r["days"].as_i64()), (StatusCode::OK, Some(7)), "{r}");
    let (s, _) = app.put("/v1/events/retention", &app.admin, json!({"days": 0})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let old = json!({"type":"track","event":"x","userId":"u","messageId":"old-1","timestamp": ts(START_MS - 10 * DAY)})
        .to_string();
    let (s, b) = send(&app, "/v1/track", Some(&tracker), &old).await;
    assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("timestamp")), "{b}");

    let (s, q) = app.get("/v1/data-quality", &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!((q["accepted"].as_i64(), q["duplicates"].as_i64(), q["rejected"].as_i64()), (Some(3), Some(2), Some(8)));
    let missing: i64 = q["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "missing_event")
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(missing, 3);
    assert!(q["freshness_max_ms"].as_i64().unwrap() >= 60_000);
}

async fn anonymous_events_are_stitched_and_trust_follows_the_key(app: TestApp) {
    let tracker = app.key("tracker", None, Some("web")).await;
    let channel = app.key("channel", None, Some("app")).await;
    let member = app
        .register(json!({"identities":[{"type":"external_id","value":"C-1"}],
            "consents":[{"purpose":"profiling","channel":"app_push","granted":true}]}))
        .await;
    let viewed = json!({"batch":[
        {"type":"track","event":"Product Viewed","anonymousId":"anon-7","messageId":"v-1","properties":{"category":"shoes"}},
        {"type":"track","event":"Product Viewed","anonymousId":"anon-7","messageId":"v-2","properties":{"category":"shoes"}}
    ]});
    let (s, b) = send(&app, "/v1/batch", Some(&tracker), &viewed.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rule = json!({"rule":{"event":{"name":"product_viewed","within_days":7,"min_count":2}}});
    let (_, c) = app.post("/v1/segments/preview", &app.admin, rule.clone()).await;
    assert_eq!(c["count"], 0, "anonymous events belong to nobody yet");

    // identify links the anonymous id to the member: its history follows at once.
    let identify = json!({"type":"identify","userId":"C-1","anonymousId":"anon-7","messageId":"i-1"});
    let (s, b) = send(&app, "/v1/identify", Some(&tracker), &identify.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, c) = app.post("/v1/segments/preview", &app.admin, rule.clone()).await;
    assert_eq!(c["count"], 1);
    let (_, t) = app.get(&format!("/v1/members/{member}/events"), &app.admin).await;
    let names: Vec<&str> = t["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["identify", "product_viewed", "product_viewed"]);
    let (_, v) = app.get(&format!("/v1/members/{member}"), &app.admin).await;
    assert_eq!(v["dimensions"]["browsed_category"], json!(["shoes"]));
    assert_eq!(v["timeline"][0]["event"], "identify");
    // Later events of the stitched anonymous id go straight to the member.
    let more = json!({"type":"track","event":"Product Viewed","anonymousId":"anon-7","messageId":"v-3"});
    send(&app, "/v1/track", Some(&tracker), &more.to_string()).await;
    let (_, c) = app
        .post(
            "/v1/segments/preview",
            &app.admin,
            json!({"rule":{"event":{"name":"product_viewed","within_days":1,"min_count":3}}}),
        )
        .await;
    assert_eq!(c["count"], 1);

    // Withdrawn profiling consent: event predicates no longer match the member.
    let (s, _) = app
        .put(
            &format!("/v1/members/{member}/consents"),
            &app.admin,
            json!({"changes":[{"purpose":"profiling","channel":"app_push","granted":false}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, c) = app.post("/v1/segments/preview", &app.admin, rule).await;
    assert_eq!(c["count"], 0);

    // A public tracker key cannot create or claim identities with traits…
    let claim = json!({"type":"identify","userId":"C-2","anonymousId":"anon-8","messageId":"i-2",
        "traits":{"phone": phone(1), "name":"王小明"}});
    send(&app, "/v1/identify", Some(&tracker), &claim.to_string()).await;
    assert_eq!(app.lookup(&app.admin, "phone", &phone(1)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.lookup(&app.admin, "external_id", "C-2").await.0, StatusCode::NOT_FOUND);
    // …a server-side channel key can, with One ID's rules.
    let claim = json!({"type":"identify","userId":"C-3","anonymousId":"anon-9","messageId":"i-3",
        "traits":{"phone": phone(2), "city":"杭州"}});
    let (s, b) = send(&app, "/v1/identify", Some(&channel), &claim.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, m) = app.lookup(&app.admin, "phone", &phone(2)).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["profile"]["city"], "杭州");
    let (s, m2) = app.lookup(&app.admin, "external_id", "C-3").await;
    assert_eq!((s, &m2["id"]), (StatusCode::OK, &m["id"]));
    // The traits are sealed: no phone number in the export of events.
    let (_, text) = app.get("/v1/events/export", &app.admin).await;
    assert!(!text.as_str().unwrap().contains(&phone(2)[3..]));
}

async fn catalogue(app: &TestApp) {
    let (s, b) = app
        .put(
            "/v1/products",
            &app.admin,
            json!({"items":[{"sku":"A","name":"跑鞋","category":"shoes","price_fen":30000,"effective_from":"2025-01-01T00:00:00+08:00"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn order(app: &TestApp, till: &str, member: &str, order_ref: &str) {
    let (s, b) = app
        .post(
            "/v1/orders",
            till,
            json!({"order_ref": order_ref, "member_id": member, "channel":"pos", "lines":[{"sku":"A","qty":1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn segments_tags_rfm_and_lifecycle_follow_writes_and_time(app: TestApp) {
    catalogue(&app).await;
    let till = app.key("store", Some("S001"), None).await;
    let marketer = app.key("marketer", None, None).await;
    let analyst = app.key("analyst", None, None).await;
    let a = app.register(json!({"identities":[{"type":"phone","value":phone(10)}], "profile":{"city":"杭州"}})).await;
    let b = app.register(json!({"identities":[{"type":"phone","value":phone(11)}], "profile":{"city":"上海"}})).await;
    let c = app.register(json!({"identities":[{"type":"phone","value":phone(12)}]})).await;
    let (_, l) = app.get("/v1/analytics/lifecycle", &analyst).await;
    assert_eq!(l["stages"]["new"], 3);

    order(&app, &till, &a, "R1").await;
    order(&app, &till, &a, "R2").await;
    order(&app, &till, &b, "R3").await;

    // A manual tag in bulk (CSV), a rule tag, and an unknown tag named in a rule.
    let resp = app
        .client
        .post(format!("{}/v1/tags/vip/members", app.base))
        .bearer_auth(&marketer)
        .header("content-type", "text/csv")
        .body(format!("member_id\n{a}\nm_nobody\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let r: Value = resp.json().await.unwrap();
    assert_eq!((r["added"].as_i64(), &r["unknown"]), (Some(1), &json!(["m_nobody"])));
    let (s, t) = app
        .put("/v1/tags/buyers", &marketer, json!({"rule":{"rfm":{"r":[1,5]}}, "description":"bought at least once"}))
        .await;
    assert_eq!((s, t["count"].as_i64()), (StatusCode::OK, Some(2)), "{t}");
    let (s, e) =
        app.post("/v1/segments/preview", &analyst, json!({"rule":{"all":[{"tag":"vip"},{"tag":"nope"}]}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], "rule.all[1].tag");

    let rule = json!({"all":[{"tag":"buyers"},{"attr":"city","op":"in","value":["杭州","北京"]},{"dim":"shopper_type","in":["offline"]}]});
    let (_, p) = app.post("/v1/segments/preview", &analyst, json!({"rule": rule})).await;
    assert_eq!(p["count"], 1);
    let (s, seg) = app.post("/v1/segments", &marketer, json!({"name":"杭州门店顾客", "rule": rule})).await;
    assert_eq!((s, seg["count"].as_i64()), (StatusCode::CREATED, Some(1)), "{seg}");
    let id = seg["id"].as_str().unwrap();
    let resp = app
        .client
        .get(format!("{}/v1/segments/{id}/members?format=csv", app.base))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    let csv = resp.text().await.unwrap();
    assert!(csv.starts_with("member_id,lifecycle"), "{csv}");
    assert!(csv.contains(&a) && !csv.contains(&b) && !csv.contains(&phone(10)[3..]), "{csv}");

    // The member view: tags, RFM with raw values, lifecycle, dimensions.
    let (_, v) = app.get(&format!("/v1/members/{a}"), &app.admin).await;
    assert_eq!(v["tags"], json!(["buyers", "vip"]));
    assert_eq!(v["lifecycle"], "growing");
    assert_eq!(
        (v["rfm"]["frequency"].as_i64(), v["rfm"]["monetary_fen"].as_i64(), v["rfm"]["recency_days"].as_i64()),
        (Some(2), Some(60_000), Some(0))
    );
    assert_eq!(v["dimensions"]["favourite_category"], json!(["shoes"]));
    let (_, v) = app.get(&format!("/v1/members/{c}"), &app.admin).await;
    assert_eq!((v["rfm"].is_null(), v["lifecycle"].as_str()), (true, Some("new")));

    // A new order is reflected as soon as it is answered.
    order(&app, &till, &c, "R4").await;
    let (_, p) = app.post("/v1/segments/preview", &analyst, json!({"rule":{"tag":"buyers"}})).await;
    assert_eq!(p["count"], 3);

    // Time passes with no writes: 100 days later A is silent, with a recorded transition.
    // (Each node rebuilds in the background at the first use of a new day; here at once.)
    app.clock.advance(100 * DAY);
    let (s, _) = app.post("/v1/analytics/rebuild", &marketer, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, l) = app.get("/v1/analytics/lifecycle", &analyst).await;
    assert_eq!(l["stages"]["silent"], 3, "{l}");
    let (_, t) = app.get(&format!("/v1/members/{a}/events"), &app.admin).await;
    let stages: Vec<&str> = t["lifecycle"].as_array().unwrap().iter().map(|x| x["to"].as_str().unwrap()).collect();
    assert_eq!(stages, vec!["new", "growing", "silent"]);
    // The timeline holds the till sales as events.
    assert!(t["events"].as_array().unwrap().iter().any(|e| e["event"] == "order_completed"));
    let (_, seg) = app.get(&format!("/v1/segments/{id}"), &analyst).await;
    assert_eq!(seg["sizes"].as_array().unwrap().len(), 1);
}

async fn rfm_analytics_from_scratch_as_of_a_date(app: TestApp) {
    catalogue(&app).await;
    let till = app.key("store", Some("S001"), None).await;
    let ids: Vec<String> = futures_lite_join(&app, 5).await;
    // Member i buys i+1 times.
    for (i, id) in ids.iter().enumerate() {
        for k in 0..=i {
            order(&app, &till, id, &format!("R{i}-{k}")).await;
        }
    }
    let (s, r) = app.get("/v1/analytics/rfm", &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!((r["k"].as_i64(), r["scored"].as_i64(), r["unscored"].as_i64()), (Some(5), Some(5), Some(0)));
    // Frequencies 1..5 among five members: each its own quintile.
    let fs: Vec<i64> = r["cells"].as_array().unwrap().iter().map(|c| c["f"].as_i64().unwrap()).collect();
    let mut sorted = fs.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3, 4, 5]);
    // As of the day before the orders, nobody had bought.
    let (_, r) = app.get("/v1/analytics/rfm?as_of=2025-12-31", &app.admin).await;
    assert_eq!(r["scored"], 0);
    let (s, _) = app.get("/v1/analytics/rfm?as_of=yesterday", &app.admin).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // The retailers' thresholds: F ≥ 3 is high (k = 3).
    let (s, c) = app
        .put(
            "/v1/analytics/rfm/config",
            &app.admin,
            json!({"window_days":365,"scoring":{"kind":"thresholds","frequency":[2,3],"monetary_fen":[100000,200000]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (_, r) = app.get("/v1/analytics/rfm", &app.admin).await;
    assert_eq!(r["k"], 3);
    let value = r["groups"].as_array().unwrap().iter().find(|g| g["group"] == "important_value").unwrap().clone();
    // F ≥ 3 for 3, 4 and 5 orders; M ≥ 100,000 fen only for 4 and 5 orders (30,000 each).
    assert_eq!((value["label"].as_str(), value["count"].as_i64()), (Some("重要价值客户"), Some(2)));
    let (_, p) = app.post("/v1/segments/preview", &app.admin, json!({"rule":{"rfm":{"f":[3,3]}}})).await;
    assert_eq!(p["count"], 3);
    let (s, e) = app.put("/v1/analytics/rfm/config", &app.admin, json!({"window_days":0})).await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("window_days")));
}

async fn futures_lite_join(app: &TestApp, n: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.register(json!({"identities":[{"type":"phone","value":phone(200 + i)}]})).await);
    }
    ids
}

async fn erasure_reaches_events(app: TestApp) {
    let tracker = app.key("tracker", None, Some("web")).await;
    let member = app.register(json!({"identities":[{"type":"external_id","value":"C-77"}]})).await;
    let batch = json!({"batch":[
        {"type":"track","event":"Store Entry","userId":"C-77","messageId":"e-1","properties":{"store_id":"S001"}},
        {"type":"track","event":"Zone Dwell","anonymousId":"anon-77","messageId":"e-2","properties":{"zone":"shoes","seconds":240}},
        {"type":"identify","userId":"C-77","anonymousId":"anon-77","messageId":"e-3","traits":{"email":"someone@example.cn"}},
        {"type":"track","event":"Product Viewed","userId":"C-88","messageId":"e-4"}
    ]});
    let (s, b) = send(&app, "/v1/batch", Some(&tracker), &batch.to_string()).await;
    assert_eq!((s, b["accepted"].as_i64()), (StatusCode::OK, Some(4)), "{b}");
    let (_, t) = app.get(&format!("/v1/members/{member}/events"), &app.admin).await;
    assert_eq!(t["events"].as_array().unwrap().len(), 3, "{t}");
    let (s, _) = app.delete(&format!("/v1/members/{member}"), &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    let (_, text) = app.get("/v1/events/export", &app.admin).await;
    let left = ndjson(&text);
    assert_eq!(left.len(), 1, "only the other customer's event is left: {left:?}");
    assert_eq!(left[0]["message_id"], "e-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_only() {
    let mut config = crate::common::test_config();
    config.tracking_origins = vec!["https://shop.example.cn".into()];
    let app = TestApp::sqlite_with(config).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/t", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://shop.example.cn").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example.cn");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
