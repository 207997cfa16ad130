//! SQLite implementation of announcements and tickets.

use chrono::{DateTime, Utc};
use domain::MerchantId;
use rusqlite::{Connection, OptionalExtension, Row};

use super::{from_us, SqliteStore};
use crate::findability::*;
use crate::model::PAGE_LIMIT_MAX;
use crate::StoreError;

const ANNOUNCEMENT_COLUMNS: &str = "id, title_zh, title_en, body_zh, body_en, merchant_id, starts_at_us, ends_at_us, \
     maintenance, affects, created_by, created_at_us, updated_at_us";

fn announcement(r: &Row<'_>) -> rusqlite::Result<(Announcement, Option<String>, String)> {
    let merchant: Option<String> = r.get(5)?;
    let affects: String = r.get(9)?;
    Ok((
        Announcement {
            id: r.get(0)?,
            content: NewAnnouncement {
                title_zh: r.get(1)?,
                title_en: r.get(2)?,
                body_zh: r.get(3)?,
                body_en: r.get(4)?,
                merchant_id: None,
                starts_at: from_us(r.get(6)?),
                ends_at: r.get::<_, Option<i64>>(7)?.map(from_us),
                maintenance: r.get::<_, i64>(8)? != 0,
                affects: Vec::new(),
            },
            created_by: r.get(10)?,
            created_at: from_us(r.get(11)?),
            updated_at: from_us(r.get(12)?),
        },
        merchant,
        affects,
    ))
}

fn finish_announcement((mut a, merchant, affects): (Announcement, Option<String>, String)) -> Result<Announcement, StoreError> {
    a.content.merchant_id = merchant
        .map(|m| MerchantId::parse(&m).map_err(|_| StoreError::Corrupt { column: "announcements.merchant_id", value: m }))
        .transpose()?;
    a.content.affects = affects
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Affects::parse(s).ok_or_else(|| StoreError::Corrupt { column: "announcements.affects", value: s.to_owned() }))
        .collect::<Result<_, _>>()?;
    Ok(a)
}

fn load_announcement(c: &Connection, id: i64) -> Result<Option<Announcement>, StoreError> {
    let raw = c
        .query_row(&format!("SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements WHERE id = ?1"), [id], announcement)
        .optional()?;
    raw.map(finish_announcement).transpose()
}

fn affects_text(a: &NewAnnouncement) -> String {
    let mut v = a.affects.clone();
    v.sort_unstable();
    v.dedup();
    v.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")
}

fn check(a: &NewAnnouncement) -> Result<(), StoreError> {
    if a.title_zh.trim().is_empty() || a.title_en.trim().is_empty() {
        return Err(StoreError::Invalid { what: "announcement", reason: "a title in Chinese and in English is required".into() });
    }
    if a.ends_at.is_some_and(|e| e <= a.starts_at) {
        return Err(StoreError::Invalid { what: "announcement", reason: "ends_at must be after starts_at".into() });
    }
    Ok(())
}

