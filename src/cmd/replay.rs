//! `fledge replay`: the whole analysis over a recording.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use fledge_analyzer::{config, engine, recording, replay, report};

use super::{Format, verdict_exit};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Canary config (YAML).
    #[arg(long, short)]
    config: PathBuf,
    /// Recorded metrics: CSV with the header `timestamp,metric,cohort,value`.
    #[arg(long, short)]
    recording: PathBuf,
    /// Analysis start (RFC 3339). Default: the recording's first canary point.
    #[arg(long)]
    start: Option<String>,
    /// Also write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&args.config)?;
    let spec = Arc::new(
        cfg.to_spec()
            .with_context(|| format!("{}", args.config.display()))?,
    );
    let start = match &args.start {
        Some(s) => Some(
            engine::parse_time(s)
                .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?,
        ),
        None => None,
    };
    let rec = recording::read_recording(&args.recording)?;
    for note in &rec.notes {
        eprintln!("note: {}: {note}", args.recording.display());
    }
    let progress = progress_bar(engine::plan(&spec, 0).len());
    let result = replay::replay(spec.clone(), &rec, start, |interval| {
        if let Some(pb) = &progress {
            pb.set_message(format!(
                "interval {} {:?}",
                interval.index, interval.verdict
            ));
            pb.inc(1);
        }
    });
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if let Some(path) = &args.report {
        let html = report::html(&result, &spec, &rec);
        std::fs::write(path, html)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    let out = match args.format {
        Format::Text => report::text(&result),
        Format::Json => serde_json::to_string_pretty(&result)? + "\n",
        Format::Markdown => report::markdown(&result),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(verdict_exit(result.verdict))
}

/// A progress bar on a terminal, none otherwise.
fn progress_bar(len: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stdout().is_terminal() || len == 0 {
        return None;
    }
    let pb = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} intervals {msg}")
    {
        pb.set_style(style);
    }
    Some(pb)
}
