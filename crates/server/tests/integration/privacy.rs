//! Personal data: masking by role, the audit log, erasure, export, and nothing readable at rest.

use crate::common::{TestApp, phone};
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(
    personal_data_is_masked_for_roles_not_entitled,
    unmasked_reads_and_admin_actions_are_audited,
    erasure_removes_the_person_and_keeps_the_tombstone,
    export_gives_the_member_their_own_data,
);

async fn personal_data_is_masked_for_roles_not_entitled(app: TestApp) {
    let id = app
        .register(json!({"identities":[{"type":"phone","value":"13800138000"},{"type":"email","value":"wang.ming@example.com"},
            {"type":"wechat_unionid","value":"uAbCdEfGhIjK"}], "profile":{"name":"王小明","birthday":"1990-05-17","address":"浙江省杭州市西湖区文三路1号","city":"杭州"}}))
        .await;
    let (_, full) = app.get(&format!("/v1/members/{id}"), &app.admin).await;
    assert_eq!(full["masked"], false);
    assert_eq!(full["profile"]["name"], "王小明");
    for (role, store, channel) in [("analyst", None, None), ("store", Some("S1"), None), ("channel", None, Some("app"))]
    {
        let key = app.key(role, store, channel).await;
        let (s, m) = app.get(&format!("/v1/members/{id}"), &key).await;
        assert_eq!(s, StatusCode::OK, "{role}");
        assert_eq!(m["masked"], true);
        assert_eq!(m["profile"]["name"], "王*明", "{role}");
        assert_eq!(m["profile"]["birthday"], "****-**-**");
        assert_eq!(m["profile"]["address"], "浙江省杭州市****");
        assert_eq!(m["profile"]["city"], "杭州");
        let mut values: Vec<_> =
            m["identities"].as_array().unwrap().iter().map(|i| i["value"].as_str().unwrap()).collect();
        values.sort();
        assert_eq!(values, ["138****8000", "uAb****IjK", "w***@example.com"], "{role}");
        let text = m.to_string();
        assert!(!text.contains("13800138000") && !text.contains("小明"), "{role}: {text}");
    }
    let tracker = app.key("tracker", None, Some("web")).await;
    let (s, p) = app.get(&format!("/v1/members/{id}"), &tracker).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
}

async fn unmasked_reads_and_admin_actions_are_audited(app: TestApp) {
    let id = app.register(json!({"identities":[{"type":"phone","value":phone(10)}], "profile":{"name":"周杰"}})).await;
    let marketer = app.key("marketer", None, None).await;
    let analyst = app.key("analyst", None, None).await;
    app.get(&format!("/v1/members/{id}"), &marketer).await;
    app.get(&format!("/v1/members/{id}"), &analyst).await;
    let (s, page) = app.get(&format!("/v1/audit?target={id}"), &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let actions: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["role"].as_str().unwrap(), e["action"].as_str().unwrap())).collect();
    // Newest first: the marketer's unmasked read, then the admin's registration and the read of its answer.
    assert!(actions.contains(&("marketer", "member.read")), "{actions:?}");
    assert!(actions.contains(&("admin", "member.register")), "{actions:?}");
    assert!(!actions.iter().any(|(r, _)| *r == "analyst"), "masked reads are not personal-data reads: {actions:?}");
    assert!(!page.to_string().contains(&phone(10)), "the audit log holds no personal data");
    let (s, _) = app.get("/v1/audit", &marketer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = app.get("/v1/audit?limit=0", &app.admin).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));
    let (_, one) = app.get("/v1/audit?limit=1", &app.admin).await;
    let before = one["next_before"].as_i64().unwrap();
    let (_, next) = app.get(&format!("/v1/audit?limit=1&before={before}"), &app.admin).await;
    assert!(next["entries"][0]["id"].as_i64().unwrap() < before);
}

