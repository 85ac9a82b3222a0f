//! Members and One ID: registration with any mix of identities, lookup by any identity,
//! merging, profile and attribute updates, consent decisions, erasure and export.
//!
//! Personal data (identity values, name, birthday, address) is sealed with the member's own
//! data key before it reaches SQL; identities are found through their blind index.

use crate::db::{DbError, Tx};
use crate::keyring::{DataKey, Keyring};
use crate::{Error, Result, outbox, vals};
use rand::RngCore;
use ronghe_domain::consent::{ContactChannel, Decision, Purpose};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::merge::{self, MemberSnapshot};
use ronghe_domain::profile::{self, AttributeKind, Gender, Profile};
use ronghe_domain::{Code, DomainError, Millis};
use std::collections::BTreeMap;

pub type Attributes = BTreeMap<String, serde_json::Value>;

/// Where and how a write happened.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub channel: Option<String>,
    pub store_id: Option<String>,
    /// How a consent was given: `checkbox`, `sms_reply`, `paper_form`… (default `api`).
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentChange {
    pub purpose: Purpose,
    pub channel: ContactChannel,
    pub granted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    #[default]
    Reject,
    Merge,
}

#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Only for bulk loads that must be deterministic (demo data); otherwise generated.
    pub member_id: Option<String>,
    /// Each identity with whether the caller is trusted to assert it.
    pub identities: Vec<(Identity, bool)>,
    pub profile: Profile,
    pub attributes: Attributes,
    pub consents: Vec<ConsentChange>,
    pub source: Source,
    pub on_conflict: OnConflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Existing,
    /// The request's identities belonged to several members; these were merged into the result.
    Merged(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct IdentityRecord {
    pub identity: Identity,
    pub verified: bool,
    pub added_at: Millis,
}

/// A member as stored, personal data decrypted. The server masks it by role.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub id: String,
    /// Set when the id asked for was absorbed by a merge: that id.
    pub requested_id: Option<String>,
    pub seq: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub profile: Profile,
    pub attributes: Attributes,
    pub identities: Vec<IdentityRecord>,
    pub consents: Vec<Decision>,
    pub source: Source,
    pub merged_from: Vec<String>,
    pub tier: Option<String>,
    pub points_balance: i64,
    /// The latest orders, newest first.
    pub recent_orders: Vec<crate::orders::OrderSummary>,
}

#[derive(Debug, Clone)]
pub struct MergeRecord {
    pub from_id: String,
    pub into_id: String,
    pub merged_at: Millis,
    pub identities_moved: i64,
}

/// Everything held about a member, for the member's own copy (PIPL right of access).
#[derive(Debug, Clone)]
pub struct Export {
    pub member: MemberRecord,
    pub consent_history: Vec<Decision>,
    pub merges: Vec<MergeRecord>,
}

/// Tables whose rows belong to a member and move to the survivor in a merge's transaction.
/// Later features (orders, points ledger, coupons, events) add their table here.
const MEMBER_OWNED: &[(&str, &str)] = &[
    ("consent_history", "member_id"),
    ("orders", "member_id"),
    ("points_ledger", "member_id"),
    ("coupons", "member_id"),
    ("pending_points", "member_id"),
    ("events", "member_id"),
    ("stitches", "member_id"),
    ("lifecycle_transitions", "member_id"),
    ("stock_subscriptions", "member_id"),
];

/// A new member id: `m_` + the creation time (48-bit milliseconds) + 40 random bits, in hex.
/// Time first keeps the indexes keyed by member id appending instead of splitting random
/// pages (several times less written per registration); the random part keeps ids unguessable
/// from one another.
pub fn new_member_id(now: Millis) -> String {
    let mut b = [0u8; 5];
    rand::thread_rng().fill_bytes(&mut b);
    format!("m_{:012x}{}", now.clamp(0, 0xffff_ffff_ffff), hex::encode(b))
}

// ---------- resolving ids ----------

