//! Coupon templates (`/v1/coupon-templates`) and coupons (`/v1/coupons`): issue to a member,
//! in bulk, or as unassigned claim codes; scan a code at the till.

use crate::clock::rfc3339;
use crate::extract::{Caller, Json};
use crate::problem::{ApiResult, Problem};
use crate::{AppState, audit_admin};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ronghe_domain::DomainError;
use ronghe_domain::auth::{Action, Role};
use ronghe_domain::coupon::{Template, check_context};
use ronghe_store::coupons::{self, CouponRecord, TemplateRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub id: String,
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
    pub issued: i64,
    pub spent_fen: i64,
    pub created_at: String,
}

fn template_view(t: &TemplateRecord) -> TemplateView {
    TemplateView {
        id: t.id.clone(),
        template: serde_json::to_value(&t.template).unwrap_or_default(),
        issued: t.issued,
        spent_fen: t.spent_fen,
        created_at: rfc3339(t.created_at),
    }
}

/// Create a coupon template
///
/// `benefit`: `{"type":"amount_off","threshold_fen","off_fen"}` (满减), `{"type":"percent_off",
/// "percent_bp","cap_fen","threshold_fen"}` or `{"type":"fixed_price","sku","price_fen"}`;
/// `validity`: `{"from_ms","to_ms"}` or `{"days_after_issue"}`; restrictions by channel, store,
/// SKU or category; `stackable`; limits per member and in total; a total `budget_fen`.
#[utoipa::path(post, path = "/v1/coupon-templates", tag = "coupons", request_body = Object,
    responses((status = 201, body = TemplateView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, axum::Json<TemplateView>)> {
    caller.require(Action::ManageCoupons)?;
    let t: Template = serde_json::from_value(body).map_err(|e| DomainError::field("template", e.to_string()))?;
    t.validate()?;
    let now = state.now();
    let p = caller.0.clone();
    let rec = state
        .store
        .write(move |tx, _| {
            let id = coupons::create_template(tx, &t, now)?;
            audit_admin(tx, &p, now, "coupon_template.create", Some(&id))?;
            coupons::template(tx, &id)
        })
        .await?
        .ok_or_else(|| DomainError::not_found("coupon template"))?;
    Ok((StatusCode::CREATED, axum::Json(template_view(&rec))))
}

/// Read a coupon template, with how many were issued and the discount given so far
#[utoipa::path(get, path = "/v1/coupon-templates/{id}", tag = "coupons", params(("id" = String, Path)),
    responses((status = 200, body = TemplateView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TemplateView>> {
    caller.require(Action::ReadCoupons)?;
    let t = state
        .store
        .read_short(move |tx, _| coupons::template(tx, &id))
        .await?
        .ok_or_else(|| DomainError::not_found("coupon template"))?;
    Ok(axum::Json(template_view(&t)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IssueIn {
    pub template_id: String,
    /// Issue to this member…
    pub member_id: Option<String>,
    /// …or to each of these members (one result each)…
    pub member_ids: Option<Vec<String>>,
    /// …or this many unassigned claim codes.
    pub count: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponOut {
    pub code: String,
    pub template_id: String,
    pub member_id: Option<String>,
    /// issued or redeemed
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
    pub order_id: Option<String>,
}

fn coupon_out(c: &CouponRecord) -> CouponOut {
    CouponOut {
        code: c.code.clone(),
        template_id: c.template_id.clone(),
        member_id: c.member_id.clone(),
        status: c.status.clone(),
        valid_from: rfc3339(c.valid_from),
        valid_to: rfc3339(c.valid_to),
        order_id: c.order_id.clone(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueRefusal {
    pub member_id: Option<String>,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueOut {
    pub issued: Vec<CouponOut>,
    /// Members (or claim codes) that could not be issued one, and why (limits, unknown member…).
    pub refused: Vec<IssueRefusal>,
}

/// Issue coupons: to a member, to a list of members, or as unassigned claim codes
///
/// Each coupon is checked against the template's total and per-member limits. Codes carry 80
/// random bits.
#[utoipa::path(post, path = "/v1/coupons", tag = "coupons", request_body = IssueIn,
    responses((status = 201, body = IssueOut), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<IssueIn>,
) -> ApiResult<(StatusCode, axum::Json<IssueOut>)> {
    caller.require(Action::IssueCoupons)?;
    let targets: Vec<Option<String>> = match (body.member_id, body.member_ids, body.count) {
        (Some(m), None, None) => vec![Some(m)],
        (None, Some(ms), None) if (1..=10_000).contains(&ms.len()) => ms.into_iter().map(Some).collect(),
        (None, None, Some(n)) if (1..=10_000).contains(&n) => vec![None; n as usize],
        _ => {
            return Err(DomainError::field(
                "member_id",
                "give exactly one of member_id, member_ids (1–10,000) or count (1–10,000)",
            )
            .into());
        }
    };
    let now = state.now();
    let p = caller.0.clone();
    let tid = body.template_id;
    let out = state
        .store
        .write(move |tx, _| {
            coupons::template(tx, &tid)?.ok_or_else(|| DomainError::not_found("coupon template"))?;
            let mut issued = Vec::new();
            let mut refused = Vec::new();
            for m in &targets {
                match coupons::issue(tx, &tid, m.as_deref(), now) {
                    Ok(c) => issued.push(coupon_out(&c)),
                    Err(ronghe_store::Error::Domain(e)) => refused.push(IssueRefusal {
                        member_id: m.clone(),
                        code: e.code.as_str().into(),
                        message: e.message,
                    }),
                    Err(e) => return Err(e),
                }
            }
            audit_admin(tx, &p, now, "coupon.issue", Some(&tid))?;
            Ok(IssueOut { issued, refused })
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ScanQuery {
    /// Where it would be used (a scoped key's own channel and store by default).
    pub channel: Option<String>,
    pub store_id: Option<String>,
    /// Who would use it.
    pub member_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanView {
    #[serde(flatten)]
    pub coupon: CouponOut,
    pub name: String,
    #[schema(value_type = Object)]
    pub benefit: serde_json::Value,
    #[schema(value_type = Object)]
    pub restrictions: serde_json::Value,
    pub stackable: bool,
    /// Whether it applies here now (a threshold is checked against the basket when ordering).
    pub applies: bool,
    /// Why not: already_redeemed, not_yet_valid, expired, other_member, wrong_channel, wrong_store.
    pub reason: Option<String>,
}

/// Scan a coupon code at the till
///
/// Says what the coupon gives and whether it applies at this channel and store, for this
/// member, now — and why not.
#[utoipa::path(get, path = "/v1/coupons/{code}", tag = "coupons", params(("code" = String, Path), ScanQuery),
    responses((status = 200, body = ScanView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn scan(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult<axum::Json<ScanView>> {
    caller.require(Action::ReadCoupons)?;
    let c = state
        .store
        .read_short(move |tx, _| coupons::get(tx, &code))
        .await?
        .ok_or_else(|| DomainError::not_found("coupon"))?;
    let p = &caller.0;
    let channel = p
        .channel
        .clone()
        .or(q.channel)
        .unwrap_or_else(|| if p.role == Role::Store { "pos".into() } else { String::new() });
    let store_id = p.store_id.clone().or(q.store_id);
    let member = match q.member_id {
        Some(m) => Some(state.store.read_short(move |tx, _| ronghe_store::members::resolve(tx, &m)).await?),
        None => None,
    };
    let check = check_context(
        &c.held,
        &channel,
        store_id.as_deref(),
        member.as_deref().or(c.member_id.as_deref()),
        state.now(),
    );
    Ok(axum::Json(ScanView {
        name: c.held.template.name.clone(),
        benefit: serde_json::to_value(&c.held.template.benefit).unwrap_or_default(),
        restrictions: serde_json::to_value(&c.held.template.restrictions).unwrap_or_default(),
        stackable: c.held.template.stackable,
        applies: check.is_ok(),
        reason: check.err().map(|r| r.as_str().to_string()),
        coupon: coupon_out(&c),
    }))
}
