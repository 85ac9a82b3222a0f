//! The loyalty programme: how points are earned and redeemed. Programmes are versioned by
//! the time from which they apply; an order is always computed with the version in force at
//! its `placed_at`, so a late upload from an offline till is priced as it was at the till.

use crate::Millis;
use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A multiplier in basis points: 10000 = ×1, 20000 = ×2 (double points).
pub type Bp = i64;
pub const ONE: Bp = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    #[serde(default)]
    pub earn: Earn,
    #[serde(default)]
    pub redeem: Redeem,
    #[serde(default)]
    pub expiry: Expiry,
    /// Tiers by spend over the last `tier_window_days` (e.g. 普通/银卡/金卡/钻石), lowest first.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    #[serde(default = "year")]
    pub tier_window_days: i64,
}

/// A tier: reached with `min_spend_fen` paid in the window; its multiplier stacks on earning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    pub min_spend_fen: i64,
    #[serde(default = "one_x")]
    pub multiplier_bp: Bp,
}

fn year() -> i64 {
    365
}
fn one_x() -> Bp {
    ONE
}

/// The tenant's time zone: days (expiry at the end of a year) are counted there.
pub const TENANT_TZ: &str = "Asia/Shanghai";

/// When points expire. Points expire in lots (each credit is a lot), consumed first in, first out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expiry {
    /// At the end of the calendar year after the one they were earned in (the default).
    #[default]
    EndOfNextYear,
    /// A number of days after they were earned.
    Days { days: i64 },
    /// Never.
    Never,
}

impl Expiry {
    /// When points credited at `at` expire (the first instant they no longer count).
    pub fn expires_at(&self, at: Millis) -> Option<Millis> {
        match self {
            Expiry::Never => None,
            Expiry::Days { days } => Some(at + days * 86_400_000),
            Expiry::EndOfNextYear => {
                let tz = jiff::tz::TimeZone::get(TENANT_TZ).ok()?;
                let year = jiff::Timestamp::from_millisecond(at).ok()?.to_zoned(tz.clone()).year();
                let next = jiff::civil::date(year + 2, 1, 1).at(0, 0, 0, 0).to_zoned(tz).ok()?;
                Some(next.timestamp().as_millisecond())
            }
        }
    }
}

/// Earning: `fen_per_point` paid (after coupons and points) earns one point, times the
/// multipliers of the line; multipliers stack by multiplying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earn {
    /// Fen paid per point earned; 100 = one point per whole yuan.
    #[serde(default = "hundred")]
    pub fen_per_point: i64,
    /// Per sales channel, in basis points (e.g. `{"mini_program": 15000}`).
    #[serde(default)]
    pub channel_multipliers_bp: BTreeMap<String, Bp>,
    /// Per product category, in basis points.
    #[serde(default)]
    pub category_multipliers_bp: BTreeMap<String, Bp>,
    /// Date ranges with a multiplier (double-points days, member day), `[from, to)` in Unix ms.
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// Points earned online become usable only this many days after the order (its return
    /// window), shown as pending until then. None: usable at once.
    #[serde(default)]
    pub pending_days_online: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub name: String,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub multiplier_bp: Bp,
}

/// Redemption: one point is worth `fen_per_point`; an order redeems at least `min_points`
/// (when it redeems any) and at most `max_share_bp` of what is left after coupons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    #[serde(default = "one")]
    pub fen_per_point: i64,
    #[serde(default)]
    pub min_points: i64,
    #[serde(default = "half")]
    pub max_share_bp: Bp,
}

fn hundred() -> i64 {
    100
}
fn one() -> i64 {
    1
}
fn half() -> Bp {
    5_000
}

impl Default for Earn {
    fn default() -> Self {
        Earn {
            fen_per_point: 100,
            channel_multipliers_bp: BTreeMap::new(),
            category_multipliers_bp: BTreeMap::new(),
            promotions: Vec::new(),
            pending_days_online: None,
        }
    }
}

