//! Serving: the HTTP API and the POS front end on configured addresses.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_http")]
    pub http: String,
    #[serde(default = "default_pos")]
    pub pos: String,
    #[serde(default)]
    pub secure_cookies: bool,
}

fn default_http() -> String {
    "127.0.0.1:8080".into()
}

fn default_pos() -> String {
    "127.0.0.1:8583".into()
}

impl Default for Config {
    fn default() -> Self {
        Config { http: default_http(), pos: default_pos(), secure_cookies: false }
    }
}

pub fn serve_from_config(data: &Path, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = match config {
        None => Config::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", p.display()))?
        }
    };
    let (store, card_key) = crate::open_store(data)?;
    serve(store, card_key, &cfg, |http, pos| eprintln!("poslens serving http://{http} and POS terminals on {pos}"))
}

/// Binds and serves until the process is stopped. `ready` is told the bound HTTP and POS
/// addresses.
pub fn serve(
    store: store::SqliteStore,
    card_key: domain::CardKey,
    cfg: &Config,
    ready: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr),
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        // The POS front end shares the store and keeps its own files next to the database.
        let pos_data = store.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let pos_host = pos::Host::open(store.clone(), card_key.clone(), pos::HostConfig::new(pos_data))
            .context("starting the POS front end")?;
        let pos_listener = pos::spawn(&cfg.pos, std::sync::Arc::new(pos_host), pos::Limits::default())
            .await
            .with_context(|| format!("cannot listen on {} for POS terminals (in use? pass another address)", cfg.pos))?;
        // Records stored one at a time (by terminals) are gathered into record chunks in the
        // background, so reconciliation reads them as fast as imported ones.
        tokio::spawn(seal_record_chunks(store.clone()));
        let mut state = api::AppState::new(store, card_key.clone(), crate::cursor_key(&card_key));
        state.secure_cookies = cfg.secure_cookies;
        let listener = tokio::net::TcpListener::bind(&cfg.http)
            .await
            .with_context(|| format!("cannot listen on {} (in use? pass another address)", cfg.http))?;
        ready(listener.local_addr()?, pos_listener.local_addr);
        axum::serve(listener, api::app(state.clone()).merge(web::routes(state)).into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("HTTP server stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// How often the server gathers records stored one at a time into record chunks.
const SEAL_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Chunks (of 8,192 records) per writer job: a short job, so terminals' writes keep flowing.
const SEAL_CHUNKS_PER_JOB: usize = 4;
/// Pause between two such jobs.
const SEAL_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

async fn seal_record_chunks(store: store::SqliteStore) {
    let mut every = tokio::time::interval(SEAL_EVERY);
    loop {
        every.tick().await;
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.seal_record_chunks(SEAL_CHUNKS_PER_JOB)).await {
                Ok(Ok(n)) if n == SEAL_CHUNKS_PER_JOB => tokio::time::sleep(SEAL_PAUSE).await,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!("gathering records into record chunks failed: {e}");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}
