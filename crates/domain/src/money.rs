//! Money arithmetic in integer fen: half-up rounding and largest-remainder allocation, so
//! that parts always add up to the whole and a partial return gives back exactly its share.

/// `num / den` rounded half-up (away from zero for halves), for non-negative operands.
pub fn div_round_half_up(num: i128, den: i128) -> i64 {
    debug_assert!(den > 0 && num >= 0);
    ((num * 2 + den) / (den * 2)) as i64
}

/// Split `total` into parts proportional to `weights` with the largest-remainder method:
/// every part is the floor of its exact share, and the units left over go one each to the
/// parts with the largest remainders (ties: the earlier part). The parts sum to `total`
/// exactly. With all weights zero, everything goes to the first part.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if sum == 0 {
        let mut v = vec![0; weights.len()];
        v[0] = total;
        return v;
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    let mut given: i64 = 0;
    for (i, w) in weights.iter().enumerate() {
        let exact = i128::from(total) * i128::from((*w).max(0));
        let part = (exact / sum) as i64;
        parts.push(part);
        rems.push((exact % sum, i));
        given += part;
    }
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems.into_iter().take((total - given) as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        assert_eq!(div_round_half_up(5, 2), 3);
        assert_eq!(div_round_half_up(4, 3), 1);
        assert_eq!(div_round_half_up(5, 3), 2);
        assert_eq!(allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(allocate(1000, &[2990, 1990, 5000]), vec![300, 199, 501]);
        assert_eq!(allocate(7, &[0, 0]), vec![7, 0]);
        assert_eq!(allocate(0, &[5, 5]), vec![0, 0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::tests_support::cases(512)))]
        #[test]
        fn parts_sum_to_the_total_and_stay_within_one_of_the_exact_share(
            total in 0i64..10_000_000, weights in proptest::collection::vec(0i64..1_000_000, 1..12)
        ) {
            let parts = allocate(total, &weights);
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let sum: i128 = weights.iter().map(|w| *w as i128).sum();
            if sum > 0 {
                for (p, w) in parts.iter().zip(&weights) {
                    let exact = total as i128 * *w as i128;
                    prop_assert!((*p as i128) * sum >= exact - sum && (*p as i128) * sum <= exact + sum);
                }
            }
        }
    }
}
