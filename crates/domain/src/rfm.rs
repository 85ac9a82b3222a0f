//! RFM: recency, frequency and monetary value of a member's purchases, scored 1..k, the cells
//! they form and the classic eight named groups (重要价值客户 …).
//!
//! Scoring is rank-based so that equal values always get equal scores: a value's score is
//! `1 + floor(k × below / n)`, where `below` counts the members with a strictly worse value
//! (for recency: more days since the last order). That rule is written once here as
//! [`Boundaries`] — the smallest raw value reaching each score — so that the audience index can
//! score a new order without recomputing everyone.

use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};

/// How RFM is computed; `PUT /v1/analytics/rfm/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfmConfig {
    /// Orders within this many days before `as_of` count toward F and M (R looks at all orders).
    #[serde(default = "default_window")]
    pub window_days: u32,
    #[serde(default)]
    pub scoring: Scoring,
}

fn default_window() -> u32 {
    365
}

impl Default for RfmConfig {
    fn default() -> Self {
        RfmConfig { window_days: default_window(), scoring: Scoring::default() }
    }
}

/// Quintiles (k = 5) or the fixed thresholds retailers use (k = 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scoring {
    #[default]
    Quintiles,
    Thresholds {
        /// R is 3 when the last order is at most `recency_days[0]` days ago, 2 up to
        /// `recency_days[1]`, else 1. Default 30 / 90.
        #[serde(default = "default_recency")]
        recency_days: [u32; 2],
        /// F is 1 below `frequency[0]`, 2 below `frequency[1]`, else 3; absent: tertiles.
        #[serde(default)]
        frequency: Option<[i64; 2]>,
        /// M in fen, like `frequency`; absent: tertiles.
        #[serde(default)]
        monetary_fen: Option<[i64; 2]>,
    },
}

fn default_recency() -> [u32; 2] {
    [30, 90]
}

impl RfmConfig {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if !(1..=3660).contains(&self.window_days) {
            v.push("window_days", "between 1 and 3660");
        }
        if let Scoring::Thresholds { recency_days, frequency, monetary_fen } = &self.scoring {
            if recency_days[0] >= recency_days[1] {
                v.push("scoring.recency_days", "two rising numbers of days");
            }
            for (name, t) in [("scoring.frequency", frequency), ("scoring.monetary_fen", monetary_fen)] {
                if let Some(t) = t
                    && (t[0] < 1 || t[0] >= t[1])
                {
                    v.push(name, "two rising positive thresholds");
                }
            }
        }
        v.finish()
    }

    /// The number of scores per dimension.
    pub fn k(&self) -> u8 {
        match self.scoring {
            Scoring::Quintiles => 5,
            Scoring::Thresholds { .. } => 3,
        }
    }
}

/// A member's raw values as of a date. Members without an order in the window have F = M = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Raw {
    /// Days since the last order (any time before `as_of`); `None` if the member never bought.
    pub recency_days: Option<u32>,
    pub frequency: i64,
    pub monetary_fen: i64,
}

/// Scores 1..=k; 0 means "no purchase yet" (not scored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Scores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

impl Scores {
    pub fn is_scored(&self) -> bool {
        self.r > 0
    }

    /// The cell's name, e.g. `R3F2M1`.
    pub fn cell(&self) -> String {
        format!("R{}F{}M{}", self.r, self.f, self.m)
    }

