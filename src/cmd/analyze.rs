//! `fledge analyze`: a live analysis against the config's `source:`, as a pipeline gate.
//!
//! - `--start T --end T`: **retrospective**: the span is fetched at once and every interval is
//!   judged back to back (the config's lifetime and interval plan them, as in replay; intervals
//!   that end after `--end` are not judged, which holds).
//! - otherwise **real time**, from `--start` or now: it waits for the warmup and then for each
//!   interval's end plus `source.settle`, fetches that interval's windows, judges them and
//!   prints the interval at once; it stops as soon as an interval aborts.
//!
//! Exit codes: 0 promote, 3 hold, 4 abort, 1 error (no source, bad times, the source does not
//! answer at the start), 2 usage. A source that fails mid-run holds, never promotes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use fledge_analyzer::engine::Millis;
use fledge_analyzer::live::{self, Mode};
use fledge_analyzer::{config, report, source};

use super::{Format, verdict_exit};

#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 promote, 3 hold, 4 abort, 1 error, 2 usage. Without --end the analysis runs in real time."
)]
pub struct AnalyzeArgs {
    /// Canary config (YAML) with a `source:` section.
    #[arg(long, short)]
    config: PathBuf,
    /// Analysis start (RFC 3339 or Unix seconds). Default: now.
    #[arg(long)]
    start: Option<String>,
    /// End of a retrospective analysis (RFC 3339 or Unix seconds, in the past); needs --start.
    #[arg(long, requires = "start")]
    end: Option<String>,
    /// Also write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// What to print on stdout at the end. Intervals are printed as text as they are judged
    /// (on stdout with `text`, on stderr otherwise).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Parses `--start`/`--end`: RFC 3339 or Unix seconds.
pub fn parse_when(flag: &str, text: &str) -> anyhow::Result<Millis> {
    if let Some(ms) = fledge_analyzer::engine::parse_time(text) {
        return Ok(ms);
    }
    if let Ok(secs) = text.trim().parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1000.0).round() as Millis);
    }
    bail!("{flag} {text:?} is neither an RFC 3339 time (2026-05-01T10:00:00Z) nor Unix seconds")
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&args.config)?;
    let spec = Arc::new(
        cfg.to_spec()
            .with_context(|| format!("{}", args.config.display()))?,
    );
    let settle = cfg
        .source
        .as_ref()
        .map_or(0, |s| s.settle().as_millis() as Millis);
    let start = args
        .start
        .as_deref()
        .map(|s| parse_when("--start", s))
        .transpose()?;
    let end = args
        .end
        .as_deref()
        .map(|s| parse_when("--end", s))
        .transpose()?;
    let mode = match (start, end) {
        (Some(start), Some(end)) => Mode::Retrospective { start, end },
        (start, _) => Mode::RealTime { start },
    };
    let format = args.format;
    let runtime = runtime()?;
    let run = runtime.block_on(async {
        let source =
            source::build(&cfg).with_context(|| format!("{}: source", args.config.display()))?;
        let on_interval = |interval: &fledge_analyzer::engine::IntervalReport| {
            let block = report::text_interval(interval);
            if format == Format::Text {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(block.as_bytes());
                let _ = out.flush();
            } else {
                eprint!("{block}");
            }
        };
        live::analyze(
            source.as_ref(),
            Arc::clone(&spec),
            mode,
            settle,
            on_interval,
            super::interrupted(),
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    if let Some(path) = &args.report {
        let html = report::html(&run.report, &run.spec, &run.data);
        std::fs::write(path, html)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    let out = match format {
        Format::Text => report::text(&run.report),
        Format::Json => serde_json::to_string_pretty(&run.report)? + "\n",
        Format::Markdown => report::markdown(&run.report),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(verdict_exit(run.report.verdict))
}

/// The runtime live commands run on: two workers are plenty for I/O-bound fetching.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
