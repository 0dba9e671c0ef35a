//! `fledge record`: save what the config's queries return over a span as a recording, so a
//! live analysis can be replayed later with `fledge replay` (with `--start` set to the same
//! start, it reaches the same verdict as `fledge analyze --start --end` over that span).
//!
//! Times are rounded to the source's step (start up, end down). Any metric that cannot be
//! fetched fails the command (exit 1) and nothing is written: a recording with holes would
//! replay as no data.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fledge_analyzer::{config, live, recording, source};

use super::analyze::{parse_when, runtime};

#[derive(clap::Args)]
pub struct RecordArgs {
    /// Canary config (YAML) with a `source:` section that has history (Prometheus).
    #[arg(long, short)]
    config: PathBuf,
    /// Start of the span (RFC 3339 or Unix seconds).
    #[arg(long)]
    start: String,
    /// End of the span (RFC 3339 or Unix seconds, in the past).
    #[arg(long)]
    end: String,
    /// Where to write the recording (CSV: timestamp,metric,cohort,value).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&args.config)?;
    let spec = cfg
        .to_spec()
        .with_context(|| format!("{}", args.config.display()))?;
    let start = parse_when("--start", &args.start)?;
    let end = parse_when("--end", &args.end)?;
    let (rec, notes) = runtime()?.block_on(async {
        let source =
            source::build(&cfg).with_context(|| format!("{}: source", args.config.display()))?;
        live::record(source.as_ref(), &spec, start, end)
            .await
            .map_err(anyhow::Error::from)
    })?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    recording::write_recording(file, &rec)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let range = rec
        .time_range()
        .map(|(a, b)| {
            format!(
                " from {} to {}",
                fledge_analyzer::engine::format_time(a),
                fledge_analyzer::engine::format_time(b)
            )
        })
        .unwrap_or_default();
    eprintln!(
        "recorded {} series ({} points){range} into {}",
        rec.metrics.len(),
        rec.point_count(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
