//! Webhook subscriptions over HTTP: subscribe a URL to event types (price and stock changes,
//! orders, lifecycle changes…), list them, read their deliveries, replay one, run a round.

use crate::AppState;
use crate::extract::{Caller, Json};
use crate::problem::{ApiResult, Problem};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rand::RngCore;
use ronghe_domain::DomainError;
use ronghe_domain::auth::Action;
use ronghe_domain::error::Validator;
use ronghe_store::webhooks;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The event types a subscription may name (`*` for all).
pub const EVENT_TYPES: &[&str] = &[
    "price.changed",
    "stock.changed",
    "order.placed",
    "order.fulfilled",
    "order.returned",
    "member.merged",
    "member.erased",
    "member.lifecycle_changed",
];

#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookIn {
    /// Where to POST deliveries (http or https).
    pub url: String,
    /// Event types, e.g. `["price.changed","stock.changed"]`, or `["*"]`.
    pub event_types: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// The signing secret (Standard Webhooks `whsec_…`), shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Subscribe a URL to events
///
/// Deliveries are POSTed with the Standard Webhooks headers `webhook-id`, `webhook-timestamp`
/// and `webhook-signature` (`v1,` HMAC-SHA256 with the secret), retried after 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h and 10 h, then dead-lettered; replayable.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = WebhookView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<WebhookIn>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    caller.require(Action::ManageWebhooks)?;
    let mut v = Validator::new();
    let url = body.url.trim().to_string();
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.len() > 2000
        || reqwest::Url::parse(&url).is_err()
    {
        v.push("url", "an http or https URL");
    }
    if body.event_types.is_empty() {
        v.push("event_types", "at least one event type");
    }
    for (i, t) in body.event_types.iter().enumerate() {
        if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
            v.push(format!("event_types[{i}]"), format!("one of {} or *", EVENT_TYPES.join(", ")));
        }
    }
    v.finish()?;
    let mut key = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut key);
    let secret = ronghe_domain::webhook::secret_from(&key);
    let now = state.now();
    let id = format!("wh_{}", ronghe_store::members::new_member_id(now).trim_start_matches("m_"));
    let (types, s2, u2) = (body.event_types.clone(), secret.clone(), url.clone());
    let sub = state.store.write(move |tx, _| webhooks::subscribe(tx, &id, &u2, &types, &s2, now)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookView { id: sub.id, url: sub.url, event_types: sub.event_types, secret: Some(secret) }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// List webhook subscriptions
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<WebhookList>> {
    caller.require(Action::ManageWebhooks)?;
    let subs = state.store.read(|tx, _| webhooks::subscriptions(tx)).await?;
    Ok(axum::Json(WebhookList {
        webhooks: subs
            .into_iter()
            .map(|s| WebhookView { id: s.id, url: s.url, event_types: s.event_types, secret: None })
            .collect(),
    }))
}

/// Remove a subscription (its pending deliveries are dropped)
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageWebhooks)?;
    state.store.write(move |tx, _| webhooks::unsubscribe(tx, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// pending, delivered or dead.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    #[schema(value_type = Vec<Object>)]
    pub deliveries: Vec<webhooks::Delivery>,
}

/// A subscription's latest deliveries (dead letters with `?status=dead`)
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    caller.require(Action::ManageWebhooks)?;
    if q.status.as_deref().is_some_and(|s| !["pending", "delivered", "dead"].contains(&s)) {
        return Err(DomainError::field("status", "pending, delivered or dead").into());
    }
    let list = state.store.read(move |tx, _| webhooks::deliveries(tx, &id, q.status.as_deref(), 200)).await?;
    Ok(axum::Json(DeliveryList { deliveries: list }))
}

/// Send a delivery again (a dead letter, or one the receiver lost)
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/replay", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 202, description = "queued"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn replay(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    caller.require(Action::ManageWebhooks)?;
    let now = state.now();
    state.store.write(move |tx, _| webhooks::replay(tx, id, now)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Run a dispatch round now (the server runs one every second)
#[utoipa::path(post, path = "/v1/webhooks/dispatch", tag = "webhooks",
    responses((status = 200, body = crate::webhooks::Round), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn dispatch(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<crate::webhooks::Round>> {
    caller.require(Action::ManageWebhooks)?;
    Ok(axum::Json(crate::webhooks::dispatch_once(&state).await?))
}
