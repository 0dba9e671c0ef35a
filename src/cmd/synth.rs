//! `fledge synth` (hidden): writes a seeded synthetic recording, for tests and demos.
//!
//! The model and the scenarios live in `fledge_analyzer::synth`; `scripts/gen-testdata`
//! regenerates the committed recordings with this command.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use fledge_analyzer::synth::{self, Params};

/// Arguments of `fledge synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Scenario to generate (see --list).
    #[arg(long, value_name = "NAME", required_unless_present = "list")]
    pub scenario: Option<String>,
    /// Random seed; the same seed and options give byte-identical output.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Write the CSV here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Length of the recording in minutes.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub minutes: u32,
    /// Time between points, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_step)]
    pub step: i64,
    /// Timestamp of the first point (RFC 3339).
    #[arg(long, value_name = "RFC3339", default_value = "2026-01-01T00:00:00Z", value_parser = parse_start)]
    pub start: DateTime<Utc>,
    /// AR(1) coefficient of the within-cohort noise (0: independent steps).
    #[arg(long, value_name = "RHO", default_value_t = 0.0, value_parser = parse_rho)]
    pub rho: f64,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `fledge synth`.
pub fn run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        let mut out = io::stdout().lock();
        for s in synth::scenarios() {
            writeln!(out, "{:<22} {}", s.name, s.summary)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.scenario.as_deref().unwrap_or_default();
    let Some(scenario) = synth::scenario(name) else {
        bail!(
            "unknown scenario `{name}`; known: {}",
            synth::SCENARIO_NAMES.join(", ")
        );
    };
    let params = Params {
        start: args.start.timestamp_millis(),
        duration_ms: i64::from(args.minutes) * 60_000,
        step_ms: args.step,
        rho: args.rho,
        ..Params::default()
    };
    let rows = synth::generate(&scenario, &params, args.seed);
    match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            synth::write_csv(&rows, file).with_context(|| format!("writing {}", path.display()))?;
        }
        None => synth::write_csv(&rows, io::stdout().lock()).context("writing standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses a positive step such as `10s`, `500ms`, `1m` or `1h` into milliseconds.
fn parse_step(text: &str) -> Result<i64, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    match n.checked_mul(scale) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!("`{text}`: the step must be positive")),
    }
}

fn parse_start(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))
}

fn parse_rho(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r > -1.0 && r < 1.0 => Ok(r),
        _ => Err(format!(
            "`{text}`: rho must be a number strictly between -1 and 1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        assert_eq!(parse_step("10s"), Ok(10_000));
        assert_eq!(parse_step("500ms"), Ok(500));
        assert_eq!(parse_step("1m"), Ok(60_000));
        assert!(parse_step("0s").is_err());
        assert!(parse_step("10").is_err());
        assert!(parse_step("s").is_err());
    }

    #[test]
    fn rho_must_be_inside_the_unit_interval() {
        assert_eq!(parse_rho("0.9"), Ok(0.9));
        assert!(parse_rho("1").is_err());
        assert!(parse_rho("nan").is_err());
    }
}
