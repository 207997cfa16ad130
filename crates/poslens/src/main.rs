//! `poslens`: the one binary. Command-line parsing, wiring of the store, the HTTP API and the
//! POS front end, the demo, imports and administration. Business rules live in the library
//! crates; this crate only connects them and talks to the person at the terminal.

mod admin;
mod clearing_cmd;
mod demo;
mod demo_data;
mod import;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// jemalloc instead of the system allocator: a page answer builds and drops thousands of small
/// JSON values and strings, which spent about a fifth of the request in glibc's malloc/free.
/// (mimalloc was as fast for pages but stalled the POS front end for 100-800 ms now and then.)
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "poslens", version, about = "Every POS transaction findable: capture, store, reconcile, query, explain.")]
struct Cli {
    /// Data directory (database, keys).
    #[arg(long, global = true, env = "POSLENS_DATA", default_value = "./poslens-data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on generated data (created on first start, reused afterwards).
    Demo {
        /// HTTP API and web portal address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// POS front end (ISO 8583) address.
        #[arg(long, default_value = "127.0.0.1:8583")]
        pos: String,
    },
    /// Run the server on real configuration.
    Serve {
        /// TOML configuration file: http, pos, secure_cookies.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Import data files.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Reconcile platform records against the imported clearing files for one settlement date.
    Reconcile(clearing_cmd::ReconcileArgs),
    /// Check the hash chain and the derived transaction states; names the first break.
    Verify,
    /// Copy the data directory (a consistent database snapshot, keys, POS state) into DIR,
    /// then verify the copy.
    Backup { dir: PathBuf },
    /// Restore a backup made by `poslens backup` into an empty --data directory, then verify it.
    Restore { dir: PathBuf },
    /// Merchants: add, list, set-status.
    #[command(subcommand)]
    Merchant(admin::MerchantCommand),
    /// Terminals: add, list.
    #[command(subcommand)]
    Terminal(admin::TerminalCommand),
    /// Users: add, list.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// API keys for ingest: create, list.
    #[command(subcommand)]
    Apikey(admin::ApiKeyCommand),
    /// A POS terminal simulator: signs on, runs a transaction mix, prints counts and latencies.
    TerminalSim(TerminalSimArgs),
    /// ISO 8583 tools for people debugging terminals.
    #[command(subcommand)]
    Iso(IsoCommand),
}

#[derive(clap::Args)]
struct TerminalSimArgs {
    /// POS front end address.
    #[arg(long, default_value = "127.0.0.1:8583")]
    addr: String,
    /// Merchant id (field 42) of every simulated terminal.
    #[arg(long, default_value = "898310048990001")]
    merchant: String,
    /// Terminal ids, comma-separated; ranges like 50000001-50000200 allowed. One connection each.
    #[arg(long, default_value = "10000001,10000002,10000003")]
    terminals: String,
    /// The terminals' master key (32 hex digits) when they are keyed (MAC on).
    #[arg(long)]
    master_key: Option<String>,
    /// Transactions in total.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Concurrent terminals (at most the number of terminal ids).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Weighted mix of purchase, void, refund, preauth, balance.
    #[arg(long, default_value = "purchase:80,void:5,refund:5,preauth:5,balance:5")]
    mix: String,
    /// Settle each terminal's batch at the end.
    #[arg(long)]
    settle: bool,
    /// Append `terminal,batch,stan,rrn,kind` for every approved reply to this file.
    #[arg(long)]
    approved_log: Option<PathBuf>,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 10)]
    reply_timeout_s: u64,
}

#[derive(Subcommand)]
enum IsoCommand {
    /// Decode one framed message (hex, 2-byte length prefix optional) and print its fields as
    /// JSON with the PAN masked. `-` or nothing reads the hex from standard input.
    Decode { hex: Option<String> },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // Structured logs: key=value text by default, one JSON object per line with
    // POSLENS_LOG_FORMAT=json (for log shippers). Nothing logged carries a card number: the
    // edges reduce PANs before anything else sees them, and requests are logged without their
    // query strings.
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSLENS_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("POSLENS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    match cli.command {
        Command::Demo { http, pos } => demo::run(&cli.data, &http, &pos),
        Command::Serve { config } => server::serve_from_config(&cli.data, config.as_deref()),
        Command::Import(cmd) => import::run(&cli.data, cmd),
        Command::Reconcile(args) => clearing_cmd::reconcile(&cli.data, args),
        Command::Verify => admin::verify(&cli.data),
        Command::Backup { dir } => admin::backup(&cli.data, &dir),
        Command::Restore { dir } => admin::restore(&dir, &cli.data),
        Command::Merchant(cmd) => admin::merchant(&cli.data, cmd),
        Command::Terminal(cmd) => admin::terminal(&cli.data, cmd),
        Command::User(cmd) => admin::user(&cli.data, cmd),
        Command::Apikey(cmd) => admin::apikey(&cli.data, cmd),
        Command::TerminalSim(args) => terminal_sim(args),
        Command::Iso(IsoCommand::Decode { hex }) => iso_decode(hex),
    }
}

