//! The `ronghe` binary end to end: first start prints an admin key once, `keys create` and
//! `demo` work on the same data folder, logs (JSON) carry no personal data, and SIGTERM stops
//! the server gracefully.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ronghe");

struct Server {
    child: Child,
    base: String,
    stdout_lines: Vec<String>,
}

fn start(data: &Path, extra_env: &[(&str, &str)], log: &Path) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data"])
        .arg(data)
        .env_remove("RONGHE_ADMIN_KEY")
        .env_remove("RONGHE_DATABASE_URL")
        .env_remove("RONGHE_MASTER_KEY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "server exited early: {lines:?}");
        if let Some(addr) = line.trim().strip_prefix("Ronghe is listening on ") {
            break addr.to_string();
        }
        lines.push(line.trim().to_string());
    };
    // Keep draining stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    Server { child, base, stdout_lines: lines }
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_one_admin_key_logs_no_personal_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut s = start(&data, &[], &log);
    let key_line =
        s.stdout_lines.iter().find(|l| l.starts_with("rh_")).expect("the first admin key is printed").clone();
    let client = reqwest::Client::new();
    let phone = "13987654321";
    let name = "司马相如";
    let r = client
        .post(format!("{}/v1/members", s.base))
        .bearer_auth(&key_line)
        .json(&serde_json::json!({"identities":[{"type":"phone","value":phone},{"type":"email","value":"sima@example.com"}],"profile":{"name":name}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // The convenience GET puts the phone in the query string: it must not reach the log either.
    let r = client
        .get(format!("{}/v1/members/lookup?type=phone&value={phone}", s.base))
        .bearer_auth(&key_line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{}/v1/members/{id}", s.base)).bearer_auth("rh_wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(sigterm(&mut s.child).success(), "graceful shutdown exits 0");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [phone, name, "sima@example.com", &key_line, &id] {
        assert!(!text.contains(secret), "the log holds `{secret}`:\n{text}");
    }
    let requests: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "one JSON line per request:\n{text}");
    assert!(requests.iter().any(|r| r["route"] == "/v1/members/{id}" && r["status"] == 401));
    assert!(text.contains("shutting down"));

    // A second start of the same data prints no key.
    let mut s = start(&data, &[], &log);
    assert!(!s.stdout_lines.iter().any(|l| l.starts_with("rh_")), "{:?}", s.stdout_lines);
    sigterm(&mut s.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_and_demo_work_on_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data")
            .arg(&data)
            .env_remove("RONGHE_DATABASE_URL")
            .env_remove("RONGHE_MASTER_KEY")
            .output()
            .unwrap()
    };
    let out = run(&["demo", "--members", "25", "--seed", "9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["keys", "create", "--role", "store"]);
    assert!(!out.status.success(), "a store key needs --store");
    assert!(String::from_utf8_lossy(&out.stderr).contains("store"));
    let out = run(&["keys", "create", "--role", "store", "--store", "S001", "--name", "till 1"]);
    assert!(out.status.success());
    let till = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(till.starts_with("rh_"));

    let mut s = start(&data, &[("RONGHE_ADMIN_KEY", "rh_e2e_admin_0000000000")], &dir.path().join("log"));
    let demo = ronghe_cli::demo::registrations(25, 9);
    let first = demo[0].member_id.clone().unwrap();
    let r =
        reqwest::Client::new().get(format!("{}/v1/members/{first}", s.base)).bearer_auth(&till).send().await.unwrap();
    assert_eq!(r.status(), 200, "the demo member with the seed's first id exists");
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(m["masked"], true, "a till sees masked data");
    assert!(!m["consents"].as_array().unwrap().is_empty() || !m["identities"].as_array().unwrap().is_empty());
    // The demo's members bought things: some of them have a points ledger.
    let mut entries = 0;
    for r in demo.iter().filter_map(|r| r.member_id.clone()).take(10) {
        let p: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/members/{r}/points", s.base))
            .bearer_auth(&till)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        entries += p["ledger"].as_array().unwrap().len();
    }
    assert!(entries > 0, "demo orders earned points");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/audit", s.base))
        .bearer_auth("rh_e2e_admin_0000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RONGHE_ADMIN_KEY is an admin key");
    sigterm(&mut s.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_members_import_with_balances_tiers_and_coupons_twice_safely() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = "rh_e2e_admin_import_000000";
    let mut s = start(&data, &[("RONGHE_ADMIN_KEY", admin)], &dir.path().join("log"));
    let client = reqwest::Client::new();
    let t: serde_json::Value = client
        .post(format!("{}/v1/coupon-templates", s.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name":"老会员券","benefit":{"type":"amount_off","threshold_fen":0,"off_fen":500},"validity":{"days_after_issue":90}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = t["id"].as_str().unwrap();
    let csv = dir.path().join("legacy.csv");
    std::fs::write(
        &csv,
        format!(
            "external_id,phone,email,name,city,points,tier,coupons\n\
             C001,13811110001,a@example.com,张三,北京,1200,金卡,{tid}:LEGACY-0001\n\
             C002,13811110002,,李四,上海,0,,\n\
             C003,not-a-phone,,王五,,50,,\n\
             C004,,,赵六,杭州,300,银卡,{tid}:LEGACY-0002;{tid}:LEGACY-0003\n"
        ),
    )
    .unwrap();
    let import = || {
        Command::new(BIN)
            .args(["import", "members"])
            .arg(&csv)
            .arg("--data")
            .arg(&data)
            .env_remove("RONGHE_DATABASE_URL")
            .env_remove("RONGHE_MASTER_KEY")
            .output()
            .unwrap()
    };
    let first = import();
    assert_eq!(first.status.code(), Some(2), "a refused row makes the exit code 2");
    let r: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (r["rows"].as_u64(), r["created"].as_u64(), r["points_credited"].as_u64(), r["coupons_added"].as_u64()),
        (Some(4), Some(3), Some(2), Some(3))
    );
    assert_eq!(
        r["errors"],
        serde_json::json!([{"line": 4, "field": "phone.value", "message": "a phone number has only digits, spaces, dashes and a leading +"}])
    );
    let second = import();
    let r: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (r["created"].as_u64(), r["existing"].as_u64(), r["points_credited"].as_u64(), r["coupons_added"].as_u64()),
        (Some(0), Some(3), Some(0), Some(0)),
        "safe to run twice"
    );

    let m: serde_json::Value = client
        .post(format!("{}/v1/members/lookup", s.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"type":"phone","value":"13811110001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = m["id"].as_str().unwrap();
    let p: serde_json::Value = client
        .get(format!("{}/v1/members/{id}/points", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((p["balance"].as_i64(), p["tier"].as_str()), (Some(1200), Some("金卡")));
    let c: serde_json::Value = client
        .get(format!("{}/v1/coupons/legacy-0001", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((c["member_id"].as_str(), c["status"].as_str()), (Some(id), Some("issued")));
    sigterm(&mut s.child);
}

/// Segment SDK compatibility: the official Python SDK (`segment-analytics-python`, installed by
/// `.ci/run` in a venv named by `RONGHE_TEST_PYTHON`) sends every message type to the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_segment_python_sdk_sends_every_message_type() {
    let Some(python) = std::env::var("RONGHE_TEST_PYTHON").ok().filter(|p| !p.is_empty()) else {
        eprintln!("RONGHE_TEST_PYTHON is not set: the Segment SDK compatibility test is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin = "rh_sdk_test_admin_key_0123456789";
    let mut s = start(&dir.path().join("data"), &[("RONGHE_ADMIN_KEY", admin)], &dir.path().join("server.log"));
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/keys", s.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"role": "channel", "channel": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<serde_json::Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/segment_sdk.py");
    let out = Command::new(&python).arg(&script).arg(&s.base).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let text = client
        .get(format!("{}/v1/events/export", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["alias", "group", "identify", "page", "screen", "track", "track"], "{text}");
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(names.contains(&"product_viewed") && names.contains(&"cart_viewed"), "{names:?}");
    // A server-side key's identify joins One ID: the userId and the email trait find the member.
    for (kind, value) in [("external_id", "C-100"), ("email", "sdk@example.cn")] {
        let r = client
            .post(format!("{}/v1/members/lookup", s.base))
            .bearer_auth(admin)
            .json(&serde_json::json!({"type": kind, "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{kind}");
    }
    assert!(sigterm(&mut s.child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_import_twice_changes_nothing_and_feeds_rfm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = "rh_e2e_admin_history_00000";
    let mut s = start(&data, &[("RONGHE_ADMIN_KEY", admin)], &dir.path().join("log"));
    let csv = dir.path().join("history.csv");
    // Two identical rows without order_ref are two orders (their occurrence numbers differ).
    std::fs::write(
        &csv,
        "member_id,ordered_at,amount,quantity,store_id,channel,sku,order_ref\n\
         CN-1,2025-03-01,199.90,1,S001,pos,,\n\
         CN-1,2025-03-01,199.90,1,S001,pos,,\n\
         CN-1,2025-06-01T10:00:00+08:00,50,2,,mini_program,SKU9,WX-1\n\
         CN-2,2025-07-01,12.5,,,,,\n\
         CN-3,yesterday,10,,,,,\n\
         CN-4,2025-07-01,-3,,,,,\n",
    )
    .unwrap();
    let import = || {
        Command::new(BIN)
            .args(["import", "transactions"])
            .arg(&csv)
            .arg("--data")
            .arg(&data)
            .env_remove("RONGHE_DATABASE_URL")
            .env_remove("RONGHE_MASTER_KEY")
            .output()
            .unwrap()
    };
    let first = import();
    assert_eq!(first.status.code(), Some(2), "refused rows make the exit code 2");
    let r: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!((r["rows"].as_u64(), r["orders"].as_u64(), r["new_members"].as_u64()), (Some(6), Some(4), Some(2)));
    let fields: Vec<(u64, &str)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, vec![(6, "ordered_at"), (7, "amount")]);
    let second = import();
    let r: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (r["orders"].as_u64(), r["duplicates"].as_u64(), r["new_members"].as_u64()),
        (Some(0), Some(4), Some(0)),
        "safe to run twice"
    );

    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{}{path}", s.base)).bearer_auth(admin).json(&body).send()
    };
    let rebuilt: serde_json::Value =
        post("/v1/analytics/rebuild", serde_json::json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(rebuilt["members"], 2);
    let rfm: serde_json::Value = client
        .get(format!("{}/v1/analytics/rfm?as_of=2025-07-31", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rfm["scored"], 2, "{rfm}");
    let m: serde_json::Value = post("/v1/members/lookup", serde_json::json!({"type":"external_id","value":"CN-1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = m["id"].as_str().unwrap();
    let v: serde_json::Value = client
        .get(format!("{}/v1/members/{id}", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["dimensions"]["shopper_type"], serde_json::json!(["omnichannel"]), "{v}");
    assert!(sigterm(&mut s.child).success());
}
