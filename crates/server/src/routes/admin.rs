//! Administration over HTTP: API keys, the audit log and custom attribute declarations.

use crate::extract::{Caller, Json};
use crate::problem::{ApiResult, Problem};
use crate::{AppState, audit_admin};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ronghe_domain::DomainError;
use ronghe_domain::auth::{Action, Role};
use ronghe_domain::error::Validator;
use ronghe_domain::profile::AttributeKind;
use ronghe_store::{audit, keys, members};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyIn {
    /// admin, marketer, analyst, store, channel, tracker
    pub role: String,
    pub name: Option<String>,
    /// Required for a store key: the one store it writes for.
    pub store_id: Option<String>,
    /// Required for channel and tracker keys: the channel they speak for.
    pub channel: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    /// The secret, shown this once; only its hash is stored.
    pub key: String,
    pub role: String,
    pub name: String,
    pub store_id: Option<String>,
    pub channel: Option<String>,
}

/// Validate a new key's role and scope (shared with `ronghe keys create`).
pub fn new_key(
    role: &str,
    name: Option<String>,
    store_id: Option<String>,
    channel: Option<String>,
) -> Result<keys::NewKey, DomainError> {
    let mut v = Validator::new();
    let role = Role::parse(role);
    match role {
        None => v.push("role", "one of admin, marketer, analyst, store, channel, tracker"),
        Some(Role::Store) if store_id.as_deref().is_none_or(str::is_empty) => {
            v.push("store_id", "a store key needs its store")
        }
        Some(Role::Channel | Role::Tracker) if channel.as_deref().is_none_or(str::is_empty) => {
            v.push("channel", "a channel or tracker key needs its channel")
        }
        _ => {}
    }
    v.finish()?;
    let role = role.unwrap_or(Role::Analyst);
    Ok(keys::NewKey {
        role,
        name: name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("{} key", role.as_str())),
        store_id: if role == Role::Store { store_id } else { None },
        channel: if matches!(role, Role::Channel | Role::Tracker) { channel } else { None },
    })
}

/// Create an API key
///
/// The secret is returned once and stored only as a SHA-256 hash.
#[utoipa::path(post, path = "/v1/keys", tag = "admin", request_body = KeyIn,
    responses((status = 201, body = KeyView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<KeyIn>,
) -> ApiResult<(StatusCode, axum::Json<KeyView>)> {
    caller.require(Action::ManageKeys)?;
    let key = new_key(&body.role, body.name, body.store_id, body.channel)?;
    let now = state.now();
    let p = caller.0.clone();
    let k = key.clone();
    let created = state
        .store
        .write(move |tx, _| {
            let c = keys::create(tx, &k, now)?;
            audit_admin(tx, &p, now, "key.create", Some(&c.id))?;
            Ok(c)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(KeyView {
            id: created.id,
            key: created.secret,
            role: key.role.as_str().into(),
            name: key.name,
            store_id: key.store_id,
            channel: key.channel,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Page backwards: the smallest `id` of the previous page.
    pub before: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
    /// Only entries about this target (e.g. a member id).
    pub target: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    pub key_id: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Read the audit log
///
/// Every admin action and every read of unmasked personal data, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    caller.require(Action::ReadAudit)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(DomainError::field("limit", "1 to 500").into());
    }
    let entries = state.store.read(move |tx, _| audit::list(tx, q.before, limit, q.target.as_deref())).await?;
    let next_before = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(axum::Json(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                at: crate::clock::rfc3339(e.at),
                key_id: e.key_id,
                role: e.role,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect(),
        next_before,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AttributeIn {
    /// string, number, bool or date
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttributeView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttributeList {
    pub attributes: Vec<AttributeView>,
}

/// Declare a custom member attribute
///
/// Its type is declared once (string, number, bool, date) so that segments can compare it.
/// Declaring it again with the same type is a no-op; another type is a 409.
#[utoipa::path(put, path = "/v1/attributes/{name}", tag = "members", params(("name" = String, Path)), request_body = AttributeIn,
    responses((status = 201, body = AttributeView, description = "declared"), (status = 200, body = AttributeView, description = "already declared"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn define_attribute(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<AttributeIn>,
) -> ApiResult<(StatusCode, axum::Json<AttributeView>)> {
    caller.require(Action::ManageAttributes)?;
    let kind =
        AttributeKind::parse(&body.kind).ok_or_else(|| DomainError::field("type", "string, number, bool or date"))?;
    let now = state.now();
    let (n, p) = (name.clone(), caller.0.clone());
    let created = state
        .store
        .write(move |tx, _| {
            let created = members::define_attribute(tx, &n, kind, now)?;
            audit_admin(tx, &p, now, "attribute.define", Some(&n))?;
            Ok(created)
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(AttributeView { name, kind: kind.as_str().into() })))
}

/// List the declared custom attributes
#[utoipa::path(get, path = "/v1/attributes", tag = "members",
    responses((status = 200, body = AttributeList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_attributes(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<AttributeList>> {
    caller.require(Action::ReadAttributes)?;
    let defs = state.store.read(|tx, _| members::attribute_defs(tx)).await?;
    Ok(axum::Json(AttributeList {
        attributes: defs.into_iter().map(|(name, k)| AttributeView { name, kind: k.as_str().into() }).collect(),
    }))
}