impl Default for Redeem {
    fn default() -> Self {
        Redeem { fen_per_point: 1, min_points: 0, max_share_bp: 5_000 }
    }
}

impl Default for Program {
    /// 1 point per yuan paid; 1 point = 1 fen; at most half an order paid with points.
    fn default() -> Self {
        Program {
            earn: Earn::default(),
            redeem: Redeem::default(),
            expiry: Expiry::default(),
            tiers: Vec::new(),
            tier_window_days: 365,
        }
    }
}

impl Program {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if !(1..=1_000_000).contains(&self.earn.fen_per_point) {
            v.push("earn.fen_per_point", "1 to 1,000,000");
        }
        let mult_ok = |m: Bp| (0..=100 * ONE).contains(&m);
        for (k, m) in &self.earn.channel_multipliers_bp {
            if !mult_ok(*m) {
                v.push(format!("earn.channel_multipliers_bp.{k}"), "0 to 1,000,000 basis points");
            }
        }
        for (k, m) in &self.earn.category_multipliers_bp {
            if !mult_ok(*m) {
                v.push(format!("earn.category_multipliers_bp.{k}"), "0 to 1,000,000 basis points");
            }
        }
        for (i, p) in self.earn.promotions.iter().enumerate() {
            if p.from_ms >= p.to_ms {
                v.push(format!("earn.promotions[{i}].to_ms"), "after from_ms");
            }
            if !mult_ok(p.multiplier_bp) {
                v.push(format!("earn.promotions[{i}].multiplier_bp"), "0 to 1,000,000 basis points");
            }
        }
        if !(1..=1_000_000).contains(&self.redeem.fen_per_point) {
            v.push("redeem.fen_per_point", "1 to 1,000,000");
        }
        if self.redeem.min_points < 0 {
            v.push("redeem.min_points", "not negative");
        }
        if !(0..=ONE).contains(&self.redeem.max_share_bp) {
            v.push("redeem.max_share_bp", "0 to 10000 basis points");
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.name.trim().is_empty() || t.name.chars().count() > 32 {
                v.push(format!("tiers[{i}].name"), "1 to 32 characters");
            }
            if i > 0 && t.min_spend_fen <= self.tiers[i - 1].min_spend_fen {
                v.push(format!("tiers[{i}].min_spend_fen"), "tiers go from the lowest spend up");
            }
            if !mult_ok(t.multiplier_bp) {
                v.push(format!("tiers[{i}].multiplier_bp"), "0 to 1,000,000 basis points");
            }
        }
        if self.earn.pending_days_online.is_some_and(|d| !(1..=365).contains(&d)) {
            v.push("earn.pending_days_online", "1 to 365 days");
        }
        if !(1..=3650).contains(&self.tier_window_days) {
            v.push("tier_window_days", "1 to 3650");
        }
        if let Expiry::Days { days } = self.expiry
            && !(1..=3650).contains(&days)
        {
            v.push("expiry.days", "1 to 3650");
        }
        v.finish()
    }

    /// The tier that `spend_fen` in the window reaches (the highest whose minimum it meets).
    pub fn tier_for(&self, spend_fen: i64) -> Option<&Tier> {
        self.tiers.iter().rfind(|t| t.min_spend_fen <= spend_fen)
    }

    /// The rank of a tier by name (higher is better); unknown or none ranks lowest.
    pub fn tier_rank(&self, name: Option<&str>) -> i64 {
        name.and_then(|n| self.tiers.iter().position(|t| t.name == n)).map_or(-1, |p| p as i64)
    }

    /// The multiplier of a line: tier × channel × category × every promotion in force, in bp.
    pub fn multiplier(&self, channel: &str, category: &str, at: Millis) -> Bp {
        self.multiplier_for(channel, category, at, None)
    }

    pub fn multiplier_for(&self, channel: &str, category: &str, at: Millis, tier: Option<&str>) -> Bp {
        let mut m = ONE as i128;
        let tier_m = tier.and_then(|n| self.tiers.iter().find(|t| t.name == n)).map(|t| &t.multiplier_bp);
        for f in
            [tier_m, self.earn.channel_multipliers_bp.get(channel), self.earn.category_multipliers_bp.get(category)]
                .into_iter()
                .flatten()
        {
            m = m * i128::from(*f) / i128::from(ONE);
        }
        for p in &self.earn.promotions {
            if p.from_ms <= at && at < p.to_ms {
                m = m * i128::from(p.multiplier_bp) / i128::from(ONE);
            }
        }
        m as Bp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_stacked_multipliers() {
        let p: Program = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Program::default());
        let p: Program = serde_json::from_value(serde_json::json!({
            "earn": {"channel_multipliers_bp": {"mini_program": 15000}, "category_multipliers_bp": {"baby": 20000},
                     "promotions": [{"name": "双11", "from_ms": 100, "to_ms": 200, "multiplier_bp": 20000}]}
        }))
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.multiplier("pos", "food", 50), 10_000);
        assert_eq!(p.multiplier("mini_program", "baby", 50), 30_000);
        assert_eq!(p.multiplier("mini_program", "baby", 150), 60_000);
        assert_eq!(p.multiplier("pos", "food", 200), 10_000, "promotions end before to_ms");
    }

    #[test]
    fn points_expire_at_the_end_of_the_next_year_in_shanghai() {
        // 2026-06-15T12:00:00+08:00 → 2028-01-01T00:00:00+08:00 = 2027-12-31T16:00:00Z
        let earned = 1_781_496_000_000;
        assert_eq!(Expiry::EndOfNextYear.expires_at(earned), Some(1_830_268_800_000));
        // Earned at 2026-12-31T20:00:00+08:00 (still 2026 in Shanghai, 12:00 UTC): same end.
        assert_eq!(Expiry::EndOfNextYear.expires_at(1_798_718_400_000), Some(1_830_268_800_000));
        assert_eq!(Expiry::Days { days: 7 }.expires_at(0), Some(7 * 86_400_000));
        assert_eq!(Expiry::Never.expires_at(0), None);
        let p: Program = serde_json::from_str(r#"{"expiry": {"policy": "days", "days": 365}}"#).unwrap();
        assert_eq!(p.expiry, Expiry::Days { days: 365 });
    }

    #[test]
    fn bad_programmes_name_their_fields() {
        let p: Program = serde_json::from_value(
            serde_json::json!({"earn": {"fen_per_point": 0}, "redeem": {"max_share_bp": 20000}}),
        )
        .unwrap();
        let e = p.validate().unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["earn.fen_per_point", "redeem.max_share_bp"]);
        assert!(serde_json::from_str::<Program>(r#"{"earn": {"rate": 1}}"#).is_err(), "unknown fields are refused");
    }
}

#[cfg(test)]
mod tier_tests {
    use super::*;

    #[test]
    fn tiers_by_spend_and_their_multiplier() {
        let p: Program = serde_json::from_value(serde_json::json!({"tiers": [
            {"name": "普通", "min_spend_fen": 0},
            {"name": "银卡", "min_spend_fen": 100000, "multiplier_bp": 12000},
            {"name": "金卡", "min_spend_fen": 500000, "multiplier_bp": 15000}
        ]}))
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.tier_for(99_999).map(|t| t.name.as_str()), Some("普通"));
        assert_eq!(p.tier_for(100_000).map(|t| t.name.as_str()), Some("银卡"));
        assert_eq!(p.tier_for(9_999_999).map(|t| t.name.as_str()), Some("金卡"));
        assert!(p.tier_rank(Some("金卡")) > p.tier_rank(Some("银卡")));
        assert_eq!(p.tier_rank(None), -1);
        assert_eq!(p.multiplier_for("pos", "food", 0, Some("银卡")), 12_000);
        let bad: Program = serde_json::from_value(serde_json::json!({"tiers": [
            {"name": "a", "min_spend_fen": 10}, {"name": "b", "min_spend_fen": 5}]}))
        .unwrap();
        assert_eq!(bad.validate().unwrap_err().errors[0].field, "tiers[1].min_spend_fen");
    }
}
