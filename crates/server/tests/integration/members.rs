//! One ID: registration, lookup, merging, profiles, attributes, consents, QR codes.

use crate::common::{TestApp, phone};
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(
    registration_normalises_and_is_safe_to_repeat,
    identities_of_two_members_conflict_unless_merge_is_asked,
    merge_moves_everything_and_the_absorbed_id_keeps_answering,
    openids_are_scoped_to_their_app,
    attributes_are_declared_once_and_checked,
    consent_changes_are_kept_with_history,
    member_qr_code_resolves_at_the_till_and_expires,
    concurrent_registrations_of_one_phone_make_one_member,
    store_keys_write_only_for_their_store,
);

async fn registration_normalises_and_is_safe_to_repeat(app: TestApp) {
    let (s, first) = app
        .post(
            "/v1/members",
            &app.admin,
            json!({"identities":[{"type":"phone","value":"13800138000"}], "profile":{"name":"王小明","city":"杭州"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["outcome"], "created");
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["identities"][0]["value"], "+8613800138000");

    // Same person, another form of the phone, a new email, a different name: 200, the
    // email attaches, the known name stays, the empty gender fills.
    let (s, again) = app
        .post(
            "/v1/members",
            &app.admin,
            json!({"identities":[{"type":"phone","value":"+86 138 0013 8000"},{"type":"email","value":"Wang.Ming@Example.com"}],
                   "profile":{"name":"王明","gender":"male"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["outcome"], "existing");
    assert_eq!(again["id"], id);
    assert_eq!(again["profile"]["name"], "王小明");
    assert_eq!(again["profile"]["gender"], "male");
    assert_eq!(again["identities"].as_array().unwrap().len(), 2);

    for (kind, value) in [("phone", "8613800138000"), ("phone", "138 0013 8000"), ("email", "WANG.MING@example.COM")] {
        let (s, m) = app.lookup(&app.admin, kind, value).await;
        assert_eq!(s, StatusCode::OK, "{kind} {value}: {m}");
        assert_eq!(m["id"], id);
    }
    let (s, m) = app.get("/v1/members/lookup?type=phone&value=13800138000", &app.admin).await;
    assert_eq!((s, m["id"].as_str()), (StatusCode::OK, Some(id)));
    let (s, p) = app.lookup(&app.admin, "phone", "13900000000").await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (s, p) = app.lookup(&app.admin, "phone", "12345").await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")));
}

async fn identities_of_two_members_conflict_unless_merge_is_asked(app: TestApp) {
    let a = app.register(json!({"identities":[{"type":"phone","value":phone(1)}], "profile":{"name":"李娜"}})).await;
    app.clock.advance(1000);
    let b = app
        .register(json!({"identities":[{"type":"member_card","value":"VIP-0001"}], "profile":{"city":"上海"}}))
        .await;
    let both = json!({"identities":[{"type":"phone","value":phone(1)},{"type":"member_card","value":"vip 0001"}]});
    let (s, p) = app.post("/v1/members", &app.admin, both.clone()).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("identity_conflict")), "{p}");

    // A store key may not merge.
    let till = app.key("store", Some("S001"), None).await;
    let mut merge_body = both.clone();
    merge_body["on_conflict"] = json!("merge");
    let (s, p) = app.post("/v1/members", &till, merge_body.clone()).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

    let mini = app.key("channel", None, Some("mini_program")).await;
    let (s, m) = app.post("/v1/members", &mini, merge_body).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["outcome"], "merged");
    assert_eq!(m["id"], a.as_str(), "the oldest member survives");
    assert_eq!(m["absorbed"], json!([b]));
    let (s, m) = app.get(&format!("/v1/members/{b}"), &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (m["id"].as_str(), m["merged_into"].as_str(), m["requested_id"].as_str()),
        (Some(a.as_str()), Some(a.as_str()), Some(b.as_str()))
    );
    assert_eq!(m["profile"]["name"], "李娜");
    assert_eq!(m["profile"]["city"], "上海", "the gap is filled from the absorbed member");
}

async fn merge_moves_everything_and_the_absorbed_id_keeps_answering(app: TestApp) {
    let a = app
        .register(json!({"identities":[{"type":"phone","value":phone(2)}], "profile":{"name":"张伟","city":"北京"},
            "consents":[{"purpose":"marketing","channel":"sms","granted":true}]}))
        .await;
    app.clock.advance(1000);
    let b = app
        .register(json!({"identities":[{"type":"wechat_unionid","value":"uABC"},{"type":"email","value":"zw@example.com"}],
            "profile":{"name":"张大伟","city":"上海","birthday":"1990-05-17"},
            "consents":[{"purpose":"marketing","channel":"sms","granted":false},{"purpose":"profiling","channel":"app_push","granted":true}]}))
        .await;
    let (s, m) = app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["identities_moved"], 2);
    assert_eq!(m["absorbed"], b.as_str());
    assert_eq!(m["profile"]["name"], "张伟", "the survivor's value wins");
    assert_eq!(m["profile"]["city"], "北京");
    assert_eq!(m["profile"]["birthday"], "1990-05-17", "gaps are filled");
    assert_eq!(m["merged_from"], json!([b]));
    let kinds: Vec<_> = m["identities"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // The absorbed member's later decision (sms withdrawn) is the most recent: it wins.
    let sms = m["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "marketing" && c["channel"] == "sms")
        .unwrap();
    assert_eq!(sms["granted"], false);
    assert_eq!(m["consents"].as_array().unwrap().len(), 2);

    for (kind, value) in [("wechat_unionid", "uABC"), ("email", "zw@example.com"), ("phone", phone(2).as_str())] {
        let (_, found) = app.lookup(&app.admin, kind, value).await;
        assert_eq!(found["id"], a.as_str(), "{kind} resolves to the survivor");
    }
    // Consent history moved with the member.
    let (_, c) = app.get(&format!("/v1/members/{b}/consents"), &app.admin).await;
    assert_eq!(c["id"], a.as_str());
    assert_eq!(c["history"].as_array().unwrap().len(), 3);

    let (s, p) = app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "merging again: already one member");
    let (s, p) = app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": "m_nobody"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // Chains stay one hop: c absorbs a, so b (absorbed by a) now answers with c.
    let c = app.register(json!({"identities":[{"type":"device_id","value":"dev-1"}]})).await;
    let (s, _) = app.post("/v1/members/merge", &app.admin, json!({"into": c, "from": a})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, m) = app.get(&format!("/v1/members/{b}"), &app.admin).await;
    assert_eq!(m["id"], c.as_str());
    assert_eq!(m["identities"].as_array().unwrap().len(), 4);

    let analyst = app.key("analyst", None, None).await;
    let (s, _) = app.post("/v1/members/merge", &analyst, json!({"into": c, "from": a})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn openids_are_scoped_to_their_app(app: TestApp) {
    let x = app.register(json!({"identities":[{"type":"wechat_openid","value":"o123","app_id":"wxA"}]})).await;
    let y = app.register(json!({"identities":[{"type":"wechat_openid","value":"o123","app_id":"wxB"}]})).await;
    assert_ne!(x, y);
    let (_, m) =
        app.post("/v1/members/lookup", &app.admin, json!({"type":"wechat_openid","value":"o123","app_id":"wxB"})).await;
    assert_eq!(m["id"], y.as_str());
    let (s, p) =
        app.post("/v1/members", &app.admin, json!({"identities":[{"type":"wechat_openid","value":"o9"}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "identities[0].app_id");
}

async fn attributes_are_declared_once_and_checked(app: TestApp) {
    let marketer = app.key("marketer", None, None).await;
    let (s, _) = app.put("/v1/attributes/children", &marketer, json!({"type":"number"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.put("/v1/attributes/children", &marketer, json!({"type":"number"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, p) = app.put("/v1/attributes/children", &marketer, json!({"type":"string"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    let (s, _) = app.put("/v1/attributes/vip_since", &app.admin, json!({"type":"date"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p) = app.put("/v1/attributes/Bad-Name", &app.admin, json!({"type":"date"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (_, list) = app.get("/v1/attributes", &marketer).await;
    assert_eq!(list["attributes"], json!([{"name":"children","type":"number"},{"name":"vip_since","type":"date"}]));

    let (s, p) = app
        .post(
            "/v1/members",
            &app.admin,
            json!({"identities":[{"type":"external_id","value":"C1"}], "attributes":{"pets":2}}),
        )
        .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_attribute")));
    let id =
        app.register(json!({"identities":[{"type":"external_id","value":"C1"}], "attributes":{"children":2}})).await;
    let (s, p) =
        app.patch(&format!("/v1/members/{id}"), &app.admin, json!({"attributes":{"vip_since":"not a date"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "attributes.vip_since");
    let (s, m) = app
        .patch(
            &format!("/v1/members/{id}"),
            &app.admin,
            json!({"attributes":{"vip_since":"2020-01-31","children":null},"profile":{"city":"成都"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["attributes"], json!({"vip_since":"2020-01-31"}));
    assert_eq!(m["profile"]["city"], "成都");
}

async fn consent_changes_are_kept_with_history(app: TestApp) {
    let till = app.key("store", Some("S007"), None).await;
    let (s, m) = app
        .post(
            "/v1/members",
            &till,
            json!({"identities":[{"type":"phone","value":phone(3)}],
            "consents":[{"purpose":"marketing","channel":"sms","granted":true}], "source":{"method":"paper_form"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["consents"][0]["source"], json!({"channel":"pos","store_id":"S007"}));
    assert_eq!(m["consents"][0]["method"], "paper_form");

    app.clock.advance(60_000);
    let mini = app.key("channel", None, Some("mini_program")).await;
    let (s, c) = app
        .put(
            &format!("/v1/members/{id}/consents"),
            &mini,
            json!({"changes":[{"purpose":"marketing","channel":"sms","granted":false},
            {"purpose":"personalisation","channel":"mini_program","granted":true}], "source":{"method":"checkbox"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let current = c["consents"].as_array().unwrap();
    assert_eq!(current.len(), 2);
    let sms = current.iter().find(|x| x["channel"] == "sms").unwrap();
    assert_eq!(sms["granted"], false, "withdrawal is immediate");
    assert_eq!(sms["source"]["channel"], "mini_program");
    assert_eq!(sms["decided_at"], "2026-01-01T00:01:00.000Z");
    assert_eq!(c["history"].as_array().unwrap().len(), 3);
    assert_eq!(c["history"][0]["granted"], true);

    let (s, p) = app
        .put(
            &format!("/v1/members/{id}/consents"),
            &mini,
            json!({"changes":[{"purpose":"spam","channel":"fax","granted":true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["changes[0].purpose", "changes[0].channel"]);
    let (s, _) = app
        .put(
            "/v1/members/m_nobody/consents",
            &mini,
            json!({"changes":[{"purpose":"marketing","channel":"sms","granted":true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn member_qr_code_resolves_at_the_till_and_expires(app: TestApp) {
    let id = app.register(json!({"identities":[{"type":"phone","value":phone(4)}]})).await;
    let mini = app.key("channel", None, Some("mini_program")).await;
    let till = app.key("store", Some("S001"), None).await;
    let (s, q) = app.post(&format!("/v1/members/{id}/qr"), &mini, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    let token = q["token"].as_str().unwrap().to_string();
    let (s, m) = app.lookup(&till, "qr_token", &token).await;
    assert_eq!((s, m["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    let (s, _) = app.post(&format!("/v1/members/{id}/qr"), &till, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "tills scan codes, they do not issue them");
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (s, p) = app.lookup(&till, "qr_token", &forged).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_qr_token")));
    app.clock.advance(61_000);
    let (s, p) = app.lookup(&till, "qr_token", &token).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_qr_token")));
}

async fn concurrent_registrations_of_one_phone_make_one_member(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/members",
                &app.admin,
                json!({"identities":[{"type":"phone","value":phone(5)},{"type":"device_id","value":format!("d{i}")}]}),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (s, m) = t.await.unwrap();
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {m}");
        created += (s == StatusCode::CREATED) as usize;
        ids.insert(m["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one member: {ids:?}");
    assert_eq!(created, 1);
    let (_, m) = app.lookup(&app.admin, "phone", &phone(5)).await;
    assert_eq!(m["identities"].as_array().unwrap().len(), 17, "every device attached once");
}

async fn store_keys_write_only_for_their_store(app: TestApp) {
    let till = app.key("store", Some("S001"), None).await;
    let (s, p) = app
        .post(
            "/v1/members",
            &till,
            json!({"identities":[{"type":"phone","value":phone(6)}], "source":{"store_id":"S002"}}),
        )
        .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, m) = app.post("/v1/members", &till, json!({"identities":[{"type":"phone","value":phone(6)}]})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(m["source"], json!({"channel":"pos","store_id":"S001"}));
    let app_key = app.key("channel", None, Some("app")).await;
    let (s, _) = app
        .post(
            "/v1/members",
            &app_key,
            json!({"identities":[{"type":"phone","value":phone(7)}], "source":{"channel":"web"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