impl AnnouncementRepo for SqliteStore {
    fn create_announcement(&self, a: &NewAnnouncement, actor: &str) -> Result<Announcement, StoreError> {
        check(a)?;
        let (a, actor) = (a.clone(), actor.to_owned());
        self.write(move |ctx| {
            let now = super::now_us();
            ctx.conn.execute(
                "INSERT INTO announcements (title_zh, title_en, body_zh, body_en, merchant_id, starts_at_us, ends_at_us, \
                 maintenance, affects, created_by, created_at_us, updated_at_us) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11)",
                rusqlite::params![
                    a.title_zh, a.title_en, a.body_zh, a.body_en, a.merchant_id.as_ref().map(|m| m.as_str()),
                    a.starts_at.timestamp_micros(), a.ends_at.map(|e| e.timestamp_micros()), a.maintenance as i64,
                    affects_text(&a), actor, now
                ],
            )?;
            let id = ctx.conn.last_insert_rowid();
            load_announcement(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "announcement", key: id.to_string() })
        })
    }

    fn update_announcement(&self, id: i64, a: &NewAnnouncement) -> Result<Announcement, StoreError> {
        check(a)?;
        let a = a.clone();
        self.write(move |ctx| {
            let n = ctx.conn.execute(
                "UPDATE announcements SET title_zh=?1, title_en=?2, body_zh=?3, body_en=?4, merchant_id=?5, starts_at_us=?6, \
                 ends_at_us=?7, maintenance=?8, affects=?9, updated_at_us=?10 WHERE id=?11",
                rusqlite::params![
                    a.title_zh, a.title_en, a.body_zh, a.body_en, a.merchant_id.as_ref().map(|m| m.as_str()),
                    a.starts_at.timestamp_micros(), a.ends_at.map(|e| e.timestamp_micros()), a.maintenance as i64,
                    affects_text(&a), super::now_us(), id
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "announcement", key: id.to_string() });
            }
            load_announcement(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "announcement", key: id.to_string() })
        })
    }

    fn end_announcement(&self, id: i64, at: DateTime<Utc>) -> Result<Announcement, StoreError> {
        self.write(move |ctx| {
            let current = load_announcement(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "announcement", key: id.to_string() })?;
            // Ending never moves the end later, and never before the start.
            let end = current.content.ends_at.map_or(at, |e| e.min(at)).max(current.content.starts_at);
            ctx.conn.execute(
                "UPDATE announcements SET ends_at_us = ?1, updated_at_us = ?2 WHERE id = ?3",
                (end.timestamp_micros(), super::now_us(), id),
            )?;
            load_announcement(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "announcement", key: id.to_string() })
        })
    }

    fn get_announcement(&self, id: i64) -> Result<Option<Announcement>, StoreError> {
        self.read(|c| load_announcement(c, id))
    }

    fn list_announcements(
        &self,
        merchant_id: Option<&MerchantId>,
        overlapping: Option<(DateTime<Utc>, DateTime<Utc>)>,
        limit: u32,
    ) -> Result<Vec<Announcement>, StoreError> {
        let merchant = merchant_id.map(|m| m.as_str().to_owned());
        let (from, to) = overlapping.map_or((i64::MIN, i64::MAX), |(f, t)| (f.timestamp_micros(), t.timestamp_micros()));
        let limit = limit.clamp(1, PAGE_LIMIT_MAX);
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
                 WHERE (?1 IS NULL OR merchant_id IS NULL OR merchant_id = ?1) \
                   AND starts_at_us < ?3 AND (ends_at_us IS NULL OR ends_at_us > ?2) \
                 ORDER BY starts_at_us DESC, id DESC LIMIT {limit}"
            ))?;
            let raws = stmt.query_map(rusqlite::params![merchant, from, to], announcement)?.collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(finish_announcement).collect()
        })
    }
}

const TICKET_COLUMNS: &str = "id, merchant_id, opened_by, subject, details, diagnosis, status, assignee, resolution, \
     resolved_txn_id, created_at_us, updated_at_us";

fn ticket(r: &Row<'_>) -> rusqlite::Result<(Ticket, String, String)> {
    let merchant: String = r.get(1)?;
    let status: String = r.get(6)?;
    Ok((
        Ticket {
            id: r.get(0)?,
            merchant_id: MerchantId::parse("000000000000000").expect("placeholder is valid"),
            opened_by: r.get(2)?,
            subject: r.get(3)?,
            details: r.get(4)?,
            diagnosis: r.get(5)?,
            status: TicketStatus::Open,
            assignee: r.get(7)?,
            resolution: r.get(8)?,
            resolved_txn_id: r.get(9)?,
            created_at: from_us(r.get(10)?),
            updated_at: from_us(r.get(11)?),
        },
        merchant,
        status,
    ))
}

fn finish_ticket((mut t, merchant, status): (Ticket, String, String)) -> Result<Ticket, StoreError> {
    t.merchant_id = MerchantId::parse(&merchant).map_err(|_| StoreError::Corrupt { column: "tickets.merchant_id", value: merchant })?;
    t.status = TicketStatus::parse(&status).ok_or(StoreError::Corrupt { column: "tickets.status", value: status })?;
    Ok(t)
}

fn load_ticket(c: &Connection, id: i64) -> Result<Option<Ticket>, StoreError> {
    c.query_row(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"), [id], ticket).optional()?.map(finish_ticket).transpose()
}

fn event(c: &Connection, id: i64, actor: &str, action: &str, text: Option<&str>, at: DateTime<Utc>) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO ticket_events (ticket_id, at_us, actor, action, text) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![id, at.timestamp_micros(), actor, action, text],
    )?;
    Ok(())
}

