//! One pool of stock: locations, ERP pushes with sequence numbers, availability near a point,
//! online orders routed and reserved with the order, and no oversell under concurrency.

use crate::common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    stock_pushes_apply_in_sequence_and_availability_is_nearest_first,
    online_orders_are_routed_reserved_and_released,
    two_hundred_shoppers_race_for_five_units,
    pickups_are_handed_over_against_their_code_or_expire,
    transfers_move_stock_and_waiting_members_hear_when_it_is_back,
);

/// Hangzhou: two stores (1 km and 4 km north of the shopper), a regional warehouse, and the
/// central warehouse in Shanghai.
async fn map(app: &TestApp) {
    let locations = [
        json!({"id":"S-NEAR","name":"西湖店","kind":"store","lat":30.2831,"lng":120.1551,"pickup":true,"ship_from_store":true,"delivery_radius_km":3.0,"safety_stock":1,"opening_hours":"09:00-22:00"}),
        json!({"id":"S-FAR","name":"城北店","kind":"store","lat":30.3101,"lng":120.1551,"pickup":true,"ship_from_store":true,"delivery_radius_km":5.0}),
        json!({"id":"R-HZ","name":"杭州仓","kind":"regional_warehouse","lat":30.40,"lng":120.30}),
        json!({"id":"C-SH","name":"上海总仓","kind":"central_warehouse","lat":31.23,"lng":121.47}),
    ];
    for l in locations {
        let (s, b) = app.post("/v1/locations", &app.admin, l).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = app
        .put(
            "/v1/products",
            &app.admin,
            json!({"items":[{"sku":"SHOE","name":"跑鞋","category":"shoes","price_fen":39900,"effective_from":"2025-01-01T00:00:00+08:00"},
                            {"sku":"SOCK","name":"袜子","category":"shoes","price_fen":1900,"effective_from":"2025-01-01T00:00:00+08:00"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn push(app: &TestApp, body: Value) -> Vec<Value> {
    let (s, b) = app.put("/v1/inventory", &app.admin, body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["results"].as_array().unwrap().clone()
}

const HOME: (f64, f64) = (30.2741, 120.1551);

async fn stock_pushes_apply_in_sequence_and_availability_is_nearest_first(app: TestApp) {
    map(&app).await;
    let r = push(
        &app,
        json!({"mode":"snapshot","source":"erp","items":[
            {"location_id":"S-NEAR","sku":"SHOE","on_hand":3,"seq":10},
            {"location_id":"S-FAR","sku":"SHOE","on_hand":8,"seq":10},
            {"location_id":"C-SH","sku":"SHOE","on_hand":100,"seq":10},
            {"location_id":"NOWHERE","sku":"SHOE","on_hand":1}]}),
    )
    .await;
    let statuses: Vec<&str> = r.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["applied", "applied", "applied", "unknown_location"]);
    // A late, older snapshot is refused; a newer delta applies.
    let r = push(
        &app,
        json!({"mode":"delta","source":"erp","items":[
            {"location_id":"S-NEAR","sku":"SHOE","delta":-1,"seq":9},
            {"location_id":"S-FAR","sku":"SHOE","delta":-2,"seq":11}]}),
    )
    .await;
    assert_eq!((r[0]["status"].as_str(), r[0]["last_seq"].as_i64()), (Some("stale"), Some(10)));
    assert_eq!((r[1]["status"].as_str(), r[1]["on_hand"].as_i64()), (Some("applied"), Some(6)));
    let (s, e) = app
        .put(
            "/v1/inventory",
            &app.admin,
            json!({"mode":"delta","items":[{"location_id":"S-NEAR","sku":"SHOE","on_hand":3}]}),
        )
        .await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("items[0].delta")));

    let (_, inv) = app.get("/v1/inventory/SHOE", &app.admin).await;
    // S-NEAR holds one back as safety stock: 3 on hand, 2 available.
    assert_eq!((inv["on_hand"].as_i64(), inv["available"].as_i64()), (Some(109), Some(108)), "{inv}");
    let (_, a) =
        app.get(&format!("/v1/availability?sku=SHOE&lat={}&lng={}&radius_km=20", HOME.0, HOME.1), &app.admin).await;
    let ids: Vec<&str> =
        a["locations"].as_array().unwrap().iter().map(|l| l["location_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["S-NEAR", "S-FAR"], "the central warehouse is 165 km away: {a}");
    assert_eq!(
        (a["locations"][0]["available"].as_i64(), a["locations"][0]["delivery"].as_bool()),
        (Some(2), Some(true))
    );
    let (s, _) = app.get("/v1/availability?sku=SHOE&lat=91&lng=0", &app.admin).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn online_orders_are_routed_reserved_and_released(app: TestApp) {
    map(&app).await;
    push(
        &app,
        json!({"mode":"snapshot","items":[
            {"location_id":"S-NEAR","sku":"SHOE","on_hand":2},
            {"location_id":"S-FAR","sku":"SHOE","on_hand":5},{"location_id":"S-FAR","sku":"SOCK","on_hand":5},
            {"location_id":"R-HZ","sku":"SOCK","on_hand":50}]}),
    )
    .await;
    let channel = app.key("channel", None, Some("mini_program")).await;
    let order = |r: &str, f: Value, lines: Value| json!({"order_ref": r, "lines": lines, "fulfillment": f});

    // Pick-up at S-NEAR: one shoe is there (2 on hand, 1 safety stock).
    let (s, o) = app
        .post(
            "/v1/orders",
            &channel,
            order("P1", json!({"type":"pickup","store_id":"S-NEAR"}), json!([{"sku":"SHOE","qty":1}])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["allocations"], json!([{"location_id":"S-NEAR","sku":"SHOE","qty":1,"status":"reserved"}]));
    assert_eq!(o["route_reason"], "pickup at S-NEAR");
    // A second one is not: refused, naming the stores that have it.
    let (s, e) = app
        .post(
            "/v1/orders",
            &channel,
            order("P2", json!({"type":"pickup","store_id":"S-NEAR"}), json!([{"sku":"SHOE","qty":1}])),
        )
        .await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::CONFLICT, Some("out_of_stock")), "{e}");
    assert!(e["errors"][0]["message"].as_str().unwrap().starts_with("S-FAR"), "{e}");

    // Delivery of shoe + sock: the near store has no socks, the far one (4 km, radius 5) both.
    let home = json!({"type":"delivery","address":{"lat":HOME.0,"lng":HOME.1}});
    let (s, o) = app
        .post("/v1/orders", &channel, order("D1", home.clone(), json!([{"sku":"SHOE","qty":1},{"sku":"SOCK","qty":2}])))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert!(o["allocations"].as_array().unwrap().iter().all(|a| a["location_id"] == "S-FAR"), "{o}");
    // Six shoes exceed every location: refused, and allowed to split still not enough.
    let (s, _) = app.post("/v1/orders", &channel, order("D2", home.clone(), json!([{"sku":"SHOE","qty":6}]))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, inv) = app.get("/v1/inventory/SHOE", &app.admin).await;
    assert_eq!(inv["reserved"], 2, "a refused order reserves nothing: {inv}");

    // Cancelling gives the reservation back.
    let id = o["id"].as_str().unwrap();
    let (s, c) = app.post(&format!("/v1/orders/{id}/cancel"), &channel, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["allocations"][0]["status"], "released");
    let (_, inv) = app.get("/v1/inventory/SOCK", &app.admin).await;
    assert_eq!(inv["reserved"], 0);

    // A till sale is never refused for stock: on hand may go below zero.
    let till = app.key("store", Some("S-NEAR"), None).await;
    let (s, _) = app.post("/v1/orders", &till, json!({"order_ref":"T1","lines":[{"sku":"SHOE","qty":3}]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, inv) = app.get("/v1/inventory/SHOE", &app.admin).await;
    let near = inv["locations"].as_array().unwrap().iter().find(|l| l["location_id"] == "S-NEAR").unwrap().clone();
    assert_eq!(
        (near["on_hand"].as_i64(), near["available"].as_i64(), near["needs_count"].as_bool()),
        (Some(-1), Some(0), Some(true)),
        "{inv}"
    );
    // A stock-take: the counted quantity and the difference are in the journal.
    push(&app, json!({"mode":"snapshot","reason":"count","items":[{"location_id":"S-NEAR","sku":"SHOE","on_hand":4}]}))
        .await;
    let (_, j) = app.get("/v1/inventory/SHOE/movements?location_id=S-NEAR", &app.admin).await;
    let first = &j["movements"][0];
    assert_eq!(
        (first["reason"].as_str(), first["delta"].as_i64(), first["on_hand_after"].as_i64()),
        (Some("count"), Some(5), Some(4)),
        "{j}"
    );
    assert_eq!(j["movements"][1]["reason"], "sale");
    let (s, e) = app
        .post(
            "/v1/orders",
            &channel,
            json!({"order_ref":"X","lines":[{"sku":"SHOE","qty":1}],"fulfillment":{"type":"pickup"}}),
        )
        .await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("fulfillment.store_id")));
}

async fn two_hundred_shoppers_race_for_five_units(app: TestApp) {
    map(&app).await;
    push(&app, json!({"mode":"snapshot","items":[{"location_id":"S-FAR","sku":"SHOE","on_hand":5}]})).await;
    let channel = app.key("channel", None, Some("app")).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (app, channel) = (app.clone(), channel.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"order_ref": format!("R{i}"), "lines":[{"sku":"SHOE","qty":1}],
                "fulfillment":{"type":"delivery","address":{"lat":HOME.0,"lng":HOME.1}}});
            app.post("/v1/orders", &channel, body).await.0
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 5, "exactly the five units are sold");
    let (_, inv) = app.get("/v1/inventory/SHOE", &app.admin).await;
    assert_eq!((inv["reserved"].as_i64(), inv["available"].as_i64()), (Some(5), Some(0)), "{inv}");
}

async fn level(app: &TestApp, sku: &str, location: &str) -> (i64, i64) {
    let (_, inv) = app.get(&format!("/v1/inventory/{sku}"), &app.admin).await;
    let l =
        inv["locations"].as_array().unwrap().iter().find(|l| l["location_id"] == location).cloned().unwrap_or_default();
    (l["on_hand"].as_i64().unwrap_or(0), l["reserved"].as_i64().unwrap_or(0))
}

async fn pickups_are_handed_over_against_their_code_or_expire(app: TestApp) {
    map(&app).await;
    push(&app, json!({"mode":"snapshot","items":[{"location_id":"S-FAR","sku":"SHOE","on_hand":5}]})).await;
    let channel = app.key("channel", None, Some("mini_program")).await;
    let far_till = app.key("store", Some("S-FAR"), None).await;
    let near_till = app.key("store", Some("S-NEAR"), None).await;
    let pickup = |r: &str| json!({"order_ref": r, "lines":[{"sku":"SHOE","qty":2}], "fulfillment":{"type":"pickup","store_id":"S-FAR"}});

    let (s, o) = app.post("/v1/orders", &channel, pickup("PK1")).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let (id, code) = (o["id"].as_str().unwrap().to_string(), o["pickup_code"].as_str().unwrap().to_string());
    assert_eq!(code.len(), 6);
    // The till never sees the code; another store cannot touch the order.
    let (_, seen) = app.get(&format!("/v1/orders/{id}"), &far_till).await;
    assert!(seen.get("pickup_code").is_none(), "{seen}");
    let (s, _) = app.post(&format!("/v1/orders/{id}/picked"), &near_till, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = app.post(&format!("/v1/orders/{id}/picked"), &far_till, json!({})).await;
    assert_eq!((s, p["allocations"][0]["status"].as_str()), (StatusCode::OK, Some("picked")), "{p}");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (s, e) = app.post(&format!("/v1/orders/{id}/handover"), &far_till, json!({"pickup_code": wrong})).await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pickup_code")));
    assert_eq!(level(&app, "SHOE", "S-FAR").await, (5, 2));
    let (s, f) = app.post(&format!("/v1/orders/{id}/handover"), &far_till, json!({"pickup_code": code})).await;
    assert_eq!((s, f["status"].as_str()), (StatusCode::OK, Some("fulfilled")), "{f}");
    assert_eq!(level(&app, "SHOE", "S-FAR").await, (3, 0), "the goods left the shelf");

    // A pick-up nobody collects is cancelled after the window, its stock released.
    let (_, o2) = app.post("/v1/orders", &channel, pickup("PK2")).await;
    assert_eq!(level(&app, "SHOE", "S-FAR").await, (3, 2));
    app.clock.advance(71 * 3_600_000);
    let (_, none) = app.post("/v1/orders/pickup-expiry", &app.admin, json!({})).await;
    assert_eq!(none["cancelled"], json!([]));
    app.clock.advance(2 * 3_600_000);
    let (_, gone) = app.post("/v1/orders/pickup-expiry", &app.admin, json!({})).await;
    assert_eq!(gone["cancelled"], json!([o2["id"]]));
    assert_eq!(level(&app, "SHOE", "S-FAR").await, (3, 0));

    // A return at another store restocks there; damaged goods are written off.
    let (_, r) = app
        .post(
            &format!("/v1/orders/{id}/returns"),
            &near_till,
            json!({"lines":[{"line_id":1,"qty":1}],"location_id":"S-NEAR"}),
        )
        .await;
    assert!(r["refund_fen"].as_i64().unwrap() > 0, "{r}");
    assert_eq!(level(&app, "SHOE", "S-NEAR").await.0, 1);
    let (s, _) = app
        .post(
            &format!("/v1/orders/{id}/returns"),
            &near_till,
            json!({"lines":[{"line_id":1,"qty":1,"damaged":true}],"location_id":"S-NEAR"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(level(&app, "SHOE", "S-NEAR").await.0, 1, "damaged goods are not sellable");

    // A delivery is shipped by its channel: fulfilled, stock gone.
    let (_, d) = app
        .post("/v1/orders", &channel, json!({"order_ref":"DL1","lines":[{"sku":"SHOE","qty":1}],"fulfillment":{"type":"delivery","address":{"lat":HOME.0,"lng":HOME.1}}}))
        .await;
    let (s, shipped) = app.post(&format!("/v1/orders/{}/ship", d["id"].as_str().unwrap()), &channel, json!({})).await;
    assert_eq!((s, shipped["status"].as_str()), (StatusCode::OK, Some("fulfilled")), "{shipped}");
}

async fn transfers_move_stock_and_waiting_members_hear_when_it_is_back(app: TestApp) {
    map(&app).await;
    push(&app, json!({"mode":"snapshot","items":[{"location_id":"R-HZ","sku":"SHOE","on_hand":10}]})).await;
    let member = app.register(json!({"identities":[{"type":"phone","value":"13900001111"}]})).await;
    let channel = app.key("channel", None, Some("app")).await;
    // Waiting for shoes at S-NEAR, which has none.
    let (s, b) = app
        .post("/v1/back-in-stock", &channel, json!({"member_id": member, "sku":"SHOE","location_id":"S-NEAR"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.post("/v1/back-in-stock", &channel, json!({"member_id": "m_nobody", "sku":"SHOE"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let till = app.key("store", Some("S-NEAR"), None).await;
    let (s, t) = app
        .post(
            "/v1/transfers",
            &till,
            json!({"from_location_id":"R-HZ","to_location_id":"S-NEAR","items":[{"sku":"SHOE","qty":4}]}),
        )
        .await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::CREATED, Some("requested")), "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    // The receiving store cannot ship; the admin (for the warehouse) does.
    let (s, _) = app.post(&format!("/v1/transfers/{id}/ship"), &till, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, t) = app.post(&format!("/v1/transfers/{id}/ship"), &app.admin, json!({})).await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::OK, Some("shipped")));
    // In transit: available nowhere.
    let (_, inv) = app.get("/v1/inventory/SHOE", &app.admin).await;
    assert_eq!(inv["on_hand"], 6, "{inv}");
    let (_, tl) = app.get(&format!("/v1/members/{member}/events"), &app.admin).await;
    assert!(tl["events"].as_array().unwrap().is_empty());
    let (s, t) = app.post(&format!("/v1/transfers/{id}/receive"), &till, json!({})).await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::OK, Some("received")));
    assert_eq!(level(&app, "SHOE", "S-NEAR").await.0, 4);
    let (s, _) = app.post(&format!("/v1/transfers/{id}/receive"), &till, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "received once");
    // The waiting member hears about it, once.
    let (_, tl) = app.get(&format!("/v1/members/{member}/events"), &app.admin).await;
    let events: Vec<&str> = tl["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["back_in_stock"]);
    push(&app, json!({"mode":"delta","items":[{"location_id":"S-NEAR","sku":"SHOE","delta":1}]})).await;
    let (_, tl) = app.get(&format!("/v1/members/{member}/events"), &app.admin).await;
    assert_eq!(tl["events"].as_array().unwrap().len(), 1);
}
