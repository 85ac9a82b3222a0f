//! Store tests on SQLite and, when `RONGHE_TEST_DATABASE_URL` is set, on PostgreSQL:
//! random sequences of registrations and merges checked against a simple model (no identity
//! is ever lost, duplicated or owned by two members), and the master-key fingerprint guard.

use proptest::prelude::*;
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_store::members::{self, OnConflict, Registration};
use ronghe_store::{Error, Location, Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};

const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

fn pool_identity(i: usize) -> Identity {
    match i % 3 {
        0 => Identity::parse(IdentityKind::Phone, &format!("1391000{:04}", i), None).unwrap(),
        1 => Identity::parse(IdentityKind::MemberCard, &format!("VIP{i}"), None).unwrap(),
        _ => Identity::parse(IdentityKind::WechatOpenid, &format!("o{i}"), Some("wx1")).unwrap(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Register { ids: Vec<usize>, merge: bool },
    Merge { a: usize, b: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::collection::vec(0usize..12, 1..4), any::<bool>()).prop_map(|(ids, merge)| Op::Register { ids, merge }),
        1 => (0usize..12, 0usize..12).prop_map(|(a, b)| Op::Merge { a, b }),
    ]
}

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

fn open(backend: &Backend, key: &str, schema: Option<&str>) -> Result<Store, Error> {
    let mut opts = match backend {
        Backend::Sqlite(dir) => StoreOptions::new(Location::Sqlite(dir.path().to_path_buf())),
        Backend::Postgres(url) => StoreOptions::new(Location::Postgres(url.clone())),
    };
    opts.master_key = Some(key.into());
    opts.pg_schema = schema.map(str::to_string);
    opts.pool_size = 2;
    Store::open(&opts)
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite(tempfile::tempdir().unwrap())];
    if let Ok(url) = std::env::var("RONGHE_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        v.push(Backend::Postgres(url));
    }
    v
}

fn fresh_schema() -> String {
    format!("p_{}", members::new_member_id(0).trim_start_matches("m_"))
}

