//! `fledge config`: check a canary config, or import one from Kayenta.
//!
//! - `fledge config check FILE`: loads and validates FILE (YAML, or JSON); prints
//!   `ok: FILE: N metrics in M groups` and exits 0, or fails with every problem, one per line
//!   as `FILE:LINE: field.path: message`.
//! - `fledge config import-kayenta FILE [--out OUT]`: converts a Kayenta canary config (JSON)
//!   and writes the YAML to stdout or OUT; what could not be carried goes to stderr as
//!   `warning: …` lines (and into the YAML's comment header).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fledge_analyzer::config;

/// Subcommands of `fledge config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Validate a canary config and report every problem with its line.
    Check {
        /// The config (YAML or JSON).
        file: PathBuf,
    },
    /// Convert a Kayenta canary config (JSON) to a fledge config (YAML).
    ImportKayenta {
        /// The Kayenta canary config.
        file: PathBuf,
        /// Write the YAML here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check { file } => {
            let cfg = config::load(&file)?;
            println!(
                "ok: {}: {} {} in {} {}",
                file.display(),
                cfg.metrics.len(),
                plural(cfg.metrics.len(), "metric"),
                cfg.groups.len(),
                plural(cfg.groups.len(), "group"),
            );
        }
        ConfigCmd::ImportKayenta { file, out } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let imported = config::import_kayenta(&text, &file.display().to_string())?;
            for warning in &imported.warnings {
                eprintln!("warning: {warning}");
            }
            match out {
                Some(path) => std::fs::write(&path, &imported.yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{}", imported.yaml),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}
