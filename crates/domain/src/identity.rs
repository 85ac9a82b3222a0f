//! Identities: the (type, value) pairs by which a member is known in each channel, and their
//! normalisation, so that `13800138000`, `+86 138 0013 8000` and `8613800138000` are one phone.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};

/// The kinds of identity a member can have. `qr_token` is not stored: it is a short-lived
/// signed pointer to a member (see [`crate::qr`]) accepted only by lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Phone,
    Email,
    WechatUnionid,
    WechatOpenid,
    AlipayUid,
    MemberCard,
    ExternalId,
    DeviceId,
}

impl IdentityKind {
    pub const ALL: &'static [IdentityKind] = &[
        IdentityKind::Phone,
        IdentityKind::Email,
        IdentityKind::WechatUnionid,
        IdentityKind::WechatOpenid,
        IdentityKind::AlipayUid,
        IdentityKind::MemberCard,
        IdentityKind::ExternalId,
        IdentityKind::DeviceId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::WechatUnionid => "wechat_unionid",
            IdentityKind::WechatOpenid => "wechat_openid",
            IdentityKind::AlipayUid => "alipay_uid",
            IdentityKind::MemberCard => "member_card",
            IdentityKind::ExternalId => "external_id",
            IdentityKind::DeviceId => "device_id",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| DomainError::field("type", format!("unknown identity type `{s}`")))
    }
}

/// A validated, normalised identity. Only [`Identity::parse`] builds one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    kind: IdentityKind,
    value: String,
    app_id: Option<String>,
}

const MAX_ID_LEN: usize = 128;

impl Identity {
    /// Validate and normalise. `app_id` is required for `wechat_openid` (an openid is only
    /// unique within one app) and refused for every other type.
    pub fn parse(kind: IdentityKind, value: &str, app_id: Option<&str>) -> Result<Self, DomainError> {
        let value = match kind {
            IdentityKind::Phone => normalize_phone(value)?,
            IdentityKind::Email => normalize_email(value)?,
            IdentityKind::MemberCard => normalize_token(&value.replace([' ', '-'], ""))?.to_ascii_uppercase(),
            _ => normalize_token(value)?,
        };
        let app_id = match (kind, app_id.map(str::trim)) {
            (IdentityKind::WechatOpenid, Some(a)) if !a.is_empty() => {
                Some(normalize_token(a).map_err(|e| DomainError::field("app_id", e.message))?)
            }
            (IdentityKind::WechatOpenid, _) => {
                return Err(DomainError::field("app_id", "wechat_openid needs the app_id it belongs to"));
            }
            (_, None) | (_, Some("")) => None,
            (_, Some(_)) => {
                return Err(DomainError::field("app_id", "app_id applies to wechat_openid only"));
            }
        };
        Ok(Identity { kind, value, app_id })
    }

    /// Rebuild from already normalised stored parts (no validation).
    pub fn from_stored(kind: IdentityKind, value: String, app_id: Option<String>) -> Self {
        Identity { kind, value, app_id }
    }

    pub fn kind(&self) -> IdentityKind {
        self.kind
    }
    pub fn value(&self) -> &str {
        &self.value
    }
    pub fn app_id(&self) -> Option<&str> {
        self.app_id.as_deref()
    }

    /// The canonical bytes that the blind index is computed over: unambiguous because no
    /// part may contain a NUL.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.value.len() + 32);
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.push(0);
        out.extend_from_slice(self.app_id.as_deref().unwrap_or("").as_bytes());
        out.push(0);
        out.extend_from_slice(self.value.as_bytes());
        out
    }
}