/// Model: identity → group number; identities in one group belong to one member.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for backend in backends() {
        let schema = fresh_schema();
        let store = open(&backend, KEY_A, Some(&schema)).unwrap();
        let mut group: BTreeMap<usize, usize> = BTreeMap::new();
        let mut next_group = 0;
        let mut now = 1_000;
        for op in ops {
            now += 1;
            match op.clone() {
                Op::Register { ids, merge } => {
                    let reg = Registration {
                        identities: ids.iter().map(|i| (pool_identity(*i), true)).collect(),
                        on_conflict: if merge { OnConflict::Merge } else { OnConflict::Reject },
                        ..Default::default()
                    };
                    let groups: BTreeSet<usize> = ids.iter().filter_map(|i| group.get(i).copied()).collect();
                    let r = rt.block_on(store.write(move |tx, kr| members::register(tx, kr, &reg, "test", now)));
                    if groups.len() > 1 && !merge {
                        prop_assert!(
                            matches!(r, Err(Error::Domain(ref e)) if e.code == ronghe_domain::Code::IdentityConflict),
                            "{r:?}"
                        );
                        continue;
                    }
                    r.unwrap();
                    let target = groups.iter().next().copied().unwrap_or_else(|| {
                        next_group += 1;
                        next_group
                    });
                    for g in group.values_mut() {
                        if groups.contains(g) {
                            *g = target;
                        }
                    }
                    for i in ids {
                        group.insert(i, target);
                    }
                }
                Op::Merge { a, b } => {
                    let (Some(ga), Some(gb)) = (group.get(&a).copied(), group.get(&b).copied()) else {
                        continue;
                    };
                    let (ia, ib) = (pool_identity(a), pool_identity(b));
                    let r = rt.block_on(store.write(move |tx, kr| {
                        let into = members::owner(tx, kr, &ia)?.unwrap();
                        let from = members::owner(tx, kr, &ib)?.unwrap();
                        members::merge_members(tx, kr, &into, &from, "test", now)
                    }));
                    if ga == gb {
                        prop_assert!(r.is_err(), "merging a member with itself is refused");
                        continue;
                    }
                    r.unwrap();
                    for g in group.values_mut() {
                        if *g == gb {
                            *g = ga;
                        }
                    }
                }
            }
            // Invariants: every registered identity resolves to exactly one active member,
            // identities share a member exactly when the model says so, and none is stored twice.
            let known: Vec<(usize, usize)> = group.iter().map(|(i, g)| (*i, *g)).collect();
            let owners = store
                .read_blocking(|tx, kr| {
                    let mut out = Vec::new();
                    for (i, _) in &known {
                        let m = members::owner(tx, kr, &pool_identity(*i))?;
                        let m = m.map(|m| members::resolve(tx, &m)).transpose()?;
                        out.push(m);
                    }
                    let rows = tx.query_one("SELECT count(*) FROM identities", &[])?.unwrap().i64(0)?;
                    Ok((out, rows))
                })
                .unwrap();
            prop_assert_eq!(owners.1 as usize, known.len(), "no identity duplicated or lost");
            for (x, (ix, gx)) in known.iter().enumerate() {
                prop_assert!(owners.0[x].is_some(), "identity {ix} lost");
                for (y, (_, gy)) in known.iter().enumerate() {
                    prop_assert_eq!(owners.0[x] == owners.0[y], gx == gy);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn registrations_and_merges_never_lose_or_duplicate_an_identity(ops in proptest::collection::vec(op(), 1..25)) {
        run(&ops)?;
    }
}

#[test]
fn a_node_with_another_master_key_refuses_to_start() {
    for backend in backends() {
        let schema = fresh_schema();
        drop(open(&backend, KEY_A, Some(&schema)).unwrap());
        let err = open(&backend, KEY_B, Some(&schema)).unwrap_err();
        assert!(err.to_string().contains("another master key"), "{err}");
        open(&backend, KEY_A, Some(&schema)).unwrap();
    }
}

#[test]
fn postgres_requires_a_master_key() {
    let opts = StoreOptions::new(Location::Postgres("postgres://nobody@127.0.0.1:1/none".into()));
    let err = Store::open(&opts).unwrap_err();
    assert!(err.to_string().contains("RONGHE_MASTER_KEY is required"), "{err}");
}

#[test]
fn sqlite_creates_a_private_key_file_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(Location::Sqlite(dir.path().to_path_buf()))).unwrap();
    assert!(dir.path().join("master.key").exists());
    let mode = store.read_blocking(|tx, _| Ok(tx.query_one("PRAGMA journal_mode", &[])?.unwrap().string(0)?)).unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // Reopening reads the same key file: the fingerprint matches.
    Store::open(&StoreOptions::new(Location::Sqlite(dir.path().to_path_buf()))).unwrap();
}

