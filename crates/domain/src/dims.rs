//! The built-in dimensions (标签维度) computed for every member from their profile, points,
//! orders and — with profiling consent — behaviour events. Each definition is here once and
//! documented in docs/cdp.md; the audience index keeps one bitmap per (dimension, value).

use crate::lifecycle::{LifecycleConfig, Stage};
use crate::rfm::{Raw, Scores};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    AgeBand,
    Gender,
    City,
    Tier,
    PointsBand,
    AovBand,
    FrequencyBand,
    FavouriteCategory,
    FavouriteChannel,
    ShopperType,
    PriceSensitivity,
    CouponSensitivity,
    TenureBand,
    Lifecycle,
    RfmCell,
    RfmGroup,
    StoreVisitor,
    CartAbandoner,
    BrowsedCategory,
}

impl Dim {
    pub const ALL: [Dim; 19] = [
        Dim::AgeBand,
        Dim::Gender,
        Dim::City,
        Dim::Tier,
        Dim::PointsBand,
        Dim::AovBand,
        Dim::FrequencyBand,
        Dim::FavouriteCategory,
        Dim::FavouriteChannel,
        Dim::ShopperType,
        Dim::PriceSensitivity,
        Dim::CouponSensitivity,
        Dim::TenureBand,
        Dim::Lifecycle,
        Dim::RfmCell,
        Dim::RfmGroup,
        Dim::StoreVisitor,
        Dim::CartAbandoner,
        Dim::BrowsedCategory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::AgeBand => "age_band",
            Dim::Gender => "gender",
            Dim::City => "city",
            Dim::Tier => "tier",
            Dim::PointsBand => "points_band",
            Dim::AovBand => "aov_band",
            Dim::FrequencyBand => "frequency_band",
            Dim::FavouriteCategory => "favourite_category",
            Dim::FavouriteChannel => "favourite_channel",
            Dim::ShopperType => "shopper_type",
            Dim::PriceSensitivity => "price_sensitivity",
            Dim::CouponSensitivity => "coupon_sensitivity",
            Dim::TenureBand => "tenure_band",
            Dim::Lifecycle => "lifecycle",
            Dim::RfmCell => "rfm_cell",
            Dim::RfmGroup => "rfm_group",
            Dim::StoreVisitor => "store_visitor",
            Dim::CartAbandoner => "cart_abandoner",
            Dim::BrowsedCategory => "browsed_category",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Derived from behaviour events: applies only with profiling consent.
    pub fn from_events(self) -> bool {
        matches!(self, Dim::StoreVisitor | Dim::CartAbandoner | Dim::BrowsedCategory)
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Days a store visit, a cart or a product view counts as recent.
pub const STORE_VISIT_DAYS: i32 = 30;
pub const CART_DAYS: i32 = 7;
pub const BROWSE_DAYS: i32 = 14;

/// A member's orders of one day in one channel, summed, as the dimensions see them
/// (cancelled orders are left out by the caller). Summing by day keeps a frequent shopper's
/// history small: RFM, lifecycle and the dimensions count days, not instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    pub day: i32,
    pub channel: String,
    /// How many orders.
    pub orders: i64,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_value_fen: i64,
    pub paid_fen: i64,
    /// Of which with a coupon discount.
    pub coupon_orders: i64,
}

/// Channels whose orders count as offline (in a store).
pub const OFFLINE_CHANNELS: &[&str] = &["pos", "store", "self_checkout"];

/// What the dimensions are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub joined_day: i32,
    pub gender: Option<String>,
    pub city: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthday: Option<String>,
    pub tier: Option<String>,
    pub points: i64,
    pub orders: Vec<OrderFact>,
    /// Paid amount per product category over all orders.
    pub category_spend: BTreeMap<String, i64>,
    /// The last day of a `store_entry`, of a `product_added`.
    pub last_store_entry: Option<i32>,
    pub last_cart: Option<i32>,
    /// Category → the last day a product of it was viewed.
    pub browsed: BTreeMap<String, i32>,
}

impl Summary {
    /// RFM raw values on `today` with a window of `window_days`.
    pub fn rfm_raw(&self, today: i32, window_days: u32) -> Raw {
        let from = today - window_days as i32 + 1;
        let last = self.orders.iter().filter(|o| o.day <= today).map(|o| o.day).max();
        let in_window = self.orders.iter().filter(|o| o.day >= from && o.day <= today);
        let (frequency, monetary_fen) = in_window.fold((0, 0), |(n, m), o| (n + o.orders, m + o.paid_fen));
        Raw { recency_days: last.map(|d| (today - d) as u32), frequency, monetary_fen }
    }