async fn erasure_removes_the_person_and_keeps_the_tombstone(app: TestApp) {
    let a = app.register(json!({"identities":[{"type":"phone","value":phone(11)}], "profile":{"name":"吴敏"}})).await;
    let b = app.register(json!({"identities":[{"type":"member_card","value":"VIP777"}]})).await;
    app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    let channel = app.key("channel", None, Some("app")).await;
    let (s, _) = app.delete(&format!("/v1/members/{a}"), &channel).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admin erases");
    let (s, e) = app.delete(&format!("/v1/members/{b}"), &app.admin).await;
    assert_eq!(s, StatusCode::OK, "erasing through an absorbed id erases the person");
    assert_eq!(e, json!({"id": a, "erased": true}));
    for id in [&a, &b] {
        let (s, p) = app.get(&format!("/v1/members/{id}"), &app.admin).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::GONE, Some("member_erased")));
        let (s, _) = app.get(&format!("/v1/members/{id}/export"), &app.admin).await;
        assert_eq!(s, StatusCode::GONE);
    }
    let (s, _) = app.lookup(&app.admin, "phone", &phone(11)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.lookup(&app.admin, "member_card", "VIP777").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, again) =
        app.post("/v1/members", &app.admin, json!({"identities":[{"type":"phone","value":phone(11)}]})).await;
    assert_eq!(s, StatusCode::CREATED, "the phone is free again: a new member");
    assert_ne!(again["id"], a.as_str());
    let (_, audit) = app.get(&format!("/v1/audit?target={a}"), &app.admin).await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "member.erase"));
}

async fn export_gives_the_member_their_own_data(app: TestApp) {
    let a = app
        .register(json!({"identities":[{"type":"phone","value":phone(12)}], "profile":{"name":"郭涛"},
            "consents":[{"purpose":"marketing","channel":"wecom","granted":true}]}))
        .await;
    let b = app.register(json!({"identities":[{"type":"alipay_uid","value":"2088000000000001"}]})).await;
    app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    let channel = app.key("channel", None, Some("app")).await;
    let (s, e) = app.get(&format!("/v1/members/{a}/export"), &channel).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["member"]["masked"], false, "the member's own copy is complete");
    assert_eq!(e["member"]["profile"]["name"], "郭涛");
    assert_eq!(e["member"]["identities"].as_array().unwrap().len(), 2);
    assert_eq!(e["consent_history"].as_array().unwrap().len(), 1);
    assert_eq!(e["merges"][0]["from_id"], b.as_str());
    let (_, audit) = app.get(&format!("/v1/audit?target={a}"), &app.admin).await;
    assert!(
        audit["entries"].as_array().unwrap().iter().any(|x| x["action"] == "member.export" && x["role"] == "channel")
    );
    let analyst = app.key("analyst", None, None).await;
    let (s, _) = app.get(&format!("/v1/members/{a}/export"), &analyst).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Every file of the data folder, WAL included, is scanned for the personal data written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_is_readable_in_the_data_folder() {
    let app = TestApp::sqlite().await;
    let mut secrets: Vec<String> = Vec::new();
    for i in 0..40u32 {
        let p = format!("1391234{:04}", i);
        let name = format!("欧阳{}", ["娜娜", "晓峰", "子涵", "雨桐"][i as usize % 4]);
        let email = format!("secret.person{i}@example.com");
        let body = json!({"identities":[{"type":"phone","value":p},{"type":"email","value":email},{"type":"wechat_unionid","value":format!("uSecretUnion{i:04}")}],
            "profile":{"name":name,"birthday":"1988-08-08","address":format!("上海市静安区秘密路{i}号")}});
        // With an idempotency key, so that stored responses are covered too.
        let key = format!("reg-{i}");
        let (s, _) = app
            .call(reqwest::Method::POST, "/v1/members", &app.admin, Some(body), &[("Idempotency-Key", key.as_str())])
            .await;
        assert_eq!(s, StatusCode::CREATED);
        secrets.extend([p.clone(), format!("+86{p}"), email, format!("uSecretUnion{i:04}"), format!("秘密路{i}号")]);
    }
    secrets.push("欧阳".into());
    secrets.push("1988-08-08".into());
    let (_, m) = app.lookup(&app.admin, "phone", "13912340001").await;
    let a = m["id"].as_str().unwrap().to_string();
    let (_, m) = app.lookup(&app.admin, "phone", "13912340002").await;
    let b = m["id"].as_str().unwrap().to_string();
    app.post("/v1/members/merge", &app.admin, json!({"into": a, "from": b})).await;
    app.delete(&format!("/v1/members/{a}"), &app.admin).await;

    let dir = app.dir.as_ref().unwrap().path().to_path_buf();
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for s in &secrets {
            assert!(!contains(&bytes, s.as_bytes()), "{} holds `{s}` in plaintext", path.display());
        }
    }
    assert!(scanned > 100_000, "the database and its WAL were scanned ({scanned} bytes)");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
