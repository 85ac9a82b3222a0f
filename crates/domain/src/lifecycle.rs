//! Lifecycle stages new → growing → mature → silent → churned, from a member's orders and the
//! days since their last activity. The rules are configurable; the stage is a pure function
//! of the member's purchase history and today's date, so it stays right as time passes.

use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    New,
    Growing,
    Mature,
    Silent,
    Churned,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::New, Stage::Growing, Stage::Mature, Stage::Silent, Stage::Churned];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Growing => "growing",
            Stage::Mature => "mature",
            Stage::Silent => "silent",
            Stage::Churned => "churned",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// `PUT /v1/analytics/lifecycle/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Orders within `window_days` that make a member mature (default 4).
    pub mature_orders: u32,
    /// The window for counting orders (default 365).
    pub window_days: u32,
    /// Inactive for more than this many days: silent (default 90).
    pub silent_after_days: u32,
    /// Inactive for more than this many days: churned (default 180).
    pub churned_after_days: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig { mature_orders: 4, window_days: 365, silent_after_days: 90, churned_after_days: 180 }
    }
}

impl LifecycleConfig {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if self.mature_orders < 2 {
            v.push("mature_orders", "at least 2");
        }
        if !(1..=3660).contains(&self.window_days) {
            v.push("window_days", "between 1 and 3660");
        }
        if self.silent_after_days == 0 || self.silent_after_days >= self.churned_after_days {
            v.push("silent_after_days", "positive and below churned_after_days");
        }
        v.finish()
    }

    /// The stage of a member who registered `days_since_joined` days ago, whose last order was
    /// `days_since_last_order` days ago (None: never bought) and who placed `orders_in_window`
    /// orders within the window:
    ///
    /// 1. inactive (days since the last order, or since joining if they never bought) for more
    ///    than `churned_after_days` → churned; more than `silent_after_days` → silent;
    /// 2. otherwise at least `mature_orders` orders in the window → mature;
    /// 3. at least 2 → growing; else (0 or 1 order) → new.
    pub fn stage(&self, days_since_joined: u32, days_since_last_order: Option<u32>, orders_in_window: u32) -> Stage {
        let inactive = days_since_last_order.unwrap_or(days_since_joined);
        if inactive > self.churned_after_days {
            Stage::Churned
        } else if inactive > self.silent_after_days {
            Stage::Silent
        } else if orders_in_window >= self.mature_orders {
            Stage::Mature
        } else if orders_in_window >= 2 {
            Stage::Growing
        } else {
            Stage::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_follow_the_documented_rules() {
        let c = LifecycleConfig::default();
        assert_eq!(c.stage(3, None, 0), Stage::New);
        assert_eq!(c.stage(100, Some(2), 1), Stage::New);
        assert_eq!(c.stage(100, Some(2), 2), Stage::Growing);
        assert_eq!(c.stage(100, Some(90), 4), Stage::Mature);
        assert_eq!(c.stage(100, Some(91), 9), Stage::Silent);
        assert_eq!(c.stage(100, Some(181), 9), Stage::Churned);
        // Never bought: judged by the days since joining.
        assert_eq!(c.stage(91, None, 0), Stage::Silent);
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let c = LifecycleConfig { mature_orders: 1, window_days: 365, silent_after_days: 200, churned_after_days: 180 };
        assert_eq!(c.validate().unwrap_err().errors.len(), 2);
    }
}
