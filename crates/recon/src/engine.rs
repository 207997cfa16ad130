use std::cmp::Ordering;
use std::hash::Hasher;

use domain::{Channel, Currency, SettlementDate, TxnKind, TxnStatus};

use crate::fasthash::{FastMap, FoldBuild, FoldHasher};
use crate::report::{Item, MatchPass, Outcome, Report, Summary};
use crate::{ClearingRecord, PlatformRecord};

/// Tunables of a run. A struct rather than parameters so callers name what they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconConfig {
    /// The `fuzzy` pass pairs records whose times differ by at most this many seconds.
    pub fuzzy_window_secs: i64,
    /// Threads the matching passes may use; 0: as many as the machine has. The outcome is
    /// the same for any number.
    pub threads: usize,
}

impl Default for ReconConfig {
    fn default() -> Self {
        ReconConfig { fuzzy_window_secs: 300, threads: 0 }
    }
}

/// Everything one run looks at. The caller has already applied any merchant filter.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub settlement_date: SettlementDate,
    /// Platform records of D (and of D-1 and D+1 where available); others are ignored.
    pub platform: &'a [PlatformRecord],
    /// Clearing rows of the files for D (and for D-1 and D+1 where imported); others are ignored.
    pub clearing: &'a [ClearingRecord],
    /// Channels that have at least one clearing file imported for D.
    pub channels_with_clearing: &'a [Channel],
    pub config: ReconConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconError {
    #[error("too many {side} records for one run: {count} (at most {max})")]
    TooManyRecords { side: &'static str, count: usize, max: usize },
}

/// Records per side that one run accepts: indices are `u32` to keep the working set small.
pub const RECORDS_PER_SIDE_MAX: usize = (u32::MAX - 1) as usize;

const NONE: u32 = u32::MAX;
const OUT: i8 = i8::MAX;

/// Reconciles platform records against clearing rows for one settlement date.
///
/// Pure and deterministic: the same records in any order give the same items in the same
/// order. Rows are visited in (settlement date, file, line) order and, where several platform
/// records could pair with a row, the choice depends only on the records' contents (kind, whether
/// it should settle, time distance for `fuzzy`, then the lowest id).
///
/// Matching runs pass by pass (`key`, `rrn`, `external_ref`, `fuzzy`); in each pass rows pair
/// first with records of their own settlement date, then across one day (D with D-1 or D+1).
/// Outcome precedence for a pair: `status_mismatch`, then `date_shift`, then `amount_mismatch`.
pub fn reconcile<'a>(input: &Input<'a>) -> Result<Report<'a>, ReconError> {
    let p = input.platform;
    let c = input.clearing;
    if p.len() > RECORDS_PER_SIDE_MAX {
        return Err(ReconError::TooManyRecords { side: "platform", count: p.len(), max: RECORDS_PER_SIDE_MAX });
    }
    if c.len() > RECORDS_PER_SIDE_MAX {
        return Err(ReconError::TooManyRecords { side: "clearing", count: c.len(), max: RECORDS_PER_SIDE_MAX });
    }
    let d = input.settlement_date;
    let (prev, next) = (d.pred(), d.succ());
    let day_of = |date: SettlementDate| -> i8 {
        if date == d {
            0
        } else if date == prev {
            -1
        } else if date == next {
            1
        } else {
            OUT
        }
    };
    let c_day: Vec<i8> = c.iter().map(|r| day_of(r.settlement_date)).collect();
    let c_order = canonical_clearing_order(c, &c_day);
    let threads = match input.config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Marking duplicates reads only the clearing side: it runs beside the platform side's
    // preparation.
    let (mut meta, c_dup_of) = std::thread::scope(|s| {
        let dups = (threads > 1 && c.len() >= PARALLEL_MIN).then(|| s.spawn(|| mark_duplicates(c, &c_order)));
        let meta: Vec<Meta> = p.iter().map(|r| Meta::new(r, day_of(r.settlement_date))).collect();
        let c_dup_of = match dups {
            Some(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            None => mark_duplicates(c, &c_order),
        };
        (meta, c_dup_of)
    });

    let mut c_match = vec![NONE; c.len()];
    let mut c_pass = vec![0u8; c.len()];
    let mut rows_left: Vec<u32> = c_order.iter().copied().filter(|&ci| c_dup_of[ci as usize] == NONE).collect();
    let mut records_left: Vec<u32> = (0..p.len() as u32).filter(|&pi| meta[pi as usize].day != OUT).collect();
    for pass in MatchPass::ALL {
        if rows_left.is_empty() || records_left.is_empty() {
            break;
        }
        let pairs = match_pass(pass, p, c, &meta, &c_day, &records_left, &rows_left, input.config, threads);
        for (ci, pi) in pairs {
            meta[pi as usize].matched = ci;
            c_match[ci as usize] = pi;
            c_pass[ci as usize] = pass as u8 + 1;
        }
        rows_left.retain(|&ci| c_match[ci as usize] == NONE);
        records_left.retain(|&pi| meta[pi as usize].matched == NONE);
    }
    drop(rows_left);
    drop(records_left);

    let voids = VoidIndex::new(p, &meta);
    let classify = |pi: usize, ci: usize| -> Outcome {
        let (m, row) = (&meta[pi], &c[ci]);
        if m.flags & SETTLES == 0 || m.kind != row.kind {
            return Outcome::StatusMismatch;
        }
        if m.flags & VOIDED != 0 && !voids.any_settled(m.id, &meta) {
            return Outcome::StatusMismatch;
        }
        if m.day != c_day[ci] {
            return Outcome::DateShift;
        }
        if m.amount_fen != row.amount.fen() || m.currency != row.currency {
            return Outcome::AmountMismatch;
        }
        Outcome::Matched
    };
    let pass_of = |ci: usize| MatchPass::ALL.get(usize::from(c_pass[ci]).wrapping_sub(1)).copied();

    let mut summary = Summary::default();
    let mut items = Vec::with_capacity(c_order.len() + p.len() / 16);
    for &ci in &c_order {
        let ci = ci as usize;
        if c_day[ci] != 0 {
            continue;
        }
        let (item, platform_amount) = if c_dup_of[ci] != NONE {
            let first = c_match[c_dup_of[ci] as usize];
            let item = Item {
                outcome: Outcome::DuplicateInClearing,
                match_pass: None,
                platform: (first != NONE).then(|| &p[first as usize]),
                clearing: Some(&c[ci]),
            };
            (item, (first != NONE).then(|| meta[first as usize].amount_fen))
        } else if c_match[ci] != NONE {
            let pi = c_match[ci] as usize;
            let item =
                Item { outcome: classify(pi, ci), match_pass: pass_of(ci), platform: Some(&p[pi]), clearing: Some(&c[ci]) };
            (item, Some(meta[pi].amount_fen))
        } else {
            (Item { outcome: Outcome::MissingInPlatform, match_pass: None, platform: None, clearing: Some(&c[ci]) }, None)
        };
        summary.add(item.outcome, platform_amount.unwrap_or(c[ci].amount.fen()));
        items.push(item);
    }

    let has_file = |ch: Channel| input.channels_with_clearing.contains(&ch);
    let mut platform_only: Vec<u32> = Vec::new();
    let mut pending: Vec<u32> = Vec::new();
    let mut pending_channels: Vec<Channel> = Vec::new();
    for (pi, m) in meta.iter().enumerate() {
        if m.day != 0 || m.flags & SETTLES == 0 {
            continue;
        }
        let ci = m.matched;
        if ci != NONE {
            if c_day[ci as usize] != 0 {
                platform_only.push(pi as u32);
            }
            continue;
        }
        let channel = p[pi].channel;
        if has_file(channel) {
            platform_only.push(pi as u32);
        } else {
            pending.push(pi as u32);
            if !pending_channels.contains(&channel) {
                pending_channels.push(channel);
            }
        }
    }
    platform_only.sort_unstable_by(|&a, &b| platform_order(&p[a as usize], &p[b as usize]));
    pending.sort_unstable_by(|&a, &b| platform_order(&p[a as usize], &p[b as usize]));
    pending_channels.sort_unstable();
    for pi in platform_only {
        let pi = pi as usize;
        let ci = meta[pi].matched;
        let item = if ci == NONE {
            Item { outcome: Outcome::MissingInClearing, match_pass: None, platform: Some(&p[pi]), clearing: None }
        } else {
            let ci = ci as usize;
            Item { outcome: classify(pi, ci), match_pass: pass_of(ci), platform: Some(&p[pi]), clearing: Some(&c[ci]) }
        };
        summary.add(item.outcome, meta[pi].amount_fen);
        items.push(item);
    }
    let pending: Vec<&PlatformRecord> = pending.into_iter().map(|pi| &p[pi as usize]).collect();
    summary.pending_count = pending.len() as u64;
    summary.pending_amount_fen = pending.iter().map(|r| r.amount.fen()).fold(0i64, i64::saturating_add);
    Ok(Report { settlement_date: d, items, pending_channels, pending, summary })
}

