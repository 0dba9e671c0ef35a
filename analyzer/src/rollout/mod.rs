//! The rollout controller: turns verdicts into traffic.
//!
//! - [`spec`]: the `rollout:` config section and its expansion into steps.
//! - [`machine`]: the pure decision logic ([`plan`](machine::plan) /
//!   [`apply`](machine::apply) over a serde [`RolloutState`]).
//! - [`router`]: the [`TrafficRouter`] seam and its implementations.
//! - [`hooks`]: the HTTP calls to the config's hooks (what their answers mean is the
//!   machine's business).
//! - [`run`]: the async driver. It reads the clock, sleeps, reconciles the router, runs each
//!   `analysis:` step as a live analysis of the window since the step began, calls the hooks
//!   the machine asks for, polls the `rollback` hooks beside whatever it is doing, and listens
//!   for manual [`Command`]s on a channel.
//!
//! **Commit before act.** The driver awaits [`RolloutStore::save`] before every externally
//! visible action (a router write, a step change), so a persisted state is never behind what
//! the world saw. Starting from a persisted state first reconciles the router to the state's
//! weight and then continues from the state's step, without repeating or skipping one.

pub mod hooks;
pub mod machine;
pub mod router;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;

use fledge_judges::Verdict;
use tokio::sync::mpsc;

pub use machine::{
    Action, Command, Event, HookOutcome, Phase, RolloutState, StepAnalysis, Transition,
};
pub use router::{BoxFuture, RouterError, TrafficRouter};
pub use spec::{Hook, HookType, Pause, RolloutConfig, RouterConfig, Step};

use crate::config::Config;
use crate::engine::{AnalysisSpec, Millis};
use crate::live::{self, Mode};
use crate::source::{MetricSource, now_ms};

/// Why a rollout could not run (distinct from rolling back, which is an outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    #[error("the config has no `rollout:` section")]
    NoRollout,
    #[error("cannot save the rollout state: {0}")]
    Store(String),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("{0}")]
    Spec(String),
}

/// Where the driver persists the state before it acts.
pub trait RolloutStore: Send + Sync {
    fn save<'a>(&'a self, state: &'a RolloutState) -> BoxFuture<'a, Result<(), RolloutError>>;
}

/// Persists nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoStore;

impl RolloutStore for NoStore {
    fn save<'a>(&'a self, _: &'a RolloutState) -> BoxFuture<'a, Result<(), RolloutError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A JSON file, replaced atomically (written beside it, then renamed).
#[derive(Debug, Clone)]
pub struct JsonFileStore {
    pub path: PathBuf,
}

impl JsonFileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonFileStore { path: path.into() }
    }

    /// The persisted state, if the file exists.
    pub fn load(&self) -> Result<Option<RolloutState>, RolloutError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| RolloutError::Store(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RolloutError::Store(format!("{}: {e}", self.path.display()))),
        }
    }
}

impl RolloutStore for JsonFileStore {
    fn save<'a>(&'a self, state: &'a RolloutState) -> BoxFuture<'a, Result<(), RolloutError>> {
        Box::pin(async move {
            let text =
                serde_json::to_vec_pretty(state).map_err(|e| RolloutError::Store(e.to_string()))?;
            let tmp = self.path.with_extension("json.tmp");
            let fail =
                |e: std::io::Error| RolloutError::Store(format!("{}: {e}", self.path.display()));
            tokio::fs::write(&tmp, text).await.map_err(fail)?;
            tokio::fs::rename(&tmp, &self.path).await.map_err(fail)
        })
    }
}

/// The first state of a rollout of `config`, starting at `now`.
pub fn initial_state(config: &Config, now: Millis) -> Result<RolloutState, RolloutError> {
    let r = config.rollout.as_ref().ok_or(RolloutError::NoRollout)?;
    Ok(RolloutState::new(
        r.expand(config.analysis.interval),
        r.hold_timeout.as_millis() as Millis,
        now,
    )
    .with_hooks(
        &config.name,
        r.hooks.clone(),
        r.hook_interval.as_millis() as Millis,
    ))
}

