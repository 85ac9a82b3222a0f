//! Coupons: templates (amount off above a threshold — 满减, percent off with a cap, one item
//! at a fixed price), their restrictions and validity, and whether a coupon applies to a
//! basket, with the reason when it does not (the till shows it when it scans a code).

use crate::Millis;
use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Benefit {
    /// 满减: `off_fen` off when the eligible lines reach `threshold_fen`.
    AmountOff { threshold_fen: i64, off_fen: i64 },
    /// `percent_bp` off the eligible lines (1500 = 15% off), at most `cap_fen`.
    PercentOff {
        #[serde(default)]
        threshold_fen: i64,
        percent_bp: i64,
        cap_fen: i64,
    },
    /// One unit of `sku` for `price_fen`.
    FixedPrice { sku: String, price_fen: i64 },
}

impl Benefit {
    /// Coupons apply in this order: fixed price, then amount off, then percent off.
    pub fn rank(&self) -> u8 {
        match self {
            Benefit::FixedPrice { .. } => 0,
            Benefit::AmountOff { .. } => 1,
            Benefit::PercentOff { .. } => 2,
        }
    }
}

/// Where a coupon may be used; an empty list allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restrictions {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub stores: Vec<String>,
    /// Eligible lines: these SKUs or these categories (both empty: every line).
    #[serde(default)]
    pub skus: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
}

impl Restrictions {
    pub fn line_eligible(&self, sku: &str, category: &str) -> bool {
        (self.skus.is_empty() && self.categories.is_empty())
            || self.skus.iter().any(|s| s == sku)
            || self.categories.iter().any(|c| c == category)
    }
}

/// When a coupon can be used: fixed dates, or a number of days from its issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Validity {
    Fixed { from_ms: Millis, to_ms: Millis },
    AfterIssue { days_after_issue: i64 },
}

impl Validity {
    /// The `[from, to)` window of a coupon issued at `issued_at`.
    pub fn window(&self, issued_at: Millis) -> (Millis, Millis) {
        match self {
            Validity::Fixed { from_ms, to_ms } => (*from_ms, *to_ms),
            Validity::AfterIssue { days_after_issue } => (issued_at, issued_at + days_after_issue * 86_400_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub benefit: Benefit,
    #[serde(default)]
    pub restrictions: Restrictions,
    /// Whether it may be combined with other stackable coupons in one order.
    #[serde(default)]
    pub stackable: bool,
    pub validity: Validity,
    /// At most this many coupons of the template per member.
    pub per_member_limit: Option<i64>,
    /// At most this many coupons of the template in all.
    pub total_limit: Option<i64>,
    /// At most this much discount in all, in fen.
    pub budget_fen: Option<i64>,
}

impl Template {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            v.push("name", "1 to 100 characters");
        }
        match &self.benefit {
            Benefit::AmountOff { threshold_fen, off_fen } => {
                if *off_fen <= 0 {
                    v.push("benefit.off_fen", "positive");
                }
                if *threshold_fen < 0 {
                    v.push("benefit.threshold_fen", "not negative");
                }
            }
            Benefit::PercentOff { threshold_fen, percent_bp, cap_fen } => {
                if !(1..=10_000).contains(percent_bp) {
                    v.push("benefit.percent_bp", "1 to 10000 (basis points off)");
                }
                if *cap_fen <= 0 {
                    v.push("benefit.cap_fen", "positive");
                }
                if *threshold_fen < 0 {
                    v.push("benefit.threshold_fen", "not negative");
                }
            }
            Benefit::FixedPrice { sku, price_fen } => {
                if crate::catalogue::check_sku(sku).is_err() {
                    v.push("benefit.sku", "a SKU");
                }
                if *price_fen < 0 {
                    v.push("benefit.price_fen", "not negative");
                }
            }
        }
        match self.validity {
            Validity::Fixed { from_ms, to_ms } if from_ms >= to_ms => v.push("validity.to_ms", "after from_ms"),
            Validity::AfterIssue { days_after_issue } if !(1..=3650).contains(&days_after_issue) => {
                v.push("validity.days_after_issue", "1 to 3650")
            }
            _ => {}
        }
        for (f, x) in [
            ("per_member_limit", self.per_member_limit),
            ("total_limit", self.total_limit),
            ("budget_fen", self.budget_fen),
        ] {
            if x.is_some_and(|x| x <= 0) {
                v.push(f, "positive when given");
            }
        }
        v.finish()
    }
}

/// Why a coupon does not apply. Stable names: the till branches on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AlreadyRedeemed,
    NotYetValid,
    Expired,
    OtherMember,
    WrongChannel,
    WrongStore,
    NoEligibleLine,
    BelowThreshold,
    BudgetExhausted,
    NotStackable,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::AlreadyRedeemed => "already_redeemed",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Expired => "expired",
            Refusal::OtherMember => "other_member",
            Refusal::WrongChannel => "wrong_channel",
            Refusal::WrongStore => "wrong_store",
            Refusal::NoEligibleLine => "no_eligible_line",
            Refusal::BelowThreshold => "below_threshold",
            Refusal::BudgetExhausted => "budget_exhausted",
            Refusal::NotStackable => "not_stackable",
        }
    }
}

