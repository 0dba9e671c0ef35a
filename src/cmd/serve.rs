//! `fledge serve`: the standing service (REST API, SQLite store under `--data`, resume).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use fledge_analyzer::service::{self, AppState, Metrics, Notifier, Supervisor, WebhookFormat};
use fledge_analyzer::store::Store;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Directory for the SQLite database (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// File holding the bearer token for mutating endpoints (else $FLEDGE_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Webhook for verdicts and transitions (generic JSON); repeatable.
    #[arg(long)]
    webhook: Vec<String>,
    /// Webhook in Slack's incoming-webhook form; repeatable.
    #[arg(long)]
    slack_webhook: Vec<String>,
    /// Accept rollouts whose router is `type: exec` (it runs a command on this host as
    /// fledge's user, so the token would grant running commands).
    #[arg(long)]
    allow_exec_router: bool,
    /// Log format (same as the global --log-json when `json`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn token(args: &ServeArgs) -> anyhow::Result<String> {
    let t = match &args.token_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the token file {}", p.display()))?,
        None => std::env::var("FLEDGE_TOKEN").unwrap_or_default(),
    };
    let t = t.trim().to_owned();
    if t.is_empty() {
        bail!("no token: give --token-file or set FLEDGE_TOKEN");
    }
    Ok(t)
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = token(&args)?;
    let mut hooks = Vec::new();
    for (list, format) in [
        (&args.webhook, WebhookFormat::Generic),
        (&args.slack_webhook, WebhookFormat::Slack),
    ] {
        for u in list {
            let url = reqwest_url(u)?;
            hooks.push((url, format));
        }
    }
    let store = Store::open(&args.data)
        .with_context(|| format!("cannot open the store under {}", args.data.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::default());
        let supervisor = Supervisor::new(store, Arc::clone(&metrics), Notifier::new(hooks));
        let state = AppState::new(supervisor.clone(), metrics, token)
            .allow_exec_router(args.allow_exec_router);
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Printed for scripts and tests that pass port 0.
        println!("listening on {addr}");
        tracing::info!(%addr, data = %args.data.display(), "fledge serve started");
        let resumed = supervisor.resume_all().await?;
        tracing::info!(resumed, "runs resumed");
        state.set_ready();
        axum::serve(listener, service::router(state))
            .with_graceful_shutdown(super::interrupted())
            .await
            .context("server failed")?;
        // Runs that have not ended stay `running` in the store and resume on restart.
        tracing::info!("fledge serve stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn reqwest_url(u: &str) -> anyhow::Result<fledge_analyzer::config::Url> {
    fledge_analyzer::config::check_url(u).map_err(|e| anyhow::anyhow!("webhook {u:?}: {e}"))
}
