//! Merchants, terminals, users and sessions, API keys, audit events.

use chrono::{DateTime, Utc};
use domain::{Amount, BatchNo, MerchantClock, MerchantId, MerchantStatus, Role, TerminalId};
use rusqlite::{Connection, OptionalExtension, Row};

use super::{from_us, now_us, SqliteStore, WriterCtx};
use crate::model::*;
use crate::repo::{ApiKeyRepo, AuditRepo, MerchantRepo, TerminalRepo, UserRepo};
use crate::StoreError;

fn corrupt(column: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.into(),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn join_ids<T: std::fmt::Display>(ids: &[T]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn split_ids<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, domain::IdError>,
    column: &'static str,
) -> Result<Vec<T>, StoreError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| parse(p).map_err(|_| corrupt(column, p)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Merchants
// ---------------------------------------------------------------------------------------------

const MERCHANT_COLS: &str = "merchant_id, name_zh, name_en, mcc, status, status_reason, status_since_us, timezone, cutoff, \
     single_txn_limit_fen, wechat_sub_mch_id, alipay_id, created_at_us";

struct RawMerchant {
    id: String,
    name_zh: String,
    name_en: Option<String>,
    mcc: Option<String>,
    status: String,
    status_reason: Option<String>,
    status_since_us: i64,
    timezone: String,
    cutoff: String,
    limit_fen: Option<i64>,
    wechat: Option<String>,
    alipay: Option<String>,
    created_at_us: i64,
}

fn raw_merchant(r: &Row<'_>) -> rusqlite::Result<RawMerchant> {
    Ok(RawMerchant {
        id: r.get(0)?,
        name_zh: r.get(1)?,
        name_en: r.get(2)?,
        mcc: r.get(3)?,
        status: r.get(4)?,
        status_reason: r.get(5)?,
        status_since_us: r.get(6)?,
        timezone: r.get(7)?,
        cutoff: r.get(8)?,
        limit_fen: r.get(9)?,
        wechat: r.get(10)?,
        alipay: r.get(11)?,
        created_at_us: r.get(12)?,
    })
}

impl RawMerchant {
    fn into_merchant(self) -> Result<Merchant, StoreError> {
        Ok(Merchant {
            id: MerchantId::parse(&self.id)
                .map_err(|_| corrupt("merchants.merchant_id", &self.id))?,
            status: MerchantStatus::parse(&self.status)
                .map_err(|_| corrupt("merchants.status", &self.status))?,
            clock: MerchantClock::new(&self.timezone, &self.cutoff).map_err(|_| {
                corrupt(
                    "merchants.timezone/cutoff",
                    format!("{} {}", self.timezone, self.cutoff),
                )
            })?,
            single_txn_limit: match self.limit_fen {
                None => None,
                Some(f) => Some(
                    Amount::from_fen(f)
                        .map_err(|_| corrupt("merchants.single_txn_limit_fen", f.to_string()))?,
                ),
            },
            name_zh: self.name_zh,
            name_en: self.name_en,
            mcc: self.mcc,
            status_reason: self.status_reason,
            status_since: from_us(self.status_since_us),
            wechat_sub_mch_id: self.wechat,
            alipay_id: self.alipay,
            created_at: from_us(self.created_at_us),
        })
    }
}

/// Looks a merchant up inside a writer or reader connection.
pub(crate) fn load_merchant(conn: &Connection, id: &str) -> Result<Option<Merchant>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {MERCHANT_COLS} FROM merchants WHERE merchant_id = ?1"
        ))?
        .query_row([id], raw_merchant)
        .optional()?;
    raw.map(RawMerchant::into_merchant).transpose()
}

