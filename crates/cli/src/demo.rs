//! The demo data set: members with Chinese names, cities and identities across channels
//! (phone at the till, WeChat in the mini-program, cards, email), with consents; a catalogue
//! with a mini-program price, a loyalty programme with a Double 11 promotion, and twelve months
//! of orders across channels and stores, some paying with points; three weeks of behaviour
//! events (product views, carts, store visits, zone dwell), a manual and a rule tag and two
//! saved segments; one pool of stock — a central and a regional warehouse and ten stores with
//! coordinates, their stock, pick-up and delivery orders, a transfer and back-in-stock
//! subscriptions. The same seed gives the same data. Later features add their part here.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ronghe_domain::Millis;
use ronghe_domain::consent::{ContactChannel, Purpose};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::{Gender, Profile};
use ronghe_store::members::{self, ConsentChange, Registration, Source};
use ronghe_store::{Result, Store};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗",
    "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "小明", "晓燕", "子涵", "浩然", "欣怡", "宇轩",
];
const CITIES: &[&str] = &["上海", "北京", "杭州", "广州", "深圳", "成都", "南京", "武汉", "苏州", "西安"];
const CHANNELS: &[&str] = &["pos", "pos", "mini_program", "mini_program", "app", "web"];
pub const MINI_APP_ID: &str = "wx_demo_mini";

fn identity(kind: IdentityKind, value: &str, app: Option<&str>) -> (Identity, bool) {
    (Identity::from_stored(kind, value.to_string(), app.map(str::to_string)), true)
}