/// The active member behind `id`, following a merge pointer. Unknown → `not_found`;
/// erased → `member_erased`.
pub fn resolve(tx: &mut dyn Tx, id: &str) -> Result<String> {
    let mut current = id.to_string();
    for _ in 0..8 {
        let sql = format!("SELECT status, merged_into FROM members WHERE id = $1{}", tx.for_update());
        let row = tx.query_one(&sql, vals![current.as_str()])?.ok_or_else(|| DomainError::not_found("member"))?;
        match row.string(0)?.as_str() {
            "active" => return Ok(current),
            "erased" => {
                return Err(DomainError::new(Code::MemberErased, "this member was erased").into());
            }
            _ => current = row.opt_string(1)?.ok_or_else(|| DbError::Other("merged member without survivor".into()))?,
        }
    }
    Err(DbError::Other("merge chain too long".into()).into())
}

pub(crate) fn data_key(tx: &mut dyn Tx, kr: &Keyring, id: &str) -> Result<DataKey> {
    let row = tx
        .query_one("SELECT wrapped FROM member_keys WHERE member_id = $1", vals![id])?
        .ok_or_else(|| DbError::Other(format!("member {id} has no data key")))?;
    Ok(kr.unwrap_data_key(id, &row.blob(0)?)?)
}

fn blind(kr: &Keyring, identity: &Identity) -> Vec<u8> {
    kr.blind(&identity.canonical())
}

/// The member that owns an identity, if any.
pub fn owner(tx: &mut dyn Tx, kr: &Keyring, identity: &Identity) -> Result<Option<String>> {
    let sql = format!("SELECT member_id FROM identities WHERE blind = $1{}", tx.for_update());
    Ok(match tx.query_one(&sql, vals![blind(kr, identity)])? {
        Some(r) => Some(r.string(0)?),
        None => None,
    })
}

// ---------- registration ----------

pub fn register(tx: &mut dyn Tx, kr: &Keyring, reg: &Registration, actor: &str, now: Millis) -> Result<Registered> {
    let mut attrs = Attributes::new();
    if !reg.attributes.is_empty() {
        profile::apply_attributes(&mut attrs, &reg.attributes, &attribute_defs(tx)?)?;
    }

    let mut owners: Vec<String> = Vec::new();
    let mut unowned: Vec<&(Identity, bool)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pair in &reg.identities {
        if !seen.insert(pair.0.canonical()) {
            continue;
        }
        match owner(tx, kr, &pair.0)? {
            Some(m) => {
                if !owners.contains(&m) {
                    owners.push(m)
                }
            }
            None => unowned.push(pair),
        }
    }

    let mut created_key = None;
    let (id, outcome) = match owners.len() {
        0 => {
            let id = reg.member_id.clone().unwrap_or_else(|| new_member_id(now));
            created_key = Some(create(tx, kr, &id, &reg.profile, &attrs, &reg.source, now)?);
            (id, Outcome::Created)
        }
        1 => (owners.remove(0), Outcome::Existing),
        _ if reg.on_conflict == OnConflict::Reject => {
            return Err(DomainError::new(
                Code::IdentityConflict,
                format!(
                    "these identities belong to {} different members; send on_conflict: \"merge\" to merge them",
                    owners.len()
                ),
            )
            .into());
        }
        _ => {
            let mut created: Vec<(String, Millis)> = Vec::new();
            for o in &owners {
                let row = tx
                    .query_one("SELECT created_at FROM members WHERE id = $1", vals![o.as_str()])?
                    .ok_or_else(|| DbError::Other("owner vanished".into()))?;
                created.push((o.clone(), row.i64(0)?));
            }
            let survivor = merge::choose_survivor(created.iter().map(|(i, c)| (i.as_str(), *c)))
                .map(str::to_string)
                .ok_or_else(|| DbError::Other("no survivor".into()))?;
            let mut absorbed = Vec::new();
            for o in owners.iter().filter(|o| **o != survivor) {
                merge_members(tx, kr, &survivor, o, actor, now)?;
                absorbed.push(o.clone());
            }
            (survivor, Outcome::Merged(absorbed))
        }
    };

    let dk = match created_key {
        Some(dk) => dk,
        None => data_key(tx, kr, &id)?,
    };
    for (identity, verified) in unowned {
        insert_identity(tx, kr, &dk, &id, identity, *verified, now)?;
    }
    if outcome != Outcome::Created {
        // Registering again fills empty fields and never overwrites what is known.
        let (mut current, mut current_attrs) = read_profile(tx, &dk, &id)?;
        let changed = current.fill_from(&reg.profile);
        let mut attrs_changed = false;
        for (k, v) in &attrs {
            if !current_attrs.contains_key(k) {
                current_attrs.insert(k.clone(), v.clone());
                attrs_changed = true;
            }
        }
        if changed || attrs_changed {
            write_profile(tx, &dk, &id, &current, &current_attrs, now)?;
        }
    }
    record_decisions(tx, &id, &reg.consents, &reg.source, actor, now)?;
    let topic = if outcome == Outcome::Created { "member.registered" } else { "member.updated" };
    outbox::append(tx, topic, Some(&id), &serde_json::json!({ "member_id": id }), now)?;
    Ok(Registered { id, outcome })
}

