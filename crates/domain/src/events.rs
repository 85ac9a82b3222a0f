//! Behaviour events in the Segment tracking spec: one message (track, identify, page, screen,
//! alias, group) checked and normalised — event names, the clock-skew correction of
//! `timestamp` by `sentAt`, the `context` fields we index, and the personal data that must be
//! sealed before anything is stored. Each refusal has a stable reason.

use crate::Millis;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The largest message we accept, as Segment does.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// The largest batch body.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Identify,
    Page,
    Screen,
    Alias,
    Group,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "track" => Kind::Track,
            "identify" => Kind::Identify,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "alias" => Kind::Alias,
            "group" => Kind::Group,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Identify => "identify",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Alias => "alias",
            Kind::Group => "group",
        }
    }
}

/// Why a message was refused (reported per message, counted in data quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NotAnObject,
    TooLarge,
    UnknownType,
    MissingId,
    MissingEvent,
    MissingPreviousId,
    InvalidTimestamp,
    TooOld,
    InvalidField,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::NotAnObject,
        Reason::TooLarge,
        Reason::UnknownType,
        Reason::MissingId,
        Reason::MissingEvent,
        Reason::MissingPreviousId,
        Reason::InvalidTimestamp,
        Reason::TooOld,
        Reason::InvalidField,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotAnObject => "not_an_object",
            Reason::TooLarge => "too_large",
            Reason::UnknownType => "unknown_type",
            Reason::MissingId => "missing_id",
            Reason::MissingEvent => "missing_event",
            Reason::MissingPreviousId => "missing_previous_id",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::TooOld => "too_old",
            Reason::InvalidField => "invalid_field",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Reason::NotAnObject => "a message is a JSON object",
            Reason::TooLarge => "a message is at most 32 KB",
            Reason::UnknownType => "type is one of track, identify, page, screen, alias, group",
            Reason::MissingId => "userId or anonymousId is required",
            Reason::MissingEvent => "a track message needs event",
            Reason::MissingPreviousId => "an alias message needs previousId",
            Reason::InvalidTimestamp => "timestamp and sentAt are ISO 8601 / RFC 3339 times",
            Reason::TooOld => "the event is older than the retention period",
            Reason::InvalidField => {
                "ids are strings of at most 256 characters; properties, traits and context are objects"
            }
        }
    }
}

/// An event name as stored and matched: trimmed, lower case, runs of spaces, dots and dashes
/// as one underscore — "Product Viewed" and "product_viewed" are the same event.
pub fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.trim().chars() {
        if c.is_whitespace() || c == '-' || c == '.' {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push('_');
        }
        gap = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// The wire shape, borrowed from the request body where it can be.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    previous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    group_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
    #[serde(borrow)]
    traits: Option<&'a RawValue>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
}

/// Segment SDKs send ids as strings, some as numbers: accept both.
fn id<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Number(serde_json::Number),
        Null,
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => Some(s),
        Id::Number(n) => Some(Cow::Owned(n.to_string())),
        Id::Null => None,
    })
}

/// The `context` fields that are indexed; the rest is kept as sent, minus personal data.
#[derive(Deserialize, Default)]
struct WireContext {
    channel: Option<String>,
    #[serde(alias = "storeId")]
    store_id: Option<String>,
}

/// A checked, normalised message, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message_id: String,
    pub kind: Kind,
    /// Track: the normalised event name; page/screen: `page_viewed` / `screen_viewed`;
    /// identify / alias / group: the type.
    pub name: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub previous_id: Option<String>,
    pub group_id: Option<String>,
    /// When it happened, corrected for the sender's clock skew.
    pub at: Millis,
    pub channel: Option<String>,
    pub store_id: Option<String>,
    /// `{"properties":…, "context":…, "name":…}` without personal data.
    pub body: String,
    /// Identify traits and `context.traits`: personal data, sealed before storage.
    pub traits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Context keys that carry personal data and never reach the event body.
const PERSONAL_CONTEXT_KEYS: &[&str] = &["ip", "traits"];