    /// The classic eight groups from high/low R, F and M. A score is high when it is in the
    /// upper half of 1..=k, the middle included (k = 5: 3–5; k = 3: 2–3).
    pub fn group(&self, k: u8) -> Option<Group> {
        if !self.is_scored() {
            return None;
        }
        let high = |s: u8| 2 * s > k;
        Some(match (high(self.r), high(self.f), high(self.m)) {
            (true, true, true) => Group::ImportantValue,
            (true, false, true) => Group::ImportantDevelop,
            (false, true, true) => Group::ImportantKeep,
            (false, false, true) => Group::ImportantRetain,
            (true, true, false) => Group::GeneralValue,
            (true, false, false) => Group::GeneralDevelop,
            (false, true, false) => Group::GeneralKeep,
            (false, false, false) => Group::GeneralRetain,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    ImportantValue,
    ImportantDevelop,
    ImportantKeep,
    ImportantRetain,
    GeneralValue,
    GeneralDevelop,
    GeneralKeep,
    GeneralRetain,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::ImportantValue,
        Group::ImportantDevelop,
        Group::ImportantKeep,
        Group::ImportantRetain,
        Group::GeneralValue,
        Group::GeneralDevelop,
        Group::GeneralKeep,
        Group::GeneralRetain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::ImportantValue => "important_value",
            Group::ImportantDevelop => "important_develop",
            Group::ImportantKeep => "important_keep",
            Group::ImportantRetain => "important_retain",
            Group::GeneralValue => "general_value",
            Group::GeneralDevelop => "general_develop",
            Group::GeneralKeep => "general_keep",
            Group::GeneralRetain => "general_retain",
        }
    }

    /// The name Chinese marketers use.
    pub fn label_zh(self) -> &'static str {
        match self {
            Group::ImportantValue => "重要价值客户",
            Group::ImportantDevelop => "重要发展客户",
            Group::ImportantKeep => "重要保持客户",
            Group::ImportantRetain => "重要挽留客户",
            Group::GeneralValue => "一般价值客户",
            Group::GeneralDevelop => "一般发展客户",
            Group::GeneralKeep => "一般保持客户",
            Group::GeneralRetain => "一般挽留客户",
        }
    }
}

/// For each dimension, the smallest "goodness" reaching score 2..=k (so `k - 1` entries).
/// Recency is stored negated (fewer days is better), so every dimension scores "higher is
/// better" with the same comparison.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Boundaries {
    pub k: u8,
    pub r: Vec<i64>,
    pub f: Vec<i64>,
    pub m: Vec<i64>,
}

impl Boundaries {
    /// Compute from the raw values of every scored member (those who ever bought).
    pub fn compute(config: &RfmConfig, raws: &[Raw]) -> Boundaries {
        let bought: Vec<&Raw> = raws.iter().filter(|r| r.recency_days.is_some()).collect();
        let column = |f: &dyn Fn(&Raw) -> i64| -> Vec<i64> {
            let mut v: Vec<i64> = bought.iter().map(|r| f(r)).collect();
            v.sort_unstable();
            v
        };
        let r = column(&|r| -(r.recency_days.unwrap_or(0) as i64));
        let f = column(&|r| r.frequency);
        let m = column(&|r| r.monetary_fen);
        match &config.scoring {
            Scoring::Quintiles => {
                Boundaries { k: 5, r: rank_bounds(&r, 5), f: rank_bounds(&f, 5), m: rank_bounds(&m, 5) }
            }
            Scoring::Thresholds { recency_days, frequency, monetary_fen } => Boundaries {
                k: 3,
                // R 3 at ≤ recency_days[0] days, i.e. goodness ≥ −recency_days[0].
                r: vec![-(recency_days[1] as i64), -(recency_days[0] as i64)],
                f: frequency.map_or_else(|| rank_bounds(&f, 3), |t| t.to_vec()),
                m: monetary_fen.map_or_else(|| rank_bounds(&m, 3), |t| t.to_vec()),
            },
        }
    }

    pub fn score(&self, raw: &Raw) -> Scores {
        let Some(days) = raw.recency_days else { return Scores::default() };
        Scores {
            r: score_of(&self.r, -(days as i64)),
            f: score_of(&self.f, raw.frequency),
            m: score_of(&self.m, raw.monetary_fen),
        }
    }
}

/// `1 + number of bounds ≤ value`.
pub fn score_of(bounds: &[i64], value: i64) -> u8 {
    1 + bounds.partition_point(|b| *b <= value) as u8
}