fn normalize_token(raw: &str) -> Result<String, DomainError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(DomainError::field("value", "must not be empty"));
    }
    if v.len() > MAX_ID_LEN {
        return Err(DomainError::field("value", format!("must be at most {MAX_ID_LEN} bytes")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(DomainError::field("value", "must not contain control characters"));
    }
    Ok(v.to_string())
}

/// Normalise a phone number to E.164 (`+8613800138000`).
///
/// Accepted: `+` followed by the country code; `00` as an international prefix; a bare
/// 11-digit Chinese mobile (`1[3-9]…`); `86` followed by one. Spaces, dashes, dots and
/// parentheses are ignored. Chinese (+86) numbers must be mobiles: 11 digits starting 13–19.
pub fn normalize_phone(raw: &str) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => {
                return Err(DomainError::field(
                    "value",
                    "a phone number has only digits, spaces, dashes and a leading +",
                ));
            }
        }
    }
    if !plus {
        if let Some(rest) = digits.strip_prefix("00") {
            digits = rest.to_string();
        } else if is_cn_mobile(&digits) {
            digits.insert_str(0, "86");
        } else if !(digits.len() == 13 && digits.starts_with("86") && is_cn_mobile(&digits[2..])) {
            return Err(DomainError::field(
                "value",
                "not a phone number: use +<country code><number> or an 11-digit Chinese mobile",
            ));
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(DomainError::field("value", "an E.164 phone number has 8 to 15 digits after the +"));
    }
    if let Some(national) = digits.strip_prefix("86")
        && !is_cn_mobile(national)
    {
        return Err(DomainError::field("value", "a +86 number must be an 11-digit mobile starting 13–19"));
    }
    Ok(format!("+{digits}"))
}

fn is_cn_mobile(d: &str) -> bool {
    d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9')
}

/// Normalise an email address: trimmed and lower-cased as a whole (mail systems in our
/// market treat the local part case-insensitively); dots and `+tags` are kept, since they
/// may address different mailboxes.
pub fn normalize_email(raw: &str) -> Result<String, DomainError> {
    let v = raw.trim().to_lowercase();
    let bad = || DomainError::field("value", "not an email address");
    if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = v.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_mobiles_in_every_common_form() {
        for raw in [
            "13800138000",
            "+86 138 0013 8000",
            "8613800138000",
            "+8613800138000",
            "0086-138-0013-8000",
            " 138 0013 8000 ",
        ] {
            assert_eq!(normalize_phone(raw).unwrap(), "+8613800138000", "{raw}");
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country_code() {
        assert_eq!(normalize_phone("+44 20 7946 0958").unwrap(), "+442079460958");
        assert_eq!(normalize_phone("+1 (415) 555-2671").unwrap(), "+14155552671");
    }

    #[test]
    fn bad_phones_are_refused() {
        for raw in ["", "12345", "abc", "+86 12 3456", "23800138000", "+8612800138000", "1380013800x", "+0123456789"] {
            assert!(normalize_phone(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(normalize_email("  Wang.Ming+vip@Example.COM ").unwrap(), "wang.ming+vip@example.com");
        for raw in ["", "no-at", "a@b", "a@@b.com", "@b.com", "a b@c.com", "a@.com"] {
            assert!(normalize_email(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn openid_needs_app_id_and_others_refuse_it() {
        assert!(Identity::parse(IdentityKind::WechatOpenid, "o123", None).is_err());
        let id = Identity::parse(IdentityKind::WechatOpenid, "o123", Some("wx1")).unwrap();
        assert_eq!(id.app_id(), Some("wx1"));
        assert!(Identity::parse(IdentityKind::Phone, "13800138000", Some("wx1")).is_err());
    }

    #[test]
    fn canonical_bytes_separate_kind_app_and_value() {
        let a = Identity::parse(IdentityKind::WechatOpenid, "o1", Some("wx1")).unwrap();
        let b = Identity::parse(IdentityKind::WechatOpenid, "o1", Some("wx2")).unwrap();
        let c = Identity::parse(IdentityKind::ExternalId, "o1", None).unwrap();
        assert_ne!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn member_cards_ignore_spaces_and_case() {
        let a = Identity::parse(IdentityKind::MemberCard, "vip 0001-23", None).unwrap();
        assert_eq!(a.value(), "VIP000123");
    }
}