/// Inserts a merchant and its first history entry. Used by `create_merchant` and by ingest's
/// `create_missing`.
pub(crate) fn insert_merchant(
    conn: &Connection,
    m: &NewMerchant,
    actor: &str,
    at_us: i64,
) -> Result<(), StoreError> {
    let r = conn
        .prepare_cached(&format!(
            "INSERT INTO merchants ({MERCHANT_COLS}) VALUES (?1, ?2, ?3, ?4, 'active', NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?5)"
        ))?
        .execute(rusqlite::params![
            m.id.as_str(),
            m.name_zh,
            m.name_en,
            m.mcc,
            at_us,
            m.clock.tz.name(),
            m.clock.cutoff.to_string(),
            m.single_txn_limit.map(|a| a.fen()),
            m.wechat_sub_mch_id,
            m.alipay_id,
        ]);
    match r {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists {
                what: "merchant",
                key: m.id.to_string(),
            })
        }
        r => r?,
    };
    conn.prepare_cached(
        "INSERT INTO merchant_status_history (merchant_id, status, reason, actor, effective_at_us, recorded_at_us)
         VALUES (?1, 'active', 'created', ?2, ?3, ?3)",
    )?
    .execute((m.id.as_str(), actor, at_us))?;
    Ok(())
}

impl SqliteStore {
    /// Runs `sql` (`?1` the user id, `?2` the value) on one user; `NotFound` if there is none.
    fn set_user_text(&self, id: i64, sql: &'static str, value: String) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let n = ctx.conn.prepare_cached(sql)?.execute((id, &value))?;
            if n == 0 {
                Err(StoreError::NotFound { what: "user", key: id.to_string() })
            } else {
                Ok(())
            }
        })
    }

    /// A write that changes merchant or terminal rows as caches of them see them.
    fn write_config<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriterCtx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let r = self.write(f);
        self.bump_generation();
        r
    }
}

impl MerchantRepo for SqliteStore {
    fn create_merchant(&self, m: &NewMerchant, actor: &str) -> Result<Merchant, StoreError> {
        let m = m.clone();
        let actor = actor.to_owned();
        self.write_config(move |ctx| {
            insert_merchant(&ctx.conn, &m, &actor, now_us())?;
            load_merchant(&ctx.conn, m.id.as_str())?.ok_or(StoreError::NotFound {
                what: "merchant",
                key: m.id.to_string(),
            })
        })
    }

    fn get_merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, StoreError> {
        self.read(|c| load_merchant(c, id.as_str()))
    }

    fn list_merchants(&self, scope: &Scope) -> Result<Vec<Merchant>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MERCHANT_COLS} FROM merchants ORDER BY merchant_id"
            ))?;
            let raws = stmt
                .query_map([], raw_merchant)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::new();
            for raw in raws {
                let m = raw.into_merchant()?;
                if scope.allows_merchant(&m.id) {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    fn set_merchant_status(
        &self,
        id: &MerchantId,
        status: MerchantStatus,
        reason: &str,
        actor: &str,
        effective_at: DateTime<Utc>,
    ) -> Result<Merchant, StoreError> {
        let (id, reason, actor) = (id.clone(), reason.to_owned(), actor.to_owned());
        self.write_config(move |ctx| {
            let now = now_us();
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE merchants SET status = ?2, status_reason = ?3, status_since_us = ?4 WHERE merchant_id = ?1",
                )?
                .execute((id.as_str(), status.as_str(), &reason, effective_at.timestamp_micros()))?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "merchant", key: id.to_string() });
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO merchant_status_history (merchant_id, status, reason, actor, effective_at_us, recorded_at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute((id.as_str(), status.as_str(), &reason, &actor, effective_at.timestamp_micros(), now))?;
            load_merchant(&ctx.conn, id.as_str())?.ok_or(StoreError::NotFound { what: "merchant", key: id.to_string() })
        })
    }

    fn merchant_status_history(
        &self,
        id: &MerchantId,
    ) -> Result<Vec<MerchantStatusChange>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, reason, actor, effective_at_us, recorded_at_us FROM merchant_status_history
                 WHERE merchant_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([id.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(s, reason, actor, eff, rec)| {
                    Ok(MerchantStatusChange {
                        merchant_id: id.clone(),
                        status: MerchantStatus::parse(&s).map_err(|_| corrupt("merchant_status_history.status", &s))?,
                        reason,
                        actor,
                        effective_at: from_us(eff),
                        recorded_at: from_us(rec),
                    })
                })
                .collect()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Terminals
// ---------------------------------------------------------------------------------------------

const TERMINAL_COLS: &str =
    "merchant_id, terminal_id, status, master_key_hex, open_batch, last_seen_at_us, \
     last_sign_on_at_us, last_settlement_at_us, last_settlement_result, created_at_us";

type RawTerminal = (
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
);

fn raw_terminal(r: &Row<'_>) -> rusqlite::Result<RawTerminal> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn terminal_from_raw(t: RawTerminal) -> Result<Terminal, StoreError> {
    let (mid, tid, status, key, batch, seen, sign_on, settle_at, settle_result, created) = t;
    Ok(Terminal {
        id: TerminalId::parse(&tid).map_err(|_| corrupt("terminals.terminal_id", &tid))?,
        merchant_id: MerchantId::parse(&mid).map_err(|_| corrupt("terminals.merchant_id", &mid))?,
        status: TerminalStatus::parse(&status)
            .ok_or_else(|| corrupt("terminals.status", &status))?,
        master_key_hex: key,
        open_batch: match batch {
            None => None,
            Some(b) => Some(
                u32::try_from(b)
                    .ok()
                    .and_then(|b| BatchNo::new(b).ok())
                    .ok_or_else(|| corrupt("terminals.open_batch", b.to_string()))?,
            ),
        },
        last_seen_at: seen.map(from_us),
        last_sign_on_at: sign_on.map(from_us),
        last_settlement_at: settle_at.map(from_us),
        last_settlement_result: settle_result,
        created_at: from_us(created),
    })
}

pub(crate) fn load_terminal(
    conn: &Connection,
    merchant_id: &str,
    terminal_id: &str,
) -> Result<Option<Terminal>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {TERMINAL_COLS} FROM terminals WHERE merchant_id = ?1 AND terminal_id = ?2"
        ))?
        .query_row((merchant_id, terminal_id), raw_terminal)
        .optional()?;
    raw.map(terminal_from_raw).transpose()
}

