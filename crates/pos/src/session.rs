//! The front end's own durable state, kept in the data directory until the store has tables
//! for it:
//! - `pos-sessions.json` (mode 0600): per terminal, whether it is signed on and its current
//!   working keys as sent in field 62, i.e. encrypted under the terminal master key. The clear
//!   keys exist only in memory.
//! - `pos-rrn.block`: the next block of RRNs this instance may use, so RRNs stay unique across
//!   restarts (a block is reserved durably before any of its numbers is handed out).
//! - `pos-discrepancies.jsonl`: where former versions appended batch-upload and reversal
//!   discrepancies. They are kept in the store now (`store::PosRepo`); the host imports a file
//!   left behind once at start and renames it to `pos-discrepancies.jsonl.imported`.
//!
//! Every write is write-temp, fsync, rename (or append + fsync): a crash leaves the old or the
//! new state, never a torn one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::PosError;

pub const SESSIONS_FILE: &str = "pos-sessions.json";
pub const RRN_BLOCK_FILE: &str = "pos-rrn.block";
pub const DISCREPANCIES_FILE: &str = "pos-discrepancies.jsonl";

/// RRNs per reserved block: instance (2 digits) + block (5) + sequence (5) = 12 digits.
const RRN_BLOCK_SIZE: u64 = 100_000;
const RRN_BLOCKS: u64 = 100_000;

/// One terminal's sign-on state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSession {
    pub signed_on: bool,
    /// Field 62 of the last sign-on reply, hex: keys encrypted under the TMK with check values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_keys_hex: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SessionsFile {
    /// Keyed by `merchant_id/terminal_id`.
    terminals: BTreeMap<String, TerminalSession>,
}

/// Sign-on state of every terminal, in memory and in `pos-sessions.json`.
#[derive(Debug)]
pub struct Sessions {
    path: PathBuf,
    state: Mutex<SessionsFile>,
}

fn session_key(merchant_id: &str, terminal_id: &str) -> String {
    format!("{merchant_id}/{terminal_id}")
}

impl Sessions {
    pub fn open(data_dir: &Path) -> Result<Sessions, PosError> {
        std::fs::create_dir_all(data_dir).map_err(|e| PosError::io(data_dir, e))?;
        let path = data_dir.join(SESSIONS_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| PosError::StateFile { path: path.display().to_string(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SessionsFile::default(),
            Err(e) => return Err(PosError::io(&path, e)),
        };
        Ok(Sessions { path, state: Mutex::new(state) })
    }

    pub fn get(&self, merchant_id: &str, terminal_id: &str) -> TerminalSession {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.terminals.get(&session_key(merchant_id, terminal_id)).cloned().unwrap_or_default()
    }

    /// Replaces one terminal's session and writes the file durably before returning.
    /// Blocking: call from a blocking context.
    pub fn put(&self, merchant_id: &str, terminal_id: &str, session: TerminalSession) -> Result<(), PosError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = session_key(merchant_id, terminal_id);
        let before = s.terminals.insert(key.clone(), session);
        let bytes = serde_json::to_vec(&*s).map_err(|e| PosError::StateFile {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        if let Err(e) = write_atomically(&self.path, &bytes) {
            match before {
                Some(b) => s.terminals.insert(key, b),
                None => s.terminals.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }
}

fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PosError> {
    let tmp = path.with_extension("tmp");
    let mut f = open_private(&tmp, false).map_err(|e| PosError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| PosError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PosError::io(path, e))?;
    if let Some(dir) = path.parent() {
        // The rename is durable only once the directory is.
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| PosError::io(dir, e))?;
    }
    Ok(())
}

/// Hands out 12-digit RRNs: `instance (2) | block (5) | sequence (5)`. A block is reserved in
/// `pos-rrn.block` before use, so a restart never repeats a number.
#[derive(Debug)]
pub struct RrnAllocator {
    path: PathBuf,
    instance_id: u8,
    state: Mutex<(u64, u64)>,
}

impl RrnAllocator {
    pub fn open(data_dir: &Path, instance_id: u8) -> Result<RrnAllocator, PosError> {
        let path = data_dir.join(RRN_BLOCK_FILE);
        let a = RrnAllocator { path, instance_id: instance_id % 100, state: Mutex::new((0, RRN_BLOCK_SIZE)) };
        let mut s = a.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = (a.reserve_block()?, 0);
        drop(s);
        Ok(a)
    }

    fn reserve_block(&self) -> Result<u64, PosError> {
        let next = match std::fs::read_to_string(&self.path) {
            Ok(t) => t.trim().parse::<u64>().map_err(|e| PosError::StateFile {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(PosError::io(&self.path, e)),
        };
        write_atomically(&self.path, format!("{}\n", next + 1).as_bytes())?;
        Ok(next % RRN_BLOCKS)
    }

    /// The next RRN. Reserving a new block writes a file (once per 100,000 numbers).
    pub fn next(&self) -> Result<String, PosError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.1 >= RRN_BLOCK_SIZE {
            *s = (self.reserve_block()?, 0);
        }
        let (block, seq) = *s;
        s.1 += 1;
        Ok(format!("{:02}{block:05}{seq:05}", self.instance_id))
    }
}

/// The JSON Lines file of discrepancies former versions wrote (read once, to import it).
#[derive(Debug)]
pub struct DiscrepancyFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl DiscrepancyFile {
    pub fn new(data_dir: &Path) -> DiscrepancyFile {
        DiscrepancyFile { path: data_dir.join(DISCREPANCIES_FILE), lock: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends lines and fsyncs. Blocking.
    pub fn append(&self, lines: &[serde_json::Value]) -> Result<(), PosError> {
        if lines.is_empty() {
            return Ok(());
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.to_string().as_bytes());
            buf.push(b'\n');
        }
        let mut f = open_private(&self.path, true).map_err(|e| PosError::io(&self.path, e))?;
        f.write_all(&buf).and_then(|_| f.sync_data()).map_err(|e| PosError::io(&self.path, e))
    }

    /// Every discrepancy recorded so far (for tests and tools).
    pub fn read_all(&self) -> Result<Vec<serde_json::Value>, PosError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(PosError::io(&self.path, e)),
        }
    }
}
