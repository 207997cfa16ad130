//! A run's items as compact chunks (`recon_item_chunks`): every item is kept, encoded in a few
//! dozen bytes, in chunks of one (merchant, outcome) group.
//!
//! Why: a run of a million items stored as a million rows with two secondary indexes cost the
//! single writer seconds; the same items as about a thousand blobs cost a few tens of
//! milliseconds. The reads a run needs stay cheap because of how ids are numbered: items are
//! ordered by (merchant, outcome, the engine's order) and numbered 1, 2, … in that order within
//! the run, so each (merchant, outcome) group is one contiguous id range and each chunk says
//! which range it holds. Paging by outcome or by merchant (keyset on the id) reads the heads of
//! the chunks in scope and decodes one or two blobs per page; totals are sums over chunk heads.
//!
//! What a chunk does not hold: the merchant and the outcome (the chunk's own columns) and the
//! fields the platform record holds itself (read back from the append-only record, as before).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::sqlite::txn::IdHasher;

use domain::Channel;
use recon::{MatchPass, Outcome};

use crate::error::StoreError;
use crate::sqlite::varint::{put_i64, put_text, put_u64, Bytes};
use crate::repo_recon::{ReconItemRef, ReconItemRow};

/// Items per chunk at most. A page of a few hundred items decodes two chunks, or three where a
/// group has the short chunk left at the seam of two encoding parts (see `append`).
pub(crate) const ITEMS_PER_CHUNK_MAX: usize = 1024;

/// One chunk ready to store: items `first_id ..= first_id + items - 1` of one group.
pub(crate) struct SealedChunk {
    pub first_id: i64,
    pub merchant_id: Option<String>,
    pub outcome: i64,
    pub items: i64,
    /// Sum over the items of the platform amount, or the clearing amount where there is none.
    pub amount_fen: i64,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Chunk {
    items: i64,
    amount_fen: i64,
    data: Vec<u8>,
}

#[derive(Default)]
struct Group {
    done: Vec<Chunk>,
    open: Chunk,
}

/// Groups items by (merchant, outcome) as they come, encoding each at once (no owned row is
/// kept), then numbers them group by group.
pub(crate) struct ChunkBuilder {
    merchants: HashMap<String, usize, BuildHasherDefault<IdHasher>>,
    /// Groups by `merchant index * OUTCOMES + outcome`; the merchant-less items use index 0.
    groups: Vec<Option<Group>>,
    /// Merchant of each index (index 0: none).
    names: Vec<Option<String>>,
}

const OUTCOMES: usize = Outcome::ALL.len();

impl Default for ChunkBuilder {
    fn default() -> Self {
        ChunkBuilder::new()
    }
}

impl ChunkBuilder {
    pub(crate) fn new() -> ChunkBuilder {
        ChunkBuilder { merchants: HashMap::default(), groups: Vec::new(), names: vec![None] }
    }

    pub(crate) fn push(&mut self, item: &ReconItemRef<'_>) {
        let m = match item.merchant_id {
            None => 0,
            Some(name) => self.merchant_index(name),
        };
        let slot = m * OUTCOMES + outcome_code(item.outcome) as usize;
        if self.groups.len() <= slot {
            self.groups.resize_with((m + 1) * OUTCOMES, || None);
        }
        let group = self.groups[slot].get_or_insert_with(Group::default);
        let chunk = &mut group.open;
        encode_item(&mut chunk.data, item);
        chunk.items += 1;
        chunk.amount_fen = chunk.amount_fen.saturating_add(item.platform_amount_fen.or(item.clearing_amount_fen).unwrap_or(0));
        if chunk.items as usize >= ITEMS_PER_CHUNK_MAX {
            let full = std::mem::take(&mut group.open);
            group.done.push(full);
        }
    }

    /// This builder's items followed by `later`'s, as if one builder had been given them all
    /// (a group's chunks stay in order; the chunk at a seam may hold fewer items).
    pub(crate) fn append(mut self, later: ChunkBuilder) -> ChunkBuilder {
        let ChunkBuilder { groups, names, .. } = later;
        for (slot, group) in groups.into_iter().enumerate() {
            let Some(later_group) = group else { continue };
            let (m, outcome) = (slot / OUTCOMES, slot % OUTCOMES);
            let here = match &names[m] {
                None => 0,
                Some(name) => self.merchant_index(name),
            };
            let slot = here * OUTCOMES + outcome;
            if self.groups.len() <= slot {
                self.groups.resize_with((here + 1) * OUTCOMES, || None);
            }
            let group = self.groups[slot].get_or_insert_with(Group::default);
            if group.open.items > 0 {
                let open = std::mem::take(&mut group.open);
                group.done.push(open);
            }
            group.done.extend(later_group.done);
            group.open = later_group.open;
        }
        self
    }