pub(crate) fn insert_terminal(
    conn: &Connection,
    t: &NewTerminal,
    at_us: i64,
) -> Result<(), StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM merchants WHERE merchant_id = ?1")?
        .query_row([t.merchant_id.as_str()], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound {
            what: "merchant",
            key: t.merchant_id.to_string(),
        });
    }
    let r = conn
        .prepare_cached(
            "INSERT INTO terminals (merchant_id, terminal_id, status, master_key_hex, created_at_us)
             VALUES (?1, ?2, 'active', ?3, ?4)",
        )?
        .execute((t.merchant_id.as_str(), t.id.as_str(), &t.master_key_hex, at_us));
    match r {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            what: "terminal",
            key: format!("{} of merchant {}", t.id, t.merchant_id),
        }),
        r => r.map(|_| ()).map_err(StoreError::from),
    }
}

impl TerminalRepo for SqliteStore {
    fn create_terminal(&self, t: &NewTerminal) -> Result<Terminal, StoreError> {
        let t = t.clone();
        self.write_config(move |ctx| {
            insert_terminal(&ctx.conn, &t, now_us())?;
            load_terminal(&ctx.conn, t.merchant_id.as_str(), t.id.as_str())?.ok_or(
                StoreError::NotFound {
                    what: "terminal",
                    key: t.id.to_string(),
                },
            )
        })
    }

    fn get_terminal(
        &self,
        merchant_id: &MerchantId,
        id: &TerminalId,
    ) -> Result<Option<Terminal>, StoreError> {
        self.read(|c| load_terminal(c, merchant_id.as_str(), id.as_str()))
    }

