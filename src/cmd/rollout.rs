//! `fledge rollout --config C`: runs the config's `rollout:` in real time, moving the canary's
//! traffic weight step by step through its router and analysing at each `analysis:` step.
//! Every transition (a weight, a verdict, a hook call and its answer, a manual command) is
//! printed with the weight.
//!
//! With `--state-dir D` the progress is kept in `D/state.json` (written before every router
//! write or step change), and a rollout started again with the same directory resumes where it
//! was (including a rollout that ended but has not called its `post_rollout` hooks yet).
//! `fledge rollout promote|abort|resume --state-dir D` writes `D/command`, which the
//! running rollout picks up within half a second.
//!
//! Exit codes: 0 promoted, 4 rolled back, 3 held past the hold timeout, 1 error, 2 usage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use fledge_analyzer::engine::{Millis, format_time};
use fledge_analyzer::rollout::{
    self, Action, Driver, JsonFileStore, NoStore, Phase, RolloutStore, Transition,
};
use fledge_analyzer::{config, source};

#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 promoted, 4 rolled back, 3 held past the hold timeout, 1 error, 2 usage."
)]
pub struct RolloutArgs {
    #[command(subcommand)]
    action: Option<Gate>,
    /// Canary config (YAML) with `source:` and `rollout:` sections.
    #[arg(long, short, required = true)]
    config: Option<PathBuf>,
    /// Keep the state here (state.json) to resume, and read manual commands from here.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// A manual decision for a running rollout.
#[derive(clap::Subcommand)]
enum Gate {
    /// Accept the current hold, pause or analysis and go on.
    Promote(GateArgs),
    /// Roll back now (100% baseline).
    Abort(GateArgs),
    /// After a hold: analyse the held step again on a fresh window.
    Resume(GateArgs),
}

#[derive(clap::Args)]
struct GateArgs {
    /// The running rollout's --state-dir.
    #[arg(long)]
    state_dir: PathBuf,
}

pub fn run(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    if let Some(gate) = args.action {
        let (word, dir) = match gate {
            Gate::Promote(a) => ("promote", a.state_dir),
            Gate::Abort(a) => ("abort", a.state_dir),
            Gate::Resume(a) => ("resume", a.state_dir),
        };
        return send(&dir, word);
    }
    let Some(config_path) = args.config else {
        bail!("--config is required");
    };
    let cfg = config::load(&config_path)?;
    let Some(rollout_cfg) = cfg.rollout.clone() else {
        bail!(
            "{}: the config has no `rollout:` section",
            config_path.display()
        );
    };
    let spec = cfg
        .to_spec()
        .with_context(|| format!("{}", config_path.display()))?;
    let settle = cfg
        .source
        .as_ref()
        .map_or(0, |s| s.settle().as_millis() as Millis);
    let store: Box<dyn RolloutStore> = match &args.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Box::new(JsonFileStore::new(dir.join("state.json")))
        }
        None => Box::new(NoStore),
    };
    let previous = match &args.state_dir {
        Some(dir) => JsonFileStore::new(dir.join("state.json")).load()?,
        None => None,
    };
    let runtime = super::analyze::runtime()?;
    let state = runtime.block_on(async {
        let source = source::build(&cfg)
            .with_context(|| format!("{}: source", config_path.display()))?;
        let router = rollout::router::build(&rollout_cfg.router)
            .with_context(|| format!("{}: rollout.router", config_path.display()))?;
        let now = source::now_ms();
        let mut resumed = false;
        // An unfinished rollout resumes, and so does one that ended but has not told its
        // post_rollout hooks yet; one that is over is replaced by a new one.
        let state = match previous.filter(|s| !matches!(rollout::machine::plan(s), Action::Done(_))) {
            Some(s) => {
                resumed = true;
                println!(
                    "resuming at step {}/{} with canary weight {}",
                    s.step + 1,
                    s.steps.len(),
                    s.weight
                );
                s
            }
            None => rollout::initial_state(&cfg, now)?,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        if let Some(dir) = &args.state_dir {
            let path = dir.join("command");
            let _ = std::fs::remove_file(&path);
            tokio::spawn(rollout::poll_command_file(
                path,
                Duration::from_millis(500),
                tx.clone(),
            ));
        }
        let total = state.steps.len();
        let started = state.log.first().map_or(now, |t| t.at);
        let mut printed = if resumed { state.log.len() } else { 0 };
        let mut observer = move |t: &Transition| {
            if printed > 0 {
                printed -= 1;
                return;
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line(t, total, started));
            let _ = out.flush();
        };
        let driver = Driver {
            router: router.as_ref(),
            source: source.as_ref(),
            spec,
            settle,
            store: store.as_ref(),
            observer: &mut observer,
        };
        let run = rollout::run(driver, state, rx);
        tokio::select! {
            r = run => r.map_err(anyhow::Error::from),
            () = super::interrupted() => {
                drop(tx);
                bail!("interrupted; the router keeps its current weight (resume with the same --state-dir)")
            }
        }
    })?;
    if let Some(last) = state.analyses.last() {
        println!(
            "last analysis (step {}): {:?}: {}",
            last.step + 1,
            last.verdict,
            last.reason
        );
    }
    let (word, code) = match state.phase {
        Phase::Promoted => ("promoted", 0),
        Phase::RolledBack => ("rolled back", 4),
        Phase::HoldTimedOut => ("held past the hold timeout", 3),
        _ => ("unfinished", 1),
    };
    match &state.reason {
        Some(r) => println!("{word}: canary weight {}: {r}", state.weight),
        None => println!("{word}: canary weight {}", state.weight),
    }
    Ok(ExitCode::from(code))
}

fn line(t: &Transition, total: usize, started: Millis) -> String {
    let phase = match t.phase {
        Phase::Progressing => "progressing",
        Phase::Held => "held",
        Phase::Promoted => "promoted",
        Phase::RolledBack => "rolled back",
        Phase::HoldTimedOut => "held (timed out)",
    };
    format!(
        "{} +{:.1}s step {}/{} weight {:>3} {phase}: {}",
        format_time(t.at),
        (t.at - started) as f64 / 1000.0,
        (t.step + 1).min(total),
        total,
        t.weight,
        t.message
    )
}

fn send(dir: &Path, word: &str) -> anyhow::Result<ExitCode> {
    if !dir.join("state.json").is_file() {
        bail!(
            "{}: no rollout state here (is it the running rollout's --state-dir?)",
            dir.display()
        );
    }
    debug_assert!(rollout::parse_command(word).is_some());
    let tmp = dir.join("command.tmp");
    std::fs::write(&tmp, word).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("command"))
        .with_context(|| format!("cannot write {}", dir.join("command").display()))?;
    println!("sent {word} to the rollout in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
