//! Announcements and tickets.

use chrono::{DateTime, Duration, Utc};
use domain::MerchantId;
use store::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreConfig { writer_cache_kib: 4 * 1024, cache_kib: 1024, ..StoreConfig::default() }).unwrap();
    (dir, store)
}

fn notice(merchant: Option<&str>, start: &str, end: Option<&str>) -> NewAnnouncement {
    NewAnnouncement {
        title_zh: "系统维护".into(),
        title_en: "Maintenance".into(),
        body_zh: "查询暂停".into(),
        body_en: "Queries paused".into(),
        merchant_id: merchant.map(|m| MerchantId::parse(m).unwrap()),
        starts_at: at(start),
        ends_at: end.map(at),
        maintenance: true,
        affects: vec![Affects::Query, Affects::Capture],
    }
}

#[test]
fn announcements_are_listed_by_merchant_and_window_and_ended_not_deleted() {
    let (_d, s) = open();
    let all = s.create_announcement(&notice(None, "2026-11-20T01:00:00Z", Some("2026-11-20T03:00:00Z")), "bank").unwrap();
    let mine = s.create_announcement(&notice(Some("898310048990001"), "2026-11-24T00:00:00Z", None), "bank").unwrap();
    s.create_announcement(&notice(Some("898310048990002"), "2026-11-24T00:00:00Z", None), "bank").unwrap();
    assert_eq!(all.content.affects, vec![Affects::Query, Affects::Capture]);
    let m1 = MerchantId::parse("898310048990001").unwrap();
    let listed = s.list_announcements(Some(&m1), None, 50).unwrap();
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), vec![mine.id, all.id], "own and global, newest first");
    let window = s.list_announcements(Some(&m1), Some((at("2026-11-20T02:00:00Z"), at("2026-11-20T02:30:00Z"))), 50).unwrap();
    assert_eq!(window.iter().map(|a| a.id).collect::<Vec<_>>(), vec![all.id]);
    assert!(mine.active_at(at("2026-11-25T00:00:00Z")));
    let ended = s.end_announcement(mine.id, at("2026-11-25T00:00:00Z")).unwrap();
    assert!(!ended.active_at(at("2026-11-25T00:00:01Z")));
    assert!(s.get_announcement(mine.id).unwrap().is_some(), "kept for history");
    let bad = notice(None, "2026-11-20T03:00:00Z", Some("2026-11-20T01:00:00Z"));
    assert!(matches!(s.create_announcement(&bad, "bank"), Err(StoreError::Invalid { .. })));
    assert!(matches!(s.update_announcement(999, &notice(None, "2026-11-20T01:00:00Z", None)), Err(StoreError::NotFound { .. })));
}

#[test]
fn a_ticket_is_opened_once_per_key_and_every_step_is_recorded() {
    let (_d, s) = open();
    let m = MerchantId::parse("898310048990001").unwrap();
    let new = NewTicket {
        merchant_id: m.clone(),
        opened_by: "user:owner".into(),
        client_key: "k1".into(),
        subject: "找不到 11-20 的 128.00 元".into(),
        details: "{}".into(),
        diagnosis: "{\"findings\":[]}".into(),
    };
    let t0 = at("2026-11-25T08:00:00Z");
    let (t, created) = s.open_ticket(&new, t0).unwrap();
    assert!(created);
    let (again, created_again) = s.open_ticket(&new, t0 + Duration::seconds(5)).unwrap();
    assert_eq!((again.id, created_again), (t.id, false));
    s.assign_ticket(t.id, "bank-ops-1", "user:bank", t0 + Duration::minutes(1)).unwrap();
    s.comment_ticket(t.id, "正在核对清算文件", "user:bank", t0 + Duration::minutes(2)).unwrap();
    let resolved = s
        .resolve_ticket(t.id, &Resolution { text: "交易在 11-21 清算".into(), txn_id: Some("01ABC".into()) }, "user:bank", t0 + Duration::minutes(3))
        .unwrap();
    assert_eq!(resolved.status, TicketStatus::Resolved);
    assert_eq!(resolved.assignee.as_deref(), Some("bank-ops-1"));
    assert!(matches!(s.comment_ticket(t.id, "late", "user:bank", t0), Err(StoreError::Invalid { .. })));
    let (_, events) = s.get_ticket(t.id).unwrap().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["open", "assign", "comment", "resolve"]);
    assert_eq!(s.list_tickets(Some(&m), Some(TicketStatus::Resolved), 10).unwrap().len(), 1);
    assert!(s.list_tickets(Some(&MerchantId::parse("898310048990002").unwrap()), None, 10).unwrap().is_empty());
}