const SETTLES: u8 = 1;
const REVERSAL: u8 = 2;
const VOIDED: u8 = 4;

/// What the matching loops read of a platform record, packed so a candidate costs one cache
/// line instead of a walk through the record's heap strings.
#[derive(Clone, Copy)]
struct Meta {
    merchant: u128,
    id: i64,
    amount_fen: i64,
    /// The clearing row this record is paired with, or `NONE`.
    matched: u32,
    kind: TxnKind,
    day: i8,
    flags: u8,
    currency: Currency,
}

impl Meta {
    fn new(r: &PlatformRecord, day: i8) -> Meta {
        let mut flags = 0;
        if r.should_settle() {
            flags |= SETTLES;
        }
        if r.is_reversal {
            flags |= REVERSAL;
        }
        if r.status == TxnStatus::Voided {
            flags |= VOIDED;
        }
        Meta {
            merchant: merchant_bits(&r.merchant),
            id: r.id.0,
            amount_fen: r.amount.fen(),
            matched: NONE,
            kind: r.kind,
            day,
            flags,
            currency: r.currency,
        }
    }
}

/// Smaller is better.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    time_distance_secs: i64,
    kind_differs: bool,
    does_not_settle: bool,
    is_reversal: bool,
    id: i64,
}

fn pair_rank(pass: MatchPass, m: &Cand, row: &Probe, p: &[PlatformRecord], c: &[ClearingRecord], window_secs: i64) -> Option<Rank> {
    let mut time_distance_secs = 0;
    match pass {
        MatchPass::Key | MatchPass::Rrn => {}
        MatchPass::ExternalRef => {
            if p[m.pi as usize].external_ref != c[row.ci as usize].external_ref {
                return None;
            }
        }
        MatchPass::Fuzzy => {
            let row_time = c[row.ci as usize].txn_time?;
            time_distance_secs = (row_time - p[m.pi as usize].txn_time).num_seconds().abs();
            if m.kind != row.kind || time_distance_secs > window_secs {
                return None;
            }
        }
    }
    Some(Rank {
        time_distance_secs,
        kind_differs: m.kind != row.kind,
        does_not_settle: m.flags & SETTLES == 0,
        is_reversal: m.flags & REVERSAL != 0,
        id: m.id,
    })
}

