//! The layers every request passes: observation (request id, metrics, a log line with the
//! route template — never the query or body), authentication with the general rate limit,
//! and idempotency keys for mutating requests.

use crate::AppState;
use crate::problem::{ApiError, PROBLEM_JSON};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use ronghe_domain::Code;
use ronghe_domain::auth::Principal;
use ronghe_store::idempotency::{self, Begin};
use sha2::{Digest, Sha256};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    let request_id = hex::encode(b);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let mut resp = next.run(req).await;
    let status = resp.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        resp = with_request_id(resp, &request_id).await;
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let secs = started.elapsed().as_secs_f64();
    state.metrics.observe(
        crate::metrics::Labels { method: method.to_string(), route: route.clone(), status: status.as_u16() },
        secs,
    );
    tracing::info!(target: "ronghe::http", method = %method, route = %route, status = status.as_u16(),
        latency_ms = secs * 1000.0, request_id = %request_id, "request");
    resp
}

/// Put the request id into a 500 problem body, so that a user can quote it.
async fn with_request_id(resp: Response, request_id: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("request_id".into(), request_id.into());
            serde_json::to_vec(&m).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    let mut resp = Response::from_parts(parts, Body::from(body));
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}

/// Authenticate `Authorization: Bearer <key>` (or HTTP Basic with the key as user name),
/// then apply the key's general rate limit.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(secret) = presented_key(&req) else {
        return ApiError::new(Code::Unauthorized, "send an API key as `Authorization: Bearer <key>`").into_response();
    };
    let principal = match state.principal(&secret).await {
        Ok(Some(p)) => p,
        Ok(None) => return ApiError::new(Code::Unauthorized, "unknown API key").into_response(),
        Err(e) => return e.into_response(),
    };
    if let Err(retry) = state.limiter.check(&principal.key_id, crate::ratelimit::Bucket::Requests) {
        return rate_limited(retry).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

pub fn rate_limited(retry_after: u64) -> ApiError {
    ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(Code::RateLimited, format!("too many requests for this key; retry in {retry_after} s"))
    }
}

fn presented_key(req: &Request) -> Option<String> {
    key_in_headers(req.headers())
}

/// The API key of `Authorization: Bearer <key>`, or of HTTP Basic with the key as user name.
pub(crate) fn key_in_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_string()).filter(|s| !s.is_empty()),
        "basic" => {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
            Some(user.to_string()).filter(|s| !s.is_empty())
        }
        _ => None,
    }
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Honour `Idempotency-Key` on mutating requests: a replay with the same body gets the first
/// response (and `Idempotent-Replayed: true`); another body, or a replay while the first is
/// still running, gets `409 idempotency_conflict`.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= 255 => k.trim().to_string(),
        _ => {
            return ApiError::from(ronghe_domain::DomainError::field(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters",
            ))
            .into_response();
        }
    };
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::new(Code::Unauthorized, "an API key is required").into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(Code::PayloadTooLarge, "the request body is larger than the server accepts")
                .into_response();
        }
    };
    let scope = scope(&principal.key_id, parts.method.as_str(), parts.uri.path(), &key);
    let body_hash = body_hash(&bytes);
    let now = state.now();
    let (s2, b2) = (scope.clone(), body_hash.clone());
    let begin = state.store.write(move |tx, kr| idempotency::begin(tx, kr, &s2, &b2, now)).await;
    match begin {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Begin::DifferentBody) => {
            return ApiError::new(Code::IdempotencyConflict, "this Idempotency-Key was used with another body")
                .into_response();
        }
        Ok(Begin::InFlight) => {
            return ApiError::new(
                Code::IdempotencyConflict,
                "a request with this Idempotency-Key is still in progress",
            )
            .into_response();
        }
        Ok(Begin::Replay { status, body }) => return replay(status, body),
        Ok(Begin::Fresh) => {}
    }
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = axum::body::to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    let status = rparts.status.as_u16();
    let result = if rparts.status.is_server_error() {
        state.store.write(move |tx, _| idempotency::abort(tx, &scope)).await
    } else {
        let member = member_of(&rbytes);
        let body = rbytes.clone();
        state.store.write(move |tx, kr| idempotency::finish(tx, kr, &scope, status, &body, member.as_deref())).await
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record an idempotent response");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let ctype = if status.is_client_error() { PROBLEM_JSON } else { "application/json" };
    let mut resp = (status, Bytes::from(body)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

pub(crate) fn scope(key_id: &str, method: &str, path: &str, key: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [key_id, method, path, key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().to_vec()
}

/// Bodies are compared as canonical JSON (object keys sorted, no whitespace), so that a
/// resend that only reorders keys is the same request; other bodies are compared as bytes.
pub(crate) fn body_hash(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => Sha256::digest(serde_json::to_vec(&v).unwrap_or_default()).to_vec(),
        Err(_) => Sha256::digest(bytes).to_vec(),
    }
}

/// The member a stored response is about, so that erasure can delete it.
fn member_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("id")?.as_str().filter(|s| s.starts_with("m_")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_body_hash_ignores_key_order_and_spacing() {
        assert_eq!(body_hash(br#"{"a":1,"b":[1,2]}"#), body_hash(br#"{ "b": [1, 2], "a": 1 }"#));
        assert_ne!(body_hash(br#"{"a":1}"#), body_hash(br#"{"a":2}"#));
    }

    #[test]
    fn scope_separates_parts() {
        assert_ne!(scope("k", "POST", "/a", "bc"), scope("k", "POST", "/ab", "c"));
    }
}
