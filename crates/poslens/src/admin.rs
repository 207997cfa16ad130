//! Administration commands. The command line acts as the local administrator of the data
//! directory; every change is audited as `cli`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Subcommand;
use domain::{Amount, MerchantClock, MerchantId, MerchantStatus, Role, TerminalId};
use store::{ApiKeyRepo, AuditRepo, MerchantRepo, NewApiKey, NewAuditEvent, NewMerchant, NewTerminal, NewUser, Scope, TerminalRepo, TxnRepo, UserRepo};

#[derive(Subcommand)]
pub enum MerchantCommand {
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        name_en: Option<String>,
        #[arg(long)]
        mcc: Option<String>,
        #[arg(long, default_value = "Asia/Shanghai")]
        tz: String,
        #[arg(long, default_value = "23:00")]
        cutoff: String,
        /// Single-transaction limit in fen.
        #[arg(long)]
        limit: Option<i64>,
    },
    List,
    SetStatus {
        #[arg(long)]
        id: String,
        #[arg(long)]
        status: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum TerminalCommand {
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        merchant: String,
        /// Terminal master key, 32 hex digits (double-length 3DES).
        #[arg(long)]
        master_key: Option<String>,
    },
    List {
        #[arg(long)]
        merchant: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        merchant: Option<String>,
        /// Staff users: the terminals they may see, comma-separated.
        #[arg(long, value_delimiter = ',')]
        terminals: Vec<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    List,
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    Create {
        #[arg(long)]
        name: String,
        /// Restrict the key to one merchant (default: all merchants).
        #[arg(long)]
        merchant: Option<String>,
    },
    List,
}

fn audit(store: &store::SqliteStore, action: &str, target: &str, detail: Option<String>) -> anyhow::Result<()> {
    store.append_audit(&NewAuditEvent { actor: "cli".into(), action: action.into(), target: Some(target.into()), detail, ip: None, at: Utc::now() })?;
    Ok(())
}

fn merchant_id(s: &str) -> anyhow::Result<MerchantId> {
    MerchantId::parse(s).with_context(|| format!("--merchant/--id {s:?}"))
}

pub fn merchant(data: &Path, cmd: MerchantCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = crate::open_store(data)?;
    match cmd {
        MerchantCommand::Add { id, name, name_en, mcc, tz, cutoff, limit } => {
            let m = NewMerchant {
                id: merchant_id(&id)?,
                name_zh: name,
                name_en,
                mcc,
                clock: MerchantClock::new(&tz, &cutoff)?,
                single_txn_limit: limit.map(Amount::from_fen).transpose().context("--limit")?,
                wechat_sub_mch_id: None,
                alipay_id: None,
            };
            store.create_merchant(&m, "cli")?;
            audit(&store, "merchant_add", &id, None)?;
            println!("merchant {id} added");
        }
        MerchantCommand::List => {
            for m in store.list_merchants(&Scope::all())? {
                println!("{}\t{}\t{}\t{}\t{}", m.id, m.status, m.clock.tz.name(), m.clock.cutoff, m.name_zh);
            }
        }
        MerchantCommand::SetStatus { id, status, reason } => {
            let status = MerchantStatus::parse(&status)?;
            if reason.trim().is_empty() {
                bail!("--reason must say why");
            }
            store.set_merchant_status(&merchant_id(&id)?, status, &reason, "cli", Utc::now())?;
            audit(&store, "merchant_status", &id, Some(format!("{status} ({reason})")))?;
            println!("merchant {id} is now {status}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn terminal(data: &Path, cmd: TerminalCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = crate::open_store(data)?;
    match cmd {
        TerminalCommand::Add { id, merchant, master_key } => {
            if let Some(k) = &master_key {
                if k.len() != 32 || hex::decode(k).is_err() {
                    bail!("--master-key must be 32 hexadecimal digits");
                }
            }
            let t = NewTerminal {
                id: TerminalId::parse(&id).with_context(|| format!("--id {id:?}"))?,
                merchant_id: merchant_id(&merchant)?,
                master_key_hex: master_key.map(|k| k.to_ascii_uppercase()),
            };
            store.create_terminal(&t)?;
            audit(&store, "terminal_add", &id, Some(merchant.clone()))?;
            println!("terminal {id} added to merchant {merchant}");
        }
        TerminalCommand::List { merchant } => {
            let m = merchant.as_deref().map(merchant_id).transpose()?;
            for t in store.list_terminals(&Scope::all(), m.as_ref())? {
                let batch = t.open_batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
                println!("{}\t{}\t{}\tbatch {batch}", t.id, t.merchant_id, t.status.as_str());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn user(data: &Path, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = crate::open_store(data)?;
    match cmd {
        UserCommand::Add { username, role, merchant, terminals, password_stdin } => {
            if !password_stdin {
                bail!("pass --password-stdin and type the password on standard input");
            }
            let role = Role::parse(&role)?;
            let merchant = merchant.as_deref().map(merchant_id).transpose()?;
            if role.is_merchant() != merchant.is_some() {
                bail!("merchant roles need --merchant; bank roles must not have one");
            }
            let terminals = terminals.iter().map(|t| TerminalId::parse(t)).collect::<Result<Vec<_>, _>>().context("--terminals")?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password")?;
            let hash = api::auth::hash_password(password.trim_end_matches(['\n', '\r'])).map_err(anyhow::Error::msg)?;
            store.create_user(&NewUser { username: username.clone(), role, merchant_id: merchant, terminals, password_hash: hash })?;
            audit(&store, "user_add", &username, Some(role.to_string()))?;
            println!("user {username} added as {role}");
        }
        UserCommand::List => {
            for u in store.list_users(None)? {
                let m = u.merchant_id.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
                println!("{}\t{}\t{m}{}", u.username, u.role, if u.disabled { "\tdisabled" } else { "" });
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn apikey(data: &Path, cmd: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = crate::open_store(data)?;
    match cmd {
        ApiKeyCommand::Create { name, merchant } => {
            let merchants = merchant.as_deref().map(merchant_id).transpose()?.map(|m| vec![m]);
            let key = api::auth::new_token("plk_");
            store.create_api_key(&NewApiKey { name: name.clone(), key_hash: api::auth::token_hash(&key), merchants })?;
            audit(&store, "apikey_create", &name, None)?;
            println!("{key}");
            eprintln!("API key {name} created. It is shown once: store it now.");
        }
        ApiKeyCommand::List => {
            for k in store.list_api_keys()? {
                let scope = k.merchants.map(|m| m.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_else(|| "all".into());
                println!("{}\t{}\t{scope}{}", k.id, k.name, if k.revoked { "\trevoked" } else { "" });
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(data: &Path) -> anyhow::Result<ExitCode> {
    if !data.join(store::DB_FILE).exists() {
        bail!("no database in {} (pass --data DIR)", data.display());
    }
    let (store, _) = crate::open_store(data)?;
    let report = store.verify()?;
    match &report.first_break {
        None => {
            println!(
                "ok: {} records, chain head seq {}, statuses match their events, record chunks match their records",
                report.records_checked, report.head_seq
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!("BROKEN: {b}");
            println!("checked {} records before the break", report.records_checked);
            Ok(ExitCode::from(2))
        }
    }
}

/// Files of a data directory besides the database: the card key and the POS front end's state
/// (working keys, RRN block, discrepancies).
fn side_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == store::CARD_KEY_FILE || name.starts_with("pos-") {
            out.push(path);
        }
    }
    Ok(out)
}

fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn require_empty(dir: &Path, what: &str) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{what} {} is not empty; choose an empty or new directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

fn verify_copy(dir: &Path) -> anyhow::Result<ExitCode> {
    let (copy, _) = crate::open_store(dir)?;
    let report = copy.verify()?;
    match &report.first_break {
        None => {
            println!("{}: {} records, chain head seq {}, verified", dir.display(), report.records_checked, report.head_seq);
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!("BROKEN copy in {}: {b}", dir.display());
            Ok(ExitCode::from(2))
        }
    }
}

pub fn backup(data: &Path, dest: &Path) -> anyhow::Result<ExitCode> {
    if !data.join(store::DB_FILE).exists() {
        bail!("no database in {} (pass --data DIR)", data.display());
    }
    require_empty(dest, "backup directory")?;
    let (store, _) = crate::open_store(data)?;
    // A consistent snapshot even while the server keeps writing.
    store.backup_to(&dest.join(store::DB_FILE))?;
    for f in side_files(data)? {
        copy_private(&f, &dest.join(f.file_name().expect("listed files have names")))?;
    }
    audit(&store, "backup", &dest.display().to_string(), None)?;
    verify_copy(dest)
}

pub fn restore(src: &Path, data: &Path) -> anyhow::Result<ExitCode> {
    if !src.join(store::DB_FILE).exists() {
        bail!("{} holds no backup (no {})", src.display(), store::DB_FILE);
    }
    require_empty(data, "data directory")?;
    copy_private(&src.join(store::DB_FILE), &data.join(store::DB_FILE))?;
    for f in side_files(src)? {
        copy_private(&f, &data.join(f.file_name().expect("listed files have names")))?;
    }
    let code = verify_copy(data)?;
    let (store, _) = crate::open_store(data)?;
    audit(&store, "restore", &src.display().to_string(), None)?;
    Ok(code)
}
