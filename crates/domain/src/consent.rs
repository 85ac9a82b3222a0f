//! Consent per purpose and per channel (PIPL: consent is specific). A member's consent state
//! is the latest decision for each (purpose, channel); every decision is kept as history.

use crate::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing,
    Profiling,
    Personalisation,
}

impl Purpose {
    pub const ALL: &'static [Purpose] = &[Purpose::Marketing, Purpose::Profiling, Purpose::Personalisation];
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Profiling => "profiling",
            Purpose::Personalisation => "personalisation",
        }
    }
    pub fn parse(s: &str) -> Option<Purpose> {
        Self::ALL.iter().copied().find(|p| p.as_str() == s)
    }
}

/// The channels through which a member can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    Sms,
    AppPush,
    Wecom,
    Email,
    MiniProgram,
}

impl ContactChannel {
    pub const ALL: &'static [ContactChannel] = &[
        ContactChannel::Sms,
        ContactChannel::AppPush,
        ContactChannel::Wecom,
        ContactChannel::Email,
        ContactChannel::MiniProgram,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ContactChannel::Sms => "sms",
            ContactChannel::AppPush => "app_push",
            ContactChannel::Wecom => "wecom",
            ContactChannel::Email => "email",
            ContactChannel::MiniProgram => "mini_program",
        }
    }
    pub fn parse(s: &str) -> Option<ContactChannel> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// One recorded decision: what, when, where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub purpose: Purpose,
    pub channel: ContactChannel,
    pub granted: bool,
    pub decided_at: Millis,
    /// Where it was given: the sales channel (pos, mini_program…) and store, if any.
    pub source_channel: Option<String>,
    pub source_store: Option<String>,
    /// How it was given, e.g. `checkbox`, `sms_reply`, `paper_form`, `api`.
    pub method: String,
}

pub type ConsentState = BTreeMap<(Purpose, ContactChannel), Decision>;

/// Fold decisions into the current state: for each (purpose, channel) the most recent
/// decision wins; on a tie the later one in the input wins (callers put the survivor last).
pub fn current(decisions: impl IntoIterator<Item = Decision>) -> ConsentState {
    let mut state = ConsentState::new();
    for d in decisions {
        let key = (d.purpose, d.channel);
        match state.get(&key) {
            Some(old) if old.decided_at > d.decided_at => {}
            _ => {
                state.insert(key, d);
            }
        }
    }
    state
}

/// Whether the member may be contacted for `purpose` through `channel`: only an explicit
/// grant counts; never decided means no.
pub fn is_granted(state: &ConsentState, purpose: Purpose, channel: ContactChannel) -> bool {
    state.get(&(purpose, channel)).is_some_and(|d| d.granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(p: Purpose, c: ContactChannel, granted: bool, at: Millis) -> Decision {
        Decision {
            purpose: p,
            channel: c,
            granted,
            decided_at: at,
            source_channel: None,
            source_store: None,
            method: "api".into(),
        }
    }

    #[test]
    fn latest_decision_wins_and_absent_is_not_granted() {
        let s = current([
            d(Purpose::Marketing, ContactChannel::Sms, true, 10),
            d(Purpose::Marketing, ContactChannel::Sms, false, 20),
            d(Purpose::Marketing, ContactChannel::Sms, true, 15),
        ]);
        assert!(!is_granted(&s, Purpose::Marketing, ContactChannel::Sms));
        assert!(!is_granted(&s, Purpose::Profiling, ContactChannel::Sms));
    }
}
