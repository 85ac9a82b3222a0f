//! Merging two members into one (One ID). The survivor keeps its id; the absorbed member's
//! identities, consents and history move to it, and its id points to the survivor forever.
//!
//! Precedence, documented in `docs/members.md`:
//! - profile fields and custom attributes: the survivor's value wins; the absorbed member
//!   only fills fields the survivor lacks;
//! - consents: for each (purpose, channel) the most recent decision wins, whoever made it;
//! - identities: the union (an identity belongs to one member, so the sets are disjoint);
//! - when a registration finds several members, the oldest one survives.

use crate::Millis;
use crate::consent::{self, ConsentState, Decision};
use crate::identity::Identity;
use crate::profile::Profile;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct MemberSnapshot {
    pub profile: Profile,
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub identities: Vec<Identity>,
    pub consents: Vec<Decision>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub profile: Profile,
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub identities: Vec<Identity>,
    pub consents: ConsentState,
}

pub fn merge(survivor: &MemberSnapshot, absorbed: &MemberSnapshot) -> Merged {
    let mut profile = survivor.profile.clone();
    profile.fill_from(&absorbed.profile);
    let mut attributes = absorbed.attributes.clone();
    attributes.extend(survivor.attributes.clone());
    let mut identities: Vec<Identity> = survivor.identities.iter().chain(&absorbed.identities).cloned().collect();
    identities.sort();
    identities.dedup();
    // Absorbed first, so that on equal timestamps the survivor's decision wins.
    let consents = consent::current(absorbed.consents.iter().chain(&survivor.consents).cloned());
    Merged { profile, attributes, identities, consents }
}

/// Which of several members survives an automatic merge: the oldest (then the smallest id),
/// so that the member number customers already know keeps working.
pub fn choose_survivor<'a>(candidates: impl IntoIterator<Item = (&'a str, Millis)>) -> Option<&'a str> {
    candidates.into_iter().min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0))).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{ContactChannel, Purpose};
    use crate::identity::IdentityKind;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn identity() -> impl Strategy<Value = Identity> {
        (0usize..4, 0u32..40).prop_map(|(k, n)| {
            let kind =
                [IdentityKind::ExternalId, IdentityKind::MemberCard, IdentityKind::DeviceId, IdentityKind::AlipayUid]
                    [k];
            Identity::parse(kind, &format!("X{n}"), None).unwrap()
        })
    }

    fn decision() -> impl Strategy<Value = Decision> {
        (0usize..3, 0usize..5, any::<bool>(), 0i64..50).prop_map(|(p, c, granted, at)| Decision {
            purpose: Purpose::ALL[p],
            channel: ContactChannel::ALL[c],
            granted,
            decided_at: at,
            source_channel: None,
            source_store: None,
            method: "api".into(),
        })
    }

    fn snapshot() -> impl Strategy<Value = MemberSnapshot> {
        (
            proptest::collection::vec(identity(), 0..6),
            proptest::collection::vec(decision(), 0..8),
            proptest::option::of("[a-z]{1,4}"),
            proptest::option::of("[a-z]{1,4}"),
        )
            .prop_map(|(identities, consents, name, city)| MemberSnapshot {
                profile: Profile { name, city, ..Default::default() },
                identities,
                consents,
                ..Default::default()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::tests_support::cases(256)))]

        #[test]
        fn merging_never_loses_or_duplicates_an_identity(a in snapshot(), b in snapshot()) {
            let m = merge(&a, &b);
            let expected: BTreeSet<_> = a.identities.iter().chain(&b.identities).cloned().collect();
            let got: BTreeSet<_> = m.identities.iter().cloned().collect();
            prop_assert_eq!(got.len(), m.identities.len(), "duplicated identity");
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn survivor_profile_wins_and_gaps_are_filled(a in snapshot(), b in snapshot()) {
            let m = merge(&a, &b);
            prop_assert_eq!(m.profile.name, a.profile.name.clone().or(b.profile.name.clone()));
            prop_assert_eq!(m.profile.city, a.profile.city.clone().or(b.profile.city.clone()));
        }

        #[test]
        fn the_most_recent_consent_decision_wins(a in snapshot(), b in snapshot()) {
            let m = merge(&a, &b);
            for ((p, c), d) in &m.consents {
                let latest = a.consents.iter().chain(&b.consents)
                    .filter(|x| x.purpose == *p && x.channel == *c)
                    .map(|x| x.decided_at).max().unwrap();
                prop_assert_eq!(d.decided_at, latest);
            }
            let pairs: BTreeSet<_> = a.consents.iter().chain(&b.consents).map(|x| (x.purpose, x.channel)).collect();
            prop_assert_eq!(pairs.len(), m.consents.len());
        }
    }

    #[test]
    fn the_oldest_member_survives() {
        assert_eq!(choose_survivor([("m_b", 5), ("m_a", 9), ("m_c", 5)]), Some("m_b"));
    }
}