    fn find_terminals(&self, id: &TerminalId) -> Result<Vec<Terminal>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TERMINAL_COLS} FROM terminals WHERE terminal_id = ?1 ORDER BY merchant_id"
            ))?;
            let raws = stmt
                .query_map([id.as_str()], raw_terminal)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(terminal_from_raw).collect()
        })
    }

    fn list_terminals(
        &self,
        scope: &Scope,
        merchant_id: Option<&MerchantId>,
    ) -> Result<Vec<Terminal>, StoreError> {
        self.read(|c| {
            let raws = match merchant_id {
                Some(m) => c
                    .prepare_cached(&format!(
                        "SELECT {TERMINAL_COLS} FROM terminals WHERE merchant_id = ?1 ORDER BY terminal_id"
                    ))?
                    .query_map([m.as_str()], raw_terminal)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!("SELECT {TERMINAL_COLS} FROM terminals ORDER BY merchant_id, terminal_id"))?
                    .query_map([], raw_terminal)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            let mut out = Vec::new();
            for raw in raws {
                let t = terminal_from_raw(raw)?;
                if scope.allows_merchant(&t.merchant_id) && scope.allows_terminal(Some(&t.id)) {
                    out.push(t);
                }
            }
            Ok(out)
        })
    }

    fn set_terminal_status(
        &self,
        merchant_id: &MerchantId,
        id: &TerminalId,
        status: TerminalStatus,
    ) -> Result<Terminal, StoreError> {
        let (mid, tid) = (merchant_id.clone(), id.clone());
        self.write_config(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE terminals SET status = ?3 WHERE merchant_id = ?1 AND terminal_id = ?2",
                )?
                .execute((mid.as_str(), tid.as_str(), status.as_str()))?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "terminal",
                    key: format!("{tid} of merchant {mid}"),
                });
            }
            load_terminal(&ctx.conn, mid.as_str(), tid.as_str())?.ok_or(StoreError::NotFound {
                what: "terminal",
                key: tid.to_string(),
            })
        })
    }

    fn update_terminal_sync(
        &self,
        merchant_id: &MerchantId,
        id: &TerminalId,
        sync: &TerminalSync,
    ) -> Result<(), StoreError> {
        let (mid, tid, s) = (merchant_id.clone(), id.clone(), sync.clone());
        // Only "last seen" changes nothing a cached terminal row is used for.
        let config =
            s.open_batch.is_some() || s.last_sign_on_at.is_some() || s.last_settlement.is_some();
        let job = move |ctx: &mut WriterCtx| {
            let (settle_at, settle_result) = match &s.last_settlement {
                Some((at, result)) => (Some(at.timestamp_micros()), Some(result.clone())),
                None => (None, None),
            };
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE terminals SET
                        open_batch = COALESCE(?3, open_batch),
                        last_seen_at_us = COALESCE(?4, last_seen_at_us),
                        last_sign_on_at_us = COALESCE(?5, last_sign_on_at_us),
                        last_settlement_at_us = COALESCE(?6, last_settlement_at_us),
                        last_settlement_result = COALESCE(?7, last_settlement_result)
                     WHERE merchant_id = ?1 AND terminal_id = ?2",
                )?
                .execute(rusqlite::params![
                    mid.as_str(),
                    tid.as_str(),
                    s.open_batch.map(|b| i64::from(b.get())),
                    s.last_seen_at.map(|t| t.timestamp_micros()),
                    s.last_sign_on_at.map(|t| t.timestamp_micros()),
                    settle_at,
                    settle_result,
                ])?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "terminal",
                    key: format!("{tid} of merchant {mid}"),
                });
            }
            Ok(())
        };
        if config {
            self.write_config(job)
        } else {
            self.write(job)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users and sessions
// ---------------------------------------------------------------------------------------------

const USER_COLS: &str =
    "id, username, role, merchant_id, terminals, password_hash, disabled, created_at_us";

type RawUser = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    bool,
    i64,
);

fn raw_user(r: &Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn user_from_raw(u: RawUser) -> Result<User, StoreError> {
    let (id, username, role, mid, terminals, password_hash, disabled, created) = u;
    Ok(User {
        id,
        username,
        role: Role::parse(&role).map_err(|_| corrupt("users.role", &role))?,
        merchant_id: match mid {
            None => None,
            Some(m) => Some(MerchantId::parse(&m).map_err(|_| corrupt("users.merchant_id", &m))?),
        },
        terminals: split_ids(&terminals, TerminalId::parse, "users.terminals")?,
        password_hash,
        disabled,
        created_at: from_us(created),
    })
}

fn load_user_where(
    conn: &Connection,
    clause: &str,
    key: &dyn rusqlite::ToSql,
) -> Result<Option<User>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE {clause}"))?
        .query_row([key], raw_user)
        .optional()?;
    raw.map(user_from_raw).transpose()
}

