//! What members look like on the wire, masked or not, and the request bodies that create and
//! change them. Masking happens here, once, for every response that carries personal data.

use crate::clock::rfc3339;
use ronghe_domain::consent::Decision;
use ronghe_domain::mask;
use ronghe_store::members::{Export, MemberRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentityIn {
    /// phone, email, wechat_unionid, wechat_openid, alipay_uid, member_card, external_id, device_id
    /// (and qr_token for lookups).
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    /// Required for wechat_openid: the mini-program or official account it belongs to.
    pub app_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileIn {
    pub name: Option<String>,
    /// male, female, other, unknown
    pub gender: Option<String>,
    /// YYYY-MM-DD
    pub birthday: Option<String>,
    pub city: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentIn {
    /// marketing, profiling, personalisation
    pub purpose: String,
    /// sms, app_push, wecom, email, mini_program
    pub channel: String,
    pub granted: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SourceIn {
    /// The sales channel where this happened (pos, mini_program, app, web…); a channel key's own by default.
    pub channel: Option<String>,
    /// The store; a store key's own store, always.
    pub store_id: Option<String>,
    /// How consent was collected: checkbox, sms_reply, paper_form… (default api).
    pub method: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterIn {
    pub identities: Vec<IdentityIn>,
    #[serde(default)]
    pub profile: ProfileIn,
    /// Custom attributes, each declared first with `PUT /v1/attributes/{name}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub consents: Vec<ConsentIn>,
    #[serde(default)]
    pub source: SourceIn,
    /// `reject` (default): identities of two members are a 409; `merge`: merge them (the oldest survives).
    pub on_conflict: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateIn {
    #[serde(default)]
    pub profile: ProfileIn,
    /// Attribute changes; `null` removes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentsIn {
    pub changes: Vec<ConsentIn>,
    #[serde(default)]
    pub source: SourceIn,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MergeIn {
    /// The survivor.
    pub into: String,
    /// The member absorbed; its id keeps answering with a pointer to the survivor.
    pub from: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub city: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    pub verified: bool,
    pub added_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub channel: Option<String>,
    pub store_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub decided_at: String,
    pub source: SourceView,
    pub method: String,
}

impl From<&Decision> for ConsentView {
    fn from(d: &Decision) -> Self {
        ConsentView {
            purpose: d.purpose.as_str().into(),
            channel: d.channel.as_str().into(),
            granted: d.granted,
            decided_at: rfc3339(d.decided_at),
            source: SourceView { channel: d.source_channel.clone(), store_id: d.source_store.clone() },
            method: d.method.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummaryView {
    pub id: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub status: String,
    pub placed_at: String,
    pub payable_fen: i64,
}

/// The member 360° view. Tags, RFM and lifecycle join it with the customer data platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    /// Present when the id asked for was absorbed by a merge: the survivor (same as `id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Present when the id asked for was absorbed by a merge: that id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_id: Option<String>,
    /// Whether personal data in this answer is masked for the caller's role.
    pub masked: bool,
    pub profile: ProfileView,
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub identities: Vec<IdentityView>,
    pub consents: Vec<ConsentView>,
    pub merged_from: Vec<String>,
    /// The loyalty tier, if the programme has tiers and the member reached one.
    pub tier: Option<String>,
    pub points_balance: i64,
    /// The latest five orders, newest first.
    pub recent_orders: Vec<OrderSummaryView>,
    pub source: SourceView,
    pub created_at: String,
    pub updated_at: String,
    /// Manual tags and the rule tags the member matches now.
    pub tags: Vec<String>,
    /// RFM scores and raw values; absent before the first purchase.
    pub rfm: Option<MemberRfmView>,
    /// Lifecycle stage: new, growing, mature, silent or churned.
    pub lifecycle: Option<String>,
    /// Built-in dimensions (docs/cdp.md); event-derived ones only with profiling consent.
    #[schema(value_type = Object)]
    pub dimensions: BTreeMap<String, Vec<String>>,
    /// The latest ten events on the member's timeline, newest first (`GET /v1/members/{id}`
    /// only; the whole timeline is `GET /v1/members/{id}/events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub timeline: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRfmView {
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub cell: String,
    /// One of the eight named groups (important_value …).
    pub group: Option<String>,
    /// Days since the last order, orders and paid fen within the window (GET by id only).
    pub recency_days: Option<u32>,
    pub frequency: Option<i64>,
    pub monetary_fen: Option<i64>,
}

impl MemberView {
    pub fn build(m: &MemberRecord, masked: bool) -> MemberView {
        let p = &m.profile;
        let hide =
            |v: &Option<String>, f: fn(&str) -> String| v.as_deref().map(|s| if masked { f(s) } else { s.to_string() });
        MemberView {
            id: m.id.clone(),
            merged_into: m.requested_id.as_ref().map(|_| m.id.clone()),
            requested_id: m.requested_id.clone(),
            masked,
            profile: ProfileView {
                name: hide(&p.name, mask::name),
                gender: p.gender.map(|g| g.as_str().to_string()),
                birthday: hide(&p.birthday, mask::birthday),
                city: p.city.clone(),
                address: hide(&p.address, mask::address),
            },
            attributes: m.attributes.clone(),
            identities: m
                .identities
                .iter()
                .map(|i| IdentityView {
                    kind: i.identity.kind().as_str().into(),
                    value: if masked {
                        mask::identity(i.identity.kind(), i.identity.value())
                    } else {
                        i.identity.value().to_string()
                    },
                    app_id: i.identity.app_id().map(str::to_string),
                    verified: i.verified,
                    added_at: rfc3339(i.added_at),
                })
                .collect(),
            consents: m.consents.iter().map(ConsentView::from).collect(),
            merged_from: m.merged_from.clone(),
            tier: m.tier.clone(),
            points_balance: m.points_balance,
            recent_orders: m
                .recent_orders
                .iter()
                .map(|o| OrderSummaryView {
                    id: o.id.clone(),
                    channel: o.channel.clone(),
                    store_id: o.store_id.clone(),
                    status: o.status.clone(),
                    placed_at: rfc3339(o.placed_at),
                    payable_fen: o.payable_fen,
                })
                .collect(),
            source: SourceView { channel: m.source.channel.clone(), store_id: m.source.store_id.clone() },
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            tags: Vec::new(),
            rfm: None,
            lifecycle: None,
            dimensions: BTreeMap::new(),
            timeline: None,
        }
    }

    /// Whether this view shows any personal data in the clear (reads of it are audited).
    pub fn reveals_personal_data(&self) -> bool {
        !self.masked
            && (self.profile.name.is_some()
                || self.profile.birthday.is_some()
                || self.profile.address.is_some()
                || !self.identities.is_empty())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredView {
    /// created, existing or merged
    pub outcome: String,
    /// Members merged into this one by this registration (on_conflict: merge).
    pub absorbed: Vec<String>,
    #[serde(flatten)]
    pub member: MemberView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergedView {
    pub absorbed: String,
    pub identities_moved: usize,
    #[serde(flatten)]
    pub member: MemberView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentsView {
    pub id: String,
    /// The current decision per (purpose, channel); a pair never decided is not granted.
    pub consents: Vec<ConsentView>,
    /// Every decision ever recorded, oldest first.
    pub history: Vec<ConsentView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergeRecordView {
    pub from_id: String,
    pub into_id: String,
    pub merged_at: String,
    pub identities_moved: i64,
}

/// The member's own copy of their data (PIPL right of access); never masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub exported_at: String,
    pub member: MemberView,
    pub consent_history: Vec<ConsentView>,
    pub merges: Vec<MergeRecordView>,
}

impl ExportView {
    pub fn build(e: &Export, now: i64) -> ExportView {
        ExportView {
            exported_at: rfc3339(now),
            member: MemberView::build(&e.member, false),
            consent_history: e.consent_history.iter().map(ConsentView::from).collect(),
            merges: e
                .merges
                .iter()
                .map(|m| MergeRecordView {
                    from_id: m.from_id.clone(),
                    into_id: m.into_id.clone(),
                    merged_at: rfc3339(m.merged_at),
                    identities_moved: m.identities_moved,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedView {
    pub id: String,
    pub erased: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QrView {
    /// Show as a QR code; valid until `expires_at` (about a minute).
    pub token: String,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LookupIn {
    /// An identity type, or `qr_token` for a scanned member code.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub app_id: Option<String>,
}
