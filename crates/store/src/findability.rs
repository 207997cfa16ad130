//! Announcements and missing-transaction tickets: plain data and the repository traits.

use chrono::{DateTime, Utc};
use domain::MerchantId;

use crate::StoreError;

/// What a maintenance window affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Affects {
    Query,
    Capture,
    Settlement,
}

impl Affects {
    pub const ALL: [Affects; 3] = [Affects::Query, Affects::Capture, Affects::Settlement];

    pub fn as_str(self) -> &'static str {
        match self {
            Affects::Query => "query",
            Affects::Capture => "capture",
            Affects::Settlement => "settlement",
        }
    }

    pub fn parse(s: &str) -> Option<Affects> {
        Affects::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnnouncement {
    pub title_zh: String,
    pub title_en: String,
    pub body_zh: String,
    pub body_en: String,
    /// `None`: every merchant.
    pub merchant_id: Option<MerchantId>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// A maintenance window (its `affects` say what does not work during it).
    pub maintenance: bool,
    pub affects: Vec<Affects>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: i64,
    pub content: NewAnnouncement,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Announcement {
    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        self.content.starts_at <= t && self.content.ends_at.is_none_or(|e| t < e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    Open,
    Assigned,
    Resolved,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Assigned => "assigned",
            TicketStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<TicketStatus> {
        [TicketStatus::Open, TicketStatus::Assigned, TicketStatus::Resolved].into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub merchant_id: MerchantId,
    pub opened_by: String,
    /// Idempotency: the same key for the same merchant opens one ticket.
    pub client_key: String,
    pub subject: String,
    /// Serialised by the edge (the store does not read it).
    pub details: String,
    pub diagnosis: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: i64,
    pub merchant_id: MerchantId,
    pub opened_by: String,
    pub subject: String,
    pub details: String,
    pub diagnosis: String,
    pub status: TicketStatus,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    pub resolved_txn_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a ticket is resolved: the transaction was found, or an explanation is given (or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub text: String,
    pub txn_id: Option<String>,
}

pub trait AnnouncementRepo {
    fn create_announcement(&self, a: &NewAnnouncement, actor: &str) -> Result<Announcement, StoreError>;
    /// Replaces the content; `NotFound` for an unknown id.
    fn update_announcement(&self, id: i64, a: &NewAnnouncement) -> Result<Announcement, StoreError>;
    /// Ends it at `at` (keeps it for history: past windows explain old gaps).
    fn end_announcement(&self, id: i64, at: DateTime<Utc>) -> Result<Announcement, StoreError>;
    fn get_announcement(&self, id: i64) -> Result<Option<Announcement>, StoreError>;
    /// Announcements for a merchant (its own and those for everyone; `None`: all), newest
    /// first, at most `limit`, optionally only those overlapping `[from, to)`.
    fn list_announcements(
        &self,
        merchant_id: Option<&MerchantId>,
        overlapping: Option<(DateTime<Utc>, DateTime<Utc>)>,
        limit: u32,
    ) -> Result<Vec<Announcement>, StoreError>;
}

pub trait TicketRepo {
    /// Opens a ticket, or returns the one already opened with the same client key (`true`
    /// when it was new).
    fn open_ticket(&self, t: &NewTicket, at: DateTime<Utc>) -> Result<(Ticket, bool), StoreError>;
    fn get_ticket(&self, id: i64) -> Result<Option<(Ticket, Vec<TicketEvent>)>, StoreError>;
    /// Newest first; one merchant or all; optionally one status.
    fn list_tickets(&self, merchant_id: Option<&MerchantId>, status: Option<TicketStatus>, limit: u32)
        -> Result<Vec<Ticket>, StoreError>;
    fn assign_ticket(&self, id: i64, assignee: &str, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError>;
    fn comment_ticket(&self, id: i64, text: &str, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError>;
    /// `Invalid` when already resolved.
    fn resolve_ticket(&self, id: i64, r: &Resolution, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError>;
}
