//! Migration from a legacy CRM: a member with their opening points balance, tier and open
//! coupons, written so that importing the same file twice changes nothing.

use crate::db::Tx;
use crate::keyring::Keyring;
use crate::members::{self, Registration, Source};
use crate::{Result, coupons, points, vals};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::Profile;
use ronghe_domain::{DomainError, Millis};

#[derive(Debug, Clone, Default)]
pub struct LegacyMember {
    /// The legacy CRM's customer number (identity `external_id`).
    pub external_id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    pub opening_points: i64,
    pub tier: Option<String>,
    /// Open coupons to carry over: (template id, the code the customer holds).
    pub coupons: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    pub created: bool,
    pub points_credited: bool,
    pub coupons_added: usize,
}

/// Import one member. Identities follow One ID (a known phone attaches to its member); the
/// opening balance is credited once per external id; coupons are added once per code.
pub fn import_member(tx: &mut dyn Tx, kr: &Keyring, m: &LegacyMember, now: Millis) -> Result<Imported> {
    let mut identities = vec![(
        Identity::parse(IdentityKind::ExternalId, &m.external_id, None).map_err(|e| e.within("external_id"))?,
        true,
    )];
    if let Some(p) = m.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        identities.push((Identity::parse(IdentityKind::Phone, p, None).map_err(|e| e.within("phone"))?, true));
    }
    if let Some(e) = m.email.as_deref().filter(|e| !e.trim().is_empty()) {
        identities.push((Identity::parse(IdentityKind::Email, e, None).map_err(|e| e.within("email"))?, true));
    }
    if m.opening_points < 0 {
        return Err(DomainError::field("points", "not negative").into());
    }
    let profile = Profile::parse(m.name.as_deref(), None, None, m.city.as_deref(), None)?;
    let reg = Registration {
        identities,
        profile,
        source: Source { channel: Some("import".into()), store_id: None, method: Some("legacy_import".into()) },
        ..Default::default()
    };
    let r = members::register(tx, kr, &reg, "import", now)?;
    let mut out = Imported { created: r.outcome == members::Outcome::Created, ..Default::default() };
    let reference = format!("legacy:{}", m.external_id);
    let already = tx
        .query_one("SELECT 1 FROM points_ledger WHERE ref_type = 'import' AND ref_id = $1", vals![reference.as_str()])?
        .is_some();
    if !already && m.opening_points > 0 {
        points::append(tx, &r.id, m.opening_points, "opening_balance", "import", &reference, Some("legacy CRM"), now)?;
        out.points_credited = true;
    }
    if let Some(t) = m.tier.as_deref().filter(|t| !t.trim().is_empty()) {
        tx.exec(
            "UPDATE members SET tier = $2, tier_since = COALESCE(tier_since, $3) WHERE id = $1",
            vals![r.id.as_str(), t.trim(), now],
        )?;
    }
    for (i, (template, code)) in m.coupons.iter().enumerate() {
        if coupons::get(tx, code)?.is_some() {
            continue;
        }
        coupons::import(tx, template, code, &r.id, now).map_err(|e| match e {
            crate::Error::Domain(d) => d.within(&format!("coupons[{i}]")).into(),
            other => other,
        })?;
        out.coupons_added += 1;
    }
    Ok(out)
}
