//! Catalogue, loyalty programme, orders and the points ledger.

use crate::common::{TestApp, phone};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    orders_are_priced_from_the_catalogue_and_move_points,
    orders_use_the_programme_in_force_at_placed_at,
    redemption_is_limited_by_balance_and_share,
    cancelling_an_online_order_reverses_its_points,
    concurrent_orders_never_overdraw_a_balance,
    merging_members_merges_their_ledgers,
);

async fn catalogue(app: &TestApp) {
    let (s, b) = app
        .put(
            "/v1/products",
            &app.admin,
            json!({"items":[
                {"sku":"A","name":"有机牛奶","category":"food","price_fen":1299,"effective_from":"2025-01-01T00:00:00+08:00"},
                {"sku":"B","name":"矿泉水","category":"drink","price_fen":500,"channel_prices_fen":{"mini_program":450}},
                {"sku":"C","name":"饼干","category":"food","price_fen":333}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["upserted"], 3);
}

async fn member_with_points(app: &TestApp, i: u32, points: i64) -> String {
    let id = app.register(json!({"identities":[{"type":"phone","value":phone(100 + i)}]})).await;
    if points > 0 {
        let (s, b) = app
            .post(
                &format!("/v1/members/{id}/points/adjustments"),
                &app.admin,
                json!({"points": points, "reason": "opening balance"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    id
}

async fn balance(app: &TestApp, id: &str) -> i64 {
    let (_, p) = app.get(&format!("/v1/members/{id}/points"), &app.admin).await;
    p["balance"].as_i64().unwrap()
}

fn basket(member: &str, order_ref: &str, points: i64) -> Value {
    json!({"order_ref": order_ref, "member_id": member, "points_to_redeem": points,
           "lines":[{"sku":"A","qty":2},{"sku":"B","qty":1},{"sku":"C","qty":3}]})
}

async fn orders_are_priced_from_the_catalogue_and_move_points(app: TestApp) {
    catalogue(&app).await;
    let (s, p) = app.get("/v1/products/B", &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((p["price_fen"].as_i64(), p["channel_prices_fen"]["mini_program"].as_i64()), (Some(500), Some(450)));
    let m = member_with_points(&app, 1, 2000).await;
    let till = app.key("store", Some("S001"), None).await;

    let (s, q) = app.post("/v1/orders/quote", &till, basket(&m, "R-1", 1000)).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(
        (q["subtotal_fen"].as_i64(), q["payable_fen"].as_i64(), q["points_earned"].as_i64()),
        (Some(4097), Some(3097), Some(30))
    );
    assert!(q["id"].is_null());
    assert_eq!(balance(&app, &m).await, 2000, "a quote changes nothing");

    let (s, o) = app.post("/v1/orders", &till, basket(&m, "R-1", 1000)).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["status"], "completed");
    assert_eq!(o["store_id"], "S001");
    assert_eq!(o["channel"], "pos");
    let paid: Vec<i64> = o["lines"].as_array().unwrap().iter().map(|l| l["paid_fen"].as_i64().unwrap()).collect();
    assert_eq!(paid, vec![1964, 378, 755]);
    let earned: Vec<i64> =
        o["lines"].as_array().unwrap().iter().map(|l| l["points_earned"].as_i64().unwrap()).collect();
    assert_eq!(earned, vec![19, 4, 7]);
    assert_eq!(balance(&app, &m).await, 2000 - 1000 + 30);
    let id = o["id"].as_str().unwrap();
    let (s, again) = app.get(&format!("/v1/orders/{id}"), &till).await;
    assert_eq!((s, &again["payable_fen"]), (StatusCode::OK, &json!(3097)));

    // The till resends without an idempotency key: the order_ref makes it one order.
    let (s, dup) = app.post("/v1/orders", &till, basket(&m, "R-1", 1000)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(dup["id"], o["id"]);
    assert_eq!(balance(&app, &m).await, 1030, "no second effect");
    // With an idempotency key the replay is exact too.
    let h = [("Idempotency-Key", "till-S001-R-2")];
    let (s1, a) = app.call(reqwest::Method::POST, "/v1/orders", &till, Some(basket(&m, "R-2", 0)), &h).await;
    let (s2, b) = app.call(reqwest::Method::POST, "/v1/orders", &till, Some(basket(&m, "R-2", 0)), &h).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a, b);
    assert_eq!(balance(&app, &m).await, 1030 + 40);

    let (_, ledger) = app.get(&format!("/v1/members/{m}/points"), &app.admin).await;
    let reasons: Vec<&str> =
        ledger["ledger"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["earn", "earn", "redeem", "adjustment"]);
    let sum: i64 = ledger["ledger"].as_array().unwrap().iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    assert_eq!(sum, ledger["balance"].as_i64().unwrap(), "the balance is the sum of the ledger");

    // A till cannot invent prices or SKUs.
    let (s, p) = app
        .post("/v1/orders", &till, json!({"order_ref":"R-3","lines":[{"sku":"A","qty":1},{"sku":"NOPE","qty":1}]}))
        .await;
    assert_eq!(
        (s, p["code"].as_str(), p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_sku"), Some("lines[1].sku"))
    );
    let (s, p) = app
        .post("/v1/orders", &till, json!({"order_ref":"R-3","lines":[{"sku":"A","qty":1,"unit_price_fen":999}]}))
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("lines[0].unit_price_fen"))
    );
    let (s, o) = app
        .post("/v1/orders", &till, json!({"order_ref":"R-3","lines":[{"sku":"A","qty":1,"unit_price_fen":999,"price_override_reason":"markdown"}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        (o["lines"][0]["catalogue_price_fen"].as_i64(), o["lines"][0]["price_override_reason"].as_str()),
        (Some(1299), Some("markdown"))
    );
    let mini = app.key("channel", None, Some("mini_program")).await;
    let (s, _) = app
        .post(
            "/v1/orders",
            &mini,
            json!({"order_ref":"W-1","lines":[{"sku":"A","qty":1,"unit_price_fen":1,"price_override_reason":"x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "online channels cannot override prices");
    let (s, o) = app.post("/v1/orders", &mini, json!({"order_ref":"W-1","lines":[{"sku":"B","qty":2}]})).await;
    assert_eq!(
        (s, o["subtotal_fen"].as_i64()),
        (StatusCode::CREATED, Some(900)),
        "the published channel price applies"
    );
    let (s, p) =
        app.post("/v1/orders", &till, json!({"order_ref":"R-9","store_id":"S002","lines":[{"sku":"A","qty":1}]})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "tills write only for their store");
    let (s, p) = app.post("/v1/orders", &till, json!({"order_ref":"","lines":[{"sku":"A","qty":0}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["order_ref", "lines[0].qty"]);
}

async fn orders_use_the_programme_in_force_at_placed_at(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 2, 0).await;
    let (s, v) = app
        .put("/v1/loyalty/program", &app.marketer().await, json!({"program":{"earn":{"category_multipliers_bp":{"food":20000}}}, "effective_from":"2026-01-01T00:00:00Z"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 1);
    let till = app.key("store", Some("S001"), None).await;
    // Placed before the change (an offline till uploading late): the default programme.
    let (_, early) = app
        .post(
            "/v1/orders",
            &till,
            json!({"order_ref":"E-1","member_id":m,"placed_at":"2025-12-31T23:00:00Z","lines":[{"sku":"A","qty":1}]}),
        )
        .await;
    assert_eq!((early["program_version"].as_i64(), early["points_earned"].as_i64()), (Some(0), Some(12)));
    let (_, late) =
        app.post("/v1/orders", &till, json!({"order_ref":"E-2","member_id":m,"lines":[{"sku":"A","qty":1}]})).await;
    assert_eq!((late["program_version"].as_i64(), late["points_earned"].as_i64()), (Some(1), Some(25)));
    let (_, current) = app.get("/v1/loyalty/program", &till).await;
    assert_eq!(current["program"]["earn"]["category_multipliers_bp"]["food"], 20000);
    let (s, p) = app.put("/v1/loyalty/program", &app.admin, json!({"program":{"redeem":{"max_share_bp":20000}}})).await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("program.redeem.max_share_bp"))
    );
    let (s, _) = app.put("/v1/loyalty/program", &till, json!({"program":{}})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = app
        .post(
            "/v1/orders",
            &till,
            json!({"order_ref":"E-3","placed_at":"2030-01-01T00:00:00Z","lines":[{"sku":"A","qty":1}]}),
        )
        .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("placed_at")));
}

async fn redemption_is_limited_by_balance_and_share(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 3, 500).await;
    let till = app.key("store", Some("S001"), None).await;
    let one = |points: i64, r: &str| json!({"order_ref": r, "member_id": m, "points_to_redeem": points, "lines":[{"sku":"A","qty":2}]});
    let (s, p) = app.post("/v1/orders", &till, one(600, "L-1")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_points")));
    let (s, p) = app
        .post(
            "/v1/orders",
            &till,
            json!({"order_ref":"L-2","member_id":m,"points_to_redeem":400,"lines":[{"sku":"C","qty":1}]}),
        )
        .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("points_limit_exceeded")),
        "at most half of 3.33 yuan"
    );
    let (s, p) = app
        .post("/v1/orders", &till, json!({"order_ref":"L-3","points_to_redeem":10,"lines":[{"sku":"A","qty":1}]}))
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("points_to_redeem")),
        "guests cannot redeem"
    );
    assert_eq!(balance(&app, &m).await, 500, "refused orders change nothing");
    let (s, _) = app.post("/v1/orders", &till, one(500, "L-4")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(balance(&app, &m).await, 20, "500 redeemed, 20 earned on 20.98 yuan");
    let (s, p) = app
        .post(
            &format!("/v1/members/{m}/points/adjustments"),
            &app.admin,
            json!({"points": -21, "reason": "correction"}),
        )
        .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_points")));
    let (s, p) =
        app.post(&format!("/v1/members/{m}/points/adjustments"), &app.admin, json!({"points": 5, "reason": " "})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")));
    let (s, _) =
        app.post(&format!("/v1/members/{m}/points/adjustments"), &till, json!({"points": 5, "reason": "x"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn cancelling_an_online_order_reverses_its_points(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 4, 1000).await;
    let mini = app.key("channel", None, Some("mini_program")).await;
    let (s, o) = app.post("/v1/orders", &mini, basket(&m, "W-7", 1000)).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["status"], "placed");
    let earned = o["points_earned"].as_i64().unwrap();
    assert_eq!(balance(&app, &m).await, earned);
    let id = o["id"].as_str().unwrap();
    let other = app.key("channel", None, Some("app")).await;
    let (s, _) = app.post(&format!("/v1/orders/{id}/cancel"), &other, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another channel's order");
    let (s, c) = app.post(&format!("/v1/orders/{id}/cancel"), &mini, json!({})).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    assert_eq!(balance(&app, &m).await, 1000, "every effect reversed");
    let (s, p) = app.post(&format!("/v1/orders/{id}/cancel"), &mini, json!({})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("order_not_cancellable")));
    let till = app.key("store", Some("S001"), None).await;
    let (_, t) = app.post("/v1/orders", &till, basket(&m, "T-1", 0)).await;
    let (s, _) = app.post(&format!("/v1/orders/{}/cancel", t["id"].as_str().unwrap()), &till, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "a till sale is undone by a return");
    let (s, _) = app.post("/v1/orders/o_missing/cancel", &till, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn concurrent_orders_never_overdraw_a_balance(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 5, 1000).await;
    let app = std::sync::Arc::new(app);
    let till = app.key("store", Some("S001"), None).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (app, till, m) = (app.clone(), till.clone(), m.clone());
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/orders",
                &till,
                json!({"order_ref": format!("C-{i}"), "member_id": m, "points_to_redeem": 300,
                "lines":[{"sku":"A","qty":1}]}),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => ok += 1,
            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(b["code"], "insufficient_points"),
            other => panic!("{other} {b}"),
        }
    }
    // Each order earns 9 points on 9.99 yuan, so the fourth may just fit after three: count
    // what the ledger says rather than guessing the interleaving.
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &app.admin).await;
    let b = p["balance"].as_i64().unwrap();
    assert!(b >= 0, "never below zero: {b}");
    assert_eq!(b, 1000 - 300 * ok + 9 * ok);
    assert!((3..=4).contains(&ok), "{ok} orders redeemed");
}

async fn merging_members_merges_their_ledgers(app: TestApp) {
    catalogue(&app).await;
    let a = member_with_points(&app, 6, 300).await;
    let b = member_with_points(&app, 7, 200).await;
    let till = app.key("store", Some("S001"), None).await;
    let (_, o) =
        app.post("/v1/orders", &till, json!({"order_ref":"M-1","member_id":b,"lines":[{"sku":"A","qty":1}]})).await;
    app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    assert_eq!(balance(&app, &a).await, 300 + 200 + 12);
    assert_eq!(balance(&app, &b).await, 512, "the absorbed id answers for the survivor");
    let (_, order) = app.get(&format!("/v1/orders/{}", o["id"].as_str().unwrap()), &app.admin).await;
    assert_eq!(order["member_id"], a.as_str(), "orders belong to the survivor");
}

impl TestApp {
    pub async fn marketer(&self) -> String {
        self.key("marketer", None, None).await
    }
}

on_both_backends!(coupons_are_issued_scanned_redeemed_once_and_restored, many_tills_racing_for_one_coupon_one_wins);

async fn template(app: &TestApp, body: Value) -> String {
    let (s, t) = app.post("/v1/coupon-templates", &app.marketer().await, body).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn coupons_are_issued_scanned_redeemed_once_and_restored(app: TestApp) {
    catalogue(&app).await;
    let m1 = member_with_points(&app, 20, 0).await;
    let m2 = member_with_points(&app, 21, 0).await;
    let tid = template(
        &app,
        json!({"name":"满30减5 食品","benefit":{"type":"amount_off","threshold_fen":3000,"off_fen":500},
               "restrictions":{"categories":["food"]},"validity":{"days_after_issue":30},"per_member_limit":1,"budget_fen":100000}),
    )
    .await;
    let (s, p) = app.post("/v1/coupon-templates", &app.admin, json!({"name":"x","benefit":{"type":"amount_off","threshold_fen":0,"off_fen":0},"validity":{"days_after_issue":0}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let mini = app.key("channel", None, Some("mini_program")).await;
    let (s, one) = app.post("/v1/coupons", &mini, json!({"template_id": tid, "member_id": m1})).await;
    assert_eq!(s, StatusCode::CREATED, "{one}");
    let code = one["issued"][0]["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 16);
    let (_, bulk) =
        app.post("/v1/coupons", &app.admin, json!({"template_id": tid, "member_ids": [m1, m2, "m_nobody"]})).await;
    assert_eq!(bulk["issued"].as_array().unwrap().len(), 1, "{bulk}");
    let refused: Vec<&str> = bulk["refused"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(refused, ["conflict", "not_found"], "per-member limit, unknown member");
    let (_, claim) = app.post("/v1/coupons", &app.admin, json!({"template_id": tid, "count": 2})).await;
    assert!(claim["issued"][0]["member_id"].is_null());

    let till = app.key("store", Some("S001"), None).await;
    let (s, scan) = app.get(&format!("/v1/coupons/{}", code.to_lowercase()), &till).await;
    assert_eq!(s, StatusCode::OK, "{scan}");
    assert_eq!((scan["applies"].as_bool(), scan["status"].as_str()), (Some(true), Some("issued")));
    let (_, scan) = app.get(&format!("/v1/coupons/{code}?member_id={m2}"), &till).await;
    assert_eq!(scan["reason"], "other_member");

    let order = |r: &str| json!({"order_ref": r, "member_id": m1, "coupon_codes": [code.clone()], "lines":[{"sku":"A","qty":2},{"sku":"B","qty":1},{"sku":"C","qty":3}]});
    let (s, o) = app.post("/v1/orders", &till, order("K-1")).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!((o["discount_fen"].as_i64(), o["payable_fen"].as_i64()), (Some(500), Some(3597)));
    assert_eq!(o["coupons"][0]["lines"], json!([{"line_id":1,"discount_fen":361},{"line_id":3,"discount_fen":139}]));
    let (s, p) = app.post("/v1/orders", &till, order("K-2")).await;
    assert_eq!(
        (s, p["code"].as_str(), p["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("coupon_not_applicable"), Some("already_redeemed"))
    );
    let (_, scan) = app.get(&format!("/v1/coupons/{code}"), &till).await;
    assert_eq!((scan["status"].as_str(), scan["reason"].as_str()), (Some("redeemed"), Some("already_redeemed")));
    let (_, t) = app.get(&format!("/v1/coupon-templates/{tid}"), &till).await;
    assert_eq!((t["issued"].as_i64(), t["spent_fen"].as_i64()), (Some(4), Some(500)));

    // Online: a cancelled order gives its coupon back while it is still valid.
    let code2 = bulk["issued"][0]["code"].as_str().unwrap().to_string();
    assert_eq!(bulk["issued"][0]["member_id"], m2.as_str());
    let (s, o) = app
        .post(
            "/v1/orders",
            &mini,
            json!({"order_ref":"W-9","member_id":m2,"coupon_codes":[code2],"lines":[{"sku":"A","qty":3}]}),
        )
        .await;
    assert_eq!((s, o["discount_fen"].as_i64()), (StatusCode::CREATED, Some(500)), "{o}");
    let (s, _) = app.post(&format!("/v1/orders/{}/cancel", o["id"].as_str().unwrap()), &mini, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, scan) = app.get(&format!("/v1/coupons/{code2}?member_id={m2}"), &mini).await;
    assert_eq!((scan["status"].as_str(), scan["applies"].as_bool()), (Some("issued"), Some(true)));
    let (_, t) = app.get(&format!("/v1/coupon-templates/{tid}"), &till).await;
    assert_eq!(t["spent_fen"].as_i64(), Some(500), "the budget got its 5.00 back");

    // Below the threshold, unknown codes, and expiry.
    let (s, p) = app
        .post(
            "/v1/orders",
            &mini,
            json!({"order_ref":"W-10","member_id":m2,"coupon_codes":[code2],"lines":[{"sku":"C","qty":1}]}),
        )
        .await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("below_threshold")));
    let (s, p) = app
        .post("/v1/orders", &mini, json!({"order_ref":"W-11","coupon_codes":["NOPE"],"lines":[{"sku":"C","qty":1}]}))
        .await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_coupon")));
    app.clock.advance(31 * 86_400_000);
    let (_, scan) = app.get(&format!("/v1/coupons/{code2}?member_id={m2}"), &mini).await;
    assert_eq!(scan["reason"], "expired");
    let (s, _) = app.get("/v1/coupons/NOPE", &till).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post("/v1/coupons", &till, json!({"template_id": tid, "count": 1})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "tills redeem coupons, they do not issue them");
}

async fn many_tills_racing_for_one_coupon_one_wins(app: TestApp) {
    catalogue(&app).await;
    let tid = template(&app, json!({"name":"立减10元","benefit":{"type":"amount_off","threshold_fen":0,"off_fen":1000},"validity":{"days_after_issue":7},"budget_fen":1000000})).await;
    let (_, claim) = app.post("/v1/coupons", &app.admin, json!({"template_id": tid, "count": 1})).await;
    let code = claim["issued"][0]["code"].as_str().unwrap().to_string();
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            let till = app.key("store", Some(&format!("S{i:03}")), None).await;
            app.post(
                "/v1/orders",
                &till,
                json!({"order_ref":"RACE","coupon_codes":[code],"lines":[{"sku":"A","qty":1}]}),
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => won += 1,
            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(b["errors"][0]["code"], "already_redeemed", "{b}"),
            other => panic!("{other} {b}"),
        }
    }
    assert_eq!(won, 1, "exactly one till redeems the coupon");
    let (_, t) = app.get(&format!("/v1/coupon-templates/{tid}"), &app.admin).await;
    assert_eq!(t["spent_fen"].as_i64(), Some(1000));
}

on_both_backends!(returns_anywhere_refund_what_lines_paid_and_settle_points);

async fn returns_anywhere_refund_what_lines_paid_and_settle_points(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 30, 2000).await;
    let till = app.key("store", Some("S001"), None).await;
    let other_store = app.key("store", Some("S002"), None).await;
    let (_, o) = app.post("/v1/orders", &till, basket(&m, "RT-1", 1000)).await;
    let oid = o["id"].as_str().unwrap().to_string();
    assert_eq!(balance(&app, &m).await, 1030);

    // One biscuit pack back at another store: a third of what the line paid, earned and redeemed.
    let (s, r) =
        app.post(&format!("/v1/orders/{oid}/returns"), &other_store, json!({"lines":[{"line_id":3,"qty":1}]})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["refund_fen"].as_i64(), r["points_taken"].as_i64(), r["points_given"].as_i64()),
        (Some(251), Some(2), Some(81))
    );
    assert_eq!(r["store_id"], "S002");
    assert_eq!(balance(&app, &m).await, 1030 + 81 - 2);
    let (s, p) = app.post(&format!("/v1/orders/{oid}/returns"), &till, json!({"lines":[{"line_id":3,"qty":3}]})).await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("lines[0].qty")),
        "more than is left"
    );
    // The rest of the line by SKU: the remainders, so the line gives back exactly what it paid.
    let (s, r) = app.post(&format!("/v1/orders/{oid}/returns"), &till, json!({"lines":[{"sku":"C","qty":2}]})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["refund_fen"].as_i64(), r["points_taken"].as_i64(), r["points_given"].as_i64()),
        (Some(504), Some(5), Some(163))
    );
    assert_eq!(r["order_status"], "completed");
    let (s, _) = app.post(&format!("/v1/orders/{oid}/returns"), &till, json!({"lines":[{"line_id":3,"qty":1}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "returning twice is refused");
    let (s, _) = app.post(&format!("/v1/orders/{oid}/returns"), &till, json!({"lines":[{"line_id":9,"qty":1}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, r) = app
        .post(
            &format!("/v1/orders/{oid}/returns"),
            &till,
            json!({"lines":[{"line_id":1,"qty":2},{"line_id":2,"qty":1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r["order_status"], "returned");
    assert_eq!(balance(&app, &m).await, 2000, "a whole return puts the balance back where it was");

    // Earned points already spent: the shortfall comes off the cash refund, the balance stays at zero.
    let spender = member_with_points(&app, 31, 0).await;
    let (_, o2) = app.post("/v1/orders", &till, basket(&spender, "RT-2", 0)).await;
    assert_eq!(o2["points_earned"], 40);
    app.post(
        &format!("/v1/members/{spender}/points/adjustments"),
        &app.admin,
        json!({"points": -30, "reason": "spent in the app"}),
    )
    .await;
    let (s, r) = app
        .post(
            &format!("/v1/orders/{}/returns", o2["id"].as_str().unwrap()),
            &till,
            json!({"lines":[{"line_id":1,"qty":2},{"line_id":2,"qty":1},{"line_id":3,"qty":3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["points_taken"].as_i64(), r["shortfall_points"].as_i64(), r["deduction_fen"].as_i64()),
        (Some(10), Some(30), Some(30))
    );
    assert_eq!(r["refund_fen"], 4097 - 30);
    assert_eq!(balance(&app, &spender).await, 0, "never negative");

    // A whole return gives back a coupon still valid; a partly returned online order cannot be cancelled.
    let tid = template(&app, json!({"name":"立减3元","benefit":{"type":"amount_off","threshold_fen":0,"off_fen":300},"validity":{"days_after_issue":30}})).await;
    let (_, c) = app.post("/v1/coupons", &app.admin, json!({"template_id": tid, "member_id": m})).await;
    let code = c["issued"][0]["code"].as_str().unwrap().to_string();
    let mini = app.key("channel", None, Some("mini_program")).await;
    let (_, o3) = app
        .post(
            "/v1/orders",
            &mini,
            json!({"order_ref":"RT-3","member_id":m,"coupon_codes":[code],"lines":[{"sku":"A","qty":2}]}),
        )
        .await;
    let o3 = o3["id"].as_str().unwrap().to_string();
    let (s, _) = app.post(&format!("/v1/orders/{o3}/returns"), &till, json!({"lines":[{"line_id":1,"qty":1}]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p) = app.post(&format!("/v1/orders/{o3}/cancel"), &mini, json!({})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("order_not_cancellable")));
    let (_, r) = app.post(&format!("/v1/orders/{o3}/returns"), &till, json!({"lines":[{"line_id":1,"qty":1}]})).await;
    assert_eq!(r["coupons_restored"], json!([code]));
    let (_, scan) = app.get(&format!("/v1/coupons/{code}"), &mini).await;
    assert_eq!(scan["status"], "issued");
}

on_both_backends!(offline_batches_apply_each_order_once_and_flag_uncovered_redemptions);

async fn offline_batches_apply_each_order_once_and_flag_uncovered_redemptions(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 40, 1000).await;
    let till = app.key("store", Some("S001"), None).await;
    let order = |r: &str, redeem: i64| {
        json!({"order_ref": r, "member_id": m, "points_to_redeem": redeem,
        "placed_at": "2025-12-31T20:00:00+08:00", "lines":[{"sku":"A","qty":2}]})
    };
    let batch = json!({"orders": [
        {"idempotency_key": "S001-k1", "order": order("OFF-1", 800)},
        {"idempotency_key": "S001-k2", "order": order("OFF-2", 800)},
        {"idempotency_key": "S001-k3", "order": {"order_ref": "OFF-3", "lines": [{"sku": "NOPE", "qty": 1}]}}
    ]});
    let (s, b) = app.post("/v1/orders/batch", &till, batch.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = b["results"].as_array().unwrap();
    assert_eq!(r.iter().map(|x| x["status"].as_u64().unwrap()).collect::<Vec<_>>(), vec![201, 201, 422]);
    assert_eq!(r[0]["order"]["points_redeemed"], 800);
    assert_eq!(r[1]["flag"], json!({"code":"redemption_not_covered","points_asked":800,"points_redeemed":217}));
    assert_eq!(r[1]["order"]["points_redeemed"], 217);
    assert_eq!(r[2]["problem"]["code"], "unknown_sku");
    let after = balance(&app, &m).await;
    // 1000 − 800 redeemed + 17 earned, then the 217 left redeemed + 23 earned.
    assert_eq!(after, 23, "never overdrawn");

    // The till resends the whole batch: nothing happens twice.
    let (_, again) = app.post("/v1/orders/batch", &till, batch).await;
    let r2 = again["results"].as_array().unwrap();
    assert_eq!(r2[0]["order"]["id"], r[0]["order"]["id"]);
    assert_eq!(r2[1]["order"]["id"], r[1]["order"]["id"]);
    assert_eq!(balance(&app, &m).await, after);
    // A key first used by a single POST is the same order in a batch.
    let h = [("Idempotency-Key", "S001-k5")];
    let (s, single) = app.call(reqwest::Method::POST, "/v1/orders", &till, Some(order("OFF-5", 0)), &h).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, b) = app
        .post("/v1/orders/batch", &till, json!({"orders":[{"idempotency_key":"S001-k5","order": order("OFF-5", 0)}]}))
        .await;
    assert_eq!(b["results"][0]["order"]["id"], single["id"]);
    let (_, b) = app
        .post("/v1/orders/batch", &till, json!({"orders":[{"idempotency_key":"S001-k5","order": order("OFF-6", 0)}]}))
        .await;
    assert_eq!(b["results"][0]["problem"]["code"], "idempotency_conflict");

    // Above the offline limit the redemption is cut to it and flagged.
    let rich = member_with_points(&app, 41, 100_000).await;
    let (_, b) = app
        .post(
            "/v1/orders/batch",
            &till,
            json!({"orders":[{"idempotency_key":"S001-k7","order":{"order_ref":"OFF-7","member_id":rich,
            "points_to_redeem":6000,"lines":[{"sku":"A","qty":100}]}}]}),
        )
        .await;
    assert_eq!(b["results"][0]["flag"]["code"], "offline_limit_exceeded");
    assert_eq!(b["results"][0]["order"]["points_redeemed"], 5000);
    let other = app.key("store", Some("S002"), None).await;
    let (_, b) = app
        .post(
            "/v1/orders/batch",
            &other,
            json!({"orders":[{"idempotency_key":"S002-k1","order":{"order_ref":"OFF-9","member_id":rich,
            "points_to_redeem":300,"lines":[{"sku":"A","qty":10}]}}]}),
        )
        .await;
    assert_eq!(
        (b["results"][0]["flag"]["code"].as_str(), b["results"][0]["order"]["points_redeemed"].as_i64()),
        (Some("offline_limit_exceeded"), Some(100)),
        "S002 has its own limit"
    );
    let (_, b) = app
        .post("/v1/orders/batch", &other, json!({"orders":[{"idempotency_key":"x","order":{"order_ref":"OFF-8","store_id":"S001","lines":[{"sku":"A","qty":1}]}}]}))
        .await;
    assert_eq!(b["results"][0]["problem"]["code"], "forbidden", "tills write only for their own store");
    let (s, _) = app.post("/v1/orders/batch", &till, json!({"orders": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

on_both_backends!(points_expire_in_lots_first_in_first_out);

async fn points_expire_in_lots_first_in_first_out(app: TestApp) {
    catalogue(&app).await;
    let (s, _) = app
        .put(
            "/v1/loyalty/program",
            &app.admin,
            json!({"program":{"expiry":{"policy":"days","days":30}}, "effective_from":"2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = member_with_points(&app, 50, 500).await;
    let till = app.key("store", Some("S001"), None).await;
    // 200 points redeemed come out of the first lot; the order earns a lot of its own.
    let (_, o) = app
        .post(
            "/v1/orders",
            &till,
            json!({"order_ref":"X-1","member_id":m,"points_to_redeem":200,"lines":[{"sku":"A","qty":1}]}),
        )
        .await;
    assert_eq!(o["points_earned"], 10);
    app.clock.advance(20 * 86_400_000);
    app.post(
        &format!("/v1/members/{m}/points/adjustments"),
        &app.admin,
        json!({"points": 100, "reason": "birthday gift"}),
    )
    .await;
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &till).await;
    assert_eq!(p["balance"], 410);
    assert_eq!(
        p["expiring"],
        json!([{"expires_at":"2026-01-31T00:00:00.000Z","points":310},{"expires_at":"2026-02-20T00:00:00.000Z","points":100}])
    );
    app.clock.advance(11 * 86_400_000);
    let (s, r) = app.post("/v1/loyalty/expiry-run", &app.admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"pending_matured": 0, "lots_expired": 2, "points_expired": 310}));
    let (_, r) = app.post("/v1/loyalty/expiry-run", &app.admin, json!({})).await;
    assert_eq!(r, json!({"pending_matured": 0, "lots_expired": 0, "points_expired": 0}), "safe to repeat");
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &till).await;
    assert_eq!(p["balance"], 100);
    assert_eq!(p["ledger"][0]["reason"], "expire");
    let (s, _) = app.post("/v1/loyalty/expiry-run", &till, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

on_both_backends!(tiers_upgrade_at_once_and_go_down_only_at_review);

async fn tiers_upgrade_at_once_and_go_down_only_at_review(app: TestApp) {
    catalogue(&app).await;
    let (s, v) = app
        .put(
            "/v1/loyalty/program",
            &app.admin,
            json!({"program":{"tiers":[{"name":"普通","min_spend_fen":0},{"name":"银卡","min_spend_fen":10000,"multiplier_bp":20000}]},
                   "effective_from":"2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = member_with_points(&app, 60, 0).await;
    let till = app.key("store", Some("S001"), None).await;
    let (_, o1) =
        app.post("/v1/orders", &till, json!({"order_ref":"T-1","member_id":m,"lines":[{"sku":"A","qty":8}]})).await;
    assert_eq!(o1["points_earned"], 103, "no tier yet: 103.92 yuan earns 103");
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &till).await;
    assert_eq!((p["tier"].as_str(), p["tier_spend_fen"].as_i64()), (Some("银卡"), Some(10392)), "upgraded at once");
    let (_, view) = app.get(&format!("/v1/members/{m}"), &till).await;
    assert_eq!((view["tier"].as_str(), view["points_balance"].as_i64()), (Some("银卡"), Some(103)), "the 360° view");
    assert_eq!(view["recent_orders"][0]["id"], o1["id"]);
    let (_, o2) =
        app.post("/v1/orders", &till, json!({"order_ref":"T-2","member_id":m,"lines":[{"sku":"A","qty":1}]})).await;
    assert_eq!(o2["points_earned"], 25, "银卡 doubles: 12.99 yuan earns 25");
    // A year on, nothing was bought: the tier stays until the review, which brings it down.
    app.clock.advance(366 * 86_400_000);
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &till).await;
    assert_eq!(p["tier"], "银卡");
    let (s, r) = app.post("/v1/loyalty/tier-review", &app.admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["changed"], 1);
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &till).await;
    assert_eq!(p["tier"], "普通");
    let (_, r) = app.post("/v1/loyalty/tier-review", &app.admin, json!({})).await;
    assert_eq!(r["changed"], 0, "safe to repeat");
}

on_both_backends!(unpaid_online_orders_hold_points_and_coupons_until_paid_or_timed_out);

async fn unpaid_online_orders_hold_points_and_coupons_until_paid_or_timed_out(app: TestApp) {
    catalogue(&app).await;
    let m = member_with_points(&app, 70, 1000).await;
    let mini = app.key("channel", None, Some("mini_program")).await;
    let pending = |r: &str| json!({"order_ref": r, "member_id": m, "points_to_redeem": 500, "payment": "pending", "lines":[{"sku":"A","qty":2}]});
    let (s, o) = app.post("/v1/orders", &mini, pending("P-1")).await;
    assert_eq!((s, o["status"].as_str()), (StatusCode::CREATED, Some("awaiting_payment")), "{o}");
    assert_eq!(balance(&app, &m).await, 500, "redeemed points are held; nothing earned yet");
    let (s, paid) = app.post(&format!("/v1/orders/{}/pay", o["id"].as_str().unwrap()), &mini, json!({})).await;
    assert_eq!((s, paid["status"].as_str()), (StatusCode::OK, Some("placed")));
    assert_eq!(balance(&app, &m).await, 500 + 20, "earned on payment");
    let (s, _) = app.post(&format!("/v1/orders/{}/pay", o["id"].as_str().unwrap()), &mini, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "paid once");

    let (_, o2) = app.post("/v1/orders", &mini, pending("P-2")).await;
    assert_eq!(balance(&app, &m).await, 20);
    app.clock.advance(29 * 60_000);
    let (_, r) = app.post("/v1/orders/payment-timeouts", &app.admin, json!({})).await;
    assert_eq!(r["cancelled"], json!([]));
    app.clock.advance(2 * 60_000);
    let (s, r) = app.post("/v1/orders/payment-timeouts", &app.admin, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["cancelled"], json!([o2["id"]]));
    assert_eq!(balance(&app, &m).await, 520, "the held points came back");
    let (s, _) = app.post(&format!("/v1/orders/{}/pay", o2["id"].as_str().unwrap()), &mini, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "too late to pay");
    let till = app.key("store", Some("S001"), None).await;
    let (s, p) = app
        .post("/v1/orders", &till, json!({"order_ref":"P-3","payment":"pending","lines":[{"sku":"A","qty":1}]}))
        .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("payment")));
}

on_both_backends!(online_points_stay_pending_for_the_return_window);

async fn online_points_stay_pending_for_the_return_window(app: TestApp) {
    catalogue(&app).await;
    let (s, _) = app
        .put(
            "/v1/loyalty/program",
            &app.admin,
            json!({"program":{"earn":{"pending_days_online":7}}, "effective_from":"2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = member_with_points(&app, 80, 0).await;
    let mini = app.key("channel", None, Some("mini_program")).await;
    let till = app.key("store", Some("S001"), None).await;
    let (_, o) =
        app.post("/v1/orders", &mini, json!({"order_ref":"PD-1","member_id":m,"lines":[{"sku":"A","qty":4}]})).await;
    assert_eq!(o["points_earned"], 51);
    let (_, t) =
        app.post("/v1/orders", &till, json!({"order_ref":"PD-2","member_id":m,"lines":[{"sku":"A","qty":1}]})).await;
    assert_eq!(t["points_earned"], 12, "till sales are usable at once");
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &mini).await;
    assert_eq!(p["balance"], 12);
    assert_eq!(p["pending"][0]["points"], 51);
    assert_eq!(p["pending"][0]["available_at"], "2026-01-08T00:00:00.000Z");
    // A return inside the window takes the points from what is pending: no shortfall.
    let (_, r) = app
        .post(
            &format!("/v1/orders/{}/returns", o["id"].as_str().unwrap()),
            &till,
            json!({"lines":[{"line_id":1,"qty":1}]}),
        )
        .await;
    assert_eq!(
        (r["points_taken"].as_i64(), r["shortfall_points"].as_i64(), r["refund_fen"].as_i64()),
        (Some(12), Some(0), Some(1299))
    );
    app.clock.advance(7 * 86_400_000);
    let (_, r) = app.post("/v1/loyalty/expiry-run", &app.admin, json!({})).await;
    assert_eq!(r["pending_matured"], 1);
    let (_, p) = app.get(&format!("/v1/members/{m}/points"), &mini).await;
    assert_eq!((p["balance"].as_i64(), p["pending"].as_array().map(Vec::len)), (Some(12 + 39), Some(0)));
}
