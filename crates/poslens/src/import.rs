//! `poslens import …`: streaming, atomic imports with line-numbered errors and progress.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use store::{BulkError, BulkLine, BulkOptions, TxnRepo};

/// A JSON Lines line longer than this is refused (an ingest object is well under 2 KiB).
pub const LINE_BYTES_MAX: usize = 64 * 1024;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// JSON Lines, one ingest object per line. Atomic: any bad line stores nothing.
    Transactions {
        file: PathBuf,
        /// Register unknown merchants and terminals with defaults.
        #[arg(long)]
        create_missing: bool,
    },
    /// A clearing file (CLEARING-FILES.md): once per SHA-256, atomic unless --allow-partial.
    Clearing(crate::clearing_cmd::ClearingArgs),
}

pub fn run(data: &Path, cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImportCommand::Transactions { file, create_missing } => transactions(data, &file, create_missing),
        ImportCommand::Clearing(args) => crate::clearing_cmd::import_clearing(data, args),
    }
}

/// Turns a JSON Lines reader into bulk lines: every line is numbered, and a line that is not a
/// JSON object of the right shape becomes an error for that line rather than a stop.
pub fn jsonl_lines(reader: impl BufRead) -> impl Iterator<Item = BulkLine> {
    let mut line_no = 0u64;
    reader.split(b'\n').filter_map(move |raw| {
        line_no += 1;
        let object = match raw {
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(bytes) if bytes.len() > LINE_BYTES_MAX => Err(format!("line longer than {LINE_BYTES_MAX} bytes")),
            Ok(bytes) => {
                let text = match std::str::from_utf8(&bytes) {
                    Ok(t) => t.trim(),
                    Err(_) => return Some(BulkLine { line_no, object: Err("not UTF-8".into()) }),
                };
                if text.is_empty() {
                    return None;
                }
                match serde_json::from_str::<serde_json::Value>(text) {
                    Err(e) => Err(format!("not valid JSON: {e}")),
                    Ok(v) => api::ingest::ingest_object(&v).map_err(|errs| {
                        errs.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ")
                    }),
                }
            }
        };
        Some(BulkLine { line_no, object })
    })
}

fn transactions(data: &Path, file: &Path, create_missing: bool) -> anyhow::Result<ExitCode> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let total_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let (store, card_key) = crate::open_store(data)?;
    let bar = ProgressBar::new(total_bytes.max(1));
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]").expect("static template"));
    let mut lines = jsonl_lines(BufReader::with_capacity(1 << 20, f));
    let result = store.bulk_ingest(
        &mut lines,
        &card_key,
        domain::Source::Import,
        BulkOptions { create_missing, errors_max: 0 },
        &mut |p| bar.set_message(format!("{} lines read, {} stored, {} bad", p.lines_read, p.rows_stored, p.errors)),
    );
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            let secs = (r.elapsed_ms as f64 / 1000.0).max(0.001);
            println!(
                "imported {} lines: {} stored, {} already present; {} merchants and {} terminals created; {:.0} rows/s",
                r.lines, r.inserted, r.duplicates, r.merchants_created, r.terminals_created, r.lines as f64 / secs
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(BulkError::Lines { errors, truncated }) => {
            eprintln!("refused {}: nothing was stored. Fix these lines and import again:", file.display());
            for e in &errors {
                eprintln!("  line {}: {}", e.line_no, e.reason);
            }
            if truncated {
                eprintln!("  … more bad lines not listed");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(BulkError::Store(e)) => Err(e).context("import failed; nothing was stored"),
    }
}
