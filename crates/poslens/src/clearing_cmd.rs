//! `poslens import clearing` and `poslens reconcile`: the bank side of synchronisation from the
//! command line. The rules (once per SHA-256, atomic unless `--allow-partial`, every bad row
//! named) live in `api::recon`, shared with `POST /api/v1/clearing/files`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use api::recon::{ClearingImportRefusal, ClearingImportRequest, ITEMS_CSV_HEADER};
use clearing::Profile;
use domain::{MerchantId, SettlementDate};
use indicatif::{ProgressBar, ProgressStyle};

/// Bad rows printed on a refusal; the rest are counted (all of them go to a rejects file).
const BAD_ROWS_PRINTED_MAX: usize = 1_000;

#[derive(clap::Args)]
pub struct ClearingArgs {
    /// The clearing file.
    file: PathBuf,
    /// Built-in profile name (canonical, wechatpay-tradebill) or a profile file (*.toml).
    #[arg(long, default_value = "canonical")]
    profile: String,
    /// Settlement date of a file without a date column (YYYY-MM-DD); must agree with one that has.
    #[arg(long)]
    date: Option<String>,
    /// Import the good rows and write the bad ones to FILE.rejects.csv beside the file.
    #[arg(long)]
    allow_partial: bool,
    /// Supersede an earlier import of the same file (kept in the history).
    #[arg(long)]
    replace: bool,
}

#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// Settlement date to reconcile (YYYY-MM-DD).
    #[arg(long)]
    date: String,
    /// Only this merchant's records and rows.
    #[arg(long)]
    merchant: Option<String>,
    /// Compute and print, record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print only the run summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Write the item-level results to this CSV file.
    #[arg(long)]
    items: Option<PathBuf>,
}

fn load_profile(arg: &str) -> anyhow::Result<Profile> {
    if arg.ends_with(".toml") || Path::new(arg).is_file() {
        let text = std::fs::read_to_string(arg).with_context(|| format!("reading profile {arg}"))?;
        return Profile::from_toml(&text).with_context(|| format!("profile {arg}"));
    }
    Profile::builtin(arg).map_err(|e| anyhow::anyhow!("{e}; or give a profile file ending in .toml"))
}

fn parse_date(s: &str, what: &str) -> anyhow::Result<SettlementDate> {
    SettlementDate::parse(s).map_err(|_| anyhow::anyhow!("{what} must be YYYY-MM-DD, got {s:?}"))
}

fn rejects_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".rejects.csv");
    file.with_file_name(name)
}

