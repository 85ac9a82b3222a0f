//! Unauthenticated operational endpoints: health, metrics and the OpenAPI document.

use crate::AppState;
use crate::problem::{ApiError, Problem};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ronghe_domain::Code;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Liveness and readiness
///
/// 200 when the store answers a query.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")),
    security(()))]
pub async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    match state.store.read(|tx, _| ronghe_store::ping(tx)).await {
        Ok(_) => axum::Json(Health { status: "ok".into() }).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            let mut r = ApiError::new(Code::Internal, "the store does not answer").into_response();
            *r.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

/// Prometheus metrics
///
/// Request counts and latency histograms by method, route template and status.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)),
    security(()))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

/// This OpenAPI 3.1 document
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, content_type = "application/json", body = Object)),
    security(()))]
pub async fn openapi() -> impl IntoResponse {
    axum::Json(crate::openapi::document())
}