/// The smallest value in `sorted` whose score `1 + floor(k × below / n)` reaches 2..=k; a score
/// no value reaches gets `i64::MAX`.
fn rank_bounds(sorted: &[i64], k: u8) -> Vec<i64> {
    let n = sorted.len();
    let mut bounds = vec![i64::MAX; (k - 1) as usize];
    let mut i = 0;
    while i < n {
        let below = i; // values strictly less than sorted[i]
        let score = 1 + (k as usize * below) / n;
        for s in 2..=score {
            if bounds[s - 2] == i64::MAX {
                bounds[s - 2] = sorted[i];
            }
        }
        let v = sorted[i];
        while i < n && sorted[i] == v {
            i += 1;
        }
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(days: u32, f: i64, m: i64) -> Raw {
        Raw { recency_days: Some(days), frequency: f, monetary_fen: m }
    }

    /// The definition, computed independently: rank against everyone else.
    fn by_definition(all: &[Raw], me: &Raw, k: usize) -> Scores {
        let bought: Vec<&Raw> = all.iter().filter(|r| r.recency_days.is_some()).collect();
        let n = bought.len();
        let s = |below: usize| (1 + k * below / n) as u8;
        Scores {
            r: s(bought.iter().filter(|o| o.recency_days > me.recency_days).count()),
            f: s(bought.iter().filter(|o| o.frequency < me.frequency).count()),
            m: s(bought.iter().filter(|o| o.monetary_fen < me.monetary_fen).count()),
        }
    }

    #[test]
    fn quintiles_of_ten_members_known_answer() {
        // Ten members: recency 1..=10 days, frequency 10..=1, money with a tie.
        let raws: Vec<Raw> =
            (0..10).map(|i| raw(i + 1, 10 - i as i64, [5, 5, 7, 9, 11, 13, 15, 17, 19, 21][i as usize])).collect();
        let b = Boundaries::compute(&RfmConfig::default(), &raws);
        let scores: Vec<Scores> = raws.iter().map(|r| b.score(r)).collect();
        // Recency: 1 day is best (9 members are worse) → 1 + 5×9/10 = 5.
        assert_eq!(scores.iter().map(|s| s.r).collect::<Vec<_>>(), vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        assert_eq!(scores.iter().map(|s| s.f).collect::<Vec<_>>(), vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        // The two members with 5 fen tie at score 1; 7 fen has two below → 2.
        assert_eq!(scores.iter().map(|s| s.m).collect::<Vec<_>>(), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(scores[0].group(5), Some(Group::GeneralValue));
        assert_eq!(scores[9].group(5), Some(Group::ImportantRetain));
        assert_eq!(scores[0].cell(), "R5F5M1");
    }

    #[test]
    fn fixed_thresholds_follow_the_retail_convention() {
        let config = RfmConfig {
            window_days: 365,
            scoring: Scoring::Thresholds {
                recency_days: [30, 90],
                frequency: Some([2, 5]),
                monetary_fen: Some([10_000, 100_000]),
            },
        };
        let b = Boundaries::compute(&config, &[]);
        assert_eq!(b.score(&raw(30, 1, 9_999)), Scores { r: 3, f: 1, m: 1 });
        assert_eq!(b.score(&raw(31, 2, 10_000)), Scores { r: 2, f: 2, m: 2 });
        assert_eq!(b.score(&raw(90, 4, 99_999)), Scores { r: 2, f: 2, m: 2 });
        assert_eq!(b.score(&raw(91, 5, 100_000)), Scores { r: 1, f: 3, m: 3 });
        assert_eq!(b.score(&Raw { recency_days: None, frequency: 0, monetary_fen: 0 }), Scores::default());
        assert_eq!(Scores { r: 3, f: 1, m: 3 }.group(3), Some(Group::ImportantDevelop));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let c = RfmConfig {
            window_days: 0,
            scoring: Scoring::Thresholds { recency_days: [90, 30], frequency: Some([3, 3]), monetary_fen: None },
        };
        let e = c.validate().unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["window_days", "scoring.recency_days", "scoring.frequency"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::tests_support::cases(256)))]
        #[test]
        fn boundaries_score_like_the_definition(
            values in proptest::collection::vec((0u32..20, 0i64..8, 0i64..50), 1..60),
            k in prop_oneof![Just(3usize), Just(5usize)],
        ) {
            let raws: Vec<Raw> = values.iter().map(|&(d, f, m)| raw(d, f, m)).collect();
            let config = if k == 5 {
                RfmConfig::default()
            } else {
                RfmConfig { window_days: 365, scoring: Scoring::Thresholds { recency_days: [30, 90], frequency: None, monetary_fen: None } }
            };
            let b = Boundaries::compute(&config, &raws);
            for r in &raws {
                let want = by_definition(&raws, r, k);
                let got = b.score(r);
                prop_assert_eq!(got.f, want.f);
                prop_assert_eq!(got.m, want.m);
                if k == 5 {
                    prop_assert_eq!(got.r, want.r);
                }
            }
        }
    }
}