pub fn import_clearing(data: &Path, a: ClearingArgs) -> anyhow::Result<ExitCode> {
    let profile = load_profile(&a.profile)?;
    let date = a.date.as_deref().map(|d| parse_date(d, "--date")).transpose()?;
    let f = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let total_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    // The digest that refuses a file imported before is computed beside the parse (a second
    // read of the file), not ahead of it; the import begins when it is known.
    let (digest_tx, digest_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("clearing-digest".into())
        .spawn(move || {
            let _ = digest_tx.send(clearing::sha256_of(std::io::BufReader::with_capacity(1 << 20, f)).map(hex::encode));
        })
        .context("starting the digest thread")?;
    let (store, card_key) = crate::open_store(data)?;
    let bar = ProgressBar::new(total_bytes.max(1));
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("static template"),
    );
    let name = a.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let req = ClearingImportRequest {
        name,
        profile: &profile,
        settlement_date: date,
        allow_partial: a.allow_partial,
        replace: a.replace,
        actor: "cli".into(),
    };
    let started = std::time::Instant::now();
    let f = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let result =
        api::recon::import_clearing(&store, &card_key, api::recon::FileDigest::Pending(digest_rx), f, &req, &mut |b| bar.set_position(b));
    bar.finish_and_clear();
    match result {
        Ok(o) => {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let dates: Vec<String> = o.summary.rows_by_settlement_date.iter().map(|(d, n)| format!("{d}: {n}")).collect();
            println!(
                "imported {} as clearing file #{}: {} rows ({}){}; {:.0} rows/s",
                a.file.display(),
                o.file.id,
                o.file.rows,
                dates.join(", "),
                o.file.supersedes.map(|id| format!(", superseding import #{id}")).unwrap_or_default(),
                o.file.rows as f64 / secs
            );
            if o.summary.bad_rows > 0 {
                let path = rejects_path(&a.file);
                let mut w = BufWriter::new(File::create(&path).with_context(|| format!("creating {}", path.display()))?);
                writeln!(w, "line,column,value,reason")?;
                for b in &o.rejects {
                    for e in &b.errors {
                        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                        writeln!(w, "{},{},{},{}", b.line, q(&e.column), q(&e.value), q(&e.reason))?;
                    }
                }
                w.flush()?;
                println!("{} bad rows left out, listed in {}", o.summary.bad_rows, path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClearingImportRefusal::BadRows { rows, total }) => {
            eprintln!("refused {}: {total} bad rows, nothing was imported. Fix these rows (or use --allow-partial):", a.file.display());
            for b in rows.iter().take(BAD_ROWS_PRINTED_MAX) {
                for e in &b.errors {
                    eprintln!("  line {}: column {}: {:?}: {}", b.line, e.column, e.value, e.reason);
                }
            }
            if total as usize > BAD_ROWS_PRINTED_MAX {
                eprintln!("  … {} more bad rows not listed", total as usize - BAD_ROWS_PRINTED_MAX);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(ClearingImportRefusal::Duplicate(e)) => {
            eprintln!("refused {}: {e}", a.file.display());
            Ok(ExitCode::FAILURE)
        }
        Err(ClearingImportRefusal::File(e)) => {
            eprintln!("refused {}: {e}; nothing was imported", a.file.display());
            Ok(ExitCode::FAILURE)
        }
        Err(ClearingImportRefusal::Store(e)) => Err(e).context("import failed; nothing was imported"),
    }
}

pub fn reconcile(data: &Path, a: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let date = parse_date(&a.date, "--date")?;
    let merchant = a
        .merchant
        .as_deref()
        .map(|m| MerchantId::parse(m).map_err(|e| anyhow::anyhow!("--merchant {m:?}: {e}")))
        .transpose()?;
    let (store, _) = crate::open_store(data)?;
    let mut items_out = match &a.items {
        Some(p) => {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(p).with_context(|| format!("creating {}", p.display()))?);
            writeln!(w, "{ITEMS_CSV_HEADER}")?;
            Some(w)
        }
        None => None,
    };
    let spinner = if a.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    spinner.set_message(format!("reconciling {date}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let mut write_item = |lines: &[u8]| match items_out.as_mut() {
        Some(w) => w.write_all(lines),
        None => Ok(()),
    };
    let on_item: Option<api::recon::ItemSink<'_>> = if a.items.is_some() { Some(&mut write_item) } else { None };
    let outcome = api::recon::run_reconciliation(&store, date, merchant.as_ref(), "cli", a.dry_run, on_item)
        .context("reconciliation failed")?;
    spinner.finish_and_clear();
    if let Some(mut w) = items_out {
        w.flush().context("writing the items file")?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&outcome.to_json())?);
        return Ok(ExitCode::SUCCESS);
    }
    match outcome.run_id {
        Some(id) => println!("reconciliation run #{id} for {date} ({:.2} s)", started.elapsed().as_secs_f64()),
        None => println!("reconciliation for {date} (dry run, nothing recorded; {:.2} s)", started.elapsed().as_secs_f64()),
    }
    println!("  {} platform records, {} clearing rows (D-1..D+1)", outcome.platform_records, outcome.clearing_rows);
    for o in recon::Outcome::ALL {
        let fen = outcome.summary.amount_fen(o);
        println!(
            "  {:<22} {:>9}  {}{}.{:02}",
            o.as_str(),
            outcome.summary.count(o),
            if fen < 0 { "-" } else { "" },
            fen.unsigned_abs() / 100,
            fen.unsigned_abs() % 100
        );
    }
    if !outcome.pending_channels.is_empty() {
        let names: Vec<&str> = outcome.pending_channels.iter().map(|c| c.as_str()).collect();
        println!("  pending (no clearing file yet): {} ({} records)", names.join(", "), outcome.summary.pending_count);
    }
    if let Some(p) = &a.items {
        println!("  items written to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
