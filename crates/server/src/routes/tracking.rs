//! The Segment HTTP tracking API: `/v1/track`, `identify`, `page`, `screen`, `alias`, `group`,
//! `batch` and their short forms, as Segment-compatible SDKs send them — JSON or `text/plain`
//! bodies, the write key in `Authorization` (Bearer or Basic) or in the body, CORS for the
//! configured origins. A batch answers 200 with its rejections listed, so SDKs do not resend
//! the valid messages; events are acknowledged only once durable.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ronghe_domain::auth::{Action, Role};
use ronghe_domain::events::{self, Event, Kind, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Reason};
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::profile::Profile;
use ronghe_domain::{Code, DomainError, calendar};
use ronghe_store::events::{Batch, Incoming};
use ronghe_store::members::{Registration, Source};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt", borrow)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(rename = "writeKey", borrow)]
    write_key: Option<Cow<'a, str>>,
}

/// One refused message of a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rejection {
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// A stable reason: `not_an_object`, `too_large`, `unknown_type`, `missing_id`,
    /// `missing_event`, `missing_previous_id`, `invalid_timestamp`, `too_old`, `invalid_field`.
    pub reason: String,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TrackAnswer {
    /// Always true with 200 (what Segment SDKs look for).
    pub success: bool,
    /// Messages stored now.
    pub accepted: usize,
    /// Messages whose messageId was stored before (kept once).
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// Send a batch of behaviour events (Segment `batch`)
///
/// Body `{"batch":[messages…], "sentAt"?, "writeKey"?}`, as JSON or `text/plain`, at most
/// 500 KB, each message at most 32 KB. Invalid messages are listed in `rejected`; the others
/// are stored once per `messageId` and acknowledged only when durable. Only an unparseable or
/// oversized body is 400. The key may also be HTTP Basic user name or `writeKey` in the body.
#[utoipa::path(post, path = "/v1/batch", tag = "tracking", request_body(content = String, description = "Segment batch"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn batch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, None).await)
}

/// Send one behaviour event (Segment `track`, `identify`, `page`, `screen`, `alias`, `group`)
///
/// The message as Segment SDKs send it, also at the short paths `/v1/t`, `/v1/i`, `/v1/p`,
/// `/v1/s`, `/v1/a`, `/v1/g`. An invalid message is 400 with its reason.
#[utoipa::path(post, path = "/v1/track", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn track(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Track)).await)
}

/// Send one `identify` message (Segment spec)
///
/// As `/v1/track`; also at the short path `/v1/i`.
/// From a server-side channel key, traits `phone` and `email` and the `userId` join One ID
/// (never merging) and profile traits fill the profile; from a tracker key traits are stored
/// sealed and unverified, and only link the `anonymousId` to an existing member.
#[utoipa::path(post, path = "/v1/identify", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn identify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Identify)).await)
}
/// Send one `page` message (Segment spec)
///
/// As `/v1/track`; also at the short path `/v1/p`.
#[utoipa::path(post, path = "/v1/page", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn page(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Page)).await)
}
/// Send one `screen` message (Segment spec)
///
/// As `/v1/track`; also at the short path `/v1/s`.
#[utoipa::path(post, path = "/v1/screen", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn screen(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Screen)).await)
}
/// Send one `alias` message (Segment spec)
///
/// As `/v1/track`; also at the short path `/v1/a`.
#[utoipa::path(post, path = "/v1/alias", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn alias(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Alias)).await)
}
/// Send one `group` message (Segment spec)
///
/// As `/v1/track`; also at the short path `/v1/g`.
#[utoipa::path(post, path = "/v1/group", tag = "tracking", request_body(content = String, description = "Segment message"),
    responses((status = 200, body = TrackAnswer), (status = 400, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn group(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&state, &headers, ingest(&state, &headers, &body, Some(Kind::Group)).await)
}

/// A CORS preflight for the tracking endpoints.
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if allow_origin(&state, &headers, &mut r) {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    r
}

fn respond(state: &AppState, headers: &HeaderMap, r: ApiResult<TrackAnswer>) -> Response {
    let mut resp = match r {
        Ok(a) => axum::Json(a).into_response(),
        Err(e) => e.into_response(),
    };
    allow_origin(state, headers, &mut resp);
    resp
}

fn allow_origin(state: &AppState, headers: &HeaderMap, resp: &mut Response) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return false };
    let allowed = state.config.tracking_origins.iter().any(|o| o == "*" || o == origin);
    if allowed && let Ok(v) = HeaderValue::from_str(origin) {
        resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    allowed
}

fn bad_body(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::MalformedBody, message)
}