fn create(
    tx: &mut dyn Tx,
    kr: &Keyring,
    id: &str,
    p: &Profile,
    attrs: &Attributes,
    source: &Source,
    now: Millis,
) -> Result<DataKey> {
    let (dk, wrapped) = kr.new_data_key(id);
    let attrs = serde_json::to_string(attrs).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO members (id, status, created_at, updated_at, gender, city, name_enc, birthday_enc, address_enc,
                              attributes, source_channel, source_store)
         VALUES ($1, 'active', $2, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vals![
            id,
            now,
            p.gender.map(Gender::as_str),
            p.city.clone(),
            seal_opt(&dk, id, "name", &p.name),
            seal_opt(&dk, id, "birthday", &p.birthday),
            seal_opt(&dk, id, "address", &p.address),
            attrs,
            source.channel.clone(),
            source.store_id.clone()
        ],
    )?;
    tx.exec("INSERT INTO member_keys (member_id, wrapped) VALUES ($1, $2)", vals![id, wrapped])?;
    Ok(dk)
}

fn insert_identity(
    tx: &mut dyn Tx,
    kr: &Keyring,
    dk: &DataKey,
    id: &str,
    identity: &Identity,
    verified: bool,
    now: Millis,
) -> Result<()> {
    tx.exec(
        "INSERT INTO identities (blind, member_id, kind, app_id, value_enc, verified, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vals![
            blind(kr, identity),
            id,
            identity.kind().as_str(),
            identity.app_id(),
            dk.seal(id, "identity", identity.value()),
            verified,
            now
        ],
    )?;
    Ok(())
}

fn seal_opt(dk: &DataKey, id: &str, field: &str, v: &Option<String>) -> Option<Vec<u8>> {
    v.as_deref().map(|s| dk.seal(id, field, s))
}

fn open_opt(dk: &DataKey, id: &str, field: &str, v: Option<Vec<u8>>) -> Result<Option<String>> {
    Ok(match v {
        Some(b) => Some(dk.open(id, field, &b)?),
        None => None,
    })
}

fn write_profile(tx: &mut dyn Tx, dk: &DataKey, id: &str, p: &Profile, attrs: &Attributes, now: Millis) -> Result<()> {
    let attrs = serde_json::to_string(attrs).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "UPDATE members SET gender = $2, city = $3, name_enc = $4, birthday_enc = $5, address_enc = $6,
                attributes = $7, updated_at = $8 WHERE id = $1",
        vals![
            id,
            p.gender.map(Gender::as_str),
            p.city.clone(),
            seal_opt(dk, id, "name", &p.name),
            seal_opt(dk, id, "birthday", &p.birthday),
            seal_opt(dk, id, "address", &p.address),
            attrs,
            now
        ],
    )?;
    Ok(())
}

fn read_profile(tx: &mut dyn Tx, dk: &DataKey, id: &str) -> Result<(Profile, Attributes)> {
    let r = tx
        .query_one(
            "SELECT gender, city, name_enc, birthday_enc, address_enc, attributes FROM members WHERE id = $1",
            vals![id],
        )?
        .ok_or_else(|| DomainError::not_found("member"))?;
    let profile = Profile {
        gender: r.opt_string(0)?.as_deref().and_then(Gender::parse),
        city: r.opt_string(1)?,
        name: open_opt(dk, id, "name", r.opt_blob(2)?)?,
        birthday: open_opt(dk, id, "birthday", r.opt_blob(3)?)?,
        address: open_opt(dk, id, "address", r.opt_blob(4)?)?,
    };
    let attrs = serde_json::from_str(&r.string(5)?).map_err(|e| DbError::Other(e.to_string()))?;
    Ok((profile, attrs))
}