/// A coupon as held, with its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub code: String,
    pub template: Template,
    pub member_id: Option<String>,
    pub redeemed: bool,
    pub valid_from: Millis,
    pub valid_to: Millis,
    /// Discount the template has given so far (for its budget).
    pub template_spent_fen: i64,
}

/// The checks that do not depend on the basket's amounts, in this order.
pub fn check_context(
    c: &Held,
    channel: &str,
    store_id: Option<&str>,
    member_id: Option<&str>,
    at: Millis,
) -> Result<(), Refusal> {
    if c.redeemed {
        return Err(Refusal::AlreadyRedeemed);
    }
    if at < c.valid_from {
        return Err(Refusal::NotYetValid);
    }
    if at >= c.valid_to {
        return Err(Refusal::Expired);
    }
    if c.member_id.is_some() && c.member_id.as_deref() != member_id {
        return Err(Refusal::OtherMember);
    }
    let r = &c.template.restrictions;
    if !r.channels.is_empty() && !r.channels.iter().any(|x| x == channel) {
        return Err(Refusal::WrongChannel);
    }
    if !r.stores.is_empty() && !store_id.is_some_and(|s| r.stores.iter().any(|x| x == s)) {
        return Err(Refusal::WrongStore);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(benefit: Benefit) -> Held {
        Held {
            code: "C1".into(),
            template: Template {
                name: "t".into(),
                benefit,
                restrictions: Restrictions {
                    channels: vec!["pos".into()],
                    stores: vec!["S1".into()],
                    ..Default::default()
                },
                stackable: false,
                validity: Validity::Fixed { from_ms: 100, to_ms: 200 },
                per_member_limit: None,
                total_limit: None,
                budget_fen: None,
            },
            member_id: Some("m_1".into()),
            redeemed: false,
            valid_from: 100,
            valid_to: 200,
            template_spent_fen: 0,
        }
    }

    #[test]
    fn context_checks_in_order() {
        let c = held(Benefit::AmountOff { threshold_fen: 100, off_fen: 10 });
        assert_eq!(check_context(&c, "pos", Some("S1"), Some("m_1"), 150), Ok(()));
        assert_eq!(check_context(&c, "pos", Some("S1"), Some("m_1"), 50), Err(Refusal::NotYetValid));
        assert_eq!(check_context(&c, "pos", Some("S1"), Some("m_1"), 200), Err(Refusal::Expired));
        assert_eq!(check_context(&c, "pos", Some("S1"), Some("m_2"), 150), Err(Refusal::OtherMember));
        assert_eq!(check_context(&c, "web", Some("S1"), Some("m_1"), 150), Err(Refusal::WrongChannel));
        assert_eq!(check_context(&c, "pos", Some("S2"), Some("m_1"), 150), Err(Refusal::WrongStore));
        let mut r = c.clone();
        r.redeemed = true;
        assert_eq!(check_context(&r, "pos", Some("S1"), Some("m_1"), 150), Err(Refusal::AlreadyRedeemed));
    }

    #[test]
    fn templates_parse_and_validate() {
        let t: Template = serde_json::from_value(serde_json::json!({
            "name": "满100减20", "benefit": {"type": "amount_off", "threshold_fen": 10000, "off_fen": 2000},
            "validity": {"days_after_issue": 30}, "per_member_limit": 1
        }))
        .unwrap();
        t.validate().unwrap();
        assert_eq!(t.validity.window(0), (0, 30 * 86_400_000));
        let bad: Template = serde_json::from_value(serde_json::json!({
            "name": "", "benefit": {"type": "percent_off", "percent_bp": 0, "cap_fen": 0}, "validity": {"from_ms": 5, "to_ms": 5}
        }))
        .unwrap();
        let fields: Vec<_> = bad.validate().unwrap_err().errors.iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["name", "benefit.percent_bp", "benefit.cap_fen", "validity.to_ms"]);
    }
}
