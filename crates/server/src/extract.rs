//! Extractors whose rejections are problem+json: a JSON body that names the field at fault,
//! and the calling [`Caller`] put in place by the auth middleware.

use crate::problem::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ronghe_domain::auth::{Action, Principal};
use ronghe_domain::{Code, DomainError};
use serde::de::DeserializeOwned;

/// A JSON body. The content type is not checked (tills send what they send); the body size
/// limit is, and a body that does not fit the shape is refused naming the field.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, "the request body is larger than the server accepts")
            } else {
                ApiError::new(Code::MalformedBody, "the request body could not be read")
            }
        })?;
        parse(&bytes).map(Json)
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::new(Code::MalformedBody, format!("the body is not a valid JSON object: {inner}"))
        } else {
            DomainError::field(path, inner.to_string()).into()
        }
    })
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Refuse with 403 `forbidden` unless the role may do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.0.role.may(action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("a {} key may not do this", self.0.role.as_str())))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(Code::Unauthorized, "an API key is required"))
    }
}
