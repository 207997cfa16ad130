use thiserror::Error;

/// Operating errors of the front end. None carries card data or key material.
#[derive(Debug, Error)]
pub enum PosError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("store refused the record: {0}")]
    Ingest(#[from] store::IngestError),
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("state file {path} is not valid: {reason}")]
    StateFile { path: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("a blocking store task failed: {0}")]
    Join(String),
}

impl PosError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> PosError {
        PosError::Io { path: path.display().to_string(), source }
    }
}