/// What [`run`] needs besides the state.
pub struct Driver<'a> {
    pub router: &'a dyn TrafficRouter,
    pub source: &'a dyn MetricSource,
    /// The analysis spec of the config; each `analysis:` step runs it with lifetime = interval
    /// = the step's length and no warmup.
    pub spec: AnalysisSpec,
    /// The source's lag (`source.settle`).
    pub settle: Millis,
    pub store: &'a dyn RolloutStore,
    /// Sees every transition, as it is logged.
    pub observer: &'a mut (dyn FnMut(&Transition) + Send),
}

/// Runs (or resumes) the rollout in `state` to its end and returns the final state. Commands
/// arrive on `commands`; a closed channel just means no more commands.
pub async fn run(
    driver: Driver<'_>,
    mut state: RolloutState,
    mut commands: mpsc::Receiver<Command>,
) -> Result<RolloutState, RolloutError> {
    let Driver {
        router,
        source,
        spec,
        settle,
        store,
        observer,
    } = driver;
    let hooks = hooks::HookClient::new().map_err(RolloutError::Spec)?;
    let mut seen = 0;
    let mut channel_open = true;
    // The weight this driver last saw the router hold (none yet after a start or restart).
    let mut applied: Option<u32> = None;
    loop {
        publish(&state, &mut seen, observer);
        // Commit before act: the router only ever gets a weight the store has.
        store.save(&state).await?;
        match router::reconcile(router, state.weight).await {
            Ok(router::Reconciled::InSync) => applied = Some(state.weight),
            Ok(router::Reconciled::Corrected { from }) => {
                // Level-triggered: the same write serves a step change and a repair. It is a
                // repair when this driver had already brought the router to this weight.
                if applied == Some(state.weight) {
                    tracing::warn!(router = %router.describe(), from = ?from, to = state.weight, "drift: the router's weight changed behind the rollout; set it back");
                } else {
                    tracing::info!(router = %router.describe(), from = ?from, to = state.weight, "set the canary weight");
                }
                applied = Some(state.weight);
            }
            Err(e) => {
                if state.phase == Phase::RolledBack {
                    return Err(e.into());
                }
                let reason = format!("the router failed: {e}");
                machine::apply(
                    &mut state,
                    Event::Failed {
                        now: now_ms(),
                        reason,
                    },
                );
                continue;
            }
        }
        let mut work: BoxFuture<'_, Event> = match machine::plan(&state) {
            Action::Done(_) => return Ok(state),
            Action::Advance => {
                machine::apply(&mut state, Event::Advance { now: now_ms() });
                continue;
            }
            Action::Wait { until } => Box::pin(async move {
                tokio::time::sleep(millis_from_now(until)).await;
                Event::Elapsed { now: now_ms() }
            }),
            Action::CallHook { hook } => {
                let hook = state.hooks[hook].clone();
                let payload = hooks::payload(&state, &hook);
                Box::pin(hook_event(&hooks, hook, payload))
            }
            Action::Analyse { start, end } => Box::pin(analyse(
                source,
                &spec,
                settle,
                (start, end),
                (state.step, state.weight),
            )),
        };
        // The work, unless a command or a `rollback` hook comes first.
        let event = loop {
            let poll = poll_rollback_hooks(&hooks, &state);
            tokio::select! {
                e = &mut work => break Some(e),
                c = commands.recv(), if channel_open => match c {
                    Some(command) => break Some(Event::Command { now: now_ms(), command }),
                    None => channel_open = false,
                },
                answers = poll => {
                    for e in answers {
                        machine::apply(&mut state, e);
                    }
                    if state.phase.is_terminal() {
                        break None;
                    }
                    publish(&state, &mut seen, observer);
                    store.save(&state).await?;
                }
            }
        };
        if let Some(event) = event {
            machine::apply(&mut state, event);
        }
    }
}

