//! The one table of error codes. Each code has a stable snake_case name that clients branch
//! on; the HTTP status for each lives in one place, `server/src/problem.rs`, and
//! `docs/errors.md` lists them all.

use serde::Serialize;

/// Stable error codes. Adding one means adding it to `docs/errors.md` (the tidy test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A request field is missing or invalid; `errors` names each field.
    InvalidField,
    /// The body is not valid JSON or not the expected shape.
    MalformedBody,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// No API key, or an unknown one.
    Unauthorized,
    /// The key's role may not do this, or a scoped key reaches outside its store or channel.
    Forbidden,
    /// The resource does not exist.
    NotFound,
    /// The member was erased; its data is gone.
    MemberErased,
    /// Identities in one request belong to different members.
    IdentityConflict,
    /// The same Idempotency-Key was used with another body, or is still in flight.
    IdempotencyConflict,
    /// Too many requests for this key; retry after the `Retry-After` seconds.
    RateLimited,
    /// A member QR token is malformed, forged or expired.
    InvalidQrToken,
    /// A custom attribute was not declared, or was declared with another type.
    UnknownAttribute,
    /// The request conflicts with the current state (e.g. merging a member into itself).
    Conflict,
    /// An order names a SKU the catalogue does not have (or has no price for at that time).
    UnknownSku,
    /// The member's balance does not cover the points to redeem.
    InsufficientPoints,
    /// The points to redeem are below the programme's minimum or above its share of the order.
    PointsLimitExceeded,
    /// The order cannot be cancelled in its state.
    OrderNotCancellable,
    /// A coupon does not apply to this order; `errors` names it and says why.
    CouponNotApplicable,
    /// Not enough stock to route an online order; `errors` lists the nearest locations that have it.
    OutOfStock,
    /// The route does not exist.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// A fault of the server; details are in its log under the request id.
    Internal,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::InvalidField,
        Code::MalformedBody,
        Code::PayloadTooLarge,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::MemberErased,
        Code::IdentityConflict,
        Code::IdempotencyConflict,
        Code::RateLimited,
        Code::InvalidQrToken,
        Code::UnknownAttribute,
        Code::Conflict,
        Code::UnknownSku,
        Code::InsufficientPoints,
        Code::PointsLimitExceeded,
        Code::OrderNotCancellable,
        Code::CouponNotApplicable,
        Code::OutOfStock,
        Code::RouteNotFound,
        Code::MethodNotAllowed,
        Code::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidField => "invalid_field",
            Code::MalformedBody => "malformed_body",
            Code::PayloadTooLarge => "payload_too_large",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MemberErased => "member_erased",
            Code::IdentityConflict => "identity_conflict",
            Code::IdempotencyConflict => "idempotency_conflict",
            Code::RateLimited => "rate_limited",
            Code::InvalidQrToken => "invalid_qr_token",
            Code::UnknownAttribute => "unknown_attribute",
            Code::Conflict => "conflict",
            Code::UnknownSku => "unknown_sku",
            Code::InsufficientPoints => "insufficient_points",
            Code::PointsLimitExceeded => "points_limit_exceeded",
            Code::OrderNotCancellable => "order_not_cancellable",
            Code::CouponNotApplicable => "coupon_not_applicable",
            Code::OutOfStock => "out_of_stock",
            Code::RouteNotFound => "route_not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Internal => "internal",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field at fault, as listed in a problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `identities[1].value`.
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// A user's mistake or a refused request: always a 4xx, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DomainError {
    pub code: Code,
    pub message: String,
    pub errors: Vec<FieldError>,
}

impl DomainError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        DomainError { code, message: message.into(), errors: Vec::new() }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }

    /// A validation error naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        DomainError {
            code: Code::InvalidField,
            message: format!("{field}: {message}"),
            errors: vec![FieldError { field, code: Code::InvalidField.as_str(), message }],
        }
    }

    /// Prefix every field path with `prefix` (e.g. `identities[2]`).
    pub fn within(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.field = if e.field.is_empty() { prefix.to_string() } else { format!("{prefix}.{}", e.field) };
        }
        if self.code == Code::InvalidField && !self.errors.is_empty() {
            self.message = summary(&self.errors);
        }
        self
    }
}

/// Collects validation errors across a request so that all of them are reported at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the value of `r`, or remember its field errors under `prefix`.
    pub fn check<T>(&mut self, prefix: &str, r: Result<T, DomainError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let e = e.within(prefix);
                if e.errors.is_empty() {
                    self.errors.push(FieldError {
                        field: prefix.to_string(),
                        code: e.code.as_str(),
                        message: e.message,
                    });
                } else {
                    self.errors.extend(e.errors);
                }
                None
            }
        }
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            code: Code::InvalidField.as_str(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> Result<(), DomainError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError { code: Code::InvalidField, message: summary(&self.errors), errors: self.errors })
        }
    }
}

fn summary(errors: &[FieldError]) -> String {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    format!("invalid fields: {}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!(c.as_str().chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
    }

    #[test]
    fn validator_collects_every_field() {
        let mut v = Validator::new();
        v.check::<()>("identities[0]", Err(DomainError::field("value", "bad phone")));
        v.push("source.channel", "unknown channel");
        let e = v.finish().unwrap_err();
        assert_eq!(e.code, Code::InvalidField);
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["identities[0].value", "source.channel"]);
    }
}
