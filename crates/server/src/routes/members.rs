//! `/v1/members`: registration, the 360° view, lookup by any identity or member code,
//! merging, profile updates, consents, erasure, export and the member QR code.

use crate::extract::{Caller, Json};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::view::*;
use crate::{AppState, audit_admin};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ronghe_domain::auth::{Action, Role};
use ronghe_domain::consent::{ContactChannel, Purpose};
use ronghe_domain::error::Validator;
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::Profile;
use ronghe_domain::{DomainError, qr};
use ronghe_store::members::{self, ConsentChange, OnConflict, Outcome, Registration, Source};
use ronghe_store::{Store, audit};

fn parse_identity(kind: &str, value: &str, app_id: Option<&str>) -> Result<Identity, DomainError> {
    let kind = IdentityKind::parse(kind)?;
    Identity::parse(kind, value, app_id)
}

fn parse_profile(p: &ProfileIn) -> Result<Profile, DomainError> {
    Profile::parse(
        p.name.as_deref(),
        p.gender.as_deref(),
        p.birthday.as_deref(),
        p.city.as_deref(),
        p.address.as_deref(),
    )
}

fn parse_consents(v: &mut Validator, prefix: &str, items: &[ConsentIn]) -> Vec<ConsentChange> {
    let mut out = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let purpose = Purpose::parse(&c.purpose);
        let channel = ContactChannel::parse(&c.channel);
        if purpose.is_none() {
            v.push(format!("{prefix}[{i}].purpose"), "one of marketing, profiling, personalisation");
        }
        if channel.is_none() {
            v.push(format!("{prefix}[{i}].channel"), "one of sms, app_push, wecom, email, mini_program");
        }
        if let (Some(purpose), Some(channel)) = (purpose, channel) {
            out.push(ConsentChange { purpose, channel, granted: c.granted });
        }
    }
    out
}

/// The source of a write, held to the key's scope: a store key writes only for its own
/// store, a channel key only for its own channel.
fn scoped_source(caller: &Caller, s: &SourceIn) -> Result<Source, ApiError> {
    let p = &caller.0;
    let store_id = match (&p.store_id, &s.store_id) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(format!("this key writes only for store {own}")));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked.clone(),
    };
    let channel = match (&p.channel, &s.channel) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(format!("this key writes only for channel {own}")));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked.clone().or_else(|| (p.role == Role::Store).then(|| "pos".to_string())),
    };
    Ok(Source { channel, store_id, method: s.method.clone() })
}

async fn view(state: &AppState, caller: &Caller, id: String, action: &'static str) -> ApiResult<MemberView> {
    let rec = state.store.read_short(move |tx, kr| members::load(tx, kr, &id)).await?;
    let mut v = MemberView::build(&rec, state.masked(caller));
    describe(state, &mut v, true).await?;
    state.audit_unmasked(caller, &v, action).await?;
    Ok(v)
}

/// Tags, RFM, lifecycle and dimensions from the audience index; with `raw`, RFM's raw values
/// from the store too (one query, left out of the hot lookup path).
async fn describe(state: &AppState, v: &mut MemberView, raw: bool) -> ApiResult<()> {
    let now = state.now();
    let today = ronghe_domain::calendar::day_of(now);
    // A member written a moment ago is reloaded first; never wait for a build here: a till's
    // lookup answers without the index if need be.
    if state.audience.is_pending(&v.id) {
        state.audience.flush(&state.store, now).await?;
    }
    let window = {
        let guard = state.audience.current();
        let Some(b) = guard.as_ref() else { return Ok(()) };
        b.describe(v, today);
        b.rfm.window_days
    };
    if raw {
        let id = v.id.clone();
        let events = state.store.read_short(move |tx, _| ronghe_store::events::timeline(tx, &id, 10)).await?;
        v.timeline = Some(events.iter().map(crate::routes::audience::event_json).collect());
    }
    if raw && let Some(rfm) = v.rfm.as_mut() {
        let id = v.id.clone();
        let from = ronghe_domain::calendar::start_of(today - window as i32 + 1);
        let until = ronghe_domain::calendar::start_of(today + 1);
        if let Some((last, f, m)) =
            state.store.read_short(move |tx, _| ronghe_store::audience::rfm_raw_of(tx, &id, until, from)).await?
        {
            rfm.recency_days = Some((today - ronghe_domain::calendar::day_of(last)).max(0) as u32);
            rfm.frequency = Some(f);
            rfm.monetary_fen = Some(m);
        }
    }
    Ok(())
}

