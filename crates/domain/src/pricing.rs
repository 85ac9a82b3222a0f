//! Pricing an order, deterministically (documented in docs/orders.md):
//!
//! 1. Each line costs `unit_price_fen × qty` (its subtotal). The unit price is the
//!    catalogue's for the channel at `placed_at`, unless an override with a reason was given.
//! 2. Coupons apply next, in this order: fixed-price items, then amounts off, then percents
//!    off (input order within a kind). Each one looks at its eligible lines (its SKUs or
//!    categories, or every line) as they stand after the coupons before it: an amount off needs
//!    their remaining sum to reach its threshold and takes at most that sum; a percent off is
//!    rounded half-up to the fen and capped. Each discount is allocated to its eligible lines
//!    by largest remainder. Several coupons in one order must all be stackable.
//! 3. Redeemed points are worth `points × redeem.fen_per_point`; they must be at least
//!    `min_points` and worth at most `max_share_bp` of what is left after discounts (rounded
//!    down to the fen). Their value is allocated to the lines in proportion to what each line
//!    still costs, by largest remainder.
//! 4. Each line pays `subtotal − discount − points value`; the order pays the sum.
//! 5. Points earned on the order are `floor(Σ paid × multiplier / fen_per_point)`, allocated to
//!    the lines in proportion to `paid × multiplier` by largest remainder, so that a returned
//!    line takes back exactly what it earned.

use crate::Millis;
use crate::coupon::{Benefit, Held, Refusal, check_context};
use crate::error::{Code, DomainError, FieldError};
use crate::loyalty::{ONE, Program};
use crate::money::{allocate, div_round_half_up};

/// Where and for whom an order is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub channel: &'a str,
    pub store_id: Option<&'a str>,
    pub member_id: Option<&'a str>,
    pub placed_at: Millis,
    /// The member's tier when the order is placed (its multiplier applies to earning).
    pub tier: Option<&'a str>,
}

/// The discount one coupon gave, and its share of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponDiscount {
    pub code: String,
    pub discount_fen: i64,
    pub per_line_fen: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub category: String,
    pub qty: i64,
    pub unit_price_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_value_fen: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    pub coupons: Vec<CouponDiscount>,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_redeemed: i64,
    pub points_value_fen: i64,
    pub payable_fen: i64,
    pub points_earned: i64,
}

/// The most points an order whose remaining amount is `base_fen` may redeem.
pub fn max_redeemable(program: &Program, base_fen: i64) -> i64 {
    let max_value = (i128::from(base_fen) * i128::from(program.redeem.max_share_bp) / i128::from(ONE)) as i64;
    max_value / program.redeem.fen_per_point
}

fn refused(i: usize, code: &str, r: Refusal) -> DomainError {
    DomainError {
        code: Code::CouponNotApplicable,
        message: format!("coupon {code} does not apply here: {}", r.as_str()),
        errors: vec![FieldError {
            field: format!("coupon_codes[{i}]"),
            code: r.as_str(),
            message: r.as_str().replace('_', " "),
        }],
    }
}