impl UserRepo for SqliteStore {
    fn create_user(&self, u: &NewUser) -> Result<User, StoreError> {
        if u.role.is_merchant() && u.merchant_id.is_none() {
            return Err(StoreError::Invalid {
                what: "user",
                reason: format!("role {} needs a merchant", u.role),
            });
        }
        if u.username.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "user",
                reason: "username must not be empty".into(),
            });
        }
        let u = u.clone();
        self.write(move |ctx| {
            let r = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO users (username, role, merchant_id, terminals, password_hash, disabled, created_at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                )?
                .execute(rusqlite::params![
                    u.username,
                    u.role.as_str(),
                    u.merchant_id.as_ref().map(|m| m.as_str()),
                    join_ids(&u.terminals),
                    u.password_hash,
                    now_us(),
                ]);
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists { what: "user", key: u.username.clone() })
                }
                Err(rusqlite::Error::SqliteFailure(f, _)) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    return Err(StoreError::NotFound {
                        what: "merchant",
                        key: u.merchant_id.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    })
                }
                r => r?,
            };
            let id = ctx.conn.last_insert_rowid();
            load_user_where(&ctx.conn, "id = ?1", &id)?.ok_or(StoreError::NotFound { what: "user", key: u.username })
        })
    }

    fn get_user(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(|c| load_user_where(c, "id = ?1", &id))
    }

    fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.read(|c| load_user_where(c, "username = ?1", &username))
    }

    fn list_users(&self, merchant_id: Option<&MerchantId>) -> Result<Vec<User>, StoreError> {
        self.read(|c| {
            let raws = match merchant_id {
                Some(m) => c
                    .prepare_cached(&format!(
                        "SELECT {USER_COLS} FROM users WHERE merchant_id = ?1 ORDER BY username"
                    ))?
                    .query_map([m.as_str()], raw_user)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?
                    .query_map([], raw_user)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            raws.into_iter().map(user_from_raw).collect()
        })
    }

    fn set_user_disabled(&self, id: i64, disabled: bool) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("UPDATE users SET disabled = ?2 WHERE id = ?1")?
                .execute((id, disabled))?;
            if disabled {
                ctx.conn
                    .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                    .execute([id])?;
            }
            if n == 0 {
                Err(StoreError::NotFound {
                    what: "user",
                    key: id.to_string(),
                })
            } else {
                Ok(())
            }
        })
    }

    fn set_user_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        self.set_user_text(id, "UPDATE users SET password_hash = ?2 WHERE id = ?1", password_hash.to_owned())
    }

    fn set_user_terminals(&self, id: i64, terminals: &[TerminalId]) -> Result<(), StoreError> {
        self.set_user_text(id, "UPDATE users SET terminals = ?2 WHERE id = ?1", join_ids(terminals))
    }

    fn create_session(&self, s: &NewSession) -> Result<Session, StoreError> {
        let s = s.clone();
        self.write(move |ctx| {
            let now = now_us();
            let r = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO sessions (token_hash, user_id, created_at_us, expires_at_us) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute((&s.token_hash, s.user_id, now, s.expires_at.timestamp_micros()));
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists { what: "session", key: "(token)".into() })
                }
                Err(rusqlite::Error::SqliteFailure(f, _)) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    return Err(StoreError::NotFound { what: "user", key: s.user_id.to_string() })
                }
                r => r?,
            };
            Ok(Session { token_hash: s.token_hash, user_id: s.user_id, created_at: from_us(now), expires_at: s.expires_at })
        })
    }

    fn get_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        self.read(|c| {
            let row: Option<(i64, i64, i64)> = c
                .prepare_cached(
                    "SELECT user_id, created_at_us, expires_at_us FROM sessions WHERE token_hash = ?1 AND expires_at_us > ?2",
                )?
                .query_row((token_hash, now.timestamp_micros()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((user_id, created, expires)) = row else { return Ok(None) };
            let Some(user) = load_user_where(c, "id = ?1", &user_id)? else { return Ok(None) };
            if user.disabled {
                return Ok(None);
            }
            let session =
                Session { token_hash: token_hash.to_owned(), user_id, created_at: from_us(created), expires_at: from_us(expires) };
            Ok(Some((session, user)))
        })
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let h = token_hash.to_owned();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute([&h])?;
            Ok(())
        })
    }

    fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM sessions WHERE expires_at_us <= ?1")?
                .execute([now.timestamp_micros()])?;
            Ok(n as u64)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