fn identities_of(tx: &mut dyn Tx, dk: &DataKey, id: &str) -> Result<Vec<IdentityRecord>> {
    let rows = tx.query(
        "SELECT kind, app_id, value_enc, verified, created_at FROM identities WHERE member_id = $1 ORDER BY created_at, kind",
        vals![id],
    )?;
    rows.iter()
        .map(|r| {
            let kind = IdentityKind::parse(&r.string(0)?)?;
            let value = dk.open(id, "identity", &r.blob(2)?)?;
            Ok(IdentityRecord {
                identity: Identity::from_stored(kind, value, r.opt_string(1)?),
                verified: r.i64(3)? != 0,
                added_at: r.i64(4)?,
            })
        })
        .collect()
}

fn decision_from_row(r: &crate::db::Row) -> Result<Decision> {
    let bad = |what: &str| DbError::Other(format!("stored consent has an unknown {what}"));
    Ok(Decision {
        purpose: Purpose::parse(&r.string(0)?).ok_or_else(|| bad("purpose"))?,
        channel: ContactChannel::parse(&r.string(1)?).ok_or_else(|| bad("channel"))?,
        granted: r.i64(2)? != 0,
        decided_at: r.i64(3)?,
        source_channel: r.opt_string(4)?,
        source_store: r.opt_string(5)?,
        method: r.string(6)?,
    })
}

pub fn consents_of(tx: &mut dyn Tx, id: &str) -> Result<Vec<Decision>> {
    tx.query(
        "SELECT purpose, channel, granted, decided_at, source_channel, source_store, method
         FROM consents WHERE member_id = $1 ORDER BY purpose, channel",
        vals![id],
    )?
    .iter()
    .map(decision_from_row)
    .collect()
}

pub fn consent_history(tx: &mut dyn Tx, id: &str) -> Result<Vec<Decision>> {
    tx.query(
        "SELECT purpose, channel, granted, decided_at, source_channel, source_store, method
         FROM consent_history WHERE member_id = $1 ORDER BY decided_at, id",
        vals![id],
    )?
    .iter()
    .map(decision_from_row)
    .collect()
}

fn store_decision(tx: &mut dyn Tx, id: &str, d: &Decision, actor: &str, history: bool) -> Result<()> {
    tx.exec(
        "INSERT INTO consents (member_id, purpose, channel, granted, decided_at, source_channel, source_store, method)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (member_id, purpose, channel) DO UPDATE SET granted = excluded.granted,
             decided_at = excluded.decided_at, source_channel = excluded.source_channel,
             source_store = excluded.source_store, method = excluded.method
         WHERE excluded.decided_at >= consents.decided_at",
        vals![
            id,
            d.purpose.as_str(),
            d.channel.as_str(),
            d.granted,
            d.decided_at,
            d.source_channel.clone(),
            d.source_store.clone(),
            d.method.as_str()
        ],
    )?;
    if history {
        tx.exec(
            "INSERT INTO consent_history (member_id, purpose, channel, granted, decided_at, source_channel, source_store, method, key_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vals![
                id,
                d.purpose.as_str(),
                d.channel.as_str(),
                d.granted,
                d.decided_at,
                d.source_channel.clone(),
                d.source_store.clone(),
                d.method.as_str(),
                actor
            ],
        )?;
    }
    Ok(())
}

fn record_decisions(
    tx: &mut dyn Tx,
    id: &str,
    changes: &[ConsentChange],
    source: &Source,
    actor: &str,
    now: Millis,
) -> Result<()> {
    for c in changes {
        let d = Decision {
            purpose: c.purpose,
            channel: c.channel,
            granted: c.granted,
            decided_at: now,
            source_channel: source.channel.clone(),
            source_store: source.store_id.clone(),
            method: source.method.clone().unwrap_or_else(|| "api".into()),
        };
        store_decision(tx, id, &d, actor, true)?;
    }
    Ok(())
}