/// Apply `coupons` (in the documented order) to lines that cost `remaining`; returns each
/// coupon's discount, in the input order, and leaves in `remaining` what the lines still cost.
pub fn apply_coupons(
    ctx: &Context,
    lines: &[Line],
    coupons: &[Held],
    remaining: &mut [i64],
) -> Result<Vec<CouponDiscount>, DomainError> {
    if coupons.len() > 1
        && let Some((i, c)) = coupons.iter().enumerate().find(|(_, c)| !c.template.stackable)
    {
        return Err(refused(i, &c.code, Refusal::NotStackable));
    }
    let mut order: Vec<usize> = (0..coupons.len()).collect();
    order.sort_by_key(|i| (coupons[*i].template.benefit.rank(), *i));
    let mut out: Vec<Option<CouponDiscount>> = vec![None; coupons.len()];
    for i in order {
        let c = &coupons[i];
        check_context(c, ctx.channel, ctx.store_id, ctx.member_id, ctx.placed_at)
            .map_err(|r| refused(i, &c.code, r))?;
        let eligible: Vec<bool> =
            lines.iter().map(|l| c.template.restrictions.line_eligible(&l.sku, &l.category)).collect();
        let amount: i64 = remaining.iter().zip(&eligible).filter(|(_, e)| **e).map(|(r, _)| *r).sum();
        let mut per_line = vec![0i64; lines.len()];
        match &c.template.benefit {
            Benefit::FixedPrice { sku, price_fen } => {
                let Some(j) = lines.iter().position(|l| l.sku == *sku) else {
                    return Err(refused(i, &c.code, Refusal::NoEligibleLine));
                };
                per_line[j] = (lines[j].unit_price_fen - price_fen).max(0).min(remaining[j]);
            }
            Benefit::AmountOff { threshold_fen, off_fen } => {
                if !eligible.iter().any(|e| *e) {
                    return Err(refused(i, &c.code, Refusal::NoEligibleLine));
                }
                if amount < *threshold_fen {
                    return Err(refused(i, &c.code, Refusal::BelowThreshold));
                }
                let weights: Vec<i64> = remaining.iter().zip(&eligible).map(|(r, e)| if *e { *r } else { 0 }).collect();
                per_line = allocate((*off_fen).min(amount), &weights);
            }
            Benefit::PercentOff { threshold_fen, percent_bp, cap_fen } => {
                if !eligible.iter().any(|e| *e) {
                    return Err(refused(i, &c.code, Refusal::NoEligibleLine));
                }
                if amount < *threshold_fen {
                    return Err(refused(i, &c.code, Refusal::BelowThreshold));
                }
                let d = div_round_half_up(i128::from(amount) * i128::from(*percent_bp), i128::from(ONE)).min(*cap_fen);
                let weights: Vec<i64> = remaining.iter().zip(&eligible).map(|(r, e)| if *e { *r } else { 0 }).collect();
                per_line = allocate(d.min(amount), &weights);
            }
        }
        let discount: i64 = per_line.iter().sum();
        if c.template.budget_fen.is_some_and(|b| c.template_spent_fen + discount > b) {
            return Err(refused(i, &c.code, Refusal::BudgetExhausted));
        }
        for (r, d) in remaining.iter_mut().zip(&per_line) {
            *r -= d;
        }
        out[i] = Some(CouponDiscount { code: c.code.clone(), discount_fen: discount, per_line_fen: per_line });
    }
    Ok(out.into_iter().flatten().collect())
}

