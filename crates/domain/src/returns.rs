//! Returns: what a returned quantity of a line refunds and what it does to points, so that
//! returning a line in any number of parts refunds exactly what it paid, takes back exactly
//! what it earned and gives back exactly the points it redeemed.
//!
//! Each amount is shared by cumulative quantity: after `n` of `q` units have come back, the
//! line has given back `floor(amount × n / q)`; a return gives the difference from before.
//! The last unit therefore gives back the remainder.

/// A sold line, as far as returns are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoldLine {
    pub qty: i64,
    pub returned_qty: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
    pub points_redeemed: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineReturn {
    pub refund_fen: i64,
    /// Earned points to take back.
    pub points_taken: i64,
    /// Redeemed points to give back.
    pub points_given: i64,
}

fn share(total: i64, n: i64, q: i64) -> i64 {
    (i128::from(total) * i128::from(n) / i128::from(q)) as i64
}

/// The effects of returning `qty` more units of `l` (the caller checked `qty` fits).
pub fn line_return(l: &SoldLine, qty: i64) -> LineReturn {
    let (before, after) = (l.returned_qty, l.returned_qty + qty);
    let diff = |total| share(total, after, l.qty) - share(total, before, l.qty);
    LineReturn {
        refund_fen: diff(l.paid_fen),
        points_taken: diff(l.points_earned),
        points_given: diff(l.points_redeemed),
    }
}

/// Settling the points of a return for a member whose balance, once the redeemed points are
/// given back, is `available`. Earned points already spent cannot be taken back: the shortfall
/// is deducted from the cash refund at the redemption value (`fen_per_point`), never more than
/// the refund, and the balance never goes negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub points_taken: i64,
    pub shortfall_points: i64,
    pub deduction_fen: i64,
}

pub fn settle(available: i64, to_take: i64, refund_fen: i64, fen_per_point: i64) -> Settlement {
    let taken = to_take.min(available.max(0));
    let shortfall = to_take - taken;
    Settlement {
        points_taken: taken,
        shortfall_points: shortfall,
        deduction_fen: (shortfall * fen_per_point).min(refund_fen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        let l = SoldLine { qty: 3, returned_qty: 0, paid_fen: 755, points_earned: 7, points_redeemed: 244 };
        assert_eq!(line_return(&l, 1), LineReturn { refund_fen: 251, points_taken: 2, points_given: 81 });
        let l2 = SoldLine { returned_qty: 1, ..l };
        assert_eq!(line_return(&l2, 2), LineReturn { refund_fen: 504, points_taken: 5, points_given: 163 });
        assert_eq!(settle(10, 30, 1000, 1), Settlement { points_taken: 10, shortfall_points: 20, deduction_fen: 20 });
        assert_eq!(settle(50, 30, 1000, 1), Settlement { points_taken: 30, shortfall_points: 0, deduction_fen: 0 });
        assert_eq!(settle(0, 30, 10, 1).deduction_fen, 10, "never more than the refund");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::tests_support::cases(256)))]
        #[test]
        fn returning_every_unit_in_any_parts_gives_back_exactly_the_line(
            qty in 1i64..20, paid in 0i64..1_000_000, earned in 0i64..10_000, redeemed in 0i64..10_000,
            cuts in proptest::collection::vec(1i64..5, 1..20)
        ) {
            let mut l = SoldLine { qty, returned_qty: 0, paid_fen: paid, points_earned: earned, points_redeemed: redeemed };
            let mut total = LineReturn::default();
            for c in cuts.into_iter().chain(std::iter::once(qty)) {
                let n = c.min(l.qty - l.returned_qty);
                if n == 0 { break; }
                let r = line_return(&l, n);
                prop_assert!(r.refund_fen >= 0 && r.points_taken >= 0 && r.points_given >= 0);
                total.refund_fen += r.refund_fen;
                total.points_taken += r.points_taken;
                total.points_given += r.points_given;
                l.returned_qty += n;
            }
            prop_assert_eq!(total, LineReturn { refund_fen: paid, points_taken: earned, points_given: redeemed });
        }
    }
}
