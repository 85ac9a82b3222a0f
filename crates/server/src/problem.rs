//! The one mapping from error codes to HTTP: every error leaves the server as
//! `application/problem+json` with a stable `code`. Users' mistakes are 4xx with the field
//! at fault; internal faults are a bare 500 with a request id, logged once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ronghe_domain::{Code, DomainError, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn status(code: Code) -> StatusCode {
    match code {
        Code::InvalidField
        | Code::UnknownAttribute
        | Code::InvalidQrToken
        | Code::UnknownSku
        | Code::InsufficientPoints
        | Code::PointsLimitExceeded
        | Code::CouponNotApplicable => StatusCode::UNPROCESSABLE_ENTITY,
        Code::MalformedBody => StatusCode::BAD_REQUEST,
        Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound | Code::RouteNotFound => StatusCode::NOT_FOUND,
        Code::MemberErased => StatusCode::GONE,
        Code::IdentityConflict
        | Code::IdempotencyConflict
        | Code::Conflict
        | Code::OrderNotCancellable
        | Code::OutOfStock => StatusCode::CONFLICT,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// RFC 9457 problem details, with Ronghe's stable `code` and per-field `errors`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case error code (see docs/errors.md).
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorSchema>)]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One field at fault.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorSchema {
    field: String,
    code: String,
    message: String,
}

/// An error on its way out of a handler.
#[derive(Debug)]
pub struct ApiError {
    pub error: DomainError,
    /// Seconds for `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { error: DomainError::new(code, message), retry_after: None }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }
    pub fn internal() -> Self {
        Self::new(Code::Internal, "internal error; the server log has the details under this request id")
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        ApiError { error, retry_after: None }
    }
}

impl From<ronghe_store::Error> for ApiError {
    fn from(e: ronghe_store::Error) -> Self {
        match e {
            ronghe_store::Error::Domain(d) => d.into(),
            other => {
                // Logged once here; the caller sees only the code and the request id.
                tracing::error!(error = %other, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status(self.error.code);
        let problem = Problem {
            kind: format!("https://ronghe.dev/errors/{}", self.error.code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.error.message,
            code: self.error.code.as_str().to_string(),
            errors: self.error.errors,
            request_id: None,
        };
        let mut resp = (status, axum::Json(problem)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_4xx_or_the_500() {
        for c in Code::ALL {
            let s = status(*c);
            assert!(s.is_client_error() || *c == Code::Internal, "{c} → {s}");
        }
    }
}