/// Check and normalise one message received at `received_at`; `oldest` is the first instant
/// the retention keeps. `batch_sent_at` is the batch's `sentAt`, used when the message has none;
/// `endpoint` is the type named by a single-message endpoint, used when the message has none.
pub fn parse(
    raw: &str,
    received_at: Millis,
    batch_sent_at: Option<&str>,
    oldest: Millis,
    endpoint: Option<Kind>,
) -> Result<Event, Reason> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(Reason::TooLarge);
    }
    let trimmed = raw.trim_start();
    if !trimmed.starts_with('{') {
        return Err(Reason::NotAnObject);
    }
    let w: Wire = serde_json::from_str(raw).map_err(|_| Reason::InvalidField)?;
    let kind = match w.kind.as_deref() {
        Some(k) => Kind::parse(k).ok_or(Reason::UnknownType)?,
        None => endpoint.ok_or(Reason::UnknownType)?,
    };
    let clean = |v: Option<Cow<str>>| -> Result<Option<String>, Reason> {
        match v {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) if s.chars().count() > 256 => Err(Reason::InvalidField),
            Some(s) => Ok(Some(s.trim().to_string())),
        }
    };
    let user_id = clean(w.user_id)?;
    let anonymous_id = clean(w.anonymous_id)?;
    let previous_id = clean(w.previous_id)?;
    let group_id = clean(w.group_id)?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Reason::MissingId);
    }
    let name = match kind {
        Kind::Track => {
            let e = w.event.as_deref().map(normalise_name).filter(|e| !e.is_empty()).ok_or(Reason::MissingEvent)?;
            if e.len() > 200 {
                return Err(Reason::InvalidField);
            }
            e
        }
        Kind::Page => "page_viewed".into(),
        Kind::Screen => "screen_viewed".into(),
        Kind::Alias => {
            if previous_id.is_none() {
                return Err(Reason::MissingPreviousId);
            }
            "alias".into()
        }
        Kind::Identify | Kind::Group => kind.as_str().into(),
    };
    let object = |v: Option<&RawValue>| -> Result<Option<serde_json::Map<String, serde_json::Value>>, Reason> {
        match v.map(|r| r.get().trim()) {
            None | Some("null") => Ok(None),
            Some(text) if text.starts_with('{') => {
                serde_json::from_str(text).map(Some).map_err(|_| Reason::InvalidField)
            }
            Some(_) => Err(Reason::InvalidField),
        }
    };
    let time = |s: Option<&str>| -> Result<Option<Millis>, Reason> {
        match s {
            None | Some("") => Ok(None),
            Some(t) => {
                t.parse::<jiff::Timestamp>().map(|t| Some(t.as_millisecond())).map_err(|_| Reason::InvalidTimestamp)
            }
        }
    };
    let timestamp = time(w.timestamp.as_deref())?;
    let sent_at = time(w.sent_at.as_deref().or(batch_sent_at))?;
    // Segment's correction: the device's clock is off by (sentAt − receivedAt).
    let at = match (timestamp, sent_at) {
        (Some(t), Some(s)) => t - (s - received_at),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    let at = at.min(received_at);
    if at < oldest {
        return Err(Reason::TooOld);
    }

    let mut context = object(w.context)?.unwrap_or_default();
    let mut traits = match kind {
        Kind::Identify | Kind::Group => object(w.traits)?,
        _ => None,
    };
    if let Some(serde_json::Value::Object(t)) = context.get("traits") {
        traits.get_or_insert_with(Default::default).extend(t.clone());
    }
    let indexed: WireContext = serde_json::from_value(serde_json::Value::Object(context.clone())).unwrap_or_default();
    for k in PERSONAL_CONTEXT_KEYS {
        context.remove(*k);
    }
    let properties = object(w.properties)?;
    let mut body = serde_json::Map::new();
    if let Some(p) = properties {
        body.insert("properties".into(), serde_json::Value::Object(p));
    }
    if !context.is_empty() {
        body.insert("context".into(), serde_json::Value::Object(context));
    }
    if let (Some(n), Kind::Page | Kind::Screen) = (w.name.as_deref(), kind) {
        body.insert("name".into(), serde_json::Value::String(n.chars().take(200).collect()));
    }
    let message_id = match clean(w.message_id)? {
        Some(id) => id,
        // No messageId: the content identifies the message, so an identical resend is one event.
        None => {
            use sha2::{Digest, Sha256};
            format!("sha256:{}", hex_prefix(&Sha256::digest(raw.as_bytes())))
        }
    };
    Ok(Event {
        message_id,
        kind,
        name,
        user_id,
        anonymous_id,
        previous_id,
        group_id,
        at,
        channel: indexed.channel.filter(|c| !c.is_empty() && c.len() <= 64),
        store_id: indexed.store_id.filter(|s| !s.is_empty() && s.len() <= 64),
        body: serde_json::Value::Object(body).to_string(),
        traits: traits.filter(|t| !t.is_empty()),
    })
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn ok(raw: &str) -> Event {
        parse(raw, NOW, None, 0, None).expect("valid message")
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise_name(" Product  Viewed "), "product_viewed");
        assert_eq!(normalise_name("product_viewed"), "product_viewed");
        assert_eq!(normalise_name("Order-Completed.v2"), "order_completed_v2");
    }

    #[test]
    fn clock_skew_is_corrected_by_sent_at() {
        // The device clock runs 10 minutes fast: timestamp and sentAt are both 10 min ahead.
        let e = ok(r#"{"type":"track","event":"Cart Viewed","anonymousId":"a1","messageId":"m1",
            "timestamp":"2026-01-01T00:09:00Z","sentAt":"2026-01-01T00:10:00Z"}"#);
        assert_eq!(e.at, NOW - 60_000);
        assert_eq!(e.name, "cart_viewed");
        // No sentAt: the timestamp as sent, but never in the future.
        let e = ok(r#"{"type":"track","event":"x","userId":"u1","messageId":"m2","timestamp":"2026-01-02T00:00:00Z"}"#);
        assert_eq!(e.at, NOW);
    }

    #[test]
    fn personal_data_is_kept_out_of_the_body() {
        let e = ok(r#"{"type":"identify","userId":42,"messageId":"m3","traits":{"phone":"13800138000"},
            "context":{"ip":"1.2.3.4","channel":"app","storeId":"S1","traits":{"email":"a@b.cn"},"device":{"id":"d"}}}"#);
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!((e.channel.as_deref(), e.store_id.as_deref()), (Some("app"), Some("S1")));
        assert!(!e.body.contains("1.2.3.4") && !e.body.contains("a@b.cn") && !e.body.contains("13800138000"));
        assert!(e.body.contains("device"));
        let traits = e.traits.expect("traits");
        assert_eq!(traits.len(), 2);
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let no = |raw: &str| parse(raw, NOW, None, NOW - 86_400_000, None).expect_err(raw);
        assert_eq!(no("[1]"), Reason::NotAnObject);
        assert_eq!(no(r#"{"type":"fly","userId":"u"}"#), Reason::UnknownType);
        assert_eq!(no(r#"{"type":"track","event":"x"}"#), Reason::MissingId);
        assert_eq!(no(r#"{"type":"track","userId":"u"}"#), Reason::MissingEvent);
        assert_eq!(no(r#"{"type":"alias","userId":"u"}"#), Reason::MissingPreviousId);
        assert_eq!(no(r#"{"type":"page","userId":"u","timestamp":"yesterday"}"#), Reason::InvalidTimestamp);
        assert_eq!(no(r#"{"type":"page","userId":"u","timestamp":"2020-01-01T00:00:00Z"}"#), Reason::TooOld);
        assert_eq!(no(r#"{"type":"track","event":"x","userId":"u","properties":[1]}"#), Reason::InvalidField);
        let big = format!(
            r#"{{"type":"track","event":"x","userId":"u","properties":{{"p":"{}"}}}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(no(&big), Reason::TooLarge);
    }

    #[test]
    fn a_message_without_id_is_identified_by_its_content() {
        let raw = r#"{"type":"track","event":"x","userId":"u"}"#;
        assert_eq!(ok(raw).message_id, ok(raw).message_id);
        assert!(ok(raw).message_id.starts_with("sha256:"));
    }

    #[test]
    fn the_endpoint_names_the_type_when_the_message_does_not() {
        let e = parse(r#"{"event":"x","userId":"u"}"#, NOW, None, 0, Some(Kind::Track)).expect("track");
        assert_eq!(e.kind, Kind::Track);
    }
}