/// Register a member with any mix of identities
///
/// Safe to repeat: when the identities already belong to one member, that member is returned
/// (200), unowned identities attach, empty profile fields fill and consents are recorded.
/// Identities of two members are `409 identity_conflict` unless `on_conflict` is `merge`.
#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = RegisterIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay-safe retries")),
    responses((status = 201, body = RegisteredView, description = "created"), (status = 200, body = RegisteredView, description = "already known"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RegisterIn>,
) -> ApiResult<(StatusCode, axum::Json<RegisteredView>)> {
    caller.require(Action::RegisterMember)?;
    let mut v = Validator::new();
    if body.identities.is_empty() {
        v.push("identities", "at least one identity");
    }
    if body.identities.len() > 20 {
        v.push("identities", "at most 20 identities");
    }
    let identities: Vec<(Identity, bool)> = body
        .identities
        .iter()
        .enumerate()
        .filter_map(|(i, x)| {
            v.check(&format!("identities[{i}]"), parse_identity(&x.kind, &x.value, x.app_id.as_deref()))
        })
        .map(|id| (id, true))
        .collect();
    let profile = v.check("profile", parse_profile(&body.profile)).unwrap_or_default();
    let consents = parse_consents(&mut v, "consents", &body.consents);
    let on_conflict = match body.on_conflict.as_deref() {
        None | Some("reject") => OnConflict::Reject,
        Some("merge") => {
            if !caller.0.role.may(Action::MergeMembers) {
                return Err(ApiError::forbidden("a store key may not merge members; ask an admin or channel key"));
            }
            OnConflict::Merge
        }
        Some(_) => {
            v.push("on_conflict", "reject or merge");
            OnConflict::Reject
        }
    };
    v.finish()?;
    let source = scoped_source(&caller, &body.source)?;
    let reg = Registration {
        member_id: None,
        identities,
        profile,
        attributes: body.attributes,
        consents,
        source,
        on_conflict,
    };
    let now = state.now();
    let p = caller.0.clone();
    let r = state
        .store
        .write(move |tx, kr| {
            let r = members::register(tx, kr, &reg, &p.key_id, now)?;
            audit_admin(tx, &p, now, "member.register", Some(&r.id))?;
            Ok(r)
        })
        .await?;
    let absorbed_ids = match &r.outcome {
        Outcome::Merged(a) => a.clone(),
        _ => Vec::new(),
    };
    state.refresh_members(std::iter::once(r.id.clone()).chain(absorbed_ids)).await?;
    let member = view(&state, &caller, r.id.clone(), "member.read").await?;
    let (status, outcome, absorbed) = match r.outcome {
        Outcome::Created => (StatusCode::CREATED, "created", vec![]),
        Outcome::Existing => (StatusCode::OK, "existing", vec![]),
        Outcome::Merged(a) => (StatusCode::OK, "merged", a),
    };
    Ok((status, axum::Json(RegisteredView { outcome: outcome.into(), absorbed, member })))
}

/// Read a member's 360° view
///
/// Personal data is masked for roles not entitled to see it; unmasked reads are audited.
/// An id absorbed by a merge answers with the survivor and `merged_into`.
#[utoipa::path(get, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = MemberView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    caller.require(Action::ReadMember)?;
    Ok(axum::Json(view(&state, &caller, id, "member.read").await?))
}

