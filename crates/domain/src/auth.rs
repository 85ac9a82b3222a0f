//! Roles and what each may do. The server asks [`Role::may`] before every handler runs; a
//! scoped key (store or channel) is further limited to its own store or channel.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Marketer,
    Analyst,
    Store,
    Channel,
    Tracker,
}

impl Role {
    pub const ALL: &'static [Role] =
        &[Role::Admin, Role::Marketer, Role::Analyst, Role::Store, Role::Channel, Role::Tracker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketer => "marketer",
            Role::Analyst => "analyst",
            Role::Store => "store",
            Role::Channel => "channel",
            Role::Tracker => "tracker",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// Whether this role may perform `action` at all.
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            ReadMember => matches!(self, Admin | Marketer | Analyst | Store | Channel),
            RegisterMember | UpdateMember | RecordConsent => {
                matches!(self, Admin | Store | Channel)
            }
            MergeMembers | ExportMember | IssueQr => matches!(self, Admin | Channel),
            EraseMember | ReadAudit | ManageKeys => self == Admin,
            ManageAttributes | ManageProgram | ManageCoupons => matches!(self, Admin | Marketer),
            IssueCoupons => matches!(self, Admin | Marketer | Channel),
            ReadCoupons => self != Tracker,
            ReadAttributes | ReadCatalogue => self != Tracker,
            ManageCatalogue | AdjustPoints => self == Admin,
            PlaceOrder | CancelOrder => matches!(self, Admin | Store | Channel),
            ReadOrder => matches!(self, Admin | Marketer | Analyst | Store | Channel),
            Track => matches!(self, Admin | Store | Channel | Tracker),
            ReadAudience | ExportAudience => matches!(self, Admin | Marketer | Analyst),
            ManageAudience => matches!(self, Admin | Marketer),
            TagMembers => matches!(self, Admin | Marketer | Channel),
            ManageStock | PushStock => self == Admin,
            ReadStock => self != Tracker,
            MoveStock => matches!(self, Admin | Store),
            SubscribeStock => matches!(self, Admin | Store | Channel),
            ManageWebhooks => self == Admin,
        }
    }

    /// Whether this role sees personal data unmasked by default (`--unmasked-roles` changes it).
    pub fn unmasked_by_default(self) -> bool {
        matches!(self, Role::Admin | Role::Marketer)
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadMember,
    RegisterMember,
    UpdateMember,
    RecordConsent,
    MergeMembers,
    ExportMember,
    IssueQr,
    EraseMember,
    ReadAudit,
    ManageKeys,
    ManageAttributes,
    ReadAttributes,
    ManageCatalogue,
    ReadCatalogue,
    ManageProgram,
    PlaceOrder,
    CancelOrder,
    ReadOrder,
    AdjustPoints,
    ManageCoupons,
    IssueCoupons,
    ReadCoupons,
    /// Send behaviour events (the tracking API).
    Track,
    /// Segment counts, RFM, lifecycle, data quality, event exports (no personal data).
    ReadAudience,
    ExportAudience,
    /// Define tags and segments, change RFM and lifecycle rules.
    ManageAudience,
    /// Add and remove manual tags on members.
    TagMembers,
    /// Create and change locations.
    ManageStock,
    /// Push stock levels (ERP, WMS, stock-takes).
    PushStock,
    /// Read stock and availability.
    ReadStock,
    /// Request, ship and receive transfers (a store key for its own store).
    MoveStock,
    /// Put a member on a back-in-stock list.
    SubscribeStock,
    /// Subscribe URLs to events, read and replay deliveries.
    ManageWebhooks,
}

/// Who is calling: an API key's id, role and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
    /// A store key writes only for this store.
    pub store_id: Option<String>,
    /// A channel key writes only for this channel.
    pub channel: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_keys_cannot_touch_members() {
        for a in [Action::ReadMember, Action::RegisterMember, Action::MergeMembers, Action::ReadAttributes] {
            assert!(!Role::Tracker.may(a));
        }
    }

    #[test]
    fn only_admin_erases_and_reads_audit() {
        for r in Role::ALL {
            assert_eq!(r.may(Action::EraseMember), *r == Role::Admin);
            assert_eq!(r.may(Action::ReadAudit), *r == Role::Admin);
        }
    }
}