/// Inputs of at least this many records or rows are worth a second thread.
const PARALLEL_MIN: usize = 16_384;

/// Records per partition aimed at: a partition's candidates, chains and map stay in cache.
const PARTITION_RECORDS: usize = 2048;

/// At most 2^12 partitions.
const PARTITION_BITS_MAX: u32 = 12;

/// A platform record as one pass sees it: its key and what ranking reads, side by side.
#[derive(Clone, Copy)]
struct Cand {
    key: u128,
    merchant: u128,
    id: i64,
    pi: u32,
    kind: TxnKind,
    day: i8,
    flags: u8,
}

/// A clearing row as one pass sees it.
#[derive(Clone, Copy)]
struct Probe {
    key: u128,
    merchant: u128,
    ci: u32,
    kind: TxnKind,
    day: i8,
    has_merchant: bool,
}

/// Which partition a key falls in (its high bits after a multiplicative mix).
fn partition_of(key: u128, bits: u32) -> u16 {
    if bits == 0 {
        return 0;
    }
    let h = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - bits)) as u16
}

/// No partition: the record or row has no key in this pass.
const NO_PARTITION: u16 = u16::MAX;

/// One thread's share of one side, split by partition: partition `p` is
/// `items[starts[p]..starts[p + 1]]`, in the share's order.
struct Split<T> {
    items: Vec<T>,
    starts: Vec<usize>,
}

