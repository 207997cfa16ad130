use std::fmt;

/// One field of one row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The column as the file names it (header name, or `[start,width]` for fixed-width files).
    pub column: String,
    /// The value as read; card numbers are shown masked, never in clear.
    pub value: String,
    pub reason: String,
}

/// A row that could not be imported, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Physical line in the file, the header being line 1.
    pub line: u64,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "line {}: column {}: {:?}: {}", self.line, e.column, e.value, e.reason)?;
        }
        Ok(())
    }
}

/// Why a whole file was refused (as opposed to single rows, which are [`BadRow`]s).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is longer than {limit_bytes} bytes")]
    LineTooLong { line: u64, limit_bytes: usize },
    #[error("the file ended before the header (line {line})")]
    NoHeader { line: u64 },
    #[error("line {line} (header) is not valid {encoding}")]
    HeaderEncoding { line: u64, encoding: &'static str },
    #[error("line {line} (header) lacks column {column:?} that the profile needs")]
    MissingColumn { line: u64, column: String },
    #[error("line {line}: fixed-width field {field} [{start}, {width}] lies beyond the line ({len} bytes)")]
    FixedFieldOutOfLine { line: u64, field: &'static str, start: usize, width: usize, len: usize },
    #[error("line {line}: totals row says {what} = {file_figure}, the rows add up to {computed}")]
    Totals { line: u64, what: String, file_figure: String, computed: String },
    #[error("line {line}: totals row is malformed: {reason}")]
    TotalsMalformed { line: u64, reason: String },
    #[error("the file has no totals row although the profile expects one")]
    TotalsMissing,
    #[error("stopped at line {line}: the rows were refused")]
    Stopped { line: u64 },
}

/// Why a profile could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile is not valid TOML: {0}")]
    Toml(String),
    #[error("unknown profile {0:?} (built in: canonical, wechatpay-tradebill)")]
    Unknown(String),
    #[error("profile field {0:?} is not one poslens imports")]
    UnknownField(String),
    #[error("profile column for {field}: {reason}")]
    Column { field: String, reason: String },
    #[error("profile: {0}")]
    Invalid(String),
}