/// Runs a ticket step on the writer: checks the ticket exists and is not resolved, applies
/// `update`, records the event.
fn step(
    store: &SqliteStore,
    id: i64,
    actor: &str,
    action: &'static str,
    text: Option<String>,
    at: DateTime<Utc>,
    update: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
) -> Result<Ticket, StoreError> {
    let actor = actor.to_owned();
    store.write(move |ctx| {
        let t = load_ticket(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "ticket", key: id.to_string() })?;
        if t.status == TicketStatus::Resolved {
            return Err(StoreError::Invalid { what: "ticket", reason: format!("ticket {id} is already resolved") });
        }
        update(&ctx.conn)?;
        ctx.conn.execute("UPDATE tickets SET updated_at_us = ?1 WHERE id = ?2", (at.timestamp_micros(), id))?;
        event(&ctx.conn, id, &actor, action, text.as_deref(), at)?;
        load_ticket(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "ticket", key: id.to_string() })
    })
}

impl TicketRepo for SqliteStore {
    fn open_ticket(&self, t: &NewTicket, at: DateTime<Utc>) -> Result<(Ticket, bool), StoreError> {
        if t.subject.trim().is_empty() || t.client_key.is_empty() {
            return Err(StoreError::Invalid { what: "ticket", reason: "a subject and a client key are required".into() });
        }
        let t = t.clone();
        self.write(move |ctx| {
            let existing: Option<i64> = ctx
                .conn
                .query_row(
                    "SELECT id FROM tickets WHERE merchant_id = ?1 AND client_key = ?2",
                    (t.merchant_id.as_str(), &t.client_key),
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                let found = load_ticket(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "ticket", key: id.to_string() })?;
                return Ok((found, false));
            }
            let at_us = at.timestamp_micros();
            ctx.conn.execute(
                "INSERT INTO tickets (merchant_id, opened_by, client_key, subject, details, diagnosis, status, created_at_us, updated_at_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?7)",
                rusqlite::params![t.merchant_id.as_str(), t.opened_by, t.client_key, t.subject, t.details, t.diagnosis, at_us],
            )?;
            let id = ctx.conn.last_insert_rowid();
            event(&ctx.conn, id, &t.opened_by, "open", Some(&t.subject), at)?;
            Ok((load_ticket(&ctx.conn, id)?.ok_or(StoreError::NotFound { what: "ticket", key: id.to_string() })?, true))
        })
    }

    fn get_ticket(&self, id: i64) -> Result<Option<(Ticket, Vec<TicketEvent>)>, StoreError> {
        self.read(|c| {
            let Some(t) = load_ticket(c, id)? else { return Ok(None) };
            let mut stmt = c.prepare_cached("SELECT at_us, actor, action, text FROM ticket_events WHERE ticket_id = ?1 ORDER BY id")?;
            let events = stmt
                .query_map([id], |r| Ok(TicketEvent { at: from_us(r.get(0)?), actor: r.get(1)?, action: r.get(2)?, text: r.get(3)? }))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((t, events)))
        })
    }

    fn list_tickets(&self, merchant_id: Option<&MerchantId>, status: Option<TicketStatus>, limit: u32) -> Result<Vec<Ticket>, StoreError> {
        let merchant = merchant_id.map(|m| m.as_str().to_owned());
        let status = status.map(|s| s.as_str());
        let limit = limit.clamp(1, PAGE_LIMIT_MAX);
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE (?1 IS NULL OR merchant_id = ?1) AND (?2 IS NULL OR status = ?2) \
                 ORDER BY id DESC LIMIT {limit}"
            ))?;
            let raws = stmt.query_map(rusqlite::params![merchant, status], ticket)?.collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(finish_ticket).collect()
        })
    }

    fn assign_ticket(&self, id: i64, assignee: &str, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError> {
        let who = assignee.to_owned();
        step(self, id, actor, "assign", Some(assignee.to_owned()), at, move |c| {
            c.execute("UPDATE tickets SET status = 'assigned', assignee = ?1 WHERE id = ?2", (&who, id))?;
            Ok(())
        })
    }

    fn comment_ticket(&self, id: i64, text: &str, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError> {
        step(self, id, actor, "comment", Some(text.to_owned()), at, |_| Ok(()))
    }

    fn resolve_ticket(&self, id: i64, r: &Resolution, actor: &str, at: DateTime<Utc>) -> Result<Ticket, StoreError> {
        if r.text.trim().is_empty() && r.txn_id.is_none() {
            return Err(StoreError::Invalid { what: "resolution", reason: "link the found transaction or write the explanation".into() });
        }
        let r2 = r.clone();
        step(self, id, actor, "resolve", Some(r.text.clone()), at, move |c| {
            c.execute(
                "UPDATE tickets SET status = 'resolved', resolution = ?1, resolved_txn_id = ?2 WHERE id = ?3",
                rusqlite::params![r2.text, r2.txn_id, id],
            )?;
            Ok(())
        })
    }
}
