//! The demo data set: members with Chinese names, cities and identities across channels
//! (phone at the till, WeChat in the mini-program, cards, email), with consents. The same
//! seed gives the same data. Later features add their part here.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ronghe_domain::Millis;
use ronghe_domain::consent::{ContactChannel, Purpose};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::{Gender, Profile};
use ronghe_store::members::{self, ConsentChange, Registration, Source};
use ronghe_store::{Result, Store};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "小明", "晓燕", "子涵", "浩然", "欣怡", "宇轩",
];
const CITIES: &[&str] = &[
    "上海", "北京", "杭州", "广州", "深圳", "成都", "南京", "武汉", "苏州", "西安",
];
const CHANNELS: &[&str] = &["pos", "pos", "mini_program", "mini_program", "app", "web"];
pub const MINI_APP_ID: &str = "wx_demo_mini";

fn identity(kind: IdentityKind, value: &str, app: Option<&str>) -> (Identity, bool) {
    (
        Identity::from_stored(kind, value.to_string(), app.map(str::to_string)),
        true,
    )
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
            "pos" => ids.push(identity(
                IdentityKind::MemberCard,
                &format!("VIP{:08}", i + 1),
                None,
            )),
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
            "app" => ids.push(identity(
                IdentityKind::DeviceId,
                &format!("dev-{:016x}", rng.r#gen::<u64>()),
                None,
            )),
            _ => ids.push(identity(
                IdentityKind::Email,
                &format!("member{}@example.com", i + 1),
                None,
            )),
        }
        let name = format!(
            "{}{}",
            SURNAMES[rng.gen_range(0..SURNAMES.len())],
            GIVEN[rng.gen_range(0..GIVEN.len())]
        );
        let year = rng.gen_range(1960..2006);
        let profile = Profile {
            name: Some(name),
            gender: Some(if rng.gen_bool(0.55) {
                Gender::Female
            } else {
                Gender::Male
            }),
            birthday: rng.gen_bool(0.8).then(|| {
                format!(
                    "{year}-{:02}-{:02}",
                    rng.gen_range(1..=12),
                    rng.gen_range(1..=28)
                )
            }),
            city: Some(CITIES[rng.gen_range(0..CITIES.len())].to_string()),
            address: None,
        };
        let mut consents = Vec::new();
        for purpose in Purpose::ALL {
            for ch in ContactChannel::ALL {
                if rng.gen_bool(0.4) {
                    consents.push(ConsentChange {
                        purpose: *purpose,
                        channel: *ch,
                        granted: rng.gen_bool(0.8),
                    });
                }
            }
        }
        let source = Source {
            channel: Some(channel.into()),
            store_id,
            method: Some("checkbox".into()),
        };
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

/// Write the demo data set through the store's bulk path, in chunks of one transaction each.
pub async fn load(store: &Store, n: usize, seed: u64, now: Millis) -> Result<usize> {
    let regs = registrations(n, seed);
    let count = regs.len();
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
    Ok(count)
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_seed_same_data() {
        let a = super::registrations(30, 7);
        let b = super::registrations(30, 7);
        let ids = |v: &Vec<ronghe_store::members::Registration>| {
            v.iter().map(|r| r.member_id.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&super::registrations(30, 8)));
        for r in &a {
            for (id, _) in &r.identities {
                let parsed =
                    ronghe_domain::identity::Identity::parse(id.kind(), id.value(), id.app_id())
                        .unwrap();
                assert_eq!(&parsed, id, "demo identities are already normalised");
            }
        }
    }
}