/// The registrations of the demo data set, in order.
pub fn registrations(n: usize, seed: u64) -> Vec<Registration> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + n / 10);
    for i in 0..n {
        let id = format!("m_{:016x}", rng.r#gen::<u64>());
        let prefix = ["138", "139", "150", "186", "177", "135"][rng.gen_range(0..6)];
        let phone = format!("+86{prefix}{:08}", rng.gen_range(0..100_000_000u32));
        let channel = CHANNELS[rng.gen_range(0..CHANNELS.len())];
        let store_id = (channel == "pos").then(|| format!("S{:03}", rng.gen_range(1..=10)));
        let mut ids = vec![identity(IdentityKind::Phone, &phone, None)];
        match channel {
            "pos" => ids.push(identity(IdentityKind::MemberCard, &format!("VIP{:08}", i + 1), None)),
            "mini_program" => {
                ids.push(identity(
                    IdentityKind::WechatOpenid,
                    &format!("oDemo{:012x}", rng.r#gen::<u64>() >> 16),
                    Some(MINI_APP_ID),
                ));
                ids.push(identity(
                    IdentityKind::WechatUnionid,
                    &format!("uDemo{:012x}", rng.r#gen::<u64>() >> 16),
                    None,
                ));
            }
            "app" => ids.push(identity(IdentityKind::DeviceId, &format!("dev-{:016x}", rng.r#gen::<u64>()), None)),
            _ => ids.push(identity(IdentityKind::Email, &format!("member{}@example.com", i + 1), None)),
        }
        let name = format!("{}{}", SURNAMES[rng.gen_range(0..SURNAMES.len())], GIVEN[rng.gen_range(0..GIVEN.len())]);
        let year = rng.gen_range(1960..2006);
        let profile = Profile {
            name: Some(name),
            gender: Some(if rng.gen_bool(0.55) { Gender::Female } else { Gender::Male }),
            birthday: rng
                .gen_bool(0.8)
                .then(|| format!("{year}-{:02}-{:02}", rng.gen_range(1..=12), rng.gen_range(1..=28))),
            city: Some(CITIES[rng.gen_range(0..CITIES.len())].to_string()),
            address: None,
        };
        let mut consents = Vec::new();
        for purpose in Purpose::ALL {
            for ch in ContactChannel::ALL {
                if rng.gen_bool(0.4) {
                    consents.push(ConsentChange { purpose: *purpose, channel: *ch, granted: rng.gen_bool(0.8) });
                }
            }
        }
        let source = Source { channel: Some(channel.into()), store_id, method: Some("checkbox".into()) };
        out.push(Registration {
            member_id: Some(id),
            identities: ids,
            profile,
            consents,
            source,
            ..Default::default()
        });
        // One in ten later shows up in the mini-program with the same phone: One ID attaches
        // the new WeChat identity to the member the till created.
        if i % 10 == 0 && channel == "pos" {
            out.push(Registration {
                identities: vec![
                    identity(IdentityKind::Phone, &phone, None),
                    identity(
                        IdentityKind::WechatOpenid,
                        &format!("oDemo{:012x}", rng.r#gen::<u64>() >> 16),
                        Some(MINI_APP_ID),
                    ),
                ],
                source: Source {
                    channel: Some("mini_program".into()),
                    store_id: None,
                    method: Some("checkbox".into()),
                },
                ..Default::default()
            });
        }
    }
    out
}

const PRODUCTS: &[(&str, &str, &str, i64)] = &[
    ("MILK-1L", "有机纯牛奶 1L", "dairy", 1299),
    ("YOG-4", "原味酸奶 4杯", "dairy", 1590),
    ("RICE-5KG", "东北大米 5kg", "grocery", 4990),
    ("OIL-5L", "花生油 5L", "grocery", 8990),
    ("WATER-24", "矿泉水 24瓶", "drink", 2880),
    ("TEA-500", "龙井茶 500g", "drink", 19800),
    ("DIAPER-L", "婴儿纸尿裤 L码", "baby", 12900),
    ("FORMULA-3", "婴幼儿配方奶粉 3段", "baby", 26800),
    ("SHAMPOO", "洗发水 750ml", "personal_care", 5990),
    ("TISSUE-10", "抽纸 10包", "household", 2490),
    ("APPLE-2KG", "烟台苹果 2kg", "fresh", 3580),
    ("DUMPLING", "速冻水饺 1kg", "frozen", 2290),
];

const DAY_MS: Millis = 86_400_000;

/// The catalogue and programme of the demo, in force from 400 days ago.
fn catalogue_and_programme(store: &Store, now: Millis) -> impl std::future::Future<Output = Result<Vec<String>>> + '_ {
    let from = now - 400 * DAY_MS;
    let items: Vec<ronghe_store::catalogue::Item> = PRODUCTS
        .iter()
        .map(|(sku, name, cat, price)| ronghe_store::catalogue::Item {
            sku: (*sku).into(),
            name: (*name).into(),
            category: (*cat).into(),
            price_fen: *price,
            // One published channel price: water is cheaper in the mini-program.
            channel_prices_fen: if *sku == "WATER-24" {
                [("mini_program".to_string(), 2680)].into()
            } else {
                Default::default()
            },
            effective_from: from,
        })
        .collect();
    let mut program = ronghe_domain::loyalty::Program::default();
    program.earn.channel_multipliers_bp.insert("mini_program".into(), 15_000);
    program.earn.category_multipliers_bp.insert("baby".into(), 20_000);
    program.earn.promotions.push(ronghe_domain::loyalty::Promotion {
        name: "双11 双倍积分".into(),
        from_ms: now - 30 * DAY_MS,
        to_ms: now - 29 * DAY_MS,
        multiplier_bp: 20_000,
    });
    program.tiers = serde_json::from_value(serde_json::json!([
        {"name": "普通", "min_spend_fen": 0},
        {"name": "银卡", "min_spend_fen": 50_000, "multiplier_bp": 12_000},
        {"name": "金卡", "min_spend_fen": 150_000, "multiplier_bp": 15_000},
        {"name": "钻石", "min_spend_fen": 400_000, "multiplier_bp": 20_000}
    ]))
    .unwrap_or_default();
    // Two coupon templates valid over the demo's year: 满100减20 and 10% off (at most 30 yuan).
    let templates: Vec<ronghe_domain::coupon::Template> = serde_json::from_value(serde_json::json!([
        {"name": "满100减20", "benefit": {"type": "amount_off", "threshold_fen": 10_000, "off_fen": 2_000},
         "validity": {"from_ms": from, "to_ms": now + 30 * DAY_MS}, "per_member_limit": 3},
        {"name": "全场9折券", "benefit": {"type": "percent_off", "percent_bp": 1_000, "cap_fen": 3_000},
         "restrictions": {"channels": ["mini_program", "app", "web"]},
         "validity": {"from_ms": from, "to_ms": now + 30 * DAY_MS}, "budget_fen": 5_000_000}
    ]))
    .unwrap_or_default();
    store.write(move |tx, _| {
        ronghe_store::catalogue::upsert(tx, &items, from)?;
        ronghe_store::loyalty::set(tx, &program, from, from)?;
        templates.iter().map(|t| ronghe_store::coupons::create_template(tx, t, from)).collect()
    })
}

/// Twelve months of orders for the demo members, deterministic by seed.
fn orders_for(
    member_ids: &[(String, String, Option<String>)],
    seed: u64,
    now: Millis,
) -> Vec<ronghe_store::orders::NewOrder> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6f72_6465_7273);
    let mut out = Vec::new();
    for (k, (id, channel, store)) in member_ids.iter().enumerate() {
        for j in 0..rng.gen_range(0..9) {
            let online = rng.gen_bool(0.4);
            // Offline purchases happen at a till; online ones in the member's own channel or another.
            let channel = if !online {
                "pos".to_string()
            } else if channel != "pos" && rng.gen_bool(0.5) {
                channel.clone()
            } else {
                ["mini_program", "app", "web"][rng.gen_range(0..3)].to_string()
            };
            let till = ronghe_store::orders::TILL_CHANNELS.contains(&channel.as_str());
            let store_id =
                if till { store.clone().or_else(|| Some(format!("S{:03}", rng.gen_range(1..=10)))) } else { None };
            let lines = (0..rng.gen_range(1..5))
                .map(|_| ronghe_store::orders::LineIn {
                    sku: PRODUCTS[rng.gen_range(0..PRODUCTS.len())].0.into(),
                    qty: rng.gen_range(1..4),
                    unit_price_fen: None,
                    override_reason: None,
                })
                .collect();
            out.push(ronghe_store::orders::NewOrder {
                order_ref: format!("DEMO-{k}-{j}"),
                channel: if till { "pos".into() } else { channel },
                store_id,
                member_id: Some(id.clone()),
                associate_id: rng.gen_bool(0.2).then(|| format!("E{:03}", rng.gen_range(1..50))),
                lines,
                // Some members pay part with points when they have them (decided when loading).
                points_to_redeem: if rng.gen_bool(0.25) { 1 } else { 0 },
                coupon_codes: Vec::new(),
                placed_at: now - rng.gen_range(1..365) * DAY_MS - rng.gen_range(0..DAY_MS),
                awaiting_payment: false,
                fulfillment: None,
            });
        }
    }
    out.sort_by_key(|o| o.placed_at);
    out
}

/// Write the demo data set through the store's bulk path, in chunks of one transaction each.
/// Returns how many registrations and orders were written.
pub async fn load(store: &Store, n: usize, seed: u64, now: Millis) -> Result<(usize, usize)> {
    let regs = registrations(n, seed);
    let count = regs.len();
    let member_ids: Vec<(String, String, Option<String>)> = regs
        .iter()
        .filter_map(|r| Some((r.member_id.clone()?, r.source.channel.clone()?, r.source.store_id.clone())))
        .collect();
    for chunk in regs.chunks(1000) {
        let chunk = chunk.to_vec();
        store
            .write(move |tx, kr| {
                for r in &chunk {
                    members::register(tx, kr, r, "demo", now)?;
                }
                Ok(())
            })
            .await?;
    }
    let templates = catalogue_and_programme(store, now).await?;
    // Four in ten members got a coupon a year ago; some of them use it in an order.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x636f_7570);
    let mut holders: Vec<(String, String)> = Vec::new();
    for (m, ..) in &member_ids {
        if rng.gen_bool(0.4) {
            holders.push((m.clone(), templates[rng.gen_range(0..templates.len())].clone()));
        }
    }
    let issued_at = now - 365 * DAY_MS;
    let codes: std::collections::HashMap<String, String> = store
        .write(move |tx, _| {
            holders
                .iter()
                .map(|(m, t)| Ok((m.clone(), ronghe_store::coupons::issue(tx, t, Some(m), issued_at)?.code)))
                .collect()
        })
        .await?;
    let mut orders = orders_for(&member_ids, seed, now);
    for o in orders.iter_mut() {
        if let Some(code) = o.member_id.as_ref().and_then(|m| codes.get(m))
            && rng.gen_bool(0.3)
        {
            o.coupon_codes = vec![code.clone()];
        }
    }
    for chunk in orders.chunks(1000) {
        let chunk = chunk.to_vec();
        store
            .write(move |tx, _| {
                for o in &chunk {
                    let mut o = o.clone();
                    // A coupon that does not apply (threshold, channel, already used) stays home.
                    if !o.coupon_codes.is_empty() && ronghe_store::orders::prepare(tx, &o).is_err() {
                        o.coupon_codes.clear();
                    }
                    if o.points_to_redeem > 0 {
                        // Redeem what the balance and the programme allow, in whole hundreds.
                        let member = ronghe_store::members::resolve(tx, o.member_id.as_deref().unwrap_or(""))?;
                        let balance = ronghe_store::points::balance(tx, &member)?;
                        let (_, _, _, priced) = ronghe_store::orders::prepare(
                            tx,
                            &ronghe_store::orders::NewOrder { points_to_redeem: 0, ..o.clone() },
                        )?;
                        let max = ronghe_domain::pricing::max_redeemable(
                            &ronghe_domain::loyalty::Program::default(),
                            priced.subtotal_fen,
                        );
                        o.points_to_redeem = balance.min(max) / 100 * 100;
                    }
                    ronghe_store::orders::place(tx, &o, o.placed_at)?;
                }
                Ok(())
            })
            .await?;
    }
    events_tags_and_segments(store, &member_ids, seed, now).await?;
    stock(store, &member_ids, seed, now).await?;
    Ok((count, orders.len()))
}

/// Three weeks of behaviour: views of products (with their category), carts, and for till
/// members store visits and zone dwell from the in-store Wi-Fi; a manual tag, a rule tag and
/// two saved segments.
async fn events_tags_and_segments(
    store: &Store,
    members: &[(String, String, Option<String>)],
    seed: u64,
    now: Millis,
) -> Result<()> {
    use ronghe_domain::events::{Event, Kind};
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6576_656e);
    let mut rows: Vec<(String, Event)> = Vec::new();
    let mut vip = Vec::new();
    for (m, channel, store_id) in members {
        if rng.gen_bool(0.08) {
            vip.push(m.clone());
        }
        for n in 0..rng.gen_range(0..16) {
            let at = now - rng.gen_range(0..21 * DAY_MS);
            let (sku, _, category, _) = PRODUCTS[rng.gen_range(0..PRODUCTS.len())];
            let offline = channel == "pos" && rng.gen_bool(0.4);
            let (name, properties) = if offline {
                if rng.gen_bool(0.5) {
                    ("store_entry", serde_json::json!({"store_id": store_id}))
                } else {
                    let zone = ["fresh", "baby", "drink", "checkout"][rng.gen_range(0..4)];
                    ("zone_dwell", serde_json::json!({"zone": zone, "seconds": rng.gen_range(20..900)}))
                }
            } else if rng.gen_bool(0.25) {
                ("product_added", serde_json::json!({"sku": sku, "category": category}))
            } else {
                ("product_viewed", serde_json::json!({"sku": sku, "category": category}))
            };
            let ch = if offline { "pos" } else { channel.as_str() };
            rows.push((
                m.clone(),
                Event {
                    message_id: format!("demo-{m}-{n}"),
                    kind: Kind::Track,
                    name: name.into(),
                    user_id: None,
                    anonymous_id: None,
                    previous_id: None,
                    group_id: None,
                    at,
                    channel: Some(ch.into()),
                    store_id: if offline { store_id.clone() } else { None },
                    body: serde_json::json!({"properties": properties, "context": {"channel": ch}}).to_string(),
                    traits: None,
                },
            ));
        }
    }
    for chunk in rows.chunks(2000) {
        let chunk = chunk.to_vec();
        store.write(move |tx, _| ronghe_store::events::insert_known(tx, &chunk, "demo", now)).await?;
    }
    store
        .write(move |tx, _| {
            ronghe_store::tags::apply(tx, "vip", &vip, true, now)?;
            let babies = serde_json::json!({"dim": "favourite_category", "in": ["baby"]});
            ronghe_store::tags::define(tx, "baby_parents", Some(&babies), Some("favourite category is baby"), now)?;
            let hz = serde_json::json!({"all": [{"attr": "city", "op": "eq", "value": "杭州"}, {"rfm": {"r": [4, 5], "m": [4, 5]}}]});
            ronghe_store::segments::create(tx, "seg_demo_hangzhou_value", "杭州高价值会员", &hz, now)?;
            let browsers = serde_json::json!({"all": [{"event": {"name": "product_viewed", "within_days": 7, "min_count": 2}},
                {"not": {"dim": "shopper_type", "in": ["online", "omnichannel"]}}]});
            ronghe_store::segments::create(tx, "seg_demo_browsers", "近7天浏览未线上购买", &browsers, now)?;
            Ok(())
        })
        .await?;
    Ok(())
}

/// The stores of the demo (S001–S010 match the tills of the orders) and two warehouses.
const LOCATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("C001", "上海总仓", "central_warehouse", 31.2304, 121.4737),
    ("R001", "杭州区域仓", "regional_warehouse", 30.3960, 120.2990),
    ("S001", "杭州西湖店", "store", 30.2590, 120.1388),
    ("S002", "杭州滨江店", "store", 30.2084, 120.2126),
    ("S003", "杭州城北店", "store", 30.3101, 120.1551),
    ("S004", "上海静安店", "store", 31.2286, 121.4479),
    ("S005", "上海浦东店", "store", 31.2213, 121.5447),
    ("S006", "北京朝阳店", "store", 39.9219, 116.4431),
    ("S007", "广州天河店", "store", 23.1357, 113.3289),
    ("S008", "深圳南山店", "store", 22.5333, 113.9304),
    ("S009", "成都锦江店", "store", 30.6570, 104.0810),
    ("S010", "南京新街口店", "store", 32.0415, 118.7781),
];

/// Locations with stock, a pick-up and a delivery order, a transfer on its way and members
/// waiting for a sold-out SKU.
async fn stock(store: &Store, members: &[(String, String, Option<String>)], seed: u64, now: Millis) -> Result<()> {
    use ronghe_domain::stock::{Change, Fulfillment, Location, LocationKind};
    use ronghe_store::stock as st;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7374_6f63);
    let mut items = Vec::new();
    for (id, _, kind, _, _) in LOCATIONS {
        for (sku, ..) in PRODUCTS {
            // The formula is sold out everywhere but the central warehouse: members wait for it.
            let on_hand = match (*kind, *sku) {
                (_, "FORMULA-3") if *kind != "central_warehouse" => 0,
                ("store", _) => rng.gen_range(0..30),
                _ => rng.gen_range(200..1000),
            };
            items.push(st::Item {
                location_id: id.to_string(),
                sku: sku.to_string(),
                change: Change::Snapshot(on_hand),
                seq: Some(1),
            });
        }
    }
    let buyers: Vec<String> = members.iter().take(4).map(|(m, ..)| m.clone()).collect();
    store
        .write(move |tx, _| {
            for (id, name, kind, lat, lng) in LOCATIONS {
                let is_store = *kind == "store";
                let l = Location {
                    id: id.to_string(),
                    name: name.to_string(),
                    kind: LocationKind::parse(kind).unwrap_or(LocationKind::Store),
                    lat: *lat,
                    lng: *lng,
                    pickup: is_store,
                    ship_from_store: is_store,
                    delivery_radius_km: if is_store { 3.0 } else { 0.0 },
                    safety_stock: if is_store { 2 } else { 0 },
                    opening_hours: is_store.then(|| "09:00-22:00".to_string()),
                };
                st::put_location(tx, &l, now)?;
            }
            st::update(tx, "demo-erp", &items, "erp_sync", now)?;
            let line = |sku: &str, qty| ronghe_store::orders::LineIn {
                sku: sku.into(),
                qty,
                unit_price_fen: None,
                override_reason: None,
            };
            let online = |r: &str, m: &str, lines, f| ronghe_store::orders::NewOrder {
                order_ref: r.into(),
                channel: "mini_program".into(),
                store_id: None,
                member_id: Some(m.to_string()),
                associate_id: None,
                lines,
                points_to_redeem: 0,
                coupon_codes: Vec::new(),
                placed_at: now,
                awaiting_payment: false,
                fulfillment: Some(f),
            };
            if let [a, b, c, d] = buyers.as_slice() {
                // An order the demo's random stock cannot fill is skipped, leaving no trace.
                let try_place = |tx: &mut dyn ronghe_store::db::Tx, o: ronghe_store::orders::NewOrder| -> Result<()> {
                    tx.exec("SAVEPOINT demo_order", &[])?;
                    match ronghe_store::orders::place(tx, &o, now) {
                        Ok(_) => tx.exec("RELEASE SAVEPOINT demo_order", &[])?,
                        Err(_) => tx
                            .exec("ROLLBACK TO SAVEPOINT demo_order", &[])
                            .and_then(|_| tx.exec("RELEASE SAVEPOINT demo_order", &[]))?,
                    };
                    Ok(())
                };
                let pickup = Fulfillment::Pickup { store_id: "S001".into() };
                try_place(tx, online("DEMO-PICKUP-1", a, vec![line("WATER-24", 1)], pickup))?;
                let home = Fulfillment::Delivery { lat: 30.2741, lng: 120.1551, allow_split: true };
                try_place(tx, online("DEMO-DELIVERY-1", b, vec![line("RICE-5KG", 1), line("OIL-5L", 1)], home))?;
                st::subscribe(tx, c, "FORMULA-3", Some("S001"), now)?;
                st::subscribe(tx, d, "FORMULA-3", None, now)?;
            }
            let lines = vec![("FORMULA-3".to_string(), 12)];
            st::request_transfer(tx, "tr_demo_formula", "C001", "S001", &lines, now)?;
            st::ship_transfer(tx, "tr_demo_formula", now)?;
            Ok(())
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_seed_same_data() {
        let a = super::registrations(30, 7);
        let b = super::registrations(30, 7);
        let ids =
            |v: &Vec<ronghe_store::members::Registration>| v.iter().map(|r| r.member_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&super::registrations(30, 8)));
        for r in &a {
            for (id, _) in &r.identities {
                let parsed = ronghe_domain::identity::Identity::parse(id.kind(), id.value(), id.app_id()).unwrap();
                assert_eq!(&parsed, id, "demo identities are already normalised");
            }
        }
    }
}
