//! The diagnosis itself: scope filtering, candidate matching, cause detection and ranking.
//! The model is described in the crate docs; the numbers live in [`crate::rank`].

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use domain::{
    Amount, Channel, MerchantClock, MerchantStatus, ResponseCode, SettlementDate, TerminalId,
    TxnStatus,
};

use crate::facts::{
    Candidate, Facts, MaintenanceEffect, MaintenanceWindow, ReconOutcome, TerminalFacts,
    TxnEventKind,
};
use crate::finding::{Checked, Code, Diagnosis, Evidence, Finding, Severity, Text};
use crate::question::{Expected, ExpectedTime, ListQuery, Question, SearchRange};
use crate::rank::{self, Cause};

/// At most this many candidates are examined; the rest are ignored (and `checked` says so).
pub const CANDIDATES_MAX: usize = 10_000;
/// At most this many transaction ids are attached to one finding.
pub const TRANSACTION_IDS_MAX: usize = 20;
/// At most this many hints are returned for an empty list.
pub const HINTS_MAX: usize = 3;
/// A terminal silent for longer than this with unsettled transactions is a warning.
pub const TERMINAL_SILENT_WARNING_HOURS: i64 = 24;
/// Typed identifiers longer than this are cut before edit distances are computed.
const TYPED_ID_CHARS_MAX: usize = 64;

/// Explains why the transaction described by `question` could not be found, using only `facts`.
/// Never panics; never reads the clock (`facts.now` is "now").
pub fn diagnose(question: &Question, facts: &Facts) -> Diagnosis {
    let ctx = Context::new(question, facts);
    let mut findings = Findings::default();
    let mut checked = Vec::new();

    ctx.check_scope(&mut checked);
    ctx.typed_merchant_id(&mut findings, &mut checked);
    ctx.typed_terminal_ids(&mut findings, &mut checked);

    let mut best_match = 0.0_f64;
    let mut plausible = 0usize;
    for candidate in &ctx.candidates {
        let q = ctx.description.match_quality(candidate, &ctx.clock);
        if q < rank::MATCH_MIN {
            continue;
        }
        plausible += 1;
        best_match = best_match.max(q);
        ctx.candidate_causes(candidate, q, &mut findings);
    }
    ctx.note_candidates(plausible, &mut checked);

    let absence = 1.0 - best_match;
    ctx.retention(absence, &mut findings, &mut checked);
    ctx.account(absence, &mut findings, &mut checked);
    ctx.terminals(absence, &mut findings, &mut checked);
    ctx.maintenance(absence, &mut findings, &mut checked);
    ctx.note_bank_side(&mut checked);

    let mut out = findings.finish();
    let strongest = out.first().map(|f| f.score).unwrap_or(0.0);
    if plausible == 0 && strongest < rank::NOT_FOUND_SCORE {
        out.insert(0, ctx.not_found());
    }
    Diagnosis {
        findings: out,
        checked,
    }
}

/// Hints for a list endpoint that came back empty: the strongest findings for the query alone.
pub fn hints(query: &ListQuery, facts: &Facts) -> Vec<Finding> {
    let question = Question {
        query: Some(query.clone()),
        expected: None,
    };
    let mut findings = diagnose(&question, facts).findings;
    findings.truncate(HINTS_MAX);
    findings
}