/// Price `lines` in `ctx` with `coupons`, redeeming `points` (0 for none); `earns` is false
/// for guests (no member to earn).
pub fn price(
    program: &Program,
    ctx: &Context,
    lines: &[Line],
    coupons: &[Held],
    points: i64,
    earns: bool,
) -> Result<Priced, DomainError> {
    let (channel, placed_at) = (ctx.channel, ctx.placed_at);
    let mut subtotals = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let s = l.unit_price_fen.checked_mul(l.qty).filter(|s| *s <= 100_000_000_000);
        match s {
            Some(s) => subtotals.push(s),
            None => return Err(DomainError::field(format!("lines[{i}].qty"), "the line is too large")),
        }
    }
    let subtotal: i64 = subtotals.iter().sum();
    let mut base = subtotals.clone();
    let coupon_discounts = apply_coupons(ctx, lines, coupons, &mut base)?;
    let discounts: Vec<i64> = subtotals.iter().zip(&base).map(|(s, b)| s - b).collect();
    let discount: i64 = discounts.iter().sum();
    let base_total = subtotal - discount;

    if points < 0 {
        return Err(DomainError::field("points_to_redeem", "not negative"));
    }
    if points > 0 && points < program.redeem.min_points {
        return Err(DomainError {
            code: Code::PointsLimitExceeded,
            message: format!("at least {} points are redeemed at once", program.redeem.min_points),
            errors: vec![],
        });
    }
    let max = max_redeemable(program, base_total);
    if points > max {
        return Err(DomainError {
            code: Code::PointsLimitExceeded,
            message: format!("this order can take at most {max} points"),
            errors: vec![],
        });
    }
    let points_value = points * program.redeem.fen_per_point;
    let point_parts = allocate(points_value, &base);
    let paid: Vec<i64> = base.iter().zip(&point_parts).map(|(b, p)| b - p).collect();

    let weights: Vec<i64> = paid
        .iter()
        .zip(lines)
        .map(|(p, l)| {
            (i128::from(*p) * i128::from(program.multiplier_for(channel, &l.category, placed_at, ctx.tier))
                / i128::from(ONE)) as i64
        })
        .collect();
    let earned_total = if earns { weights.iter().sum::<i64>() / program.earn.fen_per_point } else { 0 };
    let earned = allocate(earned_total, &weights);

    let priced_lines = (0..lines.len())
        .map(|i| PricedLine {
            subtotal_fen: subtotals[i],
            discount_fen: discounts[i],
            points_value_fen: point_parts[i],
            paid_fen: paid[i],
            points_earned: earned[i],
        })
        .collect();
    Ok(Priced {
        lines: priced_lines,
        coupons: coupon_discounts,
        subtotal_fen: subtotal,
        discount_fen: discount,
        points_redeemed: points,
        points_value_fen: points_value,
        payable_fen: base_total - points_value,
        points_earned: earned_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POS: Context<'static> =
        Context { channel: "pos", store_id: Some("S1"), member_id: Some("m_1"), placed_at: 150, tier: None };

    fn coupon(code: &str, benefit: Benefit, stackable: bool, categories: &[&str]) -> Held {
        Held {
            code: code.into(),
            template: crate::coupon::Template {
                name: code.into(),
                benefit,
                restrictions: crate::coupon::Restrictions {
                    categories: categories.iter().map(|c| c.to_string()).collect(),
                    ..Default::default()
                },
                stackable,
                validity: crate::coupon::Validity::Fixed { from_ms: 100, to_ms: 200 },
                per_member_limit: None,
                total_limit: None,
                budget_fen: Some(10_000),
            },
            member_id: None,
            redeemed: false,
            valid_from: 100,
            valid_to: 200,
            template_spent_fen: 0,
        }
    }

    #[test]
    fn coupons_known_answers() {
        let p = Program::default();
        let lines = [line("A", "food", 2, 1299), line("B", "drink", 1, 500), line("C", "food", 3, 333)];
        // 满30减5 on food only: food lines 2598 + 999 = 3597 ≥ 3000; 500 split 361 / 139.
        let c = coupon("MJ", Benefit::AmountOff { threshold_fen: 3000, off_fen: 500 }, false, &["food"]);
        let r = price(&p, &POS, &lines, std::slice::from_ref(&c), 0, true).unwrap();
        assert_eq!(r.discount_fen, 500);
        assert_eq!(r.coupons[0].per_line_fen, vec![361, 0, 139]);
        assert_eq!(r.payable_fen, 4097 - 500);
        // 15% off everything, capped at 5.00: 614.55 → 615 → capped 500.
        let pct = coupon("PCT", Benefit::PercentOff { threshold_fen: 0, percent_bp: 1500, cap_fen: 500 }, true, &[]);
        assert_eq!(price(&p, &POS, &lines, std::slice::from_ref(&pct), 0, true).unwrap().discount_fen, 500);
        // A fixed-price item applies first; then 10% off what remains, rounded half-up.
        let fixed = coupon("FIX", Benefit::FixedPrice { sku: "A".into(), price_fen: 99 }, true, &[]);
        let ten =
            coupon("TEN", Benefit::PercentOff { threshold_fen: 0, percent_bp: 1000, cap_fen: 100_000 }, true, &[]);
        let r = price(&p, &POS, &lines, &[ten.clone(), fixed.clone()], 0, true).unwrap();
        assert_eq!(r.coupons[1].discount_fen, 1200, "one A at 0.99 instead of 12.99");
        assert_eq!(r.coupons[0].discount_fen, 290, "10% of 4097 - 1200 = 289.7");
        assert_eq!(r.payable_fen, 4097 - 1200 - 290);
        // Refusals name the coupon and the reason.
        let e = price(&p, &POS, &lines, &[c.clone(), pct.clone()], 0, true).unwrap_err();
        assert_eq!(
            (e.code, e.errors[0].field.as_str(), e.errors[0].code),
            (Code::CouponNotApplicable, "coupon_codes[0]", "not_stackable")
        );
        let high = coupon("HI", Benefit::AmountOff { threshold_fen: 5000, off_fen: 500 }, false, &[]);
        assert_eq!(price(&p, &POS, &lines, &[high], 0, true).unwrap_err().errors[0].code, "below_threshold");
        let baby = coupon("BB", Benefit::AmountOff { threshold_fen: 0, off_fen: 500 }, false, &["baby"]);
        assert_eq!(price(&p, &POS, &lines, &[baby], 0, true).unwrap_err().errors[0].code, "no_eligible_line");
        let mut spent = c.clone();
        spent.template_spent_fen = 9_600;
        assert_eq!(price(&p, &POS, &lines, &[spent], 0, true).unwrap_err().errors[0].code, "budget_exhausted");
    }

    fn line(sku: &str, category: &str, qty: i64, unit: i64) -> Line {
        Line { sku: sku.into(), category: category.into(), qty, unit_price_fen: unit }
    }

    #[test]
    fn known_answer_three_lines_points_redeemed_and_earned() {
        let p = Program::default();
        let lines = [line("A", "food", 2, 1299), line("B", "drink", 1, 500), line("C", "food", 3, 333)];
        // subtotal 2598 + 500 + 999 = 4097; 1000 points = 10.00 yuan, allocated 634/122/244.
        let r = price(&p, &POS, &lines, &[], 1000, true).unwrap();
        assert_eq!(r.subtotal_fen, 4097);
        assert_eq!(r.lines.iter().map(|l| l.points_value_fen).collect::<Vec<_>>(), vec![634, 122, 244]);
        assert_eq!(r.payable_fen, 3097);
        assert_eq!(r.lines.iter().map(|l| l.paid_fen).collect::<Vec<_>>(), vec![1964, 378, 755]);
        // floor(3097 / 100) = 30 points, allocated by what each line paid.
        assert_eq!(r.points_earned, 30);
        assert_eq!(r.lines.iter().map(|l| l.points_earned).collect::<Vec<_>>(), vec![19, 4, 7]);
    }

    #[test]
    fn redemption_limits_are_enforced() {
        let mut p = Program::default();
        p.redeem.min_points = 100;
        let lines = [line("A", "food", 1, 1000)];
        assert_eq!(max_redeemable(&p, 1000), 500);
        assert_eq!(price(&p, &POS, &lines, &[], 501, true).unwrap_err().code, Code::PointsLimitExceeded);
        assert_eq!(price(&p, &POS, &lines, &[], 50, true).unwrap_err().code, Code::PointsLimitExceeded);
        assert_eq!(price(&p, &POS, &lines, &[], 500, true).unwrap().payable_fen, 500);
        assert_eq!(price(&p, &POS, &lines, &[], 0, false).unwrap().points_earned, 0, "guests earn nothing");
    }

    #[test]
    fn multipliers_weight_the_lines() {
        let mut p = Program::default();
        p.earn.category_multipliers_bp.insert("baby".into(), 20_000);
        let r = price(&p, &POS, &[line("A", "baby", 1, 1000), line("B", "food", 1, 1000)], &[], 0, true).unwrap();
        assert_eq!(r.points_earned, 30);
        assert_eq!(r.lines[0].points_earned, 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::tests_support::cases(256)))]
        #[test]
        fn lines_always_add_up_to_the_order(
            items in proptest::collection::vec((1i64..5, 1i64..100_000, 0usize..3), 1..6),
            share in 0i64..=10_000,
            redeem_frac in 0i64..=100,
        ) {
            let mut p = Program::default();
            p.redeem.max_share_bp = share;
            let lines: Vec<Line> = items.iter().map(|(q, u, c)| line("S", ["a", "b", "c"][*c], *q, *u)).collect();
            let subtotal: i64 = lines.iter().map(|l| l.qty * l.unit_price_fen).sum();
            let points = max_redeemable(&p, subtotal) * redeem_frac / 100;
            let r = price(&p, &POS, &lines, &[], points, true).unwrap();
            prop_assert_eq!(r.lines.iter().map(|l| l.paid_fen).sum::<i64>(), r.payable_fen);
            prop_assert_eq!(r.lines.iter().map(|l| l.points_value_fen).sum::<i64>(), r.points_value_fen);
            prop_assert_eq!(r.lines.iter().map(|l| l.points_earned).sum::<i64>(), r.points_earned);
            prop_assert!(r.lines.iter().all(|l| l.paid_fen >= 0 && l.points_earned >= 0));
            prop_assert_eq!(r.subtotal_fen - r.discount_fen - r.points_value_fen, r.payable_fen);
        }
    }
}