    pub fn stage(&self, today: i32, config: &LifecycleConfig) -> Stage {
        let raw = self.rfm_raw(today, config.window_days);
        let joined = (today - self.joined_day).max(0) as u32;
        config.stage(joined, raw.recency_days, raw.frequency as u32)
    }
}

/// The value(s) of every built-in dimension. Every member has a value for each dimension
/// (`unknown` / `none` where nothing is known); `browsed_category` may hold several or none.
pub fn compute(s: &Summary, today: i32, rfm: Scores, rfm_k: u8, stage: Stage) -> BTreeMap<Dim, BTreeSet<String>> {
    let mut out: BTreeMap<Dim, BTreeSet<String>> = BTreeMap::new();
    let mut put = |d: Dim, v: String| {
        out.entry(d).or_default().insert(v);
    };
    put(Dim::AgeBand, age_band(s.birthday.as_deref(), today).to_string());
    put(Dim::Gender, s.gender.clone().unwrap_or_else(|| "unknown".into()));
    put(Dim::City, s.city.clone().unwrap_or_else(|| "unknown".into()));
    put(Dim::Tier, s.tier.clone().unwrap_or_else(|| "none".into()));
    put(
        Dim::PointsBand,
        band(s.points, &[(1, "0"), (1_000, "1-999"), (5_000, "1000-4999"), (20_000, "5000-19999")], "20000+"),
    );

    let orders: Vec<&OrderFact> = s.orders.iter().filter(|o| o.day <= today).collect();
    let n: i64 = orders.iter().map(|o| o.orders).sum();
    let paid: i64 = orders.iter().map(|o| o.paid_fen).sum();
    put(
        Dim::AovBand,
        if n == 0 {
            "none".into()
        } else {
            band(paid / n, &[(10_000, "under_100"), (30_000, "100-299"), (100_000, "300-999")], "1000+")
        },
    );
    let year = s.rfm_raw(today, 365).frequency;
    put(Dim::FrequencyBand, band(year, &[(1, "0"), (2, "1"), (4, "2-3"), (10, "4-9")], "10+"));

    let by_category: BTreeMap<&str, i64> = s.category_spend.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut by_channel: BTreeMap<&str, i64> = BTreeMap::new();
    for o in &orders {
        *by_channel.entry(&o.channel).or_default() += o.orders;
    }
    // Ties go to the name first in order, so the answer does not depend on hash order.
    fn top(m: &BTreeMap<&str, i64>) -> Option<String> {
        let mut best: Option<(&str, i64)> = None;
        for (k, v) in m {
            if best.is_none_or(|(_, bv)| *v > bv) {
                best = Some((k, *v));
            }
        }
        best.map(|(k, _)| k.to_string())
    }
    put(Dim::FavouriteCategory, top(&by_category).unwrap_or_else(|| "none".into()));
    put(Dim::FavouriteChannel, top(&by_channel).unwrap_or_else(|| "none".into()));
    let offline: i64 = orders.iter().filter(|o| OFFLINE_CHANNELS.contains(&o.channel.as_str())).map(|o| o.orders).sum();
    put(
        Dim::ShopperType,
        match (offline > 0, n - offline > 0) {
            (false, false) => "none",
            (true, false) => "offline",
            (false, true) => "online",
            (true, true) => "omnichannel",
        }
        .into(),
    );
    let subtotal: i64 = orders.iter().map(|o| o.subtotal_fen).sum();
    let saved: i64 = orders.iter().map(|o| o.discount_fen + o.points_value_fen).sum();
    put(Dim::PriceSensitivity, share_band(saved, subtotal, 5, 20));
    let with_coupon: i64 = orders.iter().map(|o| o.coupon_orders).sum();
    put(Dim::CouponSensitivity, share_band(with_coupon, n, 20, 50));
    put(
        Dim::TenureBand,
        band(
            i64::from(today - s.joined_day),
            &[(30, "under_30d"), (180, "30-179d"), (365, "180-364d"), (730, "1-2y")],
            "2y+",
        ),
    );
    put(Dim::Lifecycle, stage.as_str().into());
    put(Dim::RfmCell, if rfm.is_scored() { rfm.cell() } else { "none".into() });
    put(Dim::RfmGroup, rfm.group(rfm_k).map_or("none".into(), |g| g.as_str().into()));

    let recent = |day: Option<i32>, days: i32| day.is_some_and(|d| d <= today && today - d < days);
    put(Dim::StoreVisitor, yes_no(recent(s.last_store_entry, STORE_VISIT_DAYS)));
    let last_order = orders.iter().map(|o| o.day).max();
    let abandoned = recent(s.last_cart, CART_DAYS) && last_order.is_none_or(|o| Some(o) < s.last_cart);
    put(Dim::CartAbandoner, yes_no(abandoned));
    for (category, day) in &s.browsed {
        if recent(Some(*day), BROWSE_DAYS) {
            put(Dim::BrowsedCategory, category.clone());
        }
    }
    out
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The label of the first band whose (exclusive) upper bound is above `v`, else `last`.
fn band(v: i64, bands: &[(i64, &str)], last: &str) -> String {
    bands.iter().find(|(upper, _)| v < *upper).map_or(last, |(_, l)| l).to_string()
}

/// `low` below `medium_pct`, `medium` below `high_pct`, else `high`; `unknown` with no base.
fn share_band(part: i64, whole: i64, medium_pct: i64, high_pct: i64) -> String {
    if whole <= 0 {
        return "unknown".into();
    }
    let pct = part * 100 / whole;
    if pct < medium_pct {
        "low"
    } else if pct < high_pct {
        "medium"
    } else {
        "high"
    }
    .into()
}

fn age_band(birthday: Option<&str>, today: i32) -> &'static str {
    let Some(born) = birthday.and_then(|b| b.parse::<jiff::civil::Date>().ok()) else { return "unknown" };
    let now = crate::calendar::date_of(today);
    let mut age = i32::from(now.year()) - i32::from(born.year());
    if (now.month(), now.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    match age {
        i32::MIN..=-1 => "unknown",
        0..=17 => "under_18",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        _ => "55+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(day: i32, channel: &str, paid: i64, discount: i64) -> OrderFact {
        OrderFact {
            day,
            channel: channel.into(),
            orders: 1,
            subtotal_fen: paid + discount,
            discount_fen: discount,
            points_value_fen: 0,
            paid_fen: paid,
            coupon_orders: i64::from(discount > 0),
        }
    }

    fn one(dims: &BTreeMap<Dim, BTreeSet<String>>, d: Dim) -> String {
        dims[&d].iter().next().cloned().unwrap_or_default()
    }

    #[test]
    fn every_dimension_has_a_value_and_known_answers_hold() {
        let today = crate::calendar::day_of_date(jiff::civil::date(2026, 6, 1));
        let s = Summary {
            joined_day: today - 400,
            gender: Some("female".into()),
            city: Some("杭州".into()),
            birthday: Some("1990-06-02".into()),
            tier: Some("gold".into()),
            points: 1_200,
            orders: vec![
                order(today - 3, "pos", 20_000, 0),
                order(today - 40, "mini_program", 10_000, 5_000),
                order(today - 41, "mini_program", 5_000, 0),
            ],
            category_spend: [("shoes".to_string(), 25_000), ("bags".to_string(), 10_000)].into_iter().collect(),
            last_store_entry: Some(today - 2),
            last_cart: Some(today - 1),
            browsed: [("bags".to_string(), today - 13), ("hats".to_string(), today - 14)].into_iter().collect(),
        };
        let dims = compute(&s, today, Scores { r: 5, f: 4, m: 2 }, 5, Stage::Growing);
        for d in Dim::ALL {
            if d != Dim::BrowsedCategory {
                assert_eq!(dims[&d].len(), 1, "{d:?}");
            }
        }
        // Born 1990-06-02: still 35 on 2026-06-01.
        assert_eq!(one(&dims, Dim::AgeBand), "35-44");
        assert_eq!(one(&dims, Dim::PointsBand), "1000-4999");
        assert_eq!(one(&dims, Dim::AovBand), "100-299");
        assert_eq!(one(&dims, Dim::FrequencyBand), "2-3");
        assert_eq!(one(&dims, Dim::FavouriteCategory), "shoes");
        assert_eq!(one(&dims, Dim::FavouriteChannel), "mini_program");
        assert_eq!(one(&dims, Dim::ShopperType), "omnichannel");
        // Saved 5,000 of 40,000 fen: 12 % → medium; one order of three used a coupon: 33 %.
        assert_eq!(one(&dims, Dim::PriceSensitivity), "medium");
        assert_eq!(one(&dims, Dim::CouponSensitivity), "medium");
        assert_eq!(one(&dims, Dim::TenureBand), "1-2y");
        assert_eq!(one(&dims, Dim::RfmCell), "R5F4M2");
        assert_eq!(one(&dims, Dim::RfmGroup), "general_value");
        assert_eq!(one(&dims, Dim::StoreVisitor), "yes");
        assert_eq!(one(&dims, Dim::CartAbandoner), "yes");
        assert_eq!(dims[&Dim::BrowsedCategory].iter().collect::<Vec<_>>(), vec!["bags"]);
    }

    #[test]
    fn a_member_with_nothing_known() {
        let dims = compute(&Summary::default(), 20_000, Scores::default(), 5, Stage::Churned);
        assert_eq!(one(&dims, Dim::AgeBand), "unknown");
        assert_eq!(one(&dims, Dim::AovBand), "none");
        assert_eq!(one(&dims, Dim::ShopperType), "none");
        assert_eq!(one(&dims, Dim::RfmGroup), "none");
        assert_eq!(one(&dims, Dim::CartAbandoner), "no");
        assert!(!dims.contains_key(&Dim::BrowsedCategory));
    }
}