async fn lookup_any(state: &AppState, caller: &Caller, q: LookupIn) -> ApiResult<axum::Json<MemberView>> {
    caller.require(Action::ReadMember)?;
    if caller.0.role != Role::Admin
        && let Err(retry) = state.limiter.check(&caller.0.key_id, crate::ratelimit::Bucket::Lookups)
    {
        return Err(crate::middleware::rate_limited(retry));
    }
    let now = state.now();
    let rec = if q.kind == "qr_token" {
        let id = qr::verify(state.store.keyring().qr_key(), &q.value, now)?;
        state.store.read_short(move |tx, kr| members::load(tx, kr, &id)).await?
    } else {
        let identity = parse_identity(&q.kind, &q.value, q.app_id.as_deref())?;
        state.store.read_short(move |tx, kr| members::lookup(tx, kr, &identity)).await?
    };
    let mut v = MemberView::build(&rec, state.masked(caller));
    describe(state, &mut v, false).await?;
    state.audit_unmasked(caller, &v, "member.lookup").await?;
    Ok(axum::Json(v))
}

/// Find a member by any identity or a scanned member code
///
/// `type` is an identity type or `qr_token`. Personal data stays out of URLs: prefer this to
/// the GET form. Lookups by non-admin keys have their own rate limit.
#[utoipa::path(post, path = "/v1/members/lookup", tag = "members", request_body = LookupIn,
    responses((status = 200, body = MemberView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    Json(q): Json<LookupIn>,
) -> ApiResult<axum::Json<MemberView>> {
    lookup_any(&state, &caller, q).await
}

/// Find a member by identity (query string form)
///
/// Kept for convenience; the identity ends up in access logs of proxies, so prefer POST.
#[utoipa::path(get, path = "/v1/members/lookup", tag = "members",
    params(("type" = String, Query), ("value" = String, Query), ("app_id" = Option<String>, Query)),
    responses((status = 200, body = MemberView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn lookup_get(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<axum::Json<MemberView>> {
    let mut v = Validator::new();
    let kind = q.get("type").cloned().unwrap_or_default();
    let value = q.get("value").cloned().unwrap_or_default();
    if kind.is_empty() {
        v.push("type", "required");
    }
    if value.is_empty() {
        v.push("value", "required");
    }
    v.finish()?;
    lookup_any(&state, &caller, LookupIn { kind, value, app_id: q.get("app_id").cloned() }).await
}

/// Merge two members into one
///
/// `from` is absorbed into `into` in one transaction: identities, profile (the survivor's
/// values win, gaps are filled), consents (the latest decision per purpose and channel wins)
/// and history. `from` keeps answering with a pointer to the survivor.
#[utoipa::path(post, path = "/v1/members/merge", tag = "members", request_body = MergeIn,
    responses((status = 200, body = MergedView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<MergeIn>,
) -> ApiResult<axum::Json<MergedView>> {
    caller.require(Action::MergeMembers)?;
    let now = state.now();
    let p = caller.0.clone();
    let m = state
        .store
        .write(move |tx, kr| {
            let m = members::merge_members(tx, kr, &body.into, &body.from, &p.key_id, now)?;
            audit_admin(tx, &p, now, "member.merge", Some(&m.id))?;
            Ok(m)
        })
        .await?;
    state.refresh_members([m.id.clone(), m.absorbed.clone()]).await?;
    let member = view(&state, &caller, m.id.clone(), "member.read").await?;
    Ok(axum::Json(MergedView { absorbed: m.absorbed, identities_moved: m.identities_moved, member }))
}

/// Update a member's profile and custom attributes
///
/// Fields present are overwritten; absent ones stay. An attribute set to `null` is removed.
#[utoipa::path(patch, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)), request_body = UpdateIn,
    responses((status = 200, body = MemberView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateIn>,
) -> ApiResult<axum::Json<MemberView>> {
    caller.require(Action::UpdateMember)?;
    let profile = parse_profile(&body.profile).map_err(|e| e.within("profile"))?;
    let now = state.now();
    let p = caller.0.clone();
    let attrs = body.attributes;
    let id = state
        .store
        .write(move |tx, kr| {
            let id = members::update_profile(tx, kr, &id, &profile, &attrs, now)?;
            audit_admin(tx, &p, now, "member.update", Some(&id))?;
            Ok(id)
        })
        .await?;
    state.refresh_members([id.clone()]).await?;
    Ok(axum::Json(view(&state, &caller, id, "member.read").await?))
}

/// Read a member's consents and their history
#[utoipa::path(get, path = "/v1/members/{id}/consents", tag = "consent", params(("id" = String, Path)),
    responses((status = 200, body = ConsentsView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ConsentsView>> {
    caller.require(Action::ReadMember)?;
    consents_view(&state.store, id).await
}

async fn consents_view(store: &Store, id: String) -> ApiResult<axum::Json<ConsentsView>> {
    let (id, current, history) = store
        .read(move |tx, _| {
            let id = members::resolve(tx, &id)?;
            Ok((id.clone(), members::consents_of(tx, &id)?, members::consent_history(tx, &id)?))
        })
        .await?;
    Ok(axum::Json(ConsentsView {
        id,
        consents: current.iter().map(ConsentView::from).collect(),
        history: history.iter().map(ConsentView::from).collect(),
    }))
}

/// Record consent decisions
///
/// Applies the listed changes and leaves the others; a pair never decided is not granted.
/// Each change is stored with when, where (channel, store) and how; withdrawal is immediate.
#[utoipa::path(put, path = "/v1/members/{id}/consents", tag = "consent", params(("id" = String, Path)), request_body = ConsentsIn,
    responses((status = 200, body = ConsentsView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn change_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ConsentsIn>,
) -> ApiResult<axum::Json<ConsentsView>> {
    caller.require(Action::RecordConsent)?;
    let mut v = Validator::new();
    if body.changes.is_empty() {
        v.push("changes", "at least one change");
    }
    let changes = parse_consents(&mut v, "changes", &body.changes);
    v.finish()?;
    let source = scoped_source(&caller, &body.source)?;
    let now = state.now();
    let p = caller.0.clone();
    let id = state
        .store
        .write(move |tx, _| {
            let id = members::change_consents(tx, &id, &changes, &source, &p.key_id, now)?;
            audit_admin(tx, &p, now, "member.consents", Some(&id))?;
            Ok(id)
        })
        .await?;
    state.refresh_members([id.clone()]).await?;
    consents_view(&state.store, id).await
}

/// Erase a member (PIPL)
///
/// Personal data, identities and the member's data key are destroyed; the id remains as a
/// pseudonymous tombstone for records kept for accounting. Later reads answer 410.
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = ErasedView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ErasedView>> {
    caller.require(Action::EraseMember)?;
    let now = state.now();
    let p = caller.0.clone();
    let id = state
        .store
        .write(move |tx, _| {
            let id = members::erase(tx, &id, now)?;
            audit::append(tx, now, &p.key_id, p.role.as_str(), "member.erase", Some(&id), &serde_json::json!({}))?;
            Ok(id)
        })
        .await?;
    state.refresh_members([id.clone()]).await?;
    Ok(axum::Json(ErasedView { id, erased: true }))
}

/// Export everything held about a member
///
/// The member's own copy of their data (PIPL right of access): never masked, always audited.
#[utoipa::path(get, path = "/v1/members/{id}/export", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = ExportView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ExportView>> {
    caller.require(Action::ExportMember)?;
    let e = state.store.read(move |tx, kr| members::export(tx, kr, &id)).await?;
    let now = state.now();
    let (p, target) = (caller.0.clone(), e.member.id.clone());
    state
        .store
        .write(move |tx, _| {
            audit::append(tx, now, &p.key_id, p.role.as_str(), "member.export", Some(&target), &serde_json::json!({}))
        })
        .await?;
    Ok(axum::Json(ExportView::build(&e, now)))
}

/// Issue a member QR code (会员码)
///
/// A signed token valid for about a minute, shown in the mini-program; the till resolves it
/// with lookup type `qr_token`. It carries no personal data.
#[utoipa::path(post, path = "/v1/members/{id}/qr", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = QrView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn qr_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<QrView>> {
    caller.require(Action::IssueQr)?;
    let id = state.store.read_short(move |tx, _| members::resolve(tx, &id)).await?;
    let expires = state.now() + qr::TTL_MS;
    Ok(axum::Json(QrView {
        token: qr::sign(state.store.keyring().qr_key(), &id, expires),
        expires_at: crate::clock::rfc3339(expires),
    }))
}