impl<T: Copy> Split<T> {
    /// Keys `ids` with `key_of`, then places each keyed one, made by `make`, in its partition
    /// (stable: the order of `ids` is kept within each). Only the partitions are kept between
    /// the two walks (two bytes each, not the key): the key is made again where it is placed.
    fn of(ids: &[u32], bits: u32, key_of: impl Fn(u32) -> Option<u128>, make: impl Fn(u32, u128) -> T) -> Split<T> {
        let parts = 1usize << bits;
        let part_of: Vec<u16> = ids.iter().map(|&i| key_of(i).map_or(NO_PARTITION, |key| partition_of(key, bits))).collect();
        let mut starts = vec![0usize; parts + 1];
        for &part in &part_of {
            if part != NO_PARTITION {
                starts[usize::from(part) + 1] += 1;
            }
        }
        for p in 0..parts {
            starts[p + 1] += starts[p];
        }
        let mut items = Vec::new();
        let keyed = ids.iter().zip(&part_of).filter(|(_, &part)| part != NO_PARTITION);
        if let Some(first) = keyed.clone().next().and_then(|(&i, _)| key_of(i).map(|key| make(i, key))) {
            items.resize(starts[parts], first);
            let mut at = starts[..parts].to_vec();
            for (&i, &part) in keyed {
                if let Some(key) = key_of(i) {
                    let slot = &mut at[usize::from(part)];
                    items[*slot] = make(i, key);
                    *slot += 1;
                }
            }
        }
        Split { items, starts }
    }

    fn len_of(&self, part: usize) -> usize {
        self.starts[part + 1] - self.starts[part]
    }

    fn part(&self, part: usize) -> &[T] {
        &self.items[self.starts[part]..self.starts[part + 1]]
    }
}

/// Splits `ids` into `shares` contiguous pieces and runs `f` on each, on its own thread past the
/// first; results in order.
fn in_shares<'i, R: Send>(ids: &'i [u32], shares: usize, f: impl Fn(&'i [u32]) -> R + Sync) -> Vec<R> {
    let size = ids.len().div_ceil(shares.max(1)).max(1);
    let pieces: Vec<&[u32]> = ids.chunks(size).collect();
    if pieces.len() <= 1 {
        return vec![f(ids)];
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = pieces[1..].iter().map(|&piece| scope.spawn(move || f(piece))).collect();
        let mut out = vec![f(pieces[0])];
        out.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))));
        out
    })
}