    fn merchant_index(&mut self, name: &str) -> usize {
        match self.merchants.get(name) {
            Some(&i) => i,
            None => {
                let i = self.names.len();
                self.names.push(Some(name.to_owned()));
                self.merchants.insert(name.to_owned(), i);
                i
            }
        }
    }

    /// The chunks in id order: merchants by id (merchant-less items last), then outcome.
    pub(crate) fn finish(self) -> Vec<SealedChunk> {
        let ChunkBuilder { groups, names, .. } = self;
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| match (&names[a], &names[b]) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let mut groups = groups;
        let mut out = Vec::new();
        let mut next_id = 1i64;
        for m in order {
            for o in 0..OUTCOMES {
                let Some(group) = groups.get_mut(m * OUTCOMES + o).and_then(Option::take) else { continue };
                let Group { mut done, open } = group;
                if open.items > 0 {
                    done.push(open);
                }
                for chunk in done {
                    out.push(SealedChunk {
                        first_id: next_id,
                        merchant_id: names[m].clone(),
                        outcome: o as i64,
                        items: chunk.items,
                        amount_fen: chunk.amount_fen,
                        data: chunk.data,
                    });
                    next_id += chunk.items;
                }
            }
        }
        out
    }
}

/// `outcome` columns: the position in [`Outcome::ALL`].
pub(crate) fn outcome_code(o: Outcome) -> i64 {
    Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0) as i64
}

// Presence bits of an encoded item (first byte, then second byte).
const PASS: u16 = 1;
const SEQ: u16 = 1 << 1;
const PLATFORM_AMOUNT: u16 = 1 << 2;
const CLEARING_AMOUNT: u16 = 1 << 3;
const FEE: u16 = 1 << 4;
const FILE: u16 = 1 << 5;
const LINE: u16 = 1 << 6;
const TIME: u16 = 1 << 7;
const TERMINAL: u16 = 1 << 8;
const BATCH: u16 = 1 << 9;
const STAN: u16 = 1 << 10;
const RRN: u16 = 1 << 11;
const EXTERNAL_REF: u16 = 1 << 12;

/// `[presence: u16 LE][channel | pass << 4]` then, for each field present in bit order, a
/// LEB128 varint (signed fields zigzagged) or a varint length and the text's bytes.
fn encode_item(out: &mut Vec<u8>, i: &ReconItemRef<'_>) {
    let mut presence = 0u16;
    let mut set = |bit: u16, present: bool| {
        if present {
            presence |= bit;
        }
    };
    set(PASS, i.match_pass.is_some());
    set(SEQ, i.platform_seq.is_some());
    set(PLATFORM_AMOUNT, i.platform_amount_fen.is_some());
    set(CLEARING_AMOUNT, i.clearing_amount_fen.is_some());
    set(FEE, i.clearing_fee_fen.is_some());
    set(FILE, i.clearing_file_id.is_some());
    set(LINE, i.clearing_line.is_some());
    set(TIME, i.txn_time.is_some());
    set(TERMINAL, i.terminal_id.is_some());
    set(BATCH, i.batch_no.is_some());
    set(STAN, i.stan.is_some());
    set(RRN, i.rrn.is_some());
    set(EXTERNAL_REF, i.external_ref.is_some());
    out.extend_from_slice(&presence.to_le_bytes());
    let channel = Channel::ALL.iter().position(|c| *c == i.channel).unwrap_or(0) as u8;
    let pass = i.match_pass.map_or(0, |p| MatchPass::ALL.iter().position(|x| *x == p).unwrap_or(0) as u8);
    out.push(channel | (pass << 4));
    if let Some(v) = i.platform_seq {
        put_i64(out, v);
    }
    if let Some(v) = i.platform_amount_fen {
        put_i64(out, v);
    }
    if let Some(v) = i.clearing_amount_fen {
        put_i64(out, v);
    }
    if let Some(v) = i.clearing_fee_fen {
        put_i64(out, v);
    }
    if let Some(v) = i.clearing_file_id {
        put_i64(out, v);
    }
    if let Some(v) = i.clearing_line {
        put_u64(out, v);
    }
    if let Some(t) = i.txn_time {
        put_i64(out, t.timestamp_micros());
    }
    if let Some(t) = i.terminal_id {
        put_text(out, t);
    }
    if let Some(v) = i.batch_no {
        put_u64(out, u64::from(v));
    }
    if let Some(v) = i.stan {
        put_u64(out, u64::from(v));
    }
    if let Some(v) = i.rrn {
        put_text(out, v);
    }
    if let Some(v) = i.external_ref {
        put_text(out, v);
    }
}

