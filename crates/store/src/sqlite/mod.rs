//! The SQLite implementation: connection setup, the single writer thread with group commit,
//! and the reader pool. Repository methods live in `txn.rs` and `admin.rs`.

mod admin;
mod chain;
mod clearing;
mod findability;
mod idempotency;
pub(crate) mod ids;
mod migrations;
mod pos;
mod recon;
mod record_chunks;
mod txn;
mod varint;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// The database file inside the data directory.
pub const DB_FILE: &str = "poslens.db";

/// Limits and tuning. Every number has a unit or a count in its name.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Reader connections kept (callers wait when all are busy).
    pub readers_max: usize,
    /// Write requests that may wait for the writer before callers block.
    pub write_queue_depth: usize,
    /// Write requests committed together at most.
    pub group_commit_max: usize,
    pub busy_timeout_ms: u64,
    /// SQLite page cache per connection.
    pub cache_kib: u32,
    /// Writer page cache (bulk imports touch many index pages).
    pub writer_cache_kib: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            readers_max: 4,
            write_queue_depth: 1024,
            group_commit_max: 256,
            busy_timeout_ms: 5_000,
            cache_kib: 16 * 1024,
            writer_cache_kib: 512 * 1024,
        }
    }
}

/// The writer's state between jobs: its connection and the head of the hash chain.
pub(crate) struct WriterCtx {
    pub(crate) conn: Connection,
    pub(crate) head: chain::ChainHead,
}

/// What a job tells the writer: whether to keep its changes, and how to answer the caller once
/// the group's commit is done (the argument is the commit's outcome).
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type AnyJob = Box<dyn FnOnce(&mut WriterCtx) -> (bool, Reply) + Send>;
type IngestDone = Box<dyn FnOnce(Result<Vec<crate::IngestResult>, crate::IngestError>) + Send>;

/// Work for the writer.
enum Job {
    /// Any write, run under a savepoint of its own so that its failure undoes only itself.
    Any(AnyJob),
    /// A transaction ingest. A group's ingests first run back to back without savepoints
    /// (a savepoint copies every page it touches into the sub-journal, which was most of the
    /// cost of a one-record ingest); if any of them fails, the group's transaction is rolled
    /// back and each runs again under its own savepoint (see `run_group`).
    Ingest { batch: Vec<crate::NewTxn>, opts: crate::IngestOptions, done: IngestDone },
}

/// How a job's caller hears of it: `r` once the commit is known. A job that succeeded is
/// reported failed when its group's commit failed.
fn reply_for<T: Send + 'static, E: From<StoreError> + Send + 'static>(
    r: Result<T, E>,
    done: impl FnOnce(Result<T, E>) + Send + 'static,
) -> Reply {
    Box::new(move |commit: Result<(), String>| {
        let out = match commit {
            Err(msg) if r.is_ok() => Err(E::from(StoreError::Invalid { what: "commit", reason: msg })),
            _ => r,
        };
        done(out);
    })
}

struct Inner {
    path: PathBuf,
    cfg: StoreConfig,
    jobs: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// Bumped after every committed change to a merchant or terminal that a cached copy
    /// would get wrong (status, binding, open batch, keys); see [`SqliteStore::config_generation`].
    generation: AtomicU64,
    readers: Mutex<Vec<Connection>>,
    readers_open: Mutex<usize>,
    reader_freed: Condvar,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after it drains what is queued.
        if let Ok(mut j) = self.jobs.lock() {
            j.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(h) = w.take() {
                let _ = h.join();
            }
        }
        // The writer held the syncer's and the checkpointer's only senders: they end (the
        // syncer after answering what it was given) once the writer has.
        if let Ok(mut s) = self.syncer.lock() {
            if let Some(h) = s.take() {
                let _ = h.join();
            }
        }
        if let Ok(mut c) = self.checkpointer.lock() {
            if let Some(h) = c.take() {
                let _ = h.join();
            }
        }
    }
}

/// The SQLite store. Cheap to clone; all clones share one writer and one reader pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.inner.path.display())
    }
}

pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn configure(conn: &Connection, cfg: &StoreConfig, cache_kib: u32) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache_kib};"
    ))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/poslens.db`, migrates it and starts the writer.
    pub fn open(data_dir: &Path, cfg: StoreConfig) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        // Page size only takes effect before the first table exists.
        conn.execute_batch("PRAGMA page_size = 8192;")?;
        configure(&conn, &cfg, cfg.writer_cache_kib)?;
        // Checkpoints are the checkpointer thread's (and the writer's own between groups, see
        // `writer_loop`), so a commit's callers never wait for WAL frames to be copied.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        migrations::migrate(&mut conn, now_us())?;
        // Commits write their WAL frames without waiting for the disk; the syncer thread
        // fsyncs the WAL and only then answers the callers of every group committed before
        // that fsync (see `syncer_loop`). So no caller hears "done" before its commit is on
        // disk, as with synchronous = FULL, while the writer goes on with the next group
        // during the fsync instead of idling through it.
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let head = chain::load_head(&conn)?;
        let mut ctx = WriterCtx { conn, head };

        let wal_path = wal_path(&path);
        let (sync_tx, sync_rx) = sync_channel::<Vec<Reply>>(cfg.write_queue_depth.max(1));
        let syncer = std::thread::Builder::new()
            .name("store-syncer".into())
            .spawn(move || syncer_loop(&wal_path, sync_rx))
            .map_err(|e| StoreError::io(&path, e))?;

        // Checkpoints run on a connection of their own, so the writer never stops committing
        // while WAL frames are copied into the database file.
        let ckpt_conn = Connection::open(&path)?;
        configure(&ckpt_conn, &cfg, 1024)?;
        let (ckpt_tx, ckpt_rx) = sync_channel::<()>(1);
        let checkpointer = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while ckpt_rx.recv().is_ok() {
                    let _ = ckpt_conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::io(&path, e))?;

        let (tx, rx) = sync_channel::<Job>(cfg.write_queue_depth.max(1));
        let group_max = cfg.group_commit_max.max(1);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&mut ctx, rx, group_max, ckpt_tx, sync_tx))
            .map_err(|e| StoreError::io(&path, e))?;

        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                cfg,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                checkpointer: Mutex::new(Some(checkpointer)),
                syncer: Mutex::new(Some(syncer)),
                generation: AtomicU64::new(0),
                readers: Mutex::new(Vec::new()),
                readers_open: Mutex::new(0),
                reader_freed: Condvar::new(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A number that changes after every committed change to a merchant or terminal that
    /// decides how a request is answered (status, binding, open batch, keys), made through this
    /// store. A cache of merchant and terminal rows taken when the number was `g` is current
    /// while the number is still `g`. Changes made by another process are not seen here.
    pub fn config_generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub(crate) fn bump_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Schema version in force.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(migrations::current_version)
    }

    /// Highest sealed sequence number (the `as_of` a first page would pin).
    /// Gathers up to `chunks_max` whole runs of records stored one at a time (by terminals,
    /// the API, or before schema 10) into record chunks, which reconciliation reads several
    /// times faster than the table. One short writer job; returns how many chunks it wrote.
    /// A server calls it now and then (`poslens serve` does, every minute).
    pub fn seal_record_chunks(&self, chunks_max: usize) -> Result<usize, StoreError> {
        self.write(move |ctx: &mut WriterCtx| record_chunks::seal(&ctx.conn, ctx.head.seq, chunks_max))
    }

    pub fn head_seq(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT seq FROM chain_head WHERE id = 1", [], |r| r.get(0))?))
    }

    /// A consistent copy of the database into `dest_file` (which must not exist), for backups.
    pub fn backup_to(&self, dest_file: &Path) -> Result<(), StoreError> {
        let dest = dest_file.to_string_lossy().into_owned();
        // Pooled readers are read-only, and VACUUM INTO writes (the new file): a connection
        // of its own, which reads one consistent snapshot while the writer goes on.
        let c = Connection::open(&self.inner.path)?;
        c.busy_timeout(std::time::Duration::from_millis(
            self.inner.cfg.busy_timeout_ms,
        ))?;
        c.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    /// Runs `f` on the writer inside the current group's transaction. The result is returned
    /// only after the group has committed (durably); a failed `f` leaves no trace.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&mut WriterCtx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let rx = self.submit(f)?;
        rx.recv().map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// Queues `f` for the writer and returns where its (post-commit) result will arrive, so the
    /// caller can keep feeding it (bulk import) before waiting.
    pub(crate) fn submit<T, E>(
        &self,
        f: impl FnOnce(&mut WriterCtx) -> Result<T, E> + Send + 'static,
    ) -> Result<Receiver<Result<T, E>>, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Result<T, E>>(1);
        self.submit_then(f, move |r| {
            let _ = tx.send(r);
        })?;
        Ok(rx)
    }

    /// Queues `f` for the writer; `done` is called on the writer thread with `f`'s result once
    /// the group has committed (so it must be quick: hand the result on, do not work). No
    /// thread waits meanwhile, which is what an async caller wants. If the writer is gone,
    /// `done` is not called and the error is returned here.
    pub(crate) fn submit_then<T, E>(
        &self,
        f: impl FnOnce(&mut WriterCtx) -> Result<T, E> + Send + 'static,
        done: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let job = Job::Any(Box::new(move |ctx: &mut WriterCtx| {
            let r = f(ctx);
            let ok = r.is_ok();
            (ok, reply_for(r, done))
        }));
        Ok(self.send_job(job)?)
    }

    fn send_job(&self, job: Job) -> Result<(), StoreError> {
        let sender = self.inner.jobs.lock().map_err(|_| StoreError::WriterGone)?.clone().ok_or(StoreError::WriterGone)?;
        sender.send(job).map_err(|_| StoreError::WriterGone)
    }

    /// [`crate::TxnRepo::ingest`] for async callers: `done` gets the result on the writer
    /// thread once the batch is durably committed (or refused), and no thread waits meanwhile.
    /// An error here means the writer is gone and `done` will not be called.
    pub fn ingest_then(
        &self,
        batch: Vec<crate::NewTxn>,
        opts: crate::IngestOptions,
        done: impl FnOnce(Result<Vec<crate::IngestResult>, crate::IngestError>) + Send + 'static,
    ) -> Result<(), crate::IngestError> {
        if let Some(early) = txn::ingest_precheck(&batch) {
            done(early);
            return Ok(());
        }
        Ok(self.send_job(Job::Ingest { batch, opts, done: Box::new(done) })?)
    }

    /// Runs `f` on a pooled reader connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.take_reader()?;
        let r = catch_unwind(AssertUnwindSafe(|| f(&conn)));
        // A reader left inside a transaction by an error is reset before reuse.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.give_reader(conn);
        match r {
            Ok(r) => r,
            Err(_) => Err(StoreError::Invalid {
                what: "read",
                reason: "internal error while reading".into(),
            }),
        }
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        let inner = &self.inner;
        let mut pool = inner.readers.lock().map_err(|_| StoreError::WriterGone)?;
        loop {
            if let Some(c) = pool.pop() {
                return Ok(c);
            }
            {
                let mut open = inner
                    .readers_open
                    .lock()
                    .map_err(|_| StoreError::WriterGone)?;
                if *open < inner.cfg.readers_max.max(1) {
                    *open += 1;
                    drop(open);
                    drop(pool);
                    return self.open_reader().inspect_err(|_| {
                        if let Ok(mut open) = inner.readers_open.lock() {
                            *open -= 1;
                        }
                    });
                }
            }
            pool = inner
                .reader_freed
                .wait(pool)
                .map_err(|_| StoreError::WriterGone)?;
        }
    }

    fn give_reader(&self, conn: Connection) {
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.push(conn);
            self.inner.reader_freed.notify_one();
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&conn, &self.inner.cfg, self.inner.cfg.cache_kib)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }
}

/// Commits between requests to the checkpointer at most (small groups write a few pages each).
const CHECKPOINT_EVERY_COMMITS: u32 = 256;
/// A group running at least this long (a bulk import) is checkpointed by the writer right after
/// it.
const CHECKPOINT_AFTER_GROUP_MS: u128 = 250;
/// Commits between the writer's own checkpoints. The checkpointer's run alongside the writer,
/// so under steady load they may never find the WAL wholly copied, and SQLite only starts the
/// WAL file over after a complete checkpoint; the writer's own, between two groups, completes
/// (the checkpointer has already copied nearly everything) and so bounds the WAL file.
const WRITER_CHECKPOINT_EVERY_COMMITS: u32 = 4096;

fn writer_loop(
    ctx: &mut WriterCtx,
    rx: Receiver<Job>,
    group_max: usize,
    checkpointer: SyncSender<()>,
    syncer: SyncSender<Vec<Reply>>,
) {
    let mut commits_since_checkpoint = 0u32;
    let mut commits_since_own_checkpoint = 0u32;
    while let Ok(first) = rx.recv() {
        let started = std::time::Instant::now();
        let mut group = vec![first];
        while group.len() < group_max {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        run_group(ctx, group, &syncer);
        // Durability came from the WAL fsync in the commit; copying frames back into the
        // database file is the checkpointer's, on its own thread, after every caller has had
        // its answer. PASSIVE never waits for readers; what it cannot copy now is copied next
        // time. A request while one is pending is dropped (`try_send`): one pass copies all.
        commits_since_checkpoint += 1;
        commits_since_own_checkpoint += 1;
        // A long group (a bulk import) wrote hundreds of megabytes of WAL: the writer copies
        // them itself before taking the next group, as the checkpointer running alongside the
        // next import would never find the WAL wholly copied and the file would keep growing.
        let long_group = started.elapsed().as_millis() >= CHECKPOINT_AFTER_GROUP_MS;
        if long_group || commits_since_own_checkpoint >= WRITER_CHECKPOINT_EVERY_COMMITS {
            let done = ctx
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
            // 1 = busy (the checkpointer is at it): try again after the next group.
            if matches!(done, Ok(0)) {
                commits_since_own_checkpoint = 0;
            }
        } else if commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS {
            let _ = checkpointer.try_send(());
            commits_since_checkpoint = 0;
        }
    }
    // The store is closing: leave no WAL behind. A bulk import leaves hundreds of megabytes of
    // it, and the next process to open the store would read all of it back first.
    // Without waiting: if another process is reading or writing the file, the WAL stays.
    let _ = ctx.conn.busy_timeout(std::time::Duration::ZERO);
    let _ = ctx.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn run_group(ctx: &mut WriterCtx, group: Vec<Job>, syncer: &SyncSender<Vec<Reply>>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
    if ctx.conn.execute_batch("BEGIN IMMEDIATE").is_err() {
        // Nothing ran; dropping the jobs drops their reply senders, so each caller gets
        // `WriterGone` rather than waiting forever.
        drop(group);
        return;
    }
    let mut any_kept = false;
    let mut others: Vec<AnyJob> = Vec::with_capacity(group.len());
    let mut ingests = Vec::new();
    for job in group {
        match job {
            Job::Any(j) => others.push(j),
            Job::Ingest { batch, opts, done } => ingests.push((batch, opts, done)),
        }
    }
    // Ingests first, back to back, without savepoints. The jobs of one group are concurrent
    // requests: no order among them is promised to anyone.
    if !ingests.is_empty() {
        let head_before = ctx.head.clone();
        let fast = catch_unwind(AssertUnwindSafe(|| {
            let mut results = Vec::with_capacity(ingests.len());
            for (batch, opts, _) in &ingests {
                match txn::ingest_in(ctx, batch, *opts) {
                    Ok(r) => results.push(r),
                    Err(_) => return None,
                }
            }
            Some(results)
        }));
        match fast {
            Ok(Some(results)) => {
                any_kept = true;
                for ((_, _, done), r) in ingests.into_iter().zip(results) {
                    replies.push(reply_for(Ok(r), done));
                }
            }
            _ => {
                // One of them failed: undo them all, then run each under its own savepoint.
                ctx.head = head_before;
                if ctx.conn.execute_batch("ROLLBACK; BEGIN IMMEDIATE").is_err() {
                    // Dropped jobs drop their callbacks: callers see `WriterGone`.
                    drop(ingests);
                    drop(others);
                    let _ = ctx.conn.execute_batch("ROLLBACK");
                    if let Ok(h) = chain::load_head(&ctx.conn) {
                        ctx.head = h;
                    }
                    return;
                }
                let mut retried: Vec<AnyJob> = Vec::with_capacity(ingests.len() + others.len());
                for (batch, opts, done) in ingests {
                    retried.push(Box::new(move |ctx: &mut WriterCtx| {
                        let r = txn::ingest_in(ctx, &batch, opts);
                        (r.is_ok(), reply_for(r, done))
                    }));
                }
                retried.append(&mut others);
                others = retried;
            }
        }
    }
    for job in others {
        let head_before = ctx.head.clone();
        if savepoint(&ctx.conn, "SAVEPOINT job").is_err() {
            drop(job);
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| job(ctx))) {
            Ok((true, reply)) => {
                let _ = savepoint(&ctx.conn, "RELEASE job");
                any_kept = true;
                replies.push(reply);
            }
            Ok((false, reply)) => {
                let _ = ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                ctx.head = head_before;
                replies.push(reply);
            }
            Err(_) => {
                // The job panicked: its reply sender is gone, so its caller sees WriterGone.
                let _ = ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                ctx.head = head_before;
            }
        }
    }
    let commit = if any_kept {
        chain::store_head(&ctx.conn, &ctx.head)
            .and_then(|_| ctx.conn.execute_batch("COMMIT").map_err(StoreError::from))
    } else {
        ctx.conn.execute_batch("COMMIT").map_err(StoreError::from)
    };
    let outcome = match commit {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = ctx.conn.execute_batch("ROLLBACK");
            if let Ok(h) = chain::load_head(&ctx.conn) {
                ctx.head = h;
            }
            Err(e.to_string())
        }
    };
    match outcome {
        // Every caller of a committed group waits for the WAL fsync, even one whose job
        // changed nothing: its answer may rest on an earlier group's rows (a duplicate).
        Ok(()) => {
            if let Err(unsent) = syncer.send(replies) {
                for reply in unsent.0 {
                    reply(Err("the store is closing".into()));
                }
            }
        }
        Err(e) => {
            for reply in replies {
                reply(Err(e.clone()));
            }
        }
    }
}

pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes committed groups durable, then answers their callers: takes every group queued so
/// far, fsyncs the WAL file once (so one fsync covers all of them, and groups the writer
/// commits meanwhile wait for the next), and replies. A failed fsync is reported to each of
/// those callers as a failed commit.
fn syncer_loop(wal: &Path, rx: Receiver<Vec<Reply>>) {
    let mut file: Option<std::fs::File> = None;
    while let Ok(mut replies) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            replies.extend(more);
        }
        let synced = match &file {
            Some(f) => f.sync_data(),
            None => std::fs::OpenOptions::new().write(true).open(wal).and_then(|f| {
                f.sync_data()?;
                file = Some(f);
                Ok(())
            }),
        };
        let outcome = synced.map_err(|e| format!("the commit could not be made durable: fsync {}: {e}", wal.display()));
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

/// Runs a savepoint statement through the statement cache (one per job: parsing it each time
/// showed in the writer's profile under many small jobs).
fn savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IngestOptions, MerchantRepo, NewMerchant, NewTerminal, NewTxn, TerminalRepo, TxnRepo};
    use domain::{Amount, BatchNo, Channel, Currency, MerchantId, ResponseCode, Source, Stan, TerminalId, TxnKind};

    fn purchase(merchant: &str, stan: u32) -> NewTxn {
        NewTxn {
            merchant_id: MerchantId::parse(merchant).unwrap(),
            terminal_id: Some(TerminalId::parse("10000001").unwrap()),
            batch_no: Some(BatchNo::new(1).unwrap()),
            stan: Some(Stan::new(stan).unwrap()),
            rrn: None,
            auth_code: None,
            kind: TxnKind::Purchase,
            channel: Channel::Card,
            card: None,
            amount: Amount::from_fen(100 + i64::from(stan)).unwrap(),
            currency: Currency::CNY,
            response_code: ResponseCode::APPROVED,
            txn_time: Utc::now(),
            original: None,
            reversal: false,
            source: Source::Api,
            external_ref: None,
        }
    }

    /// Ingests queued together run in one group without savepoints; when one of them fails,
    /// the others must still be stored, each exactly once, and the chain must verify.
    #[test]
    fn a_failing_ingest_does_not_undo_the_others_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { writer_cache_kib: 4 * 1024, cache_kib: 1024, ..StoreConfig::default() };
        let store = SqliteStore::open(dir.path(), cfg).unwrap();
        let m = MerchantId::parse("898310048990001").unwrap();
        store.create_merchant(&NewMerchant::with_defaults(m.clone()), "test").unwrap();
        let t = NewTerminal { id: TerminalId::parse("10000001").unwrap(), merchant_id: m, master_key_hex: None };
        store.create_terminal(&t).unwrap();

        // Hold the writer so that everything queued next lands in one group.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        store
            .submit_then(
                move |_ctx: &mut WriterCtx| -> Result<(), StoreError> {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                },
                move |_| held_tx.send(()).unwrap(),
            )
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for stan in 1..=10u32 {
            // Stan 4 names a merchant that does not exist: refused.
            let merchant = if stan == 4 { "898310048990009" } else { "898310048990001" };
            let tx = tx.clone();
            store
                .ingest_then(vec![purchase(merchant, stan)], IngestOptions::default(), move |r| {
                    tx.send((stan, r.map(|ids| ids.len()))).unwrap();
                })
                .unwrap();
        }
        held_rx.recv().unwrap();
        let mut answers: Vec<_> = (0..10).map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("every caller is answered")).collect();
        answers.sort_by_key(|a| a.0);
        for (stan, r) in &answers {
            if *stan == 4 {
                assert!(r.is_err(), "stan 4 must be refused");
            } else {
                assert_eq!(r.as_ref().ok(), Some(&1), "stan {stan} must be stored");
            }
        }
        let report = store.verify().unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.records_checked, 9);
    }
}