/// One matching pass: the records and rows still unpaired are split by key into partitions
/// (rows keep their canonical order within each), and each partition is matched on its own.
/// Records and rows of different keys never compete, so this pairs exactly as one pass over
/// everything in canonical order would; partitions small enough to stay in cache make it
/// several times faster. Both the split and the matching are shared among `threads`.
#[allow(clippy::too_many_arguments)]
fn match_pass(
    pass: MatchPass,
    p: &[PlatformRecord],
    c: &[ClearingRecord],
    meta: &[Meta],
    c_day: &[i8],
    records_left: &[u32],
    rows_left: &[u32],
    config: ReconConfig,
    threads: usize,
) -> Vec<(u32, u32)> {
    let bits = (records_left.len() / PARTITION_RECORDS).max(1).next_power_of_two().trailing_zeros().min(PARTITION_BITS_MAX);
    let parts = 1usize << bits;
    let threads = if records_left.len() + rows_left.len() >= PARALLEL_MIN { threads.max(1) } else { 1 };
    let cand_of = |pi: u32, key: u128| {
        let m = &meta[pi as usize];
        Cand { key, merchant: m.merchant, id: m.id, pi, kind: m.kind, day: m.day, flags: m.flags }
    };
    let probe_of = |ci: u32, key: u128| {
        let row = &c[ci as usize];
        Probe {
            key,
            merchant: row.merchant.as_ref().map_or(0, merchant_bits),
            ci,
            kind: row.kind,
            day: c_day[ci as usize],
            has_merchant: row.merchant.is_some(),
        }
    };
    let cands = in_shares(records_left, threads, |ids| Split::of(ids, bits, |pi| platform_key(pass, &p[pi as usize]), cand_of));
    let probes = in_shares(rows_left, threads, |ids| Split::of(ids, bits, |ci| clearing_key(pass, &c[ci as usize]), probe_of));
    let work_of = |part: usize| -> usize {
        cands.iter().map(|s| s.len_of(part)).sum::<usize>() + probes.iter().map(|s| s.len_of(part)).sum::<usize>()
    };

    // Contiguous runs of partitions of about equal work, one per thread.
    let work: usize = (0..parts).map(work_of).sum();
    if work == 0 {
        return Vec::new();
    }
    let threads = threads.clamp(1, parts);
    let mut bounds = vec![0usize];
    let mut done = 0;
    for part in 0..parts - 1 {
        done += work_of(part);
        if done * threads >= work * bounds.len() && bounds.len() < threads {
            bounds.push(part + 1);
        }
    }
    bounds.push(parts);
    let window = config.fuzzy_window_secs;
    let (cands, probes) = (&cands, &probes);
    let run = |from: usize, to: usize| {
        let mut local = PartitionScratch::default();
        let mut pairs = Vec::new();
        for part in from..to {
            // This partition's records and rows from every share, in share order: the order
            // of the whole.
            local.cands.clear();
            local.probes.clear();
            for share in cands {
                local.cands.extend_from_slice(share.part(part));
            }
            for share in probes {
                local.probes.extend_from_slice(share.part(part));
            }
            let (cs, ps) = (std::mem::take(&mut local.cands), std::mem::take(&mut local.probes));
            match_partition(pass, &cs, &ps, p, c, window, &mut local, &mut pairs);
            (local.cands, local.probes) = (cs, ps);
        }
        pairs
    };
    if bounds.len() <= 2 {
        return run(0, parts);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = bounds.windows(2).skip(1).map(|w| scope.spawn(move || run(w[0], w[1]))).collect();
        let mut pairs = run(bounds[0], bounds[1]);
        for h in handles {
            pairs.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        pairs
    })
}

#[derive(Default)]
struct PartitionScratch {
    cands: Vec<Cand>,
    probes: Vec<Probe>,
    heads: FastMap<u128, u32>,
    next: Vec<u32>,
    taken: Vec<bool>,
    row_done: Vec<bool>,
}