const API_KEY_COLS: &str = "id, name, key_hash, merchants, revoked, created_at_us";

type RawApiKey = (i64, String, String, Option<String>, bool, i64);

fn raw_api_key(r: &Row<'_>) -> rusqlite::Result<RawApiKey> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn api_key_from_raw(k: RawApiKey) -> Result<ApiKey, StoreError> {
    let (id, name, key_hash, merchants, revoked, created) = k;
    Ok(ApiKey {
        id,
        name,
        key_hash,
        merchants: match merchants {
            None => None,
            Some(m) => Some(split_ids(&m, MerchantId::parse, "api_keys.merchants")?),
        },
        revoked,
        created_at: from_us(created),
    })
}

impl ApiKeyRepo for SqliteStore {
    fn create_api_key(&self, k: &NewApiKey) -> Result<ApiKey, StoreError> {
        let k = k.clone();
        self.write(move |ctx| {
            let r = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO api_keys (name, key_hash, merchants, revoked, created_at_us) VALUES (?1, ?2, ?3, 0, ?4)",
                )?
                .execute((&k.name, &k.key_hash, k.merchants.as_deref().map(join_ids), now_us()));
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists { what: "api key", key: k.name.clone() })
                }
                r => r?,
            };
            let id = ctx.conn.last_insert_rowid();
            let raw = ctx
                .conn
                .prepare_cached(&format!("SELECT {API_KEY_COLS} FROM api_keys WHERE id = ?1"))?
                .query_row([id], raw_api_key)?;
            api_key_from_raw(raw)
        })
    }

    fn get_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.read(|c| {
            let raw = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash = ?1 AND revoked = 0"
                ))?
                .query_row([key_hash], raw_api_key)
                .optional()?;
            raw.map(api_key_from_raw).transpose()
        })
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|c| {
            let raws = c
                .prepare_cached(&format!("SELECT {API_KEY_COLS} FROM api_keys ORDER BY id"))?
                .query_map([], raw_api_key)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(api_key_from_raw).collect()
        })
    }

    fn revoke_api_key(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("UPDATE api_keys SET revoked = 1 WHERE id = ?1")?
                .execute([id])?;
            if n == 0 {
                Err(StoreError::NotFound {
                    what: "api key",
                    key: id.to_string(),
                })
            } else {
                Ok(())
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

impl AuditRepo for SqliteStore {
    fn append_audit(&self, e: &NewAuditEvent) -> Result<i64, StoreError> {
        let e = e.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO audit_events (at_us, actor, action, target, detail, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute((e.at.timestamp_micros(), &e.actor, &e.action, &e.target, &e.detail, &e.ip))?;
            Ok(ctx.conn.last_insert_rowid())
        })
    }

    fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        use rusqlite::types::Value;
        let mut sql = String::from(
            "SELECT id, at_us, actor, action, target, detail, ip FROM audit_events WHERE 1 = 1",
        );
        let mut params: Vec<Value> = Vec::new();
        if let Some(a) = &q.actor {
            params.push(Value::Text(a.clone()));
            sql.push_str(&format!(" AND actor = ?{}", params.len()));
        }
        if let Some(a) = &q.action {
            params.push(Value::Text(a.clone()));
            sql.push_str(&format!(" AND action = ?{}", params.len()));
        }
        if let Some(t) = q.from {
            params.push(Value::Integer(t.timestamp_micros()));
            sql.push_str(&format!(" AND at_us >= ?{}", params.len()));
        }
        if let Some(t) = q.to {
            params.push(Value::Integer(t.timestamp_micros()));
            sql.push_str(&format!(" AND at_us < ?{}", params.len()));
        }
        if let Some(b) = q.before_id {
            params.push(Value::Integer(b));
            sql.push_str(&format!(" AND id < ?{}", params.len()));
        }
        let limit = q.limit.clamp(1, PAGE_LIMIT_MAX);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    Ok(AuditEvent {
                        id: r.get(0)?,
                        at: from_us(r.get(1)?),
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        detail: r.get(5)?,
                        ip: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