/// Reads the items of one chunk back, as stored: the fields the platform record holds itself
/// are still to be filled in by the caller.
pub(crate) struct ChunkReader<'a> {
    data: Bytes<'a>,
    next_id: i64,
    merchant_id: Option<&'a str>,
    outcome: Outcome,
}

fn bad() -> StoreError {
    StoreError::Corrupt { column: "recon_item_chunks.data", value: "malformed item".into() }
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(data: &'a [u8], first_id: i64, merchant_id: Option<&'a str>, outcome: i64) -> Result<ChunkReader<'a>, StoreError> {
        let outcome = usize::try_from(outcome)
            .ok()
            .and_then(|i| Outcome::ALL.get(i).copied())
            .ok_or_else(|| StoreError::Corrupt { column: "recon_item_chunks.outcome", value: outcome.to_string() })?;
        Ok(ChunkReader { data: Bytes::new(data), next_id: first_id, merchant_id, outcome })
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.data.take(1).ok_or_else(bad)?[0])
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        self.data.i64().ok_or_else(bad)
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        self.data.u64().ok_or_else(bad)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.u64()?).map_err(|_| bad())
    }

    fn text(&mut self) -> Result<String, StoreError> {
        Ok(self.data.text().ok_or_else(bad)?.to_owned())
    }

    /// The next item, or `None` at the end of the chunk.
    pub(crate) fn next_item(&mut self) -> Result<Option<ReconItemRow>, StoreError> {
        if self.data.at_end() {
            return Ok(None);
        }
        let presence = u16::from_le_bytes([self.byte()?, self.byte()?]);
        let has = |bit: u16| presence & bit != 0;
        let codes = self.byte()?;
        let channel = *Channel::ALL.get(usize::from(codes & 0x0f)).ok_or_else(bad)?;
        let match_pass =
            if has(PASS) { Some(*MatchPass::ALL.get(usize::from(codes >> 4)).ok_or_else(bad)?) } else { None };
        let platform_seq = if has(SEQ) { Some(self.i64()?) } else { None };
        let platform_amount_fen = if has(PLATFORM_AMOUNT) { Some(self.i64()?) } else { None };
        let clearing_amount_fen = if has(CLEARING_AMOUNT) { Some(self.i64()?) } else { None };
        let clearing_fee_fen = if has(FEE) { Some(self.i64()?) } else { None };
        let clearing_file_id = if has(FILE) { Some(self.i64()?) } else { None };
        let clearing_line = if has(LINE) { Some(self.u64()?) } else { None };
        let txn_time = if has(TIME) { Some(super::from_us(self.i64()?)) } else { None };
        let terminal_id = if has(TERMINAL) { Some(self.text()?) } else { None };
        let batch_no = if has(BATCH) { Some(self.u32()?) } else { None };
        let stan = if has(STAN) { Some(self.u32()?) } else { None };
        let rrn = if has(RRN) { Some(self.text()?) } else { None };
        let external_ref = if has(EXTERNAL_REF) { Some(self.text()?) } else { None };
        let id = self.next_id;
        self.next_id += 1;
        Ok(Some(ReconItemRow {
            id,
            outcome: self.outcome,
            match_pass,
            merchant_id: self.merchant_id.map(str::to_owned),
            terminal_id,
            batch_no,
            stan,
            rrn,
            external_ref,
            channel,
            txn_time,
            platform_seq,
            platform_id: None,
            platform_amount_fen,
            clearing_amount_fen,
            clearing_fee_fen,
            clearing_file_id,
            clearing_file_name: None,
            clearing_line,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(merchant: Option<&str>, outcome: Outcome, n: i64) -> ReconItemRow {
        ReconItemRow {
            id: 0,
            outcome,
            match_pass: (n % 3 == 0).then_some(MatchPass::Fuzzy),
            merchant_id: merchant.map(str::to_owned),
            terminal_id: (n % 2 == 0).then(|| format!("T{n:07}")),
            batch_no: Some(n as u32 % 1000),
            stan: (n % 5 != 0).then_some(n as u32 % 999_999),
            rrn: (n % 7 == 0).then(|| format!("{n:012}")),
            external_ref: (n % 11 == 0).then(|| format!("wx,\"{n}\"")),
            channel: Channel::ALL[n as usize % Channel::ALL.len()],
            txn_time: (n % 4 == 0).then(|| super::super::from_us(1_764_000_000_000_000 + n)),
            platform_seq: (n % 3 != 1).then_some(n * 1_000_003),
            platform_id: None,
            platform_amount_fen: (n % 3 != 1).then_some(n * 37 - 500),
            clearing_amount_fen: (n % 3 != 2).then_some(n * 41),
            clearing_fee_fen: (n % 3 != 2).then_some(-n),
            clearing_file_id: (n % 3 != 2).then_some(n % 4 + 1),
            clearing_file_name: None,
            clearing_line: (n % 3 != 2).then_some(n as u64 + 2),
        }
    }

    /// Every field comes back as it went in; ids run through the groups in (merchant,
    /// outcome) order, merchant-less items last, in arrival order within a group.
    #[test]
    fn items_round_trip_through_chunks_in_group_order() {
        let mut b = ChunkBuilder::new();
        let mut given = Vec::new();
        for n in 0..(ITEMS_PER_CHUNK_MAX as i64 * 2 + 10) {
            let merchant = [Some("M2"), Some("M1"), None][n as usize % 3];
            let outcome = [Outcome::Matched, Outcome::MissingInClearing][(n / 3) as usize % 2];
            let i = item(merchant, outcome, n);
            b.push(&i.as_ref());
            given.push(i);
        }
        let chunks = b.finish();
        let mut expected = given.clone();
        expected.sort_by_key(|i| (i.merchant_id.is_none(), i.merchant_id.clone(), outcome_code(i.outcome)));
        let mut got = Vec::new();
        for c in &chunks {
            assert!(c.items as usize <= ITEMS_PER_CHUNK_MAX);
            let mut r = ChunkReader::new(&c.data, c.first_id, c.merchant_id.as_deref(), c.outcome).unwrap();
            let mut amount = 0;
            while let Some(i) = r.next_item().unwrap() {
                amount += i.platform_amount_fen.or(i.clearing_amount_fen).unwrap_or(0);
                got.push(i);
            }
            assert_eq!(amount, c.amount_fen);
        }
        assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), (1..=given.len() as i64).collect::<Vec<_>>());
        for (g, e) in got.iter_mut().zip(&expected) {
            g.id = 0;
            assert_eq!(g, e);
        }
        assert_eq!(got.len(), expected.len());
    }

    fn decoded(chunks: &[SealedChunk]) -> Vec<(ReconItemRow, Option<String>, i64)> {
        let mut got = Vec::new();
        for c in chunks {
            let mut r = ChunkReader::new(&c.data, c.first_id, c.merchant_id.as_deref(), c.outcome).unwrap();
            while let Some(i) = r.next_item().unwrap() {
                got.push((i, c.merchant_id.clone(), c.outcome));
            }
        }
        got
    }

    /// Items encoded in parts, each by a builder of its own, then appended, number and decode
    /// exactly as the same items given to one builder: wherever the seams fall, whichever
    /// groups a part lacks or has alone.
    #[test]
    fn builders_appended_give_the_items_of_one_builder() {
        let merchants = [Some("M3"), Some("M1"), None, Some("M2")];
        let items: Vec<ReconItemRow> = (0..(ITEMS_PER_CHUNK_MAX as i64 * 3 + 77))
            .map(|n| {
                // M2 appears only late, M3 only early: parts hold different groups.
                let m = if n < 1500 { merchants[n as usize % 3] } else { merchants[1 + n as usize % 3] };
                item(m, [Outcome::Matched, Outcome::AmountMismatch, Outcome::MissingInPlatform][(n / 5) as usize % 3], n)
            })
            .collect();
        let mut one = ChunkBuilder::new();
        for i in &items {
            one.push(&i.as_ref());
        }
        let expected = decoded(&one.finish());
        for seams in [vec![1], vec![1024], vec![1500], vec![700, 2000, 2001], vec![items.len() - 1]] {
            let mut builders = Vec::new();
            let mut from = 0;
            for to in seams.iter().copied().chain([items.len()]) {
                let mut b = ChunkBuilder::new();
                for i in &items[from..to] {
                    b.push(&i.as_ref());
                }
                builders.push(b);
                from = to;
            }
            let chunks = builders.into_iter().reduce(ChunkBuilder::append).unwrap().finish();
            assert!(chunks.iter().all(|c| c.items as usize <= ITEMS_PER_CHUNK_MAX && c.items > 0));
            for w in chunks.windows(2) {
                assert_eq!(w[0].first_id + w[0].items, w[1].first_id, "ids run on from chunk to chunk");
            }
            assert_eq!(decoded(&chunks), expected, "seams at {seams:?}");
        }
    }

    #[test]
    fn a_truncated_chunk_is_an_error_not_a_panic() {
        let mut b = ChunkBuilder::new();
        b.push(&item(Some("M1"), Outcome::Matched, 14).as_ref());
        let c = b.finish().remove(0);
        for cut in 0..c.data.len() {
            let mut r = ChunkReader::new(&c.data[..cut], 1, None, 0).unwrap();
            let mut n = 0;
            loop {
                match r.next_item() {
                    Ok(Some(_)) => n += 1,
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            assert!(n == 0, "a cut item must not decode (cut at {cut})");
        }
    }
}