/// Pairs the rows of one partition (in canonical order) with its records: first each row with
/// records of its own settlement date, then across one day (D with D-1 or D+1). Appends
/// `(row, record)` pairs to `out`.
#[allow(clippy::too_many_arguments)]
fn match_partition(
    pass: MatchPass,
    cands: &[Cand],
    probes: &[Probe],
    p: &[PlatformRecord],
    c: &[ClearingRecord],
    window_secs: i64,
    local: &mut PartitionScratch,
    out: &mut Vec<(u32, u32)>,
) {
    if cands.is_empty() || probes.is_empty() {
        return;
    }
    local.heads.clear();
    local.next.clear();
    for (i, cand) in cands.iter().enumerate() {
        let head = local.heads.entry(cand.key).or_insert(NONE);
        local.next.push(*head);
        *head = i as u32;
    }
    local.taken.clear();
    local.taken.resize(cands.len(), false);
    local.row_done.clear();
    local.row_done.resize(probes.len(), false);
    for cross_day in [false, true] {
        for (j, row) in probes.iter().enumerate() {
            if local.row_done[j] {
                continue;
            }
            let Some(&head) = local.heads.get(&row.key) else { continue };
            let mut best: Option<(u32, Rank)> = None;
            let mut i = head;
            while i != NONE {
                let m = &cands[i as usize];
                let day_ok = if cross_day { (row.day == 0) != (m.day == 0) } else { row.day == m.day };
                if !local.taken[i as usize] && day_ok && (!row.has_merchant || row.merchant == m.merchant) {
                    if let Some(rank) = pair_rank(pass, m, row, p, c, window_secs) {
                        if best.as_ref().is_none_or(|(_, b)| rank < *b) {
                            best = Some((i, rank));
                        }
                    }
                }
                i = local.next[i as usize];
            }
            if let Some((i, _)) = best {
                local.taken[i as usize] = true;
                local.row_done[j] = true;
                out.push((row.ci, cands[i as usize].pi));
            }
        }
    }
}

/// Up to 16 ASCII bytes packed into an integer key (ids are at most 15 characters).
fn pack16(s: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = s.len().min(16);
    b[..n].copy_from_slice(&s[..n]);
    u128::from_le_bytes(b)
}

fn merchant_bits(m: &domain::MerchantId) -> u128 {
    pack16(m.as_bytes())
}

fn terminal_bits(t: &domain::TerminalId) -> u64 {
    let mut b = [0u8; 8];
    let s = t.as_bytes();
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s[..n]);
    u64::from_le_bytes(b)
}

fn rrn_bits(r: &domain::Rrn) -> u128 {
    pack16(r.as_bytes())
}

fn external_ref_bits(s: &str) -> u128 {
    let mut h = FoldHasher::new();
    h.write(s.as_bytes());
    (u128::from(h.finish()) << 32) | s.len() as u128
}

const AMOUNT_BITS_MAX: i64 = 1 << 48;

/// Compact keys: the key pass packs terminal (8 bytes) + batch (20 bits) + STAN (20 bits); the
/// fuzzy pass packs terminal + last 4 (14 bits) + amount (48 bits). Exact, so equal keys mean
/// equal fields; only `external_ref` is hashed, and its candidates are compared in full.
struct KeyParts<'r> {
    terminal: Option<&'r domain::TerminalId>,
    batch: Option<domain::BatchNo>,
    stan: Option<domain::Stan>,
    rrn: Option<&'r domain::Rrn>,
    external_ref: Option<&'r str>,
    amount_fen: i64,
    card: Option<crate::MaskedCard>,
}

fn key_of(pass: MatchPass, k: KeyParts<'_>) -> Option<u128> {
    match pass {
        MatchPass::Key => {
            let t = terminal_bits(k.terminal?);
            Some((u128::from(t) << 64) | (u128::from(k.batch?.get()) << 20) | u128::from(k.stan?.get()))
        }
        MatchPass::Rrn => Some(rrn_bits(k.rrn?)),
        MatchPass::ExternalRef => k.external_ref.filter(|s| !s.is_empty()).map(external_ref_bits),
        MatchPass::Fuzzy => {
            let t = terminal_bits(k.terminal?);
            if !(0..AMOUNT_BITS_MAX).contains(&k.amount_fen) {
                return None;
            }
            let card = k.card.map_or(0u128, |c| u128::from(c.last4_number()) + 1);
            Some((u128::from(t) << 64) | (card << 48) | k.amount_fen as u128)
        }
    }
}