/// Apply consent changes (the others stay). Takes effect at once: the current state is
/// updated in the same transaction as the history.
pub fn change_consents(
    tx: &mut dyn Tx,
    id: &str,
    changes: &[ConsentChange],
    source: &Source,
    actor: &str,
    now: Millis,
) -> Result<String> {
    let id = resolve(tx, id)?;
    record_decisions(tx, &id, changes, source, actor, now)?;
    let changed: Vec<_> = changes
        .iter()
        .map(
            |c| serde_json::json!({"purpose": c.purpose.as_str(), "channel": c.channel.as_str(), "granted": c.granted}),
        )
        .collect();
    outbox::append(
        tx,
        "member.consent_changed",
        Some(&id),
        &serde_json::json!({"member_id": id, "changes": changed}),
        now,
    )?;
    Ok(id)
}

// ---------- reading ----------

/// The member row and its wrapped data key in one query (the hot path of every lookup).
const MEMBER_ROW: &str = "SELECT m.status, m.merged_into, m.seq, m.created_at, m.updated_at, m.source_channel,
        m.source_store, m.gender, m.city, m.name_enc, m.birthday_enc, m.address_enc, m.attributes, k.wrapped,
        m.absorbed, m.tier
    FROM members m LEFT JOIN member_keys k ON k.member_id = m.id WHERE m.id = $1";

pub fn load(tx: &mut dyn Tx, kr: &Keyring, requested: &str) -> Result<MemberRecord> {
    let mut id = requested.to_string();
    let mut hops = 0;
    let r = loop {
        let r = tx.query_one(MEMBER_ROW, vals![id.as_str()])?.ok_or_else(|| DomainError::not_found("member"))?;
        match r.string(0)?.as_str() {
            "active" => break r,
            "erased" => {
                return Err(DomainError::new(Code::MemberErased, "this member was erased").into());
            }
            _ if hops < 8 => {
                hops += 1;
                id = r.opt_string(1)?.ok_or_else(|| DbError::Other("merged member without survivor".into()))?;
            }
            _ => return Err(DbError::Other("merge chain too long".into()).into()),
        }
    };
    let wrapped = r.opt_blob(13)?.ok_or_else(|| DbError::Other(format!("member {id} has no data key")))?;
    let dk = kr.unwrap_data_key(&id, &wrapped)?;
    let profile = Profile {
        gender: r.opt_string(7)?.as_deref().and_then(Gender::parse),
        city: r.opt_string(8)?,
        name: open_opt(&dk, &id, "name", r.opt_blob(9)?)?,
        birthday: open_opt(&dk, &id, "birthday", r.opt_blob(10)?)?,
        address: open_opt(&dk, &id, "address", r.opt_blob(11)?)?,
    };
    let attributes = serde_json::from_str(&r.string(12)?).map_err(|e| DbError::Other(e.to_string()))?;
    let identities = identities_of(tx, &dk, &id)?;
    let consents = consents_of(tx, &id)?;
    let merged_from = if r.i64(14)? == 0 {
        Vec::new()
    } else {
        tx.query("SELECT from_id FROM merges WHERE into_id = $1 ORDER BY merged_at, from_id", vals![id.as_str()])?
            .iter()
            .map(|r| r.string(0))
            .collect::<Result<Vec<_>, _>>()?
    };
    let points_balance = crate::points::balance(tx, &id)?;
    let recent_orders = crate::orders::recent(tx, &id, 5)?;
    Ok(MemberRecord {
        requested_id: (id != requested).then(|| requested.to_string()),
        tier: r.opt_string(15)?,
        points_balance,
        recent_orders,
        seq: r.i64(2)?,
        created_at: r.i64(3)?,
        updated_at: r.i64(4)?,
        source: Source { channel: r.opt_string(5)?, store_id: r.opt_string(6)?, method: None },
        id,
        profile,
        attributes,
        identities,
        consents,
        merged_from,
    })
}

pub fn lookup(tx: &mut dyn Tx, kr: &Keyring, identity: &Identity) -> Result<MemberRecord> {
    match owner(tx, kr, identity)? {
        Some(id) => load(tx, kr, &id),
        None => Err(DomainError::not_found("member with this identity").into()),
    }
}