#[test]
fn idempotency_claims_replay_conflict_and_expire() {
    use ronghe_store::idempotency::{self, Begin, STALE_IN_FLIGHT_MS};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for backend in backends() {
        let schema = fresh_schema();
        let store = open(&backend, KEY_A, Some(&schema)).unwrap();
        let begin = |scope: &'static [u8], body: &'static [u8], now: i64| {
            rt.block_on(store.write(move |tx, kr| idempotency::begin(tx, kr, scope, body, now))).unwrap()
        };
        assert_eq!(begin(b"s1", b"h1", 0), Begin::Fresh);
        assert_eq!(begin(b"s1", b"h1", 10), Begin::InFlight, "a replay while the first runs");
        assert_eq!(begin(b"s1", b"h2", 10), Begin::DifferentBody);
        rt.block_on(store.write(|tx, kr| idempotency::finish(tx, kr, b"s1", 201, b"{\"id\":\"m_1\"}", Some("m_1"))))
            .unwrap();
        assert_eq!(begin(b"s1", b"h1", 20), Begin::Replay { status: 201, body: b"{\"id\":\"m_1\"}".to_vec() });
        // The stored response is sealed: the plaintext is not in the table.
        let raw = store
            .read_blocking(|tx, _| Ok(tx.query_one("SELECT response FROM idempotency", &[])?.unwrap().blob(0)?))
            .unwrap();
        assert!(!raw.windows(3).any(|w| w == b"m_1"));
        // A claim whose request died with its node is taken over after a while.
        assert_eq!(begin(b"s2", b"h", 0), Begin::Fresh);
        assert_eq!(begin(b"s2", b"h", STALE_IN_FLIGHT_MS + 1), Begin::Fresh);
        // Aborted claims run again; purge drops old ones.
        rt.block_on(store.write(|tx, _| idempotency::abort(tx, b"s2"))).unwrap();
        assert_eq!(begin(b"s2", b"h", STALE_IN_FLIGHT_MS + 2), Begin::Fresh);
        let purged = rt.block_on(store.write(|tx, _| idempotency::purge(tx, 1_000))).unwrap();
        assert_eq!(purged, 1, "s1 (created at 0) is past retention; s2 was re-claimed later");
    }
}

mod ledger {
    //! Random sequences of orders, cancellations, adjustments and merges: the balance always
    //! equals the sum of the ledger, never goes negative, and matches a simple model.

    use super::*;
    use ronghe_store::orders::{self, LineIn, NewOrder};
    use ronghe_store::{catalogue, points};

    #[derive(Debug, Clone)]
    pub enum Cmd {
        Order {
            member: usize,
            qty: i64,
            redeem: i64,
            online: bool,
            coupon: Option<usize>,
        },
        Cancel {
            order: usize,
        },
        Adjust {
            member: usize,
            points: i64,
        },
        Merge {
            into: usize,
            from: usize,
        },
        Return {
            order: usize,
            qty: i64,
        },
        /// Move time on by `days` and run the expiry (lots live 3 days here).
        Expire {
            days: i64,
        },
    }

    pub fn cmd() -> impl Strategy<Value = Cmd> {
        prop_oneof![
            4 => (0usize..3, 1i64..5, 0i64..3000, any::<bool>(), proptest::option::of(0usize..2))
                .prop_map(|(member, qty, redeem, online, coupon)| Cmd::Order { member, qty, redeem, online, coupon }),
            2 => (0usize..8).prop_map(|order| Cmd::Cancel { order }),
            2 => (0usize..3, -2000i64..3000).prop_map(|(member, points)| Cmd::Adjust { member, points }),
            1 => (0usize..3, 0usize..3).prop_map(|(into, from)| Cmd::Merge { into, from }),
            2 => (0usize..8, 1i64..4).prop_map(|(order, qty)| Cmd::Return { order, qty }),
            1 => (0i64..4).prop_map(|days| Cmd::Expire { days }),
        ]
    }