fn terminal_sim(a: TerminalSimArgs) -> anyhow::Result<ExitCode> {
    let cfg = pos::sim::SimConfig {
        addr: a.addr,
        merchant_id: a.merchant,
        terminal_ids: pos::sim::parse_terminals(&a.terminals)?,
        master_key_hex: a.master_key,
        count: a.count,
        concurrency: a.concurrency,
        mix: pos::sim::parse_mix(&a.mix)?,
        settle: a.settle,
        reply_timeout: std::time::Duration::from_secs(a.reply_timeout_s),
        approved_log: match &a.approved_log {
            None => None,
            Some(p) => Some(std::sync::Arc::new(std::sync::Mutex::new(
                std::fs::OpenOptions::new().create(true).append(true).open(p).with_context(|| format!("opening {}", p.display()))?,
            ))),
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let r = rt.block_on(pos::sim::run(cfg))?;
    let declined: u64 = r.declined.values().sum();
    println!("approved {}  declined {}  errors {}", r.approved, declined, r.errors);
    if let Some(e) = &r.first_error {
        println!("  a terminal stopped early: {e}");
    }
    for (code, n) in &r.declined {
        println!("  declined {code}: {n}");
    }
    println!(
        "{:.0} transactions/s over {:.2} s; latency p50 {:.2} ms, p99 {:.2} ms",
        r.per_second(),
        r.elapsed.as_secs_f64(),
        r.latency_p50_us as f64 / 1000.0,
        r.latency_p99_us as f64 / 1000.0
    );
    println!(
        "after every terminal signed on: {:.0} transactions/s over {:.2} s; latency p90 {:.2} ms, max {:.2} ms",
        r.per_second_signed_on(),
        r.transactions_elapsed.as_secs_f64(),
        r.latency_p90_us as f64 / 1000.0,
        r.latency_max_us as f64 / 1000.0
    );
    if r.settled_balanced + r.settled_unbalanced > 0 {
        println!("settlement: {} balanced, {} unbalanced", r.settled_balanced, r.settled_unbalanced);
    }
    if r.reply_mac_failures > 0 {
        println!("replies with a bad MAC: {}", r.reply_mac_failures);
    }
    Ok(if r.errors == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn iso_decode(hex_arg: Option<String>) -> anyhow::Result<ExitCode> {
    let text = match hex_arg.as_deref() {
        None | Some("-") => std::io::read_to_string(std::io::stdin()).context("reading hex from standard input")?,
        Some(h) => h.to_owned(),
    };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(&compact).context("the message must be hexadecimal (spaces and newlines are ignored)")?;
    match iso8583::decode_to_json_value(&bytes) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // What could be read, with the error, so the person sees where the frame goes wrong.
            println!("{}", serde_json::to_string_pretty(&iso8583::describe_frame(&bytes))?);
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Opens (creating on first use) the store and the installation's keys.
pub fn open_store(data: &std::path::Path) -> anyhow::Result<(store::SqliteStore, domain::CardKey)> {
    std::fs::create_dir_all(data).with_context(|| format!("creating data directory {}", data.display()))?;
    let card_key = store::card_key(data).context("reading the card key")?;
    let s = store::SqliteStore::open(data, store::StoreConfig::default())
        .with_context(|| format!("opening the database in {}", data.display()))?;
    Ok((s, card_key))
}

/// The cursor-sealing key, derived from the card key so one secret file serves both.
pub fn cursor_key(card_key: &domain::CardKey) -> api::CursorKey {
    let derived = hex::decode(card_key.token("poslens cursor key v1")).expect("token is hex");
    api::CursorKey::new(derived.try_into().expect("HMAC-SHA256 is 32 bytes"))
}