fn platform_key(pass: MatchPass, r: &PlatformRecord) -> Option<u128> {
    key_of(
        pass,
        KeyParts {
            terminal: r.terminal.as_ref(),
            batch: r.batch,
            stan: r.stan,
            rrn: r.rrn.as_ref(),
            external_ref: r.external_ref.as_deref(),
            amount_fen: r.amount.fen(),
            card: r.card,
        },
    )
}

fn clearing_key(pass: MatchPass, r: &ClearingRecord) -> Option<u128> {
    key_of(
        pass,
        KeyParts {
            terminal: r.terminal.as_ref(),
            batch: r.batch,
            stan: r.stan,
            rrn: r.rrn.as_ref(),
            external_ref: r.external_ref.as_deref(),
            amount_fen: r.amount.fen(),
            card: r.card,
        },
    )
}

/// Rows of the three dates in (file, line) order; rows sharing both (a caller's mistake) are
/// ordered by content, so the result never depends on the input order.
fn canonical_clearing_order(c: &[ClearingRecord], c_day: &[i8]) -> Vec<u32> {
    // Stores hand the rows over in (file, line) order already: then the order is the rows'
    // own, with no sort and no keyed copy of a million rows.
    let in_order: Vec<u32> = (0..c.len() as u32).filter(|&i| c_day[i as usize] != OUT).collect();
    if in_order.windows(2).all(|w| (c[w[0] as usize].file, c[w[0] as usize].line) < (c[w[1] as usize].file, c[w[1] as usize].line)) {
        return in_order;
    }
    drop(in_order);
    let mut keyed: Vec<(i64, u64, u32)> =
        (0..c.len()).filter(|&i| c_day[i] != OUT).map(|i| (c[i].file.0, c[i].line, i as u32)).collect();
    keyed.sort_unstable();
    let mut start = 0;
    while start < keyed.len() {
        let (file, line, _) = keyed[start];
        let mut end = start + 1;
        while end < keyed.len() && (keyed[end].0, keyed[end].1) == (file, line) {
            end += 1;
        }
        if end - start > 1 {
            keyed[start..end].sort_unstable_by(|a, b| clearing_order(&c[a.2 as usize], &c[b.2 as usize]));
        }
        start = end;
    }
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

fn clearing_order(a: &ClearingRecord, b: &ClearingRecord) -> Ordering {
    a.settlement_date.cmp(&b.settlement_date).then_with(|| clearing_content_order(a, b))
}

/// A total order on a row's contents, so that even rows sharing a (file, line) sort the same
/// way whatever order they came in.
fn clearing_content_order(a: &ClearingRecord, b: &ClearingRecord) -> Ordering {
    (&a.merchant, &a.terminal, a.batch, a.stan, &a.rrn, &a.auth_code, a.kind, a.channel, a.card, a.amount, a.fee)
        .cmp(&(&b.merchant, &b.terminal, b.batch, b.stan, &b.rrn, &b.auth_code, b.kind, b.channel, b.card, b.amount, b.fee))
        .then_with(|| a.currency.as_str().cmp(b.currency.as_str()))
        .then_with(|| (a.txn_time, &a.external_ref).cmp(&(b.txn_time, &b.external_ref)))
}

fn platform_order(a: &PlatformRecord, b: &PlatformRecord) -> Ordering {
    (a.id, a.settlement_date, a.txn_time, &a.merchant, &a.terminal, a.batch, a.stan, a.kind, a.amount).cmp(&(
        b.id,
        b.settlement_date,
        b.txn_time,
        &b.merchant,
        &b.terminal,
        b.batch,
        b.stan,
        b.kind,
        b.amount,
    ))
}

/// Two rows are copies of one another when everything the bank said about the transaction is
/// the same; only the file and line differ.
fn same_content(a: &ClearingRecord, b: &ClearingRecord) -> bool {
    a.settlement_date == b.settlement_date && clearing_content_order(a, b) == Ordering::Equal
}

/// A hash of the row's compact fields; rows that share it are compared in full.
fn content_hash(r: &ClearingRecord) -> u64 {
    let mut h = FoldHasher::new();
    h.write_u64(r.settlement_date.date().to_epoch_days_u64());
    h.write_u128(r.merchant.as_ref().map_or(0, merchant_bits));
    h.write_u64(r.terminal.as_ref().map_or(0, terminal_bits));
    h.write_u64((u64::from(r.batch.map_or(NONE, |b| b.get())) << 32) | u64::from(r.stan.map_or(NONE, |s| s.get())));
    h.write_u128(r.external_ref.as_deref().map_or(0, external_ref_bits));
    h.write_i64(r.amount.fen());
    h.write_u32(((r.kind as u32) << 8) | r.channel as u32);
    h.write_i64(r.txn_time.map_or(i64::MIN, |t| t.timestamp()));
    h.write_u32(r.card.map_or(u32::MAX, |c| u32::from(c.last4_number())));
    h.finish()
}

trait EpochDays {
    fn to_epoch_days_u64(self) -> u64;
}

impl EpochDays for chrono::NaiveDate {
    fn to_epoch_days_u64(self) -> u64 {
        chrono::Datelike::num_days_from_ce(&self) as u64
    }
}

/// For each row, the earlier row (in canonical order) it copies, or `NONE`. Sorting (hash,
/// position) pairs reads memory in order, which beats a million-entry hash map here.
fn mark_duplicates(c: &[ClearingRecord], c_order: &[u32]) -> Vec<u32> {
    let mut dup_of = vec![NONE; c.len()];
    let mut by_hash: Vec<(u64, u32)> =
        c_order.iter().enumerate().map(|(position, &ci)| (content_hash(&c[ci as usize]), position as u32)).collect();
    by_hash.sort_unstable();
    let mut start = 0;
    while start < by_hash.len() {
        let mut end = start + 1;
        while end < by_hash.len() && by_hash[end].0 == by_hash[start].0 {
            end += 1;
        }
        // Within a run of equal hashes, positions ascend: each row is compared with the first
        // copies before it (usually one).
        for i in start + 1..end {
            let ci = c_order[by_hash[i].1 as usize];
            for j in start..i {
                let fi = c_order[by_hash[j].1 as usize];
                if dup_of[fi as usize] == NONE && same_content(&c[fi as usize], &c[ci as usize]) {
                    dup_of[ci as usize] = fi;
                    break;
                }
            }
        }
        start = end;
    }
    dup_of
}

/// Voids (and completion voids) by the record they void, to tell whether a voided purchase's
/// void reached the bank too.
struct VoidIndex {
    heads: FastMap<i64, u32>,
    next: Vec<u32>,
}

impl VoidIndex {
    fn new(p: &[PlatformRecord], meta: &[Meta]) -> VoidIndex {
        let mut heads: FastMap<i64, u32> = FastMap::with_capacity_and_hasher(0, FoldBuild);
        let mut next = Vec::new();
        for (pi, r) in p.iter().enumerate() {
            if meta[pi].day == OUT || !matches!(r.kind, TxnKind::Void | TxnKind::PreauthCompletionVoid) || r.is_reversal {
                continue;
            }
            let Some(original) = r.original_id else { continue };
            if next.is_empty() {
                next = vec![NONE; p.len()];
            }
            let head = heads.entry(original.0).or_insert(NONE);
            next[pi] = *head;
            *head = pi as u32;
        }
        VoidIndex { heads, next }
    }

    /// Whether a void of `original_id` that should settle is paired with a clearing row.
    fn any_settled(&self, original_id: i64, meta: &[Meta]) -> bool {
        let mut vi = self.heads.get(&original_id).copied().unwrap_or(NONE);
        while vi != NONE {
            let v = &meta[vi as usize];
            if v.flags & SETTLES != 0 && v.matched != NONE {
                return true;
            }
            vi = self.next[vi as usize];
        }
        false
    }
}