pub fn export(tx: &mut dyn Tx, kr: &Keyring, id: &str) -> Result<Export> {
    let member = load(tx, kr, id)?;
    let consent_history = consent_history(tx, &member.id)?;
    let merges = tx
        .query(
            "SELECT from_id, into_id, merged_at, identities_moved FROM merges WHERE into_id = $1 ORDER BY merged_at",
            vals![member.id.as_str()],
        )?
        .iter()
        .map(|r| {
            Ok(MergeRecord {
                from_id: r.string(0)?,
                into_id: r.string(1)?,
                merged_at: r.i64(2)?,
                identities_moved: r.i64(3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Export { member, consent_history, merges })
}

// ---------- changes ----------

/// Overwrite the profile fields that `changes` sets and apply attribute changes.
pub fn update_profile(
    tx: &mut dyn Tx,
    kr: &Keyring,
    id: &str,
    changes: &Profile,
    attrs: &Attributes,
    now: Millis,
) -> Result<String> {
    let id = resolve(tx, id)?;
    let declared = attribute_defs(tx)?;
    let dk = data_key(tx, kr, &id)?;
    let (mut p, mut a) = read_profile(tx, &dk, &id)?;
    p.update_from(changes);
    profile::apply_attributes(&mut a, attrs, &declared)?;
    write_profile(tx, &dk, &id, &p, &a, now)?;
    outbox::append(tx, "member.updated", Some(&id), &serde_json::json!({ "member_id": id }), now)?;
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct Merged {
    pub id: String,
    pub absorbed: String,
    pub identities_moved: usize,
}

/// Merge `from` into `into` in this transaction: identities (re-sealed under the survivor's
/// key), profile and attributes (survivor first), consents (latest decision wins) and every
/// member-owned table. `from` is left as a pointer to `into`.
pub fn merge_members(
    tx: &mut dyn Tx,
    kr: &Keyring,
    into: &str,
    from: &str,
    actor: &str,
    now: Millis,
) -> Result<Merged> {
    // Lock in a fixed order so that two crossing merges cannot deadlock on PostgreSQL.
    let (a, b) = if into <= from { (into, from) } else { (from, into) };
    let ra = resolve(tx, a)?;
    let rb = resolve(tx, b)?;
    let (into, from) = if into <= from { (ra, rb) } else { (rb, ra) };
    if into == from {
        return Err(DomainError::new(Code::Conflict, "these ids are already the same member").into());
    }
    let dk_into = data_key(tx, kr, &into)?;
    let dk_from = data_key(tx, kr, &from)?;
    let snap = |tx: &mut dyn Tx, dk: &DataKey, id: &str| -> Result<MemberSnapshot> {
        let (profile, attributes) = read_profile(tx, dk, id)?;
        Ok(MemberSnapshot {
            profile,
            attributes,
            identities: identities_of(tx, dk, id)?.into_iter().map(|r| r.identity).collect(),
            consents: consents_of(tx, id)?,
        })
    };
    let s_into = snap(tx, &dk_into, &into)?;
    let s_from = snap(tx, &dk_from, &from)?;
    let merged = merge::merge(&s_into, &s_from);

    for identity in &s_from.identities {
        tx.exec(
            "UPDATE identities SET member_id = $2, value_enc = $3 WHERE blind = $1",
            vals![blind(kr, identity), into.as_str(), dk_into.seal(&into, "identity", identity.value())],
        )?;
    }
    write_profile(tx, &dk_into, &into, &merged.profile, &merged.attributes, now)?;
    tx.exec("DELETE FROM consents WHERE member_id = $1 OR member_id = $2", vals![into.as_str(), from.as_str()])?;
    for d in merged.consents.values() {
        store_decision(tx, &into, d, actor, false)?;
    }
    for (table, column) in MEMBER_OWNED {
        tx.exec(&format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2"), vals![into.as_str(), from.as_str()])?;
    }
    crate::tags::merge(tx, &into, &from)?;
    // The survivor's stage stands; the index records a new one if the merged history moves it.
    tx.exec("DELETE FROM member_lifecycle WHERE member_id = $1", vals![from.as_str()])?;
    // The absorbed member keeps only its pointer; its personal data now lives in the survivor.
    tx.exec(
        "UPDATE members SET status = 'merged', merged_into = $2, name_enc = NULL, birthday_enc = NULL,
                address_enc = NULL, gender = NULL, city = NULL, attributes = '{}', updated_at = $3 WHERE id = $1",
        vals![from.as_str(), into.as_str(), now],
    )?;
    tx.exec(
        "UPDATE members SET absorbed = absorbed + 1 + (SELECT absorbed FROM members WHERE id = $2) WHERE id = $1",
        vals![into.as_str(), from.as_str()],
    )?;
    tx.exec("UPDATE members SET merged_into = $1 WHERE merged_into = $2", vals![into.as_str(), from.as_str()])?;
    tx.exec("UPDATE merges SET into_id = $1 WHERE into_id = $2", vals![into.as_str(), from.as_str()])?;
    tx.exec("DELETE FROM member_keys WHERE member_id = $1", vals![from.as_str()])?;
    tx.exec(
        "INSERT INTO merges (from_id, into_id, merged_at, key_id, identities_moved) VALUES ($1, $2, $3, $4, $5)",
        vals![from.as_str(), into.as_str(), now, actor, s_from.identities.len() as i64],
    )?;
    outbox::append(tx, "member.merged", Some(&into), &serde_json::json!({"into": into, "from": from}), now)?;
    Ok(Merged { id: into, absorbed: from, identities_moved: s_from.identities.len() })
}

/// Erase a person: identities, data key, profile, attributes and current consents go; stored
/// idempotent responses that named the member go too. The member row stays as a tombstone so
/// that orders and events kept for accounting remain pseudonymised under its id.
pub fn erase(tx: &mut dyn Tx, id: &str, now: Millis) -> Result<String> {
    let id = resolve(tx, id)?;
    // Events first: unclaimed events are found through the identities about to go.
    crate::events::erase_member(tx, &id)?;
    tx.exec("DELETE FROM member_tags WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM stock_subscriptions WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM member_lifecycle WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM lifecycle_transitions WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM identities WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM member_keys WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec("DELETE FROM consents WHERE member_id = $1", vals![id.as_str()])?;
    tx.exec(
        "UPDATE members SET status = 'erased', name_enc = NULL, birthday_enc = NULL, address_enc = NULL,
                gender = NULL, city = NULL, attributes = '{}', updated_at = $2 WHERE id = $1",
        vals![id.as_str(), now],
    )?;
    let absorbed: Vec<String> = tx
        .query("SELECT id FROM members WHERE merged_into = $1", vals![id.as_str()])?
        .iter()
        .map(|r| r.string(0))
        .collect::<Result<_, _>>()?;
    for a in absorbed.iter().chain(std::iter::once(&id)) {
        tx.exec("DELETE FROM idempotency WHERE member_id = $1", vals![a.as_str()])?;
    }
    tx.exec("UPDATE members SET status = 'erased' WHERE merged_into = $1", vals![id.as_str()])?;
    outbox::append(tx, "member.erased", Some(&id), &serde_json::json!({ "member_id": id }), now)?;
    Ok(id)
}

// ---------- custom attributes ----------

pub fn attribute_defs(tx: &mut dyn Tx) -> Result<BTreeMap<String, AttributeKind>> {
    tx.query("SELECT name, kind FROM attribute_defs ORDER BY name", &[])?
        .iter()
        .map(|r| {
            let kind =
                AttributeKind::parse(&r.string(1)?).ok_or_else(|| DbError::Other("unknown attribute kind".into()))?;
            Ok((r.string(0)?, kind))
        })
        .collect()
}

/// Declare a custom attribute. Declaring it again with the same type changes nothing; with
/// another type it is refused, since stored values would stop matching their declaration.
pub fn define_attribute(tx: &mut dyn Tx, name: &str, kind: AttributeKind, now: Millis) -> Result<bool> {
    profile::check_attribute_name(name)?;
    let sql = format!("SELECT kind FROM attribute_defs WHERE name = $1{}", tx.for_update());
    if let Some(r) = tx.query_one(&sql, vals![name])? {
        let existing = r.string(0)?;
        if existing == kind.as_str() {
            return Ok(false);
        }
        return Err(Error::Domain(DomainError::new(
            Code::Conflict,
            format!("attribute `{name}` is already declared as {existing}"),
        )));
    }
    tx.exec(
        "INSERT INTO attribute_defs (name, kind, created_at) VALUES ($1, $2, $3)",
        vals![name, kind.as_str(), now],
    )?;
    Ok(true)
}

/// Count of active members (for the demo loader's "is the store empty" check).
pub fn count_active(tx: &mut dyn Tx) -> Result<i64> {
    Ok(tx
        .query_one("SELECT count(*) FROM members WHERE status = 'active'", &[])?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0))
}