/// Warnings every list response carries: maintenance in progress, the account's status, and
/// terminals that have not synced.
pub fn warnings(facts: &Facts) -> Vec<Finding> {
    let question = Question::default();
    let ctx = Context::new(&question, facts);
    let mut out = Vec::new();
    for window in &facts.maintenance {
        if window.start <= ctx.now && ctx.now < window.end {
            let mut finding = ctx.maintenance_finding(window, MaintenanceKind::Active, None, 1.0);
            finding.severity = Severity::Warning;
            out.push(finding);
        }
    }
    if let Some(finding) = ctx.account_finding(1.0, None) {
        out.push(finding);
    }
    let silent_before = ctx.now - Duration::hours(TERMINAL_SILENT_WARNING_HOURS);
    let lagging: Vec<&TerminalFacts> = ctx
        .terminals
        .iter()
        .copied()
        .filter(|t| {
            !t.upload_items_missing_at_host.is_empty()
                // A terminal that never spoke to the host (fed by API or import) is unknown,
                // not silent: nothing says it holds anything.
                || (t.unsettled_count > 0 && t.last_seen.is_some_and(|seen| seen < silent_before))
        })
        .collect();
    if !lagging.is_empty() {
        let ids: Vec<String> = lagging.iter().map(|t| t.terminal_id.to_string()).collect();
        let mut evidence = Evidence::new();
        evidence.list("terminal_ids", ids.clone());
        for t in &lagging {
            if let Some(seen) = t.last_seen {
                evidence.text("oldest_last_seen", ctx.rfc(seen));
            }
        }
        out.push(Finding {
            code: Code::SyncPending,
            severity: Severity::Warning,
            message: Text::new(
                format!("终端 {} 有尚未同步的交易，明细可能不完整。", ids.join("、")),
                format!(
                    "Terminal(s) {} have transactions not yet synced; details may be incomplete.",
                    ids.join(", ")
                ),
            ),
            evidence,
            next_step: Text::new(
                "请让终端联网、签到并结算。",
                "Bring the terminal online, sign on and settle.",
            ),
            transaction_ids: Vec::new(),
            score: 1.0,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Context: the question and facts, cut down to what the user may see and to sane values.

struct Context<'a> {
    facts: &'a Facts,
    clock: MerchantClock,
    now: DateTime<Utc>,
    expected: Option<&'a Expected>,
    query: Option<&'a ListQuery>,
    range: Option<Range>,
    /// Own, in-scope candidates with sane times, at most [`CANDIDATES_MAX`].
    candidates: Vec<&'a Candidate>,
    candidates_cut: bool,
    terminals: Vec<&'a TerminalFacts>,
    recon_missing: HashMap<&'a str, (&'a str, SettlementDate)>,
    description: Description,
}

/// The searched range, sanitised.
#[derive(Clone, Copy)]
enum Range {
    TxnTime {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        timezone: Tz,
    },
    SettlementDate {
        from: SettlementDate,
        to: SettlementDate,
    },
}

fn sane_instant(t: DateTime<Utc>) -> bool {
    (1970..=9000).contains(&t.year())
}

fn sane_date(d: NaiveDate) -> bool {
    (1970..=9000).contains(&d.year())
}

fn clamp_instant(t: DateTime<Utc>) -> DateTime<Utc> {
    let low = Utc
        .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(t);
    let high = Utc
        .with_ymd_and_hms(9000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(t);
    t.clamp(low, high)
}

fn clamp_date(d: SettlementDate) -> SettlementDate {
    let low = NaiveDate::from_ymd_opt(1970, 1, 2).unwrap_or(d.date());
    let high = NaiveDate::from_ymd_opt(8999, 12, 30).unwrap_or(d.date());
    SettlementDate::new(d.date().clamp(low, high))
}

impl<'a> Context<'a> {
    fn new(question: &'a Question, facts: &'a Facts) -> Context<'a> {
        let clock = facts.merchant.clock;
        let scope = &facts.scope;
        let merchant_id = &facts.merchant.merchant_id;
        let merchant_in_scope = scope.merchant_ids.contains(merchant_id);
        let terminal_visible = |t: Option<&TerminalId>| match (&scope.terminal_ids, t) {
            (None, _) => true,
            (Some(list), Some(t)) => list.contains(t),
            (Some(_), None) => false,
        };
        let mut candidates_cut = false;
        let mut candidates: Vec<&Candidate> = Vec::new();
        if merchant_in_scope {
            for c in &facts.candidates {
                let own = &c.merchant_id == merchant_id && terminal_visible(c.terminal_id.as_ref());
                if !own || !sane_instant(c.txn_time) || !sane_date(c.settlement_date.date()) {
                    continue;
                }
                if candidates.len() == CANDIDATES_MAX {
                    candidates_cut = true;
                    break;
                }
                candidates.push(c);
            }
        }
        let terminals: Vec<&TerminalFacts> = if merchant_in_scope {
            facts
                .terminals
                .iter()
                .filter(|t| &t.merchant_id == merchant_id && terminal_visible(Some(&t.terminal_id)))
                .collect()
        } else {
            Vec::new()
        };
        let own_ids: HashMap<&str, ()> = candidates.iter().map(|c| (c.id.as_str(), ())).collect();
        let recon_missing = facts
            .reconciliation
            .iter()
            .filter(|r| {
                r.outcome == ReconOutcome::MissingInClearing
                    && own_ids.contains_key(r.transaction_id.as_str())
            })
            .map(|r| {
                (
                    r.transaction_id.as_str(),
                    (r.run_id.as_str(), r.settlement_date),
                )
            })
            .collect();
        let query = question.query.as_ref();
        let range = query.map(|q| match q.range {
            SearchRange::TxnTime { from, to, timezone } => Range::TxnTime {
                from: clamp_instant(from),
                to: clamp_instant(to),
                timezone,
            },
            SearchRange::SettlementDate { from, to } => Range::SettlementDate {
                from: clamp_date(from),
                to: clamp_date(to),
            },
        });
        let expected = question.expected.as_ref();
        let description = Description::new(expected, query, range, &clock, &terminals);
        Context {
            facts,
            clock,
            now: clamp_instant(facts.now),
            expected,
            query,
            range,
            candidates,
            candidates_cut,
            terminals,
            recon_missing,
            description,
        }
    }

    fn is_bank_role(&self) -> bool {
        !self.facts.scope.role.is_merchant()
    }

    /// RFC 3339 in the merchant's zone. Out-of-range instants are clamped first: formatting
    /// chrono's extremes in a zone east of UTC would overflow.
    fn rfc(&self, t: DateTime<Utc>) -> String {
        self.clock
            .local(clamp_instant(t))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    fn local(&self, t: DateTime<Utc>) -> String {
        self.clock
            .local(clamp_instant(t))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn own_terminal(&self, typed: &str) -> Option<&'a TerminalFacts> {
        let typed = typed.trim();
        self.terminals
            .iter()
            .copied()
            .find(|t| t.terminal_id.as_str() == typed)
    }

    fn terminal_list(&self) -> Vec<String> {
        self.terminals
            .iter()
            .take(TRANSACTION_IDS_MAX)
            .map(|t| t.terminal_id.to_string())
            .collect()
    }

    /// The instant the person's question is about, if any.
    fn reference_time(&self) -> Option<(DateTime<Utc>, f64)> {
        match self.expected.and_then(|e| e.time) {
            Some(ExpectedTime::Instant(t)) if sane_instant(t) => Some((t, 1.0)),
            Some(ExpectedTime::LocalDate(d)) if sane_date(d) => {
                Some((self.clock.start_of_day(d), 0.8))
            }
            _ => self.range_instants().map(|(_, to)| (to, 0.5)),
        }
    }

    fn range_instants(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.range.map(|r| range_instants(r, &self.clock))
    }

    fn range_text(&self) -> Option<(String, String)> {
        match self.range? {
            Range::TxnTime { from, to, .. } => Some((self.local(from), self.local(to))),
            Range::SettlementDate { from, to } => Some((from.to_string(), to.to_string())),
        }
    }

    fn candidate_evidence(&self, c: &Candidate, q: f64) -> Evidence {
        let mut e = Evidence::new();
        e.text("transaction_id", c.id.clone());
        if let Some(t) = &c.terminal_id {
            e.text("terminal_id", t.to_string());
        }
        e.text("txn_time", self.rfc(c.txn_time));
        e.integer("amount_fen", c.amount.fen());
        if let Some(l) = &c.card_last4 {
            e.text("card_last4", l.clone());
        }
        e.text("kind", c.kind.as_str());
        e.text("channel", c.channel.as_str());
        e.text("status", c.status.as_str());
        e.text("settlement_date", c.settlement_date.to_string());
        e.integer("match_percent", (q * 100.0).round() as i64);
        e
    }

    // -----------------------------------------------------------------------------------------
    // Input errors.

    fn check_scope(&self, checked: &mut Vec<Checked>) {
        let mid = &self.facts.merchant.merchant_id;
        let terminals = self.terminals.len();
        let note = match &self.facts.scope.terminal_ids {
            Some(_) => Text::new(
                format!("按您的权限，只检查商户 {mid} 中您可查看的 {terminals} 台终端。"),
                format!("Within your permissions: merchant {mid}, the {terminals} terminal(s) you may see."),
            ),
            None => Text::new(
                format!("按您的权限检查商户 {mid} 的全部 {terminals} 台终端。"),
                format!("Within your permissions: merchant {mid}, all {terminals} terminal(s)."),
            ),
        };
        checked.push(Checked {
            subject: "scope",
            note,
        });
    }

    fn typed_merchant_id(&self, findings: &mut Findings, checked: &mut Vec<Checked>) {
        let typed = self
            .expected
            .and_then(|e| e.merchant_id.as_deref())
            .or_else(|| self.query.and_then(|q| q.merchant_id.as_deref()));
        let Some(typed) = typed.map(str::trim).filter(|s| !s.is_empty()) else {
            return;
        };
        let typed = cut_chars(typed, TYPED_ID_CHARS_MAX);
        let own = &self.facts.scope.merchant_ids;
        checked.push(Checked {
            subject: "merchant_id",
            note: Text::new(
                format!("核对了您输入的商户号 {typed} 是否属于您。"),
                format!("Checked whether the merchant id you typed, {typed}, is yours."),
            ),
        });
        if own.iter().any(|m| m.as_str() == typed) {
            return;
        }
        let nearest = own
            .iter()
            .map(|m| (edit_distance(typed, m.as_str()), m))
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut evidence = Evidence::new();
        evidence.text("typed_merchant_id", typed);
        let (message, next_step) = match nearest {
            Some((distance, suggestion)) => {
                evidence.text("suggested_merchant_id", suggestion.to_string());
                evidence.integer("edit_distance", distance as i64);
                (
                    Text::new(
                        format!("您输入的商户号 {typed} 不是您的商户号，与它最接近的是您的商户号 {suggestion}。"),
                        format!("The merchant id you typed, {typed}, is not yours; the closest of yours is {suggestion}."),
                    ),
                    Text::new(
                        format!("改用商户号 {suggestion} 再查一次。"),
                        format!("Search again with merchant id {suggestion}."),
                    ),
                )
            }
            None => (
                Text::new(
                    format!("您输入的商户号 {typed} 不是您的商户号。"),
                    format!("The merchant id you typed, {typed}, is not yours."),
                ),
                Text::new(
                    "请核对签购单上的商户号。",
                    "Check the merchant id printed on the receipt.",
                ),
            ),
        };
        findings.push(Hit {
            cause: Cause::MerchantIdMismatch,
            fit: 1.0,
            message,
            evidence,
            next_step,
            transaction_id: None,
        });
    }

    fn typed_terminal_ids(&self, findings: &mut Findings, checked: &mut Vec<Checked>) {
        let mut typed: Vec<&str> = Vec::new();
        if let Some(t) = self.expected.and_then(|e| e.terminal_id.as_deref()) {
            typed.push(t);
        }
        if let Some(q) = self.query {
            typed.extend(q.filters.terminal_ids.iter().map(String::as_str));
        }
        let mut seen = Vec::new();
        for raw in typed {
            let t = cut_chars(raw.trim(), TYPED_ID_CHARS_MAX);
            if t.is_empty() || seen.contains(&t) {
                continue;
            }
            seen.push(t);
            checked.push(Checked {
                subject: "terminal_id",
                note: Text::new(
                    format!("核对了终端号 {t} 是否是您可查看的终端。"),
                    format!("Checked whether terminal {t} is one you can see."),
                ),
            });
            if self.own_terminal(t).is_some() {
                continue;
            }
            let mut evidence = Evidence::new();
            evidence.text("typed_terminal_id", t);
            evidence.flag("typed_format_valid", TerminalId::parse(t).is_ok());
            evidence.list("own_terminal_ids", self.terminal_list());
            let own = self.terminal_list().join("、");
            let own_en = self.terminal_list().join(", ");
            // Only bank roles may learn that the terminal exists elsewhere: for a merchant the
            // answer must read the same as for a terminal id that exists nowhere.
            let message = if self.is_bank_role() && self.facts.typed_terminal_bound_elsewhere {
                evidence.flag("bound_to_other_merchant", true);
                Text::new(
                    format!(
                        "终端号 {t} 绑定在其他商户下，不属于商户 {}。",
                        self.facts.merchant.merchant_id
                    ),
                    format!(
                        "Terminal {t} is bound to another merchant, not to {}.",
                        self.facts.merchant.merchant_id
                    ),
                )
            } else {
                Text::new(
                    format!("终端号 {t} 不是您可查看的终端，按这个终端号查不到任何交易。"),
                    format!("Terminal {t} is not one of the terminals you can see, so nothing is found under it."),
                )
            };
            findings.push(Hit {
                cause: Cause::TerminalNotBound,
                fit: 1.0,
                message,
                evidence,
                next_step: Text::new(
                    format!("请核对签购单或终端屏幕上的终端号；您可查看的终端：{own}。"),
                    format!("Check the terminal id on the receipt or the terminal's screen; your terminals: {own_en}."),
                ),
                transaction_id: None,
            });
        }
    }

    // -----------------------------------------------------------------------------------------
    // Causes tied to a matching transaction.

    fn candidate_causes(&self, c: &Candidate, q: f64, findings: &mut Findings) {
        // Every cause found for this candidate holds only as much as the candidate is the one.
        findings.match_quality = q;
        let visibility_hidden = self.visibility_causes(c, q, findings);
        self.state_causes(c, q, findings);
        self.bank_side_causes(c, q, visibility_hidden, findings);
        findings.match_quality = 1.0;
    }

    /// Returns whether the list query hid the candidate.
    fn visibility_causes(&self, c: &Candidate, q: f64, findings: &mut Findings) -> bool {
        let mut hidden = false;
        let lt = self.local(c.txn_time);
        if let (Some(range), Some((from_text, to_text))) = (self.range, self.range_text()) {
            if !in_range(range, c) {
                hidden = true;
                let mut e = self.candidate_evidence(c, q);
                e.text("searched_from", from_text.clone());
                e.text("searched_to", to_text.clone());
                e.text(
                    "searched_basis",
                    self.query.map(|q| q.range.basis().as_str()).unwrap_or(""),
                );
                if let Some(hit) = self.timezone_cause(range, c, &lt, e.clone()) {
                    findings.push(hit);
                } else if let Some(hit) = self.shift_cause(range, c, &lt, e.clone()) {
                    findings.push(hit);
                } else {
                    findings.push(self.outside_range_cause(range, c, &lt, &from_text, &to_text, e));
                }
            }
        }
        let mut failed: Vec<(&'static str, &'static str, String, String)> = Vec::new();
        let mut terminal_failed = false;
        if let Some(query) = self.query {
            let f = &query.filters;
            let tid = c.terminal_id.as_ref().map(|t| t.as_str()).unwrap_or("");
            if !f.terminal_ids.is_empty() && !f.terminal_ids.iter().any(|t| t.trim() == tid) {
                terminal_failed = true;
            }
            if !f.kinds.is_empty() && !f.kinds.contains(&c.kind) {
                failed.push((
                    "kind",
                    "交易类型",
                    join(f.kinds.iter().map(|k| k.as_str())),
                    c.kind.as_str().into(),
                ));
            }
            if !f.statuses.is_empty() && !f.statuses.contains(&c.status) {
                failed.push((
                    "status",
                    "状态",
                    join(f.statuses.iter().map(|s| s.as_str())),
                    c.status.as_str().into(),
                ));
            }
            if !f.channels.is_empty() && !f.channels.contains(&c.channel) {
                failed.push((
                    "channel",
                    "支付渠道",
                    join(f.channels.iter().map(|s| s.as_str())),
                    c.channel.as_str().into(),
                ));
            }
            if let Some(l) = &f.card_last4 {
                if c.card_last4.as_deref() != Some(l.as_str()) {
                    failed.push((
                        "card_last4",
                        "卡号后四位",
                        l.clone(),
                        c.card_last4.clone().unwrap_or_default(),
                    ));
                }
            }
            if let Some(r) = &f.rrn {
                if c.rrn.as_ref() != Some(r) {
                    failed.push(("rrn", "参考号", r.to_string(), opt(&c.rrn)));
                }
            }
            if let Some(s) = &f.stan {
                if c.stan.as_ref() != Some(s) {
                    failed.push(("stan", "凭证号", s.to_string(), opt(&c.stan)));
                }
            }
            if let Some(a) = &f.auth_code {
                if c.auth_code.as_ref() != Some(a) {
                    failed.push(("auth_code", "授权码", a.to_string(), opt(&c.auth_code)));
                }
            }
            let below = f.amount_min.is_some_and(|m| c.amount < m);
            let above = f.amount_max.is_some_and(|m| c.amount > m);
            if below || above {
                let searched = format!(
                    "{}..{}",
                    f.amount_min.map(|a| a.to_string()).unwrap_or_default(),
                    f.amount_max.map(|a| a.to_string()).unwrap_or_default()
                );
                failed.push(("amount", "金额范围", searched, c.amount.to_string()));
            }
        }
        let expected_terminal = self
            .expected
            .and_then(|e| e.terminal_id.as_deref())
            .and_then(|t| self.own_terminal(t));
        let expected_other =
            expected_terminal.is_some_and(|t| Some(&t.terminal_id) != c.terminal_id.as_ref());
        if terminal_failed || expected_other {
            hidden |= terminal_failed;
            let searched: Vec<String> = match (terminal_failed, self.query, expected_terminal) {
                (true, Some(q), _) => q
                    .filters
                    .terminal_ids
                    .iter()
                    .map(|t| t.trim().to_owned())
                    .collect(),
                (_, _, Some(t)) => vec![t.terminal_id.to_string()],
                _ => Vec::new(),
            };
            let found = c
                .terminal_id
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into());
            let mut e = self.candidate_evidence(c, q);
            e.list("searched_terminal_ids", searched.clone());
            let s_zh = searched.join("、");
            let s_en = searched.join(", ");
            findings.push(Hit {
                cause: Cause::OtherTerminal,
                fit: 1.0,
                message: Text::new(
                    format!("这笔交易（{lt}，{}）在本商户的另一台终端 {found} 上，而不是您查询的终端 {s_zh}。", yuan(c.amount)),
                    format!(
                        "The transaction ({lt}, {}) is on another terminal of your merchant, {found}, not on {s_en}.",
                        cny(c.amount)
                    ),
                ),
                evidence: e,
                next_step: Text::new(
                    format!("按终端 {found} 查询，或取消终端筛选。"),
                    format!("Search terminal {found}, or clear the terminal filter."),
                ),
                transaction_id: Some(c.id.clone()),
            });
        }
        if !failed.is_empty() {
            hidden = true;
            let mut e = self.candidate_evidence(c, q);
            e.list(
                "failed_filters",
                failed.iter().map(|f| f.0.to_owned()).collect(),
            );
            for (key, _, searched, actual) in &failed {
                e.text(filter_searched_key(key), searched.clone());
                e.text(filter_actual_key(key), actual.clone());
            }
            let zh: Vec<String> = failed
                .iter()
                .map(|(_, zh, s, a)| format!("{zh}（筛选 {s}，实际 {a}）"))
                .collect();
            let en: Vec<String> = failed
                .iter()
                .map(|(k, _, s, a)| format!("{k} (filter {s}, actual {a})"))
                .collect();
            findings.push(Hit {
                cause: Cause::FilteredOut,
                fit: 1.0,
                message: Text::new(
                    format!("找到一笔相符的交易（{lt}，{}），但它被您的筛选条件排除了：{}。", yuan(c.amount), zh.join("；")),
                    format!(
                        "A matching transaction ({lt}, {}) exists, but your filters excluded it: {}.",
                        cny(c.amount),
                        en.join("; ")
                    ),
                ),
                evidence: e,
                next_step: Text::new("取消这些筛选条件后再查一次。", "Clear those filters and search again."),
                transaction_id: Some(c.id.clone()),
            });
        }
        // A date-only question about a transaction after the cut-off, with no range to blame.
        if let (None, Some(ExpectedTime::LocalDate(d))) =
            (self.range, self.expected.and_then(|e| e.time))
        {
            let local_date = self.clock.local(c.txn_time).date_naive();
            if local_date == d && c.settlement_date.date() != d {
                let e = self.candidate_evidence(c, q);
                findings.push(self.shift_hit(c, &lt, e, &d.to_string(), &d.to_string()));
            }
        }
        hidden
    }

    fn timezone_cause(
        &self,
        range: Range,
        c: &Candidate,
        lt: &str,
        mut e: Evidence,
    ) -> Option<Hit> {
        let Range::TxnTime { from, to, timezone } = range else {
            return None;
        };
        let merchant_tz = self.clock.tz;
        let from_m = reinterpret(from, timezone, merchant_tz)?;
        let to_m = reinterpret(to, timezone, merchant_tz)?;
        if from_m == from && to_m == to {
            return None;
        }
        if !(from_m <= c.txn_time && c.txn_time < to_m) {
            return None;
        }
        let typed_from = from
            .with_timezone(&timezone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let typed_to = to
            .with_timezone(&timezone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        e.text("query_timezone", timezone.name());
        e.text("merchant_timezone", merchant_tz.name());
        e.text("typed_from", typed_from.clone());
        e.text("typed_to", typed_to.clone());
        e.text("searched_from", self.rfc(from));
        e.text("searched_to", self.rfc(to));
        let (f, t) = (self.local(from), self.local(to));
        let qtz = timezone.name();
        let mtz = merchant_tz.name();
        Some(Hit {
            cause: Cause::Timezone,
            fit: 1.0,
            message: Text::new(
                format!(
                    "您输入的时间范围 {typed_from} 至 {typed_to} 是按 {qtz} 时区解释的，而商户时区是 {mtz}：实际查询的是商户时间 {f} 至 {t}，不包含交易时间 {lt}。"
                ),
                format!(
                    "The range you entered, {typed_from} to {typed_to}, was read in {qtz}, but the merchant's zone is {mtz}: you searched {f} to {t} merchant time, which does not include {lt}."
                ),
            ),
            evidence: e,
            next_step: Text::new(
                format!("把时区改为 {mtz} 后再查一次。"),
                format!("Switch the time zone to {mtz} and search again."),
            ),
            transaction_id: Some(c.id.clone()),
        })
    }

    fn shift_cause(&self, range: Range, c: &Candidate, lt: &str, e: Evidence) -> Option<Hit> {
        let Range::SettlementDate { from, to } = range else {
            return None;
        };
        let local_date = self.clock.local(c.txn_time).date_naive();
        if local_date < from.date() || local_date > to.date() {
            return None;
        }
        Some(self.shift_hit(c, lt, e, &from.to_string(), &to.to_string()))
    }

    fn shift_hit(&self, c: &Candidate, lt: &str, mut e: Evidence, from: &str, to: &str) -> Hit {
        let cutoff = self.clock.cutoff_for(c.channel);
        let sd = c.settlement_date;
        e.text("cutoff_applied", cutoff.to_string());
        e.text("cutoff_channel", c.channel.as_str());
        e.text(
            "local_date",
            self.clock.local(c.txn_time).date_naive().to_string(),
        );
        Hit {
            cause: Cause::SettlementDateShift,
            fit: 1.0,
            message: Text::new(
                format!(
                    "这笔交易发生在 {lt}，不早于{}的日切时间 {cutoff}，因此计入下一个清算日 {sd}，不在您查询的清算日期 {from} 至 {to} 内。",
                    c.channel.zh()
                ),
                format!(
                    "The transaction happened at {lt}, at or after the {} day cut-off {cutoff}, so it counts in the next settlement date, {sd}, not in the settlement dates you searched ({from} to {to}).",
                    c.channel.as_str()
                ),
            ),
            evidence: e,
            next_step: Text::new(
                format!("按清算日期 {sd} 查询，或改按交易时间查询。"),
                format!("Search settlement date {sd}, or search by transaction time instead."),
            ),
            transaction_id: Some(c.id.clone()),
        }
    }

    fn outside_range_cause(
        &self,
        range: Range,
        c: &Candidate,
        lt: &str,
        from_text: &str,
        to_text: &str,
        mut e: Evidence,
    ) -> Hit {
        let (zh_gap, en_gap) = match range {
            Range::TxnTime { from, to, .. } => {
                let (minutes, before) = if c.txn_time < from {
                    ((from - c.txn_time).num_minutes(), true)
                } else {
                    ((c.txn_time - to).num_minutes(), false)
                };
                e.integer("distance_minutes", minutes);
                e.text("side", if before { "before" } else { "after" });
                (
                    format!(
                        "{}{}分钟",
                        if before {
                            "早于查询开始"
                        } else {
                            "晚于查询结束"
                        },
                        minutes
                    ),
                    format!(
                        "{minutes} minutes {} the range",
                        if before { "before" } else { "after" }
                    ),
                )
            }
            Range::SettlementDate { from, to } => {
                let sd = c.settlement_date.date();
                let (days, before) = if sd < from.date() {
                    ((from.date() - sd).num_days(), true)
                } else {
                    ((sd - to.date()).num_days(), false)
                };
                e.integer("distance_days", days);
                e.text("side", if before { "before" } else { "after" });
                (
                    format!(
                        "清算日期 {}，{}{}天",
                        c.settlement_date,
                        if before {
                            "早于查询"
                        } else {
                            "晚于查询"
                        },
                        days
                    ),
                    format!(
                        "settlement date {}, {days} day(s) {} the range",
                        c.settlement_date,
                        if before { "before" } else { "after" }
                    ),
                )
            }
        };
        Hit {
            cause: Cause::OutsideRange,
            fit: 1.0,
            message: Text::new(
                format!(
                    "找到一笔相符的交易，但它在您查询的范围之外：交易时间 {lt}（{zh_gap}），查询范围 {from_text} 至 {to_text}。"
                ),
                format!(
                    "A matching transaction exists just outside the range you searched: it happened at {lt} ({en_gap}); you searched {from_text} to {to_text}."
                ),
            ),
            evidence: e,
            next_step: Text::new(
                format!("把查询范围扩大到包含 {lt} 后再查一次。"),
                format!("Widen the range to include {lt} and search again."),
            ),
            transaction_id: Some(c.id.clone()),
        }
    }

    fn state_causes(&self, c: &Candidate, q: f64, findings: &mut Findings) {
        let lt = self.local(c.txn_time);
        let mut e = self.candidate_evidence(c, q);
        match c.status {
            TxnStatus::Declined => {
                let (zh, en) = c.response_code.meaning();
                let rc = c.response_code;
                e.text("response_code", rc.as_str());
                e.text("response_meaning_zh", zh);
                e.text("response_meaning_en", en);
                if rc.as_str() == "03" {
                    if let Some(mut hit) = self.account_hit(None) {
                        hit.fit = 1.0;
                        hit.evidence.text("transaction_id", c.id.clone());
                        hit.evidence.text("response_code", rc.as_str());
                        hit.transaction_id = Some(c.id.clone());
                        findings.push(hit);
                    }
                }
                findings.push(Hit {
                    cause: Cause::Declined,
                    fit: 1.0,
                    message: Text::new(
                        format!("这笔交易（{lt}，{}）被拒绝了，应答码 {rc}：{zh}。顾客没有被扣款，这笔钱不会入账。", yuan(c.amount)),
                        format!(
                            "The transaction ({lt}, {}) was declined with response code {rc}: {en}. The card was not charged and nothing will settle.",
                            cny(c.amount)
                        ),
                    ),
                    evidence: e,
                    next_step: declined_next_step(rc),
                    transaction_id: Some(c.id.clone()),
                });
            }
            TxnStatus::Reversed => {
                let event = latest_event(c, TxnEventKind::ReversedBy);
                let reason = event.and_then(|ev| ev.reason_code);
                let (reason_zh, reason_en) = reason
                    .map(ResponseCode::meaning)
                    .unwrap_or(("未说明", "not given"));
                let at = event
                    .map(|ev| self.local(ev.at))
                    .unwrap_or_else(|| "-".into());
                if let Some(ev) = event {
                    e.text("reversal_id", ev.transaction_id.clone());
                    e.text("reversed_at", self.rfc(ev.at));
                }
                if let Some(r) = reason {
                    e.text("reversal_reason_code", r.as_str());
                    e.text("reversal_reason_zh", reason_zh);
                    e.text("reversal_reason_en", reason_en);
                }
                let timeout = reason.is_some_and(|r| r.as_str() == "98");
                findings.push(Hit {
                    cause: Cause::Reversed,
                    fit: 1.0,
                    message: Text::new(
                        format!(
                            "这笔交易（{lt}，{}）已于 {at} 被冲正（原因：{reason_zh}）。{}顾客不会被扣款。",
                            yuan(c.amount),
                            if timeout { "终端没有及时收到主机应答，自动撤回了这笔交易，" } else { "" }
                        ),
                        format!(
                            "The transaction ({lt}, {}) was reversed at {at} (reason: {reason_en}). {}The customer is not charged.",
                            cny(c.amount),
                            if timeout { "The terminal did not get the host's reply in time and cancelled it automatically. " } else { "" }
                        ),
                    ),
                    evidence: e,
                    next_step: Text::new(
                        "请顾客重新付款，并检查终端的网络连接。",
                        "Ask the customer to pay again, and check the terminal's network connection.",
                    ),
                    transaction_id: Some(c.id.clone()),
                });
            }
            TxnStatus::Voided => {
                let event = latest_event(c, TxnEventKind::VoidedBy);
                let at = event
                    .map(|ev| self.local(ev.at))
                    .unwrap_or_else(|| "-".into());
                let void_id = event
                    .map(|ev| ev.transaction_id.clone())
                    .unwrap_or_else(|| "-".into());
                if let Some(ev) = event {
                    e.text("void_id", ev.transaction_id.clone());
                    e.text("voided_at", self.rfc(ev.at));
                }
                findings.push(Hit {
                    cause: Cause::Voided,
                    fit: 1.0,
                    message: Text::new(
                        format!("这笔交易（{lt}，{}）已于 {at} 被撤销（撤销交易 {void_id}），被撤销的消费不会入账。", yuan(c.amount)),
                        format!(
                            "The transaction ({lt}, {}) was voided at {at} (void {void_id}); a voided sale does not settle.",
                            cny(c.amount)
                        ),
                    ),
                    evidence: e,
                    next_step: Text::new(
                        "在交易明细中按“已撤销”状态查看；如撤销并非本意，请重新收款。",
                        "Look for it with status \"voided\"; if the void was a mistake, take the payment again.",
                    ),
                    transaction_id: Some(c.id.clone()),
                });
            }
            TxnStatus::Refunded | TxnStatus::PartiallyRefunded => {
                let refunds: Vec<_> = c
                    .events
                    .iter()
                    .filter(|ev| ev.kind == TxnEventKind::RefundedBy)
                    .collect();
                let total = refunds
                    .iter()
                    .fold(0i64, |acc, ev| acc.saturating_add(ev.amount.fen()));
                let total_amount = Amount::from_fen(total.max(0)).unwrap_or(Amount::ZERO);
                let latest = refunds
                    .iter()
                    .max_by_key(|ev| ev.at)
                    .map(|ev| self.local(ev.at))
                    .unwrap_or_else(|| "-".into());
                e.list(
                    "refund_ids",
                    refunds.iter().map(|ev| ev.transaction_id.clone()).collect(),
                );
                e.integer("refunded_fen", total);
                findings.push(Hit {
                    cause: Cause::Refunded,
                    fit: 1.0,
                    message: Text::new(
                        format!(
                            "这笔交易（{lt}，{}）已退货 {}（{} 笔退货，最近一笔在 {latest}），状态为“{}”。",
                            yuan(c.amount),
                            yuan(total_amount),
                            refunds.len(),
                            c.status.zh()
                        ),
                        format!(
                            "{} of this transaction ({lt}, {}) was refunded ({} refund(s), latest at {latest}); its status is {}.",
                            cny(total_amount),
                            cny(c.amount),
                            refunds.len(),
                            c.status.as_str()
                        ),
                    ),
                    evidence: e,
                    next_step: Text::new(
                        "在交易明细中查看退货记录；如退货有误，请联系收单行。",
                        "See the refund records in the transaction details; if a refund was wrong, contact the acquirer.",
                    ),
                    transaction_id: Some(c.id.clone()),
                });
            }
            TxnStatus::Approved | TxnStatus::Completed => {}
        }
    }

    fn bank_side_causes(&self, c: &Candidate, q: f64, hidden: bool, findings: &mut Findings) {
        let settles = c.kind.settles()
            && matches!(
                c.status,
                TxnStatus::Approved
                    | TxnStatus::Completed
                    | TxnStatus::Refunded
                    | TxnStatus::PartiallyRefunded
            );
        if !settles {
            return;
        }
        let sd = c.settlement_date;
        if let Some((run_id, run_date)) = self.recon_missing.get(c.id.as_str()) {
            let mut e = self.candidate_evidence(c, q);
            e.text("reconciliation_run_id", *run_id);
            e.text(
                "reconciliation_outcome",
                ReconOutcome::MissingInClearing.as_str(),
            );
            e.text("clearing_settlement_date", run_date.to_string());
            findings.push(Hit {
                cause: Cause::MissingAtBank,
                fit: 1.0,
                message: Text::new(
                    format!(
                        "对账发现银行 {run_date} 的清算文件里没有这笔交易（对账批次 {run_id}）：平台记录为成功，但银行找不到它。"
                    ),
                    format!(
                        "Reconciliation run {run_id} found this transaction missing from the bank's clearing file for {run_date}: approved here, absent at the bank."
                    ),
                ),
                evidence: e,
                next_step: Text::new(
                    "请提交工单，我们会把平台记录作为证据转交银行核查。",
                    "Open a ticket; we will send the platform record to the bank as evidence.",
                ),
                transaction_id: Some(c.id.clone()),
            });
        }
        if c.channel == Channel::Card {
            let terminal = c
                .terminal_id
                .as_ref()
                .and_then(|t| self.own_terminal(t.as_str()));
            if let (Some(t), Some(batch)) = (terminal, c.batch_no) {
                if t.open_batch == Some(batch) && t.unsettled_count > 0 {
                    let mut e = self.candidate_evidence(c, q);
                    self.terminal_evidence(t, &mut e);
                    e.text("batch_no", batch.to_string());
                    let last = t
                        .last_settlement
                        .as_ref()
                        .map(|s| self.local(s.at))
                        .unwrap_or_else(|| "-".into());
                    let tid = &t.terminal_id;
                    let n = t.unsettled_count;
                    findings.push(Hit {
                        cause: Cause::SyncBatchOpen,
                        fit: 1.0,
                        message: Text::new(
                            format!("这笔交易在终端 {tid} 尚未结算的批次 {batch} 中（共 {n} 笔未结算，上次结算 {last}），还没有进入清算。"),
                            format!(
                                "The transaction is in terminal {tid}'s open batch {batch} ({n} unsettled; last settlement {last}) and has not gone to clearing yet."
                            ),
                        ),
                        evidence: e,
                        next_step: Text::new(
                            "在终端上做结算（批结算）后，交易会进入清算。",
                            "Run batch settlement on the terminal; the transaction then goes to clearing.",
                        ),
                        transaction_id: Some(c.id.clone()),
                    });
                }
            }
        }
        let files_in = self
            .facts
            .clearing
            .iter()
            .any(|d| d.settlement_date == sd && d.channels_in.contains(&c.channel));
        if !files_in && !self.recon_missing.contains_key(c.id.as_str()) {
            let mut e = self.candidate_evidence(c, q);
            let channels: Vec<String> = self
                .facts
                .clearing
                .iter()
                .filter(|d| d.settlement_date == sd)
                .flat_map(|d| d.channels_in.iter().map(|ch| ch.as_str().to_owned()))
                .collect();
            e.list("clearing_channels_in", channels);
            e.text("clearing_channel_pending", c.channel.as_str());
            findings.push(Hit {
                cause: Cause::ClearingPending,
                fit: 1.0,
                message: Text::new(
                    format!(
                        "平台已记录这笔交易（清算日期 {sd}），但银行{}渠道 {sd} 的清算文件还没有到，所以暂时看不到入账。",
                        c.channel.zh()
                    ),
                    format!(
                        "The platform has the transaction (settlement date {sd}), but the bank's {} clearing file for {sd} is not in yet, so it does not show as settled.",
                        c.channel.as_str()
                    ),
                ),
                evidence: e,
                next_step: Text::new(
                    "清算文件通常在清算日次日到达，请稍后再查。",
                    "Clearing files usually arrive the day after the settlement date; check again later.",
                ),
                transaction_id: Some(c.id.clone()),
            });
        }
        let (window_start, window_end) = self.clock.settlement_window(sd, c.channel);
        for w in &self.facts.maintenance {
            if w.affects.contains(&MaintenanceEffect::Settlement)
                && overlaps(w.start, w.end, window_start, window_end)
            {
                let mut f = self.maintenance_finding(w, MaintenanceKind::Settlement, Some(sd), 1.0);
                f.evidence.text("transaction_id", c.id.clone());
                findings.push(Hit::from_finding(
                    Cause::MaintenanceSettlement,
                    f,
                    Some(c.id.clone()),
                ));
            }
        }
        if !hidden && self.query.is_some() {
            for w in &self.facts.maintenance {
                if w.affects.contains(&MaintenanceEffect::Query)
                    && w.start <= self.now
                    && self.now < w.end
                {
                    let mut f = self.maintenance_finding(w, MaintenanceKind::Active, None, 1.0);
                    f.evidence.text("transaction_id", c.id.clone());
                    f.evidence.flag("transaction_matches_query", true);
                    findings.push(Hit::from_finding(
                        Cause::MaintenanceQueryVisible,
                        f,
                        Some(c.id.clone()),
                    ));
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Causes for a transaction that is not in the platform at all.

    fn retention(&self, absence: f64, findings: &mut Findings, checked: &mut Vec<Checked>) {
        let days = self.facts.retention_days;
        checked.push(Checked {
            subject: "retention",
            note: Text::new(
                format!("数据保存期限 {days} 天。"),
                format!("Retention period: {days} days."),
            ),
        });
        if days == 0 {
            return;
        }
        let Some(oldest) = self.now.checked_sub_signed(Duration::days(i64::from(days))) else {
            return;
        };
        let fit = match self.expected.and_then(|e| e.time) {
            Some(ExpectedTime::Instant(t)) if sane_instant(t) => {
                if t < oldest {
                    1.0
                } else {
                    0.0
                }
            }
            Some(ExpectedTime::LocalDate(d)) if sane_date(d) => {
                if self.clock.start_of_day(d.succ_opt().unwrap_or(d)) <= oldest {
                    1.0
                } else {
                    0.0
                }
            }
            _ => match self.range_instants() {
                Some((_, to)) if to <= oldest => 0.9,
                Some((from, _)) if from < oldest => 0.4,
                _ => 0.0,
            },
        };
        if fit == 0.0 {
            return;
        }
        let mut e = Evidence::new();
        e.integer("retention_days", i64::from(days));
        e.text("oldest_kept", self.rfc(oldest));
        let oldest_text = self.local(oldest);
        findings.push(Hit {
            cause: Cause::Retention,
            fit: fit * absence,
            message: Text::new(
                format!("您要找的时间早于数据保存期限（{days} 天）：{oldest_text} 之前的记录已按规定清除。"),
                format!("The time you are looking for is older than the retention period ({days} days): records before {oldest_text} have been purged."),
            ),
            evidence: e,
            next_step: Text::new("如需更早的记录，请向收单行申请调阅存档。", "For older records, ask the acquirer for an archive retrieval."),
            transaction_id: None,
        });
    }

    fn account_hit(&self, reference: Option<DateTime<Utc>>) -> Option<Hit> {
        let m = &self.facts.merchant;
        let cause = match m.status {
            MerchantStatus::Active => return None,
            MerchantStatus::Frozen => Cause::AccountFrozen,
            MerchantStatus::Closed => Cause::AccountClosed,
        };
        let fit = match (reference, m.status_since) {
            (Some(t), Some(since)) if t < since => 0.3,
            _ => 1.0,
        };
        let since = m
            .status_since
            .map(|s| self.local(s))
            .unwrap_or_else(|| "-".into());
        let reason = if m.status_reason.trim().is_empty() {
            "-"
        } else {
            m.status_reason.trim()
        };
        let mut e = Evidence::new();
        e.text("merchant_id", m.merchant_id.to_string());
        e.text("merchant_status", m.status.as_str());
        e.text("status_reason", reason);
        if let Some(s) = m.status_since {
            e.text("status_since", self.rfc(s));
        }
        let (message, next_step) = if cause == Cause::AccountFrozen {
            (
                Text::new(
                    format!("商户账户自 {since} 起被冻结（原因：{reason}），冻结期间的交易会被拒绝（应答码 03），结算也会暂停。"),
                    format!(
                        "The merchant account has been frozen since {since} (reason: {reason}); transactions while frozen are declined (response code 03) and settlement is on hold."
                    ),
                ),
                Text::new("请联系收单行客户经理解除冻结。", "Contact your acquirer account manager to lift the freeze."),
            )
        } else {
            (
                Text::new(
                    format!("商户账户已于 {since} 注销（原因：{reason}），此后的交易不会被受理。"),
                    format!("The merchant account was closed at {since} (reason: {reason}); no transactions are accepted after that."),
                ),
                Text::new("请联系收单行确认账户状态。", "Contact your acquirer about the account status."),
            )
        };
        Some(Hit {
            cause,
            fit,
            message,
            evidence: e,
            next_step,
            transaction_id: None,
        })
    }

    fn account_finding(&self, score: f64, reference: Option<DateTime<Utc>>) -> Option<Finding> {
        self.account_hit(reference).map(|h| {
            let mut f = h.into_finding(score);
            f.severity = Severity::Critical;
            f
        })
    }

    fn account(&self, absence: f64, findings: &mut Findings, checked: &mut Vec<Checked>) {
        let m = &self.facts.merchant;
        checked.push(Checked {
            subject: "account",
            note: Text::new(
                format!(
                    "商户 {} 的账户状态：{}。",
                    m.merchant_id,
                    status_zh(m.status)
                ),
                format!(
                    "Account status of merchant {}: {}.",
                    m.merchant_id,
                    m.status.as_str()
                ),
            ),
        });
        if let Some(mut hit) = self.account_hit(self.reference_time().map(|(t, _)| t)) {
            hit.fit *= absence;
            findings.push(hit);
        }
    }

    fn terminal_evidence(&self, t: &TerminalFacts, e: &mut Evidence) {
        e.text("terminal_id", t.terminal_id.to_string());
        e.text(
            "terminal_status",
            if t.status == crate::facts::TerminalStatus::Active {
                "active"
            } else {
                "disabled"
            },
        );
        if let Some(s) = t.last_seen {
            e.text("terminal_last_seen", self.rfc(s));
        }
        if let Some(s) = t.last_sign_on {
            e.text("terminal_last_sign_on", self.rfc(s));
        }
        if let Some(b) = t.open_batch {
            e.text("open_batch_no", b.to_string());
        }
        if let Some(s) = &t.last_settlement {
            e.text("last_settlement_at", self.rfc(s.at));
            e.text("last_settlement_batch_no", s.batch_no.to_string());
            e.flag("last_settlement_balanced", s.balanced);
        }
        e.integer("unsettled_count", i64::from(t.unsettled_count));
    }

    fn terminals(&self, absence: f64, findings: &mut Findings, checked: &mut Vec<Checked>) {
        checked.push(Checked {
            subject: "terminals",
            note: Text::new(
                format!(
                    "检查了 {} 台终端的最近联机、签到、结算和批上送记录。",
                    self.terminals.len()
                ),
                format!(
                    "Checked last contact, sign-on, settlement and batch upload of {} terminal(s).",
                    self.terminals.len()
                ),
            ),
        });
        // Batch-upload items the host lacked: the terminal has the sale, the platform does not.
        for t in &self.terminals {
            for item in &t.upload_items_missing_at_host {
                let q = self.description.match_upload_item(t, item);
                if q < rank::MATCH_MIN {
                    continue;
                }
                let mut e = Evidence::new();
                self.terminal_evidence(t, &mut e);
                e.text("batch_no", item.batch_no.to_string());
                e.text("stan", item.stan.to_string());
                e.integer("amount_fen", item.amount.fen());
                e.text("uploaded_at", self.rfc(item.uploaded_at));
                e.text("discrepancy", "terminal_only");
                e.integer("match_percent", (q * 100.0).round() as i64);
                let (tid, batch, stan) = (&t.terminal_id, item.batch_no, item.stan);
                findings.push(Hit {
                    cause: Cause::SyncUploadOnly,
                    fit: q,
                    message: Text::new(
                        format!(
                            "终端 {tid} 在批上送中报告了这笔交易（批次 {batch}，凭证号 {stan}，{}），但平台从未收到它的联机记录。",
                            yuan(item.amount)
                        ),
                        format!(
                            "Terminal {tid} reported this transaction in its batch upload (batch {batch}, STAN {stan}, {}), but the platform never received it online.",
                            cny(item.amount)
                        ),
                    ),
                    evidence: e,
                    next_step: Text::new(
                        "请保留签购单并提交工单，收单行会核实终端与主机记录的差异。",
                        "Keep the receipt and open a ticket; the acquirer will check the difference between the terminal and the host.",
                    ),
                    transaction_id: None,
                });
            }
        }
        // A terminal silent since before the transaction may still hold it.
        let Some((reference, time_fit)) = self.reference_time() else {
            return;
        };
        if reference > self.now {
            return;
        }
        let expected_terminal = self
            .expected
            .and_then(|e| e.terminal_id.as_deref())
            .and_then(|t| self.own_terminal(t));
        let (pool, pool_fit): (Vec<&TerminalFacts>, f64) = match expected_terminal {
            Some(t) => (vec![t], 1.0),
            None => (self.terminals.clone(), 0.7),
        };
        let silent = pool
            .into_iter()
            .filter(|t| t.last_seen.is_some_and(|seen| seen < reference))
            .min_by_key(|t| t.last_seen);
        let Some(t) = silent else { return };
        let mut e = Evidence::new();
        self.terminal_evidence(t, &mut e);
        e.text("looking_for_time", self.rfc(reference));
        let tid = &t.terminal_id;
        let seen = t
            .last_seen
            .map(|s| self.local(s))
            .unwrap_or_else(|| "从未".into());
        let seen_en = t
            .last_seen
            .map(|s| self.local(s))
            .unwrap_or_else(|| "never".into());
        findings.push(Hit {
            cause: Cause::SyncTerminalSilent,
            fit: time_fit * pool_fit * absence,
            message: Text::new(
                format!(
                    "终端 {tid} 最近一次与主机联系是 {seen}，早于您要找的交易时间 {}；终端上的交易可能还没有上送。",
                    self.local(reference)
                ),
                format!(
                    "Terminal {tid} last contacted the host at {seen_en}, before the time you are looking for ({}); transactions held on the terminal may not have been sent yet.",
                    self.local(reference)
                ),
            ),
            evidence: e,
            next_step: Text::new(
                "检查终端网络，让终端签到并结算，然后再查。",
                "Check the terminal's network, sign on and settle, then search again.",
            ),
            transaction_id: None,
        });
    }

    fn maintenance(&self, absence: f64, findings: &mut Findings, checked: &mut Vec<Checked>) {
        checked.push(Checked {
            subject: "maintenance",
            note: Text::new(
                format!("检查了 {} 个维护窗口。", self.facts.maintenance.len()),
                format!(
                    "Checked {} maintenance window(s).",
                    self.facts.maintenance.len()
                ),
            ),
        });
        for w in &self.facts.maintenance {
            if w.end <= w.start {
                continue;
            }
            if w.affects.contains(&MaintenanceEffect::Capture) {
                let fit = match self.expected.and_then(|e| e.time) {
                    Some(ExpectedTime::Instant(t)) if sane_instant(t) => {
                        if w.start <= t && t < w.end {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    Some(ExpectedTime::LocalDate(d)) if sane_date(d) => {
                        let start = self.clock.start_of_day(d);
                        let end = self.clock.start_of_day(d.succ_opt().unwrap_or(d));
                        if overlaps(w.start, w.end, start, end) {
                            0.7
                        } else {
                            0.0
                        }
                    }
                    _ => match self.range_instants() {
                        Some((from, to)) if overlaps(w.start, w.end, from, to) => 0.5,
                        _ => 0.0,
                    },
                };
                if fit > 0.0 {
                    let f = self.maintenance_finding(w, MaintenanceKind::Capture, None, 0.0);
                    let mut hit = Hit::from_finding(Cause::MaintenanceCapture, f, None);
                    hit.fit = fit * absence;
                    findings.push(hit);
                }
            }
            if w.affects.contains(&MaintenanceEffect::Query)
                && w.start <= self.now
                && self.now < w.end
            {
                let f = self.maintenance_finding(w, MaintenanceKind::Active, None, 0.0);
                let mut hit = Hit::from_finding(Cause::MaintenanceQueryNow, f, None);
                hit.fit = absence;
                findings.push(hit);
            }
        }
    }

    fn maintenance_finding(
        &self,
        w: &MaintenanceWindow,
        kind: MaintenanceKind,
        settlement_date: Option<SettlementDate>,
        score: f64,
    ) -> Finding {
        let (start, end) = (self.local(w.start), self.local(w.end));
        let mut e = Evidence::new();
        e.text("announcement_id", w.announcement_id.clone());
        e.text("maintenance_start", self.rfc(w.start));
        e.text("maintenance_end", self.rfc(w.end));
        e.list(
            "maintenance_affects",
            w.affects.iter().map(|a| a.as_str().to_owned()).collect(),
        );
        e.text("announcement_title_zh", w.title.zh.clone());
        e.text("announcement_title_en", w.title.en.clone());
        let (zh_title, en_title) = (&w.title.zh, &w.title.en);
        let (message, next_step) = match kind {
            MaintenanceKind::Capture => (
                Text::new(
                    format!("{start} 至 {end} 系统维护（{zh_title}），这段时间的交易可能无法受理或延迟入库。"),
                    format!("Maintenance from {start} to {end} ({en_title}): transactions in that time may have been refused or stored late."),
                ),
                Text::new(
                    "维护结束后再查；如顾客已被扣款但仍查不到，请提交工单。",
                    "Search again after the maintenance; if the customer was charged and it still does not show, open a ticket.",
                ),
            ),
            MaintenanceKind::Active => (
                Text::new(
                    format!("查询服务正在维护（{start} 至 {end}，{zh_title}），查询结果可能不完整。"),
                    format!("Queries are under maintenance ({start} to {end}, {en_title}); results may be incomplete."),
                ),
                Text::new(format!("请在 {end} 之后再查一次。"), format!("Search again after {end}.")),
            ),
            MaintenanceKind::Settlement => {
                let sd = settlement_date.map(|d| d.to_string()).unwrap_or_default();
                e.text("settlement_date", sd.clone());
                (
                    Text::new(
                        format!("{start} 至 {end} 清算维护（{zh_title}），清算日期 {sd} 的清算和入账可能延迟。"),
                        format!("Settlement maintenance from {start} to {end} ({en_title}): clearing for settlement date {sd} may be late."),
                    ),
                    Text::new("维护结束后清算会继续，请稍后再查。", "Clearing resumes after the maintenance; check again later."),
                )
            }
        };
        Finding {
            code: Code::Maintenance,
            severity: Severity::Warning,
            message,
            evidence: e,
            next_step,
            transaction_ids: Vec::new(),
            score,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Bookkeeping for `checked` and the NOT_FOUND answer.

    fn note_candidates(&self, plausible: usize, checked: &mut Vec<Checked>) {
        let (from, to) = self.facts.candidate_window;
        let n = self.candidates.len();
        let (f, t) = (
            self.local(clamp_instant(from)),
            self.local(clamp_instant(to)),
        );
        let mut note = Text::new(
            format!("检查了 {f} 至 {t} 之间本商户所有可查看终端的 {n} 笔交易，其中 {plausible} 笔与您的描述相符。"),
            format!("Checked {n} transaction(s) on all visible terminals of the merchant from {f} to {t}; {plausible} match your description."),
        );
        if self.candidates_cut {
            note.zh
                .push_str(&format!("（只检查了前 {CANDIDATES_MAX} 笔）"));
            note.en
                .push_str(&format!(" (only the first {CANDIDATES_MAX} were examined)"));
        }
        checked.push(Checked {
            subject: "candidates",
            note,
        });
    }

    fn note_bank_side(&self, checked: &mut Vec<Checked>) {
        let days = self.facts.clearing.len();
        checked.push(Checked {
            subject: "clearing",
            note: Text::new(
                format!("检查了 {days} 个清算日的清算文件到达情况。"),
                format!("Checked clearing files for {days} settlement date(s)."),
            ),
        });
        let items = self.recon_missing.len();
        checked.push(Checked {
            subject: "reconciliation",
            note: Text::new(
                format!("检查了相关交易的对账结果（{items} 笔银行缺失）。"),
                format!("Checked reconciliation results of the matching transactions ({items} missing at the bank)."),
            ),
        });
    }

    fn not_found(&self) -> Finding {
        let (from, to) = self.facts.candidate_window;
        let (f, t) = (
            self.local(clamp_instant(from)),
            self.local(clamp_instant(to)),
        );
        let n = self.candidates.len();
        let mut e = Evidence::new();
        e.text("searched_from", self.rfc(clamp_instant(from)));
        e.text("searched_to", self.rfc(clamp_instant(to)));
        e.integer("transactions_examined", n as i64);
        e.list("terminal_ids", self.terminal_list());
        let mut details_zh = Vec::new();
        let mut details_en = Vec::new();
        let d = &self.description;
        if let Some(a) = &d.amount {
            e.integer("ticket_amount_fen", a.value.fen());
            details_zh.push(format!("金额 {}", yuan(a.value)));
            details_en.push(format!("amount {}", cny(a.value)));
        }
        if let Some(l) = &d.card_last4 {
            e.text("ticket_card_last4", l.value.clone());
            details_zh.push(format!("卡号后四位 {}", l.value));
            details_en.push(format!("card ending {}", l.value));
        }
        if let Some(r) = &d.rrn {
            e.text("ticket_rrn", r.value.to_string());
            details_zh.push(format!("参考号 {}", r.value));
            details_en.push(format!("RRN {}", r.value));
        }
        if let Some(s) = &d.stan {
            e.text("ticket_stan", s.value.to_string());
            details_zh.push(format!("凭证号 {}", s.value));
            details_en.push(format!("STAN {}", s.value));
        }
        if let Some(a) = &d.auth_code {
            e.text("ticket_auth_code", a.value.to_string());
            details_zh.push(format!("授权码 {}", a.value));
            details_en.push(format!("auth code {}", a.value));
        }
        if let Some(t) = &d.terminal {
            e.text("ticket_terminal_id", t.value.to_string());
            details_zh.push(format!("终端 {}", t.value));
            details_en.push(format!("terminal {}", t.value));
        }
        match self.expected.and_then(|e| e.time) {
            Some(ExpectedTime::Instant(t)) if sane_instant(t) => {
                e.text("ticket_time", self.rfc(t));
                details_zh.push(format!("时间 {}", self.local(t)));
                details_en.push(format!("time {}", self.local(t)));
            }
            Some(ExpectedTime::LocalDate(d)) => {
                e.text("ticket_date", d.to_string());
                details_zh.push(format!("日期 {d}"));
                details_en.push(format!("date {d}"));
            }
            _ => {}
        }
        let zh_details = if details_zh.is_empty() {
            "您的描述".to_owned()
        } else {
            details_zh.join("，")
        };
        let en_details = if details_en.is_empty() {
            "your description".to_owned()
        } else {
            details_en.join(", ")
        };
        let scope_zh = if self.facts.scope.terminal_ids.is_some() {
            "您可查看的终端"
        } else {
            "本商户所有终端"
        };
        let scope_en = if self.facts.scope.terminal_ids.is_some() {
            "the terminals you can see"
        } else {
            "all of the merchant's terminals"
        };
        Finding {
            code: Code::NotFound,
            severity: Severity::Warning,
            message: Text::new(
                format!("在{scope_zh} {f} 至 {t} 的 {n} 笔交易中，没有找到与您描述相符的交易，也没有发现维护、终端同步或账户方面的问题。"),
                format!("Among {n} transaction(s) on {scope_en} from {f} to {t}, none matches your description, and no maintenance, terminal sync or account problem was found."),
            ),
            evidence: e,
            next_step: Text::new(
                format!("您可以提交工单，以下信息已为您填好：{zh_details}。"),
                format!("You can open a ticket with these details filled in: {en_details}."),
            ),
            transaction_ids: Vec::new(),
            score: rank::NOT_FOUND_SCORE,
        }
    }
}

#[derive(Clone, Copy)]
enum MaintenanceKind {
    Capture,
    Active,
    Settlement,
}

// ---------------------------------------------------------------------------------------------
// Describing and matching the transaction the person looks for.

struct Attr<T> {
    value: T,
    /// Taken from a list filter rather than from `expected`: a candidate that fails it is not
    /// penalised, because failing that filter is exactly the FILTERED_OUT hypothesis.
    from_filter: bool,
}

enum TimeTarget {
    None,
    Instant(DateTime<Utc>),
    LocalDate(NaiveDate),
    Range(DateTime<Utc>, DateTime<Utc>),
}

struct Description {
    amount: Option<Attr<Amount>>,
    card_last4: Option<Attr<String>>,
    rrn: Option<Attr<domain::Rrn>>,
    stan: Option<Attr<domain::Stan>>,
    auth_code: Option<Attr<domain::AuthCode>>,
    terminal: Option<Attr<TerminalId>>,
    time: TimeTarget,
}

fn pick<T: Clone>(expected: Option<&T>, filter: Option<&T>) -> Option<Attr<T>> {
    match (expected, filter) {
        (Some(v), _) => Some(Attr {
            value: v.clone(),
            from_filter: false,
        }),
        (None, Some(v)) => Some(Attr {
            value: v.clone(),
            from_filter: true,
        }),
        (None, None) => None,
    }
}

impl Description {
    fn new(
        expected: Option<&Expected>,
        query: Option<&ListQuery>,
        range: Option<Range>,
        clock: &MerchantClock,
        terminals: &[&TerminalFacts],
    ) -> Description {
        let f = query.map(|q| &q.filters);
        let exact_amount = f.and_then(|f| match (f.amount_min, f.amount_max) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        });
        let own_terminal = |typed: &str| {
            terminals
                .iter()
                .find(|t| t.terminal_id.as_str() == typed.trim())
                .map(|t| t.terminal_id.clone())
        };
        let expected_terminal = expected
            .and_then(|e| e.terminal_id.as_deref())
            .and_then(own_terminal);
        let filter_terminal = f
            .filter(|f| f.terminal_ids.len() == 1)
            .and_then(|f| own_terminal(&f.terminal_ids[0]));
        let time = match expected.and_then(|e| e.time) {
            Some(ExpectedTime::Instant(t)) if sane_instant(t) => TimeTarget::Instant(t),
            Some(ExpectedTime::LocalDate(d)) if sane_date(d) => TimeTarget::LocalDate(d),
            _ => match range {
                Some(r) => {
                    let (from, to) = range_instants(r, clock);
                    TimeTarget::Range(from, to)
                }
                None => TimeTarget::None,
            },
        };
        Description {
            amount: pick(
                expected.and_then(|e| e.amount.as_ref()),
                exact_amount.as_ref(),
            ),
            card_last4: pick(
                expected.and_then(|e| e.card_last4.as_ref()),
                f.and_then(|f| f.card_last4.as_ref()),
            ),
            rrn: pick(
                expected.and_then(|e| e.rrn.as_ref()),
                f.and_then(|f| f.rrn.as_ref()),
            ),
            stan: pick(
                expected.and_then(|e| e.stan.as_ref()),
                f.and_then(|f| f.stan.as_ref()),
            ),
            auth_code: pick(
                expected.and_then(|e| e.auth_code.as_ref()),
                f.and_then(|f| f.auth_code.as_ref()),
            ),
            terminal: pick(expected_terminal.as_ref(), filter_terminal.as_ref()),
            time,
        }
    }

    /// Anchored: the person described the transaction (an identifier, an amount, a card or a
    /// point in time), rather than only a range to browse.
    fn anchored(&self) -> bool {
        self.amount.is_some()
            || self.card_last4.is_some()
            || self.rrn.is_some()
            || self.stan.is_some()
            || self.auth_code.is_some()
            || matches!(self.time, TimeTarget::Instant(_) | TimeTarget::LocalDate(_))
    }

    /// How well `c` matches, in `[0, 1]` (crate docs, "Ranking").
    fn match_quality(&self, c: &Candidate, clock: &MerchantClock) -> f64 {
        if !self.anchored() {
            return match self.time {
                TimeTarget::Range(from, to) => {
                    let tau = ((to - from).num_seconds() as f64 / 60.0)
                        .max(rank::RANGE_PROXIMITY_MIN_MINUTES);
                    (-minutes_outside(c.txn_time, from, to) / tau).exp()
                }
                _ => 0.0,
            };
        }
        let mut s = 0.0;
        s += attr_score(&self.rrn, c.rrn.as_ref(), rank::W_RRN);
        s += attr_score(&self.auth_code, c.auth_code.as_ref(), rank::W_AUTH_CODE);
        s += attr_score(&self.stan, c.stan.as_ref(), rank::W_STAN);
        s += attr_score(&self.amount, Some(&c.amount), rank::W_AMOUNT);
        s += attr_score(&self.card_last4, c.card_last4.as_ref(), rank::W_CARD_LAST4);
        if let Some(t) = &self.terminal {
            if c.terminal_id.as_ref() == Some(&t.value) {
                s += rank::W_TERMINAL;
            }
        }
        s += match self.time {
            TimeTarget::None => 0.0,
            TimeTarget::Instant(t) => {
                let minutes = ((c.txn_time - t).num_seconds() as f64 / 60.0).abs();
                rank::W_TIME * (-minutes / rank::TIME_TAU_MINUTES).exp()
            }
            TimeTarget::LocalDate(d) => {
                let local = clock.local(c.txn_time).date_naive();
                if local == d {
                    rank::W_DATE_SAME
                } else if c.settlement_date.date() == d {
                    rank::W_DATE_SETTLEMENT
                } else if (local - d).num_days().abs() == 1 {
                    rank::W_DATE_ADJACENT
                } else {
                    0.0
                }
            }
            TimeTarget::Range(from, to) => {
                let tau = ((to - from).num_seconds() as f64 / 60.0)
                    .max(rank::RANGE_PROXIMITY_MIN_MINUTES);
                rank::W_RANGE * (-minutes_outside(c.txn_time, from, to) / tau).exp()
            }
        };
        rank::logistic(s)
    }

    fn match_upload_item(&self, t: &TerminalFacts, item: &crate::facts::UploadItem) -> f64 {
        if self.stan.is_none() && self.amount.is_none() {
            return 0.0;
        }
        let mut s = 0.0;
        s += attr_score(&self.stan, Some(&item.stan), rank::W_STAN);
        s += attr_score(&self.amount, Some(&item.amount), rank::W_AMOUNT);
        match &self.terminal {
            Some(a) if a.value == t.terminal_id => s += rank::W_TERMINAL,
            Some(a) if !a.from_filter => return 0.0,
            _ => {}
        }
        rank::logistic(s)
    }
}

fn attr_score<T: PartialEq>(attr: &Option<Attr<T>>, actual: Option<&T>, weight: f64) -> f64 {
    match (attr, actual) {
        (Some(a), Some(v)) if a.value == *v => weight,
        (Some(a), Some(_)) if !a.from_filter => -weight,
        _ => 0.0,
    }
}

fn minutes_outside(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    if t < from {
        (from - t).num_seconds() as f64 / 60.0
    } else if t >= to {
        (t - to).num_seconds() as f64 / 60.0
    } else {
        0.0
    }
}

fn range_instants(r: Range, clock: &MerchantClock) -> (DateTime<Utc>, DateTime<Utc>) {
    match r {
        Range::TxnTime { from, to, .. } => (from, to),
        Range::SettlementDate { from, to } => (
            clock.settlement_window(from, Channel::Card).0,
            clock.settlement_window(to, Channel::Card).1,
        ),
    }
}

fn in_range(r: Range, c: &Candidate) -> bool {
    match r {
        Range::TxnTime { from, to, .. } => from <= c.txn_time && c.txn_time < to,
        Range::SettlementDate { from, to } => from <= c.settlement_date && c.settlement_date <= to,
    }
}

fn reinterpret(t: DateTime<Utc>, from_tz: Tz, to_tz: Tz) -> Option<DateTime<Utc>> {
    let naive = t.with_timezone(&from_tz).naive_local();
    to_tz
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

fn overlaps(
    a_start: DateTime<Utc>,
    a_end: DateTime<Utc>,
    b_start: DateTime<Utc>,
    b_end: DateTime<Utc>,
) -> bool {
    a_start < b_end && b_start < a_end
}

fn latest_event(c: &Candidate, kind: TxnEventKind) -> Option<&crate::facts::TxnEvent> {
    c.events
        .iter()
        .filter(|e| e.kind == kind)
        .max_by_key(|e| e.at)
}

fn declined_next_step(rc: ResponseCode) -> Text {
    match rc.as_str() {
        "51" => Text::new("余额不足：请顾客换卡或换其他方式重新付款。", "Insufficient funds: ask the customer to pay again with another card or method."),
        "55" => Text::new("密码错误：请顾客重新输入密码后再付款。", "Incorrect PIN: ask the customer to re-enter the PIN and pay again."),
        "54" => Text::new("卡已过期：请顾客换卡付款。", "Expired card: ask the customer to use another card."),
        "03" => Text::new("商户状态异常：请联系收单行。", "Merchant not in good standing: contact the acquirer."),
        "58" | "77" => Text::new("终端状态异常：请让终端重新签到，仍不行请联系收单行。", "Terminal problem: sign the terminal on again; if that fails, contact the acquirer."),
        "61" => Text::new("超出单笔限额：请分笔收款或联系收单行调整限额。", "Over the single-transaction limit: split the payment or ask the acquirer to raise the limit."),
        _ => Text::new("请顾客重新付款；如多次因同一原因被拒，请联系发卡行或收单行。", "Ask the customer to pay again; if it keeps being declined for the same reason, contact the card issuer or the acquirer."),
    }
}

fn status_zh(s: MerchantStatus) -> &'static str {
    match s {
        MerchantStatus::Active => "正常",
        MerchantStatus::Frozen => "冻结",
        MerchantStatus::Closed => "注销",
    }
}

fn yuan(a: Amount) -> String {
    format!("{a} 元")
}

fn cny(a: Amount) -> String {
    format!("CNY {a}")
}

fn join<'s>(words: impl Iterator<Item = &'s str>) -> String {
    words.collect::<Vec<_>>().join(",")
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn filter_searched_key(key: &str) -> &'static str {
    match key {
        "kind" => "filter_kind",
        "status" => "filter_status",
        "channel" => "filter_channel",
        "card_last4" => "filter_card_last4",
        "rrn" => "filter_rrn",
        "stan" => "filter_stan",
        "auth_code" => "filter_auth_code",
        _ => "filter_amount",
    }
}

fn filter_actual_key(key: &str) -> &'static str {
    match key {
        "kind" => "actual_kind",
        "status" => "actual_status",
        "channel" => "actual_channel",
        "card_last4" => "actual_card_last4",
        "rrn" => "actual_rrn",
        "stan" => "actual_stan",
        "auth_code" => "actual_auth_code",
        _ => "actual_amount",
    }
}

fn cut_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Collecting hits into one finding per code.

/// One cause detected, before ranking.
struct Hit {
    cause: Cause,
    /// How well the facts fit this cause, in `[0, 1]` (match quality for candidate causes).
    fit: f64,
    message: Text,
    evidence: Evidence,
    next_step: Text,
    transaction_id: Option<String>,
}

impl Hit {
    fn from_finding(cause: Cause, f: Finding, transaction_id: Option<String>) -> Hit {
        Hit {
            cause,
            fit: f.score,
            message: f.message,
            evidence: f.evidence,
            next_step: f.next_step,
            transaction_id,
        }
    }

    fn into_finding(self, score: f64) -> Finding {
        Finding {
            code: self.cause.code(),
            severity: self.cause.severity(),
            message: self.message,
            evidence: self.evidence,
            next_step: self.next_step,
            transaction_ids: self.transaction_id.into_iter().collect(),
            score,
        }
    }
}

/// The best hit for one code, its score, and every (score, transaction id) that hit it.
type Group = (Code, f64, Hit, Vec<(f64, String)>);

struct Findings {
    by_code: Vec<Group>,
    /// Multiplies the fit of every hit pushed: the match quality of the candidate whose causes
    /// are being collected, 1 otherwise.
    match_quality: f64,
}

impl Default for Findings {
    fn default() -> Findings {
        Findings {
            by_code: Vec::new(),
            match_quality: 1.0,
        }
    }
}

impl Findings {
    fn push(&mut self, mut hit: Hit) {
        hit.fit *= self.match_quality;
        if !hit.fit.is_finite() {
            hit.fit = 0.0;
        }
        let score = (hit.fit.clamp(0.0, 1.0) * hit.cause.specificity()).clamp(0.0, 1.0);
        if score <= 0.0 {
            return;
        }
        let code = hit.cause.code();
        let id = hit.transaction_id.clone();
        match self.by_code.iter_mut().find(|(c, ..)| *c == code) {
            Some(entry) => {
                if let Some(id) = id {
                    entry.3.push((score, id));
                }
                if score > entry.1 {
                    entry.1 = score;
                    entry.2 = hit;
                }
            }
            None => {
                let ids = id.map(|id| vec![(score, id)]).unwrap_or_default();
                self.by_code.push((code, score, hit, ids));
            }
        }
    }

    fn finish(self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .by_code
            .into_iter()
            .map(|(_, score, hit, mut ids)| {
                ids.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                let mut seen = Vec::new();
                for (_, id) in ids {
                    if !seen.contains(&id) && seen.len() < TRANSACTION_IDS_MAX {
                        seen.push(id);
                    }
                }
                let count = seen.len();
                let mut finding = hit.into_finding(score);
                finding.transaction_ids = seen;
                if count > 1 {
                    finding
                        .evidence
                        .integer("matching_transactions", count as i64);
                }
                finding
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| rank::precedence(a.code).cmp(&rank::precedence(b.code)))
        });
        out
    }
}
