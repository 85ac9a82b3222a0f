//! Pricing an order, deterministically (documented in docs/orders.md):
//!
//! 1. Each line costs `unit_price_fen × qty` (its subtotal). The unit price is the
//!    catalogue's for the channel at `placed_at`, unless an override with a reason was given.
//! 2. Coupon discounts (none yet: coupons arrive with their templates) are taken off next.
//! 3. Redeemed points are worth `points × redeem.fen_per_point`; they must be at least
//!    `min_points` and worth at most `max_share_bp` of what is left after discounts (rounded
//!    down to the fen). Their value is allocated to the lines in proportion to what each line
//!    still costs, by largest remainder.
//! 4. Each line pays `subtotal − discount − points value`; the order pays the sum.
//! 5. Points earned on the order are `floor(Σ paid × multiplier / fen_per_point)`, allocated to
//!    the lines in proportion to `paid × multiplier` by largest remainder, so that a returned
//!    line takes back exactly what it earned.

use crate::Millis;
use crate::error::{Code, DomainError};
use crate::loyalty::{ONE, Program};
use crate::money::allocate;

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

/// Price `lines` sold in `channel` at `placed_at`, redeeming `points` (0 for none); `earns`
/// is false for guests (no member to earn).
pub fn price(
    program: &Program,
    channel: &str,
    placed_at: Millis,
    lines: &[Line],
    points: i64,
    earns: bool,
) -> Result<Priced, DomainError> {
    let mut subtotals = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let s = l.unit_price_fen.checked_mul(l.qty).filter(|s| *s <= 1_000_000_000_00);
        match s {
            Some(s) => subtotals.push(s),
            None => {
                return Err(DomainError::field(format!("lines[{i}].qty"), "the line is too large"));
            }
        }
    }
    let subtotal: i64 = subtotals.iter().sum();
    let discounts = vec![0i64; lines.len()];
    let discount: i64 = discounts.iter().sum();
    let base: Vec<i64> = subtotals.iter().zip(&discounts).map(|(s, d)| s - d).collect();
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
            (i128::from(*p) * i128::from(program.multiplier(channel, &l.category, placed_at)) / i128::from(ONE)) as i64
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

    fn line(sku: &str, category: &str, qty: i64, unit: i64) -> Line {
        Line { sku: sku.into(), category: category.into(), qty, unit_price_fen: unit }
    }

    #[test]
    fn known_answer_three_lines_points_redeemed_and_earned() {
        let p = Program::default();
        let lines = [line("A", "food", 2, 1299), line("B", "drink", 1, 500), line("C", "food", 3, 333)];
        // subtotal 2598 + 500 + 999 = 4097; 1000 points = 10.00 yuan, allocated 634/122/244.
        let r = price(&p, "pos", 0, &lines, 1000, true).unwrap();
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
        assert_eq!(price(&p, "pos", 0, &lines, 501, true).unwrap_err().code, Code::PointsLimitExceeded);
        assert_eq!(price(&p, "pos", 0, &lines, 50, true).unwrap_err().code, Code::PointsLimitExceeded);
        assert_eq!(price(&p, "pos", 0, &lines, 500, true).unwrap().payable_fen, 500);
        assert_eq!(price(&p, "pos", 0, &lines, 0, false).unwrap().points_earned, 0, "guests earn nothing");
    }

    #[test]
    fn multipliers_weight_the_lines() {
        let mut p = Program::default();
        p.earn.category_multipliers_bp.insert("baby".into(), 20_000);
        let r = price(&p, "pos", 0, &[line("A", "baby", 1, 1000), line("B", "food", 1, 1000)], 0, true).unwrap();
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
            let r = price(&p, "pos", 0, &lines, points, true).unwrap();
            prop_assert_eq!(r.lines.iter().map(|l| l.paid_fen).sum::<i64>(), r.payable_fen);
            prop_assert_eq!(r.lines.iter().map(|l| l.points_value_fen).sum::<i64>(), r.points_value_fen);
            prop_assert_eq!(r.lines.iter().map(|l| l.points_earned).sum::<i64>(), r.points_earned);
            prop_assert!(r.lines.iter().all(|l| l.paid_fen >= 0 && l.points_earned >= 0));
            prop_assert_eq!(r.subtotal_fen - r.discount_fen - r.points_value_fen, r.payable_fen);
        }
    }
}