/// Hands the log entries not seen yet to the observer and to `tracing`.
fn publish(state: &RolloutState, seen: &mut usize, observer: &mut (dyn FnMut(&Transition) + Send)) {
    for t in &state.log[*seen..] {
        tracing::info!(step = t.step, weight = t.weight, phase = ?t.phase, "{}", t.message);
        observer(t);
    }
    *seen = state.log.len();
}

/// Waits until the `rollback` hooks are due, calls them all and returns their answers; never
/// ends when there are none to poll.
fn poll_rollback_hooks<'a>(
    client: &'a hooks::HookClient,
    state: &RolloutState,
) -> impl std::future::Future<Output = Vec<Event>> + 'a {
    let due = machine::rollback_poll_due(state);
    let calls: Vec<(Hook, serde_json::Value)> = state
        .hooks
        .iter()
        .filter(|h| h.kind == HookType::Rollback)
        .map(|h| (h.clone(), hooks::payload(state, h)))
        .collect();
    async move {
        let Some(due) = due else {
            return std::future::pending().await;
        };
        tokio::time::sleep(millis_from_now(due)).await;
        let mut answers = Vec::new();
        for (hook, payload) in calls {
            answers.push(hook_event(client, hook, payload).await);
        }
        answers
    }
}

/// Calls `hook` with `payload` and reports its answer as the machine's event.
async fn hook_event(client: &hooks::HookClient, hook: Hook, payload: serde_json::Value) -> Event {
    let outcome = client.call(&hook, &payload).await;
    Event::Hook {
        now: now_ms(),
        hook: hook.name,
        outcome,
    }
}

/// Runs one `analysis:` step over `[start, end)` as a live analysis with lifetime = interval
/// = the step's length and no warmup.
async fn analyse(
    source: &dyn MetricSource,
    spec: &AnalysisSpec,
    settle: Millis,
    (start, end): (Millis, Millis),
    (step, weight): (usize, u32),
) -> Event {
    let mut step_spec = spec.clone();
    let len = end - start;
    step_spec.lifetime = len;
    step_spec.interval = len;
    step_spec.warmup = 0;
    step_spec.lookback = 0;
    let r = live::analyze(
        source,
        Arc::new(step_spec),
        Mode::RealTime { start: Some(start) },
        settle,
        |_| {},
        std::future::pending::<()>(),
    )
    .await;
    let now = now_ms();
    let analysis = match r {
        Ok(run) => StepAnalysis {
            step,
            weight,
            verdict: run.report.verdict,
            reason: run.report.reason.clone(),
            report: Some(run.report),
        },
        // A source that cannot be read holds (missing data never promotes).
        Err(e) => StepAnalysis {
            step,
            weight,
            verdict: Verdict::Hold,
            reason: format!("the analysis could not run: {e}"),
            report: None,
        },
    };
    Event::Verdict { now, analysis }
}

fn millis_from_now(t: Millis) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))
}

/// Polls `path` every `every` for a command file (`promote`, `abort` or `resume`), removes it
/// and sends the command; ends when the receiver is gone. This is how `fledge rollout
/// promote|abort|resume --state-dir D` reaches a running rollout.
pub async fn poll_command_file(
    path: PathBuf,
    every: std::time::Duration,
    tx: mpsc::Sender<Command>,
) {
    loop {
        if let Ok(text) = tokio::fs::read_to_string(&path).await {
            let _ = tokio::fs::remove_file(&path).await;
            match parse_command(&text) {
                Some(c) => {
                    tracing::info!(command = ?c, "manual command");
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
                None => {
                    tracing::warn!(file = %path.display(), "ignored an unknown command {text:?}")
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// `promote`, `abort` or `resume` (surrounding space ignored).
pub fn parse_command(text: &str) -> Option<Command> {
    match text.trim() {
        "promote" => Some(Command::Promote),
        "abort" => Some(Command::Abort),
        "resume" => Some(Command::Resume),
        _ => None,
    }
}