async fn ingest(state: &AppState, headers: &HeaderMap, body: &[u8], single: Option<Kind>) -> ApiResult<TrackAnswer> {
    let limit = if single.is_some() { MAX_MESSAGE_BYTES } else { MAX_BATCH_BYTES };
    if body.len() > limit {
        return Err(bad_body(format!("the body is larger than {} KB", limit / 1024)));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad_body("the body is not UTF-8 JSON"))?;
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| bad_body(format!("the body is not a JSON object: {e}")))?;
    let key = crate::middleware::key_in_headers(headers)
        .or_else(|| envelope.write_key.as_deref().map(str::to_string))
        .ok_or_else(|| {
            ApiError::new(Code::Unauthorized, "send the write key as HTTP Basic user name, a Bearer token or writeKey")
        })?;
    let principal =
        state.principal(&key).await?.ok_or_else(|| ApiError::new(Code::Unauthorized, "unknown write key"))?;
    if !principal.role.may(Action::Track) {
        return Err(ApiError::forbidden("this key may not send events"));
    }
    if let Err(retry) = state.limiter.check(&principal.key_id, crate::ratelimit::Bucket::Requests) {
        return Err(crate::middleware::rate_limited(retry));
    }
    let raws: Vec<&str> = match (single, &envelope.batch) {
        (None, Some(b)) => b.iter().map(|r| r.get()).collect(),
        (None, None) => return Err(bad_body("a batch body is {\"batch\":[…]}")),
        (Some(_), _) => vec![text],
    };
    let now = state.now();
    let cached = state.audience.current().as_ref().map(|b| b.retention_days);
    let retention = match cached {
        Some(days) => days,
        None => state.store.read_short(|tx, _| ronghe_store::audience::retention_days(tx)).await?,
    };
    let oldest = calendar::start_of(calendar::day_of(now) - retention as i32);
    let trusted = matches!(principal.role, Role::Admin | Role::Channel);
    let mut rejected = Vec::new();
    let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut messages = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        let parsed = events::parse(raw, now, envelope.sent_at.as_deref(), oldest, single).and_then(|e| {
            let user = match &e.user_id {
                Some(u) => Some(Identity::parse(IdentityKind::ExternalId, u, None).map_err(|_| Reason::InvalidField)?),
                None => None,
            };
            Ok((e, user))
        });
        match parsed {
            Ok((e, user)) => {
                let registration = (trusted && matches!(e.kind, Kind::Identify | Kind::Alias))
                    .then(|| registration(&e, user.as_ref(), &principal))
                    .flatten();
                messages.push(Incoming { event: e, user, registration });
            }
            Err(reason) => {
                *counts.entry(reason.as_str()).or_default() += 1;
                rejected.push(Rejection {
                    index,
                    message_id: message_id_of(raw),
                    reason: reason.as_str().into(),
                    message: reason.message().into(),
                });
            }
        }
    }
    if let (Some(_), Some(r)) = (single, rejected.first()) {
        let source = principal.key_id.clone();
        let reason = r.reason.clone();
        state
            .store
            .write(move |tx, kr| {
                let b = Batch {
                    source: source.clone(),
                    trusted,
                    received_at: now,
                    messages: Vec::new(),
                    rejected: [(reason_static(&reason), 1)].into_iter().collect(),
                };
                ronghe_store::events::ingest(tx, kr, &b)
            })
            .await?;
        let field = match reason_static(&r.reason) {
            "missing_event" => "event",
            "missing_id" => "userId",
            "missing_previous_id" => "previousId",
            "invalid_timestamp" | "too_old" => "timestamp",
            "unknown_type" => "type",
            _ => "body",
        };
        let mut e = DomainError::field(field, r.message.clone());
        e.message = format!("{}: {}", r.reason, r.message);
        return Err(e.into());
    }
    let total = messages.len();
    let batch = Batch { source: principal.key_id.clone(), trusted, received_at: now, messages, rejected: counts };
    let done = state.store.write(move |tx, kr| ronghe_store::events::ingest(tx, kr, &batch)).await?;
    state.audience.add_events(&done.touched);
    state.refresh_members(done.refresh).await?;
    let accepted = done.stored.iter().filter(|s| **s).count();
    Ok(TrackAnswer { success: true, accepted, duplicates: total - accepted, rejected })
}

fn reason_static(code: &str) -> &'static str {
    Reason::ALL.iter().find(|r| r.as_str() == code).map_or("invalid_field", |r| r.as_str())
}

fn message_id_of(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "messageId")]
        message_id: Option<String>,
    }
    serde_json::from_str::<Id>(raw).ok().and_then(|i| i.message_id)
}

/// What a trusted identify asserts: the userId as external_id, phone and email traits as
/// identities, the profile traits. Invalid traits are left out, never fatal.
fn registration(e: &Event, user: Option<&Identity>, p: &ronghe_domain::auth::Principal) -> Option<Registration> {
    let traits = e.traits.clone().unwrap_or_default();
    let text = |k: &str| traits.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut identities: Vec<(Identity, bool)> = user.map(|u| (u.clone(), true)).into_iter().collect();
    if let Some(phone) = text("phone").and_then(|v| Identity::parse(IdentityKind::Phone, &v, None).ok()) {
        identities.push((phone, true));
    }
    if let Some(email) = text("email").and_then(|v| Identity::parse(IdentityKind::Email, &v, None).ok()) {
        identities.push((email, true));
    }
    if identities.is_empty() {
        return None;
    }
    let field = |k: &str, check: &dyn Fn(&str) -> bool| text(k).filter(|v| check(v));
    let ok_name = |v: &str| Profile::parse(Some(v), None, None, None, None).is_ok();
    let ok_gender = |v: &str| Profile::parse(None, Some(v), None, None, None).is_ok();
    let ok_birthday = |v: &str| Profile::parse(None, None, Some(v), None, None).is_ok();
    let ok_city = |v: &str| Profile::parse(None, None, None, Some(v), None).is_ok();
    let profile = Profile::parse(
        field("name", &ok_name).as_deref(),
        field("gender", &ok_gender).as_deref(),
        field("birthday", &ok_birthday).as_deref(),
        field("city", &ok_city).as_deref(),
        None,
    )
    .unwrap_or_default();
    Some(Registration {
        identities,
        profile,
        source: Source {
            channel: p.channel.clone().or_else(|| e.channel.clone()),
            store_id: p.store_id.clone().or_else(|| e.store_id.clone()),
            method: Some("identify".into()),
        },
        ..Registration::default()
    })
}
