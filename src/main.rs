//! `fledge`: automated canary analysis from the command line.
//!
//! Exit codes, for every command that decides: 0 promote (pass), 3 hold, 4 abort,
//! 1 error, 2 usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "fledge",
    version,
    about = "Automated canary analysis: exact statistics, explained verdicts"
)]
#[command(after_help = "Exit codes: 0 promote, 3 hold, 4 abort, 1 error, 2 usage.")]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `fledge_analyzer=debug`.
    #[arg(long, global = true, env = "FLEDGE_LOG", default_value = "warn")]
    log: String,
    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare one canary sample with one baseline sample, or every metric of a recording.
    Judge(cmd::judge::JudgeArgs),
    /// Run a whole analysis over a recorded CSV, as fast as the machine allows.
    Replay(cmd::replay::ReplayArgs),
    /// Analyse a running canary against the config's metric source (a pipeline gate), in real
    /// time or over a past span.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// Run the config's `rollout:`: move the canary's traffic weight step by step, analyse at
    /// each step, roll back on abort, wait for a person on hold. Also promote/abort/resume.
    Rollout(cmd::rollout::RolloutArgs),
    /// Save what the config's queries return over a span as a recording for `fledge replay`.
    Record(cmd::record::RecordArgs),
    /// Validate or convert canary configs.
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Run as a service: REST API under /v1, SQLite store under --data, runs resume after a
    /// restart.
    Serve(cmd::serve::ServeArgs),
    /// Write a synthetic recording (seeded) for tests and demos.
    #[command(hide = true)]
    Synth(cmd::synth::SynthArgs),
    /// Serve a demo HTTP service with a configurable latency and error rate and Prometheus
    /// metrics, to try fledge on one machine.
    #[command(hide = true)]
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_json
        || matches!(&cli.command, Command::Serve(a) if a.log_format == cmd::serve::LogFormat::Json);
    init_logging(&cli.log, json);
    let result = match cli.command {
        Command::Judge(args) => cmd::judge::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Rollout(args) => cmd::rollout::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Config(c) => cmd::config::run(c),
        Command::Synth(args) => cmd::synth::run(args),
        Command::Serve(args) => cmd::serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
