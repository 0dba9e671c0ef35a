//! One module per subcommand. Each exposes clap arguments and a `run` returning the exit code.

use std::process::ExitCode;

use fledge_judges::Verdict;

pub mod analyze;
pub mod config;
pub mod demo;
pub mod judge;
pub mod record;
pub mod replay;
pub mod rollout;
pub mod serve;
pub mod synth;

/// The exit code of a verdict: 0 promote, 3 hold, 4 abort.
pub fn verdict_exit(v: Verdict) -> ExitCode {
    ExitCode::from(match v {
        Verdict::Promote => 0,
        Verdict::Hold => 3,
        Verdict::Abort => 4,
    })
}

/// Output formats shared by the commands that report an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Completes on Ctrl-C or SIGTERM (a cancelled CI job); never when the handlers cannot be
/// installed.
pub async fn interrupted() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
