use std::fmt;

use crate::validate::FieldError;

/// Operating errors of the store. None of them carries a clear PAN or a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the database schema is version {found}, newer than this program knows ({known}); upgrade poslens")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store's writer has stopped; reopen the store")]
    WriterGone,
    #[error("{what} {key} already exists")]
    AlreadyExists { what: &'static str, key: String },
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A stored value could not be read back (a tampered or corrupt row).
    #[error("stored {column} is not valid: {value:?}")]
    Corrupt { column: &'static str, value: String },
    #[error("card key: {0}")]
    CardKey(String),
}

impl StoreError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> StoreError {
        StoreError::Io { path: path.display().to_string(), source }
    }
}

/// Why one item of an ingest batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemReason {
    /// The object's shape was wrong.
    Invalid(Vec<FieldError>),
    /// A different object is already stored under the same idempotency key.
    Conflict { key: String, existing_id: Option<crate::TxnId> },
    UnknownMerchant(String),
    UnknownTerminal { merchant_id: String, terminal_id: String },
    /// The original named by the object was not found.
    OriginalNotFound(String),
    /// Too many items in one call.
    TooMany { max: usize },
}

impl fmt::Display for ItemReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemReason::Invalid(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            ItemReason::Conflict { key, existing_id } => {
                write!(f, "a different transaction is already stored under key {key}")?;
                if let Some(id) = existing_id {
                    write!(f, " (id {id})")?;
                }
                Ok(())
            }
            ItemReason::UnknownMerchant(m) => write!(f, "merchant {m} is not registered"),
            ItemReason::UnknownTerminal { merchant_id, terminal_id } => {
                write!(f, "terminal {terminal_id} is not registered for merchant {merchant_id}")
            }
            ItemReason::OriginalNotFound(what) => write!(f, "original transaction not found: {what}"),
            ItemReason::TooMany { max } => write!(f, "at most {max} items per call"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// 0-based position in the batch.
    pub index: usize,
    pub reason: ItemReason,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.reason)
    }
}

/// Ingest stores nothing when any item is bad; `Items` lists every bad one.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{} item(s) refused, nothing stored; first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    Items(Vec<ItemError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line_no: u64,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line_no, self.reason)
    }
}

/// A bulk import stores nothing when any line is bad; `Lines` lists them (up to the limit).
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("{} bad line(s){}, nothing stored; first: {}", .errors.len(), if *.truncated { " (list truncated)" } else { "" }, .errors.first().map(|e| e.to_string()).unwrap_or_default())]
    Lines { errors: Vec<LineError>, truncated: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}