    pub fn run(cmds: &[Cmd]) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for backend in backends() {
            let schema = fresh_schema();
            let store = open(&backend, KEY_A, Some(&schema)).unwrap();
            let item = catalogue::Item {
                sku: "A".into(),
                name: "a".into(),
                category: "food".into(),
                price_fen: 1999,
                channel_prices_fen: Default::default(),
                effective_from: 0,
            };
            rt.block_on(store.write(move |tx, _| catalogue::upsert(tx, std::slice::from_ref(&item), 0))).unwrap();
            let mut program = ronghe_domain::loyalty::Program::default();
            program.expiry = ronghe_domain::loyalty::Expiry::Days { days: 3 };
            rt.block_on(store.write(move |tx, _| ronghe_store::loyalty::set(tx, &program, 0, 0))).unwrap();
            let template: ronghe_domain::coupon::Template = serde_json::from_value(serde_json::json!({
                "name": "t", "benefit": {"type": "amount_off", "threshold_fen": 0, "off_fen": 500},
                "validity": {"from_ms": 0, "to_ms": 1_000_000_000_000_000i64}}))
            .unwrap();
            let codes: Vec<String> = rt
                .block_on(store.write(move |tx, _| {
                    let t = ronghe_store::coupons::create_template(tx, &template, 0)?;
                    (0..2)
                        .map(|_| ronghe_store::coupons::issue(tx, &t, None, 0).map(|c| c.code))
                        .collect::<ronghe_store::Result<Vec<_>>>()
                }))
                .unwrap();
            let mut ids = Vec::new();
            for i in 0..3 {
                let reg = Registration { identities: vec![(pool_identity(i * 3), true)], ..Default::default() };
                ids.push(rt.block_on(store.write(move |tx, kr| members::register(tx, kr, &reg, "t", 1))).unwrap().id);
            }
            // Model: a balance per member group; `group[i]` is the survivor index of member i.
            let mut group: Vec<usize> = (0..3).collect();
            let mut balance = [0i64; 3];
            let mut placed: Vec<(String, usize, i64, i64, bool)> = Vec::new(); // id, member, redeemed, earned, cancellable
            let mut now = 1_000;
            for (n, c) in cmds.iter().enumerate() {
                now += 1;
                match c.clone() {
                    Cmd::Order { member, qty, redeem, online, coupon } => {
                        let g = group[member];
                        let o = NewOrder {
                            order_ref: format!("r{n}"),
                            channel: if online { "web".into() } else { "pos".into() },
                            store_id: Some("S1".into()),
                            member_id: Some(ids[member].clone()),
                            associate_id: None,
                            lines: vec![LineIn { sku: "A".into(), qty, unit_price_fen: None, override_reason: None }],
                            points_to_redeem: redeem,
                            coupon_codes: coupon.map(|c| vec![codes[c].clone()]).unwrap_or_default(),
                            placed_at: now,
                            awaiting_payment: false,
                            fulfillment: None,
                        };
                        let r = rt.block_on(store.write(move |tx, _| orders::place(tx, &o, now)));
                        if coupon.is_some() {
                            // Whether the coupon was free is checked against the store below.
                            if let Ok((o, _)) = r {
                                prop_assert_eq!(o.discount_fen, 500);
                                prop_assert_eq!(o.points_earned, (qty * 1999 - 500 - redeem) / 100);
                                balance[g] += o.points_earned - redeem;
                                placed.push((o.id, member, redeem, o.points_earned, online));
                            }
                        } else if redeem > balance[g] || redeem > qty * 1999 / 2 {
                            prop_assert!(r.is_err(), "{c:?} should be refused: balance {}", balance[g]);
                        } else {
                            let (o, _) = r.unwrap();
                            prop_assert_eq!(o.points_earned, (qty * 1999 - redeem) / 100);
                            balance[g] += o.points_earned - redeem;
                            placed.push((o.id, member, redeem, o.points_earned, online));
                        }
                    }
                    Cmd::Cancel { order } => {
                        let Some((id, member, redeemed, earned, online)) = placed.get(order).cloned() else {
                            continue;
                        };
                        let g = group[member];
                        let r = rt.block_on(store.write(move |tx, _| orders::cancel(tx, &id, now)));
                        if online && balance[g] + redeemed - earned >= 0 {
                            r.unwrap();
                            balance[g] += redeemed - earned;
                            placed[order].4 = false;
                        } else {
                            prop_assert!(r.is_err());
                        }
                    }
                    Cmd::Adjust { member, points } => {
                        let g = group[member];
                        let id = ids[member].clone();
                        let r = rt.block_on(store.write(move |tx, _| {
                            let m = members::resolve(tx, &id)?;
                            points::append(tx, &m, points, "adjustment", "adjustment", "t", Some("t"), now)
                        }));
                        if balance[g] + points < 0 {
                            prop_assert!(r.is_err());
                        } else {
                            r.unwrap();
                            balance[g] += points;
                        }
                    }
                    Cmd::Return { order, qty } => {
                        let Some((id, member, ..)) = placed.get(order).cloned() else { continue };
                        let g = group[member];
                        let lines = vec![ronghe_store::returns::ReturnLineIn {
                            line_no: Some(1),
                            sku: None,
                            qty,
                            damaged: false,
                        }];
                        let r = rt.block_on(
                            store.write(move |tx, _| ronghe_store::returns::create(tx, &id, &lines, None, None, now)),
                        );
                        if let Ok(r) = r {
                            prop_assert!(r.refund_fen >= 0 && r.deduction_fen >= 0);
                            prop_assert_eq!(r.points_taken + r.shortfall_points, r.lines[0].points_taken);
                            balance[g] += r.points_given - r.points_taken;
                            // A returned order is no longer cancellable.
                            placed[order].4 = false;
                        }
                    }
                    Cmd::Expire { days } => {
                        now += days * 86_400_000;
                        rt.block_on(store.write(move |tx, _| points::expire(tx, now))).unwrap();
                        // Which lots expire depends on first-in-first-out consumption: take the
                        // balances from the store, the invariants below still hold them to account.
                        for (i, id) in ids.iter().enumerate() {
                            let id = id.clone();
                            balance[group[i]] = store
                                .read_blocking(move |tx, _| {
                                    let m = members::resolve(tx, &id)?;
                                    points::balance(tx, &m)
                                })
                                .unwrap();
                        }
                    }
                    Cmd::Merge { into, from } => {
                        let (gi, gf) = (group[into], group[from]);
                        let (a, b) = (ids[into].clone(), ids[from].clone());
                        let r =
                            rt.block_on(store.write(move |tx, kr| members::merge_members(tx, kr, &a, &b, "t", now)));
                        if gi == gf {
                            prop_assert!(r.is_err());
                        } else {
                            r.unwrap();
                            balance[gi] += balance[gf];
                            balance[gf] = 0;
                            for g in group.iter_mut() {
                                if *g == gf {
                                    *g = gi;
                                }
                            }
                        }
                    }
                }
                for code in &codes {
                    let code = code.clone();
                    let (active, redeemed) = store
                        .read_blocking(move |tx, _| {
                            let active = tx
                                .query_one(
                                    "SELECT count(*) FROM order_coupons oc JOIN orders o ON o.id = oc.order_id
                                     WHERE oc.code = $1 AND o.status IN ('completed', 'placed', 'awaiting_payment')",
                                    ronghe_store::vals![code.as_str()],
                                )?
                                .unwrap()
                                .i64(0)?;
                            let status = ronghe_store::coupons::get(tx, &code)?.unwrap().status;
                            Ok((active, status == "redeemed"))
                        })
                        .unwrap();
                    prop_assert!(active <= 1, "a coupon is held by at most one order");
                    prop_assert_eq!(active == 1, redeemed, "redeemed exactly while an order holds it");
                }
                for (i, id) in ids.iter().enumerate() {
                    let id = id.clone();
                    let (b, sum) = store
                        .read_blocking(move |tx, _| {
                            let m = members::resolve(tx, &id)?;
                            let b = points::balance(tx, &m)?;
                            let sum: i64 = points::ledger(tx, &m, None, 10_000)?.iter().map(|e| e.delta).sum();
                            let lots = tx
                                .query_one(
                                    "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM points_ledger WHERE member_id = $1",
                                    ronghe_store::vals![m.as_str()],
                                )?
                                .unwrap()
                                .i64(0)?;
                            assert_eq!(lots, b, "what is left in the lots is the balance");
                            Ok((b, sum))
                        })
                        .unwrap();
                    prop_assert_eq!(b, sum, "the balance is the sum of the ledger");
                    prop_assert!(b >= 0, "never negative");
                    prop_assert_eq!(b, balance[group[i]], "matches the model");
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn the_points_ledger_stays_consistent_under_random_commands(cmds in proptest::collection::vec(ledger::cmd(), 1..30)) {
        ledger::run(&cmds)?;
    }
}

#[test]
fn legacy_import_is_safe_to_run_twice() {
    use ronghe_store::legacy::{LegacyMember, import_member};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for backend in backends() {
        let schema = fresh_schema();
        let store = open(&backend, KEY_A, Some(&schema)).unwrap();
        let t: ronghe_domain::coupon::Template = serde_json::from_value(serde_json::json!({
            "name": "t", "benefit": {"type": "amount_off", "threshold_fen": 0, "off_fen": 100}, "validity": {"days_after_issue": 30}}))
        .unwrap();
        let tid = rt.block_on(store.write(move |tx, _| ronghe_store::coupons::create_template(tx, &t, 0))).unwrap();
        let m = LegacyMember {
            external_id: "C9".into(),
            phone: Some("13812345678".into()),
            opening_points: 700,
            tier: Some("金卡".into()),
            coupons: vec![(tid.clone(), "OLD-CODE-1".into())],
            ..Default::default()
        };
        for round in 0..2 {
            let m = m.clone();
            let r = rt.block_on(store.write(move |tx, kr| import_member(tx, kr, &m, 1_000))).unwrap();
            assert_eq!(
                (r.created, r.points_credited, r.coupons_added),
                if round == 0 { (true, true, 1) } else { (false, false, 0) }
            );
        }
        let (balance, tier) = store
            .read_blocking(|tx, kr| {
                let owner =
                    members::owner(tx, kr, &Identity::parse(IdentityKind::Phone, "13812345678", None).unwrap())?
                        .unwrap();
                Ok((ronghe_store::points::balance(tx, &owner)?, ronghe_store::tiers::current(tx, &owner)?))
            })
            .unwrap();
        assert_eq!((balance, tier.as_deref()), (700, Some("金卡")));
        let bad = LegacyMember { external_id: "C10".into(), phone: Some("nope".into()), ..Default::default() };
        let e = rt.block_on(store.write(move |tx, kr| import_member(tx, kr, &bad, 1_000))).unwrap_err();
        assert!(matches!(e, Error::Domain(ref d) if d.errors[0].field == "phone.value"), "{e:?}");
    }
}

// ---------- stock: a state machine against a model ----------

/// Random stock operations on two stores and a warehouse, checked after every step against a
/// model of on hand and reserved: stale updates never apply, a reservation succeeds exactly
/// when the location can promise it (so online sales never take more than is available), and
/// `reserved` always equals the sum of open reservations.
#[derive(Debug, Clone)]
enum StockOp {
    Push { loc: usize, sku: usize, on_hand: i64, seq: i64 },
    Pickup { order: usize, loc: usize, sku: usize, qty: i64 },
    Cancel { order: usize },
    HandOver { order: usize },
    TillSale { loc: usize, sku: usize, qty: i64 },
    Return { loc: usize, sku: usize, qty: i64, damaged: bool },
    Transfer { from: usize, to: usize, sku: usize, qty: i64 },
}

const LOCS: [&str; 3] = ["S1", "S2", "W1"];
const SKUS: [&str; 2] = ["A", "B"];
const SAFETY: [i64; 3] = [1, 0, 0];

fn stock_op() -> impl Strategy<Value = StockOp> {
    prop_oneof![
        3 => (0usize..3, 0usize..2, 0i64..8, 0i64..6).prop_map(|(loc, sku, on_hand, seq)| StockOp::Push { loc, sku, on_hand, seq }),
        3 => (0usize..6, 0usize..2, 0usize..2, 1i64..4).prop_map(|(order, loc, sku, qty)| StockOp::Pickup { order, loc, sku, qty }),
        1 => (0usize..6).prop_map(|order| StockOp::Cancel { order }),
        1 => (0usize..6).prop_map(|order| StockOp::HandOver { order }),
        1 => (0usize..2, 0usize..2, 1i64..3).prop_map(|(loc, sku, qty)| StockOp::TillSale { loc, sku, qty }),
        1 => (0usize..3, 0usize..2, 1i64..3, any::<bool>()).prop_map(|(loc, sku, qty, damaged)| StockOp::Return { loc, sku, qty, damaged }),
        1 => (0usize..3, 0usize..3, 0usize..2, 1i64..3).prop_map(|(from, to, sku, qty)| StockOp::Transfer { from, to, sku, qty }),
    ]
}

fn run_stock(ops: &[StockOp]) -> Result<(), TestCaseError> {
    use ronghe_domain::stock::{Change, Fulfillment, Location, LocationKind};
    use ronghe_store::stock;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for backend in backends() {
        let store = open(&backend, KEY_A, Some(&fresh_schema())).unwrap();
        rt.block_on(store.write(|tx, _| {
            for (i, id) in LOCS.iter().enumerate() {
                let kind = if i < 2 { LocationKind::Store } else { LocationKind::RegionalWarehouse };
                let l = Location {
                    id: id.to_string(),
                    name: id.to_string(),
                    kind,
                    lat: 30.0 + i as f64 / 100.0,
                    lng: 120.0,
                    pickup: i < 2,
                    ship_from_store: false,
                    delivery_radius_km: 0.0,
                    safety_stock: SAFETY[i],
                    opening_hours: None,
                };
                stock::put_location(tx, &l, 0)?;
            }
            Ok(())
        }))
        .unwrap();
        // Model: (loc, sku) → (on_hand, reserved); last seq; open reservations per order.
        let mut level: BTreeMap<(usize, usize), (i64, i64)> = BTreeMap::new();
        let mut seqs: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        let mut open_orders: BTreeMap<usize, (usize, usize, i64)> = BTreeMap::new();
        let mut round = 0;
        for (step, op) in ops.iter().enumerate() {
            let now = 1_000 + step as i64;
            match op.clone() {
                StockOp::Push { loc, sku, on_hand, seq } => {
                    let item = stock::Item {
                        location_id: LOCS[loc].into(),
                        sku: SKUS[sku].into(),
                        change: Change::Snapshot(on_hand),
                        seq: Some(seq),
                    };
                    let r =
                        rt.block_on(store.write(move |tx, _| {
                            stock::update(tx, "erp", std::slice::from_ref(&item), "erp_sync", now)
                        }))
                        .unwrap();
                    let fresh = seqs.get(&(loc, sku)).is_none_or(|last| seq > *last);
                    prop_assert_eq!(r[0].status, if fresh { "applied" } else { "stale" });
                    if fresh {
                        seqs.insert((loc, sku), seq);
                        level.entry((loc, sku)).or_default().0 = on_hand;
                    }
                }
                StockOp::Pickup { order, loc, sku, qty } => {
                    if open_orders.contains_key(&order) {
                        continue;
                    }
                    round += 1;
                    let id = format!("o{order}-{round}");
                    let (h, r) = level.get(&(loc, sku)).copied().unwrap_or_default();
                    let can = h - r - SAFETY[loc] >= qty;
                    let wanted: BTreeMap<String, i64> = [(SKUS[sku].to_string(), qty)].into_iter().collect();
                    let f = Fulfillment::Pickup { store_id: LOCS[loc].into() };
                    let id2 = id.clone();
                    let got =
                        rt.block_on(store.write(move |tx, _| stock::route_and_reserve(tx, &id2, &f, &wanted, now)));
                    prop_assert_eq!(
                        got.is_ok(),
                        can,
                        "reserve {} of {} at {} with {:?}",
                        qty,
                        SKUS[sku],
                        LOCS[loc],
                        (h, r)
                    );
                    if can {
                        level.entry((loc, sku)).or_default().1 += qty;
                        open_orders.insert(order, (loc, sku, qty));
                        ORDER_IDS.with(|m| m.borrow_mut().insert(order, id));
                    }
                }
                StockOp::Cancel { order } | StockOp::HandOver { order } => {
                    let Some((loc, sku, qty)) = open_orders.remove(&order) else { continue };
                    let id = ORDER_IDS.with(|m| m.borrow().get(&order).cloned()).unwrap();
                    let hand_over = matches!(op, StockOp::HandOver { .. });
                    rt.block_on(store.write(move |tx, _| {
                        if hand_over { stock::fulfil(tx, &id, now).map(|_| ()) } else { stock::release(tx, &id, now) }
                    }))
                    .unwrap();
                    let e = level.entry((loc, sku)).or_default();
                    e.1 -= qty;
                    if hand_over {
                        e.0 -= qty;
                    }
                }
                StockOp::TillSale { loc, sku, qty } => {
                    rt.block_on(
                        store.write(move |tx, _| stock::sell_at_till(tx, LOCS[loc], SKUS[sku], qty, "till", now)),
                    )
                    .unwrap();
                    level.entry((loc, sku)).or_default().0 -= qty;
                }
                StockOp::Return { loc, sku, qty, damaged } => {
                    rt.block_on(
                        store.write(move |tx, _| stock::restock(tx, LOCS[loc], SKUS[sku], qty, damaged, "ret", now)),
                    )
                    .unwrap();
                    if !damaged {
                        level.entry((loc, sku)).or_default().0 += qty;
                    }
                }
                StockOp::Transfer { from, to, sku, qty } => {
                    round += 1;
                    let id = format!("t{round}");
                    let lines = vec![(SKUS[sku].to_string(), qty)];
                    let shipped = rt.block_on(store.write(move |tx, _| {
                        stock::request_transfer(tx, &id, LOCS[from], LOCS[to], &lines, now)?;
                        stock::ship_transfer(tx, &id, now)?;
                        stock::receive_transfer(tx, &id, now)
                    }));
                    let (h, r) = level.get(&(from, sku)).copied().unwrap_or_default();
                    prop_assert_eq!(shipped.is_ok(), from != to && h - r >= qty, "transfer {} {}→{}", qty, from, to);
                    if shipped.is_ok() {
                        level.entry((from, sku)).or_default().0 -= qty;
                        level.entry((to, sku)).or_default().0 += qty;
                    }
                }
            }
            let mismatches = rt.block_on(store.read(|tx, _| stock::reservation_mismatches(tx))).unwrap();
            prop_assert!(mismatches.is_empty(), "reserved differs from open reservations: {:?}", mismatches);
            let expected: Vec<((usize, usize), (i64, i64))> = level.iter().map(|(k, v)| (*k, *v)).collect();
            for ((loc, sku), want) in expected {
                let sku_name = SKUS[sku];
                let levels = rt.block_on(store.read(move |tx, _| stock::levels(tx, sku_name))).unwrap();
                let got = levels
                    .iter()
                    .find(|(l, _)| l.id == LOCS[loc])
                    .map(|(_, l)| (l.on_hand, l.reserved))
                    .unwrap_or((0, 0));
                prop_assert_eq!(got, want, "{} {}", LOCS[loc], sku_name);
            }
        }
    }
    Ok(())
}

thread_local! {
    static ORDER_IDS: std::cell::RefCell<BTreeMap<usize, String>> = const { std::cell::RefCell::new(BTreeMap::new()) };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn stock_never_oversells_leaks_reservations_or_applies_stale_updates(ops in proptest::collection::vec(stock_op(), 1..30)) {
        run_stock(&ops)?;
    }
}
