//! Rollouts in the service: the SQLite-backed [`RolloutStore`], the driving task, manual
//! gates and the views the API shows.
//!
//! **Commit before act.** The driver awaits [`RolloutStore::save`] before every router write
//! or step change; here a save commits the state and the events it brings (each new
//! transition, each new step verdict) in one transaction, and only then are they notified.
//! A save of a run that has ended (cancelled) is refused, so a cancelled rollout never acts
//! again.
//!
//! **Manual commands are committed before they are accepted.** A gate (`promote`, `abort`,
//! `resume`) is checked against the committed state and stored as a `command` event holding
//! the length of the transition log it applies to. Every change of a rollout's state adds a
//! transition, so that length is a version: the command is handed to the driver only while
//! the committed log still has that length, and after a restart a command whose log has not
//! moved is handed over again, so a command is applied once. One that a transition overtook
//! before it was handed over is not applied (noted `command_superseded`); a transition in
//! the instant between the hand-over and the driver's receipt can still let it apply to the
//! next state (closing that needs the driver to check the command against its state).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use super::metrics::{Metrics, labels};
use super::notify::{Notification, Notifier};
use super::supervisor::{Supervisor, SupervisorError, blocking};
use crate::config::{self, Config};
use crate::engine::Millis;
use crate::rollout::{
    self, BoxFuture, Command, Driver, Phase, RolloutError, RolloutState, RolloutStore, RouterError,
    Step, TrafficRouter, Transition, machine,
};
use crate::source::now_ms;
use crate::store::{Event, Run, RunStatus, Store};

/// The kind name of a rollout run.
pub const ROLLOUT: &str = "rollout";
/// Event kinds of a rollout run.
pub const TRANSITION: &str = "transition";
pub const STEP_VERDICT: &str = "verdict";
pub const COMMAND: &str = "command";
/// A command that a transition overtook before it reached the driver: `{"seq": N}`.
pub const SUPERSEDED: &str = "command_superseded";

/// A manual command as committed: it applies to the state whose log has `at_log` entries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PendingCommand {
    command: Command,
    at_log: usize,
}

/// Why a gate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateRefusal {
    NotFound,
    /// The rollout has ended, or the command does not apply to it as it is.
    Conflict(String),
}

/// `promote`, `abort` or `resume`.
pub fn command_word(c: Command) -> &'static str {
    match c {
        Command::Promote => "promote",
        Command::Abort => "abort",
        Command::Resume => "resume",
    }
}

pub fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Progressing => "progressing",
        Phase::Held => "held",
        Phase::Promoted => "promoted",
        Phase::RolledBack => "rolled_back",
        Phase::HoldTimedOut => "hold_timed_out",
    }
}

/// The router type of a config (`haproxy`, `exec`, …), for metrics.
fn router_type(r: &rollout::RouterConfig) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Counts a router's errors in `fledge_router_errors_total{router=…}`.
struct CountingRouter {
    inner: Box<dyn TrafficRouter>,
    errors: prometheus_client::metrics::counter::Counter,
}

impl CountingRouter {
    fn count<T>(&self, r: Result<T, RouterError>) -> Result<T, RouterError> {
        if r.is_err() {
            self.errors.inc();
        }
        r
    }
}

impl TrafficRouter for CountingRouter {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        Box::pin(async move { self.count(self.inner.current_weight().await) })
    }
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(async move { self.count(self.inner.set_weight(canary).await) })
    }
}

/// The service's [`RolloutStore`]: the run's row and events in SQLite.
struct SqlRolloutStore {
    store: Store,
    id: String,
    name: String,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    /// (log length, terminal) of the last committed state, for the command forwarder.
    saved: watch::Sender<(usize, bool)>,
}

/// The events a state brings beyond the `counts` (transitions, step verdicts) stored.
fn new_events(state: &RolloutState, counts: &[usize]) -> Vec<(String, String)> {
    let transitions = state.log.iter().enumerate().skip(counts[0]).map(|(i, t)| {
        let mut v = serde_json::to_value(t).unwrap_or_default();
        v["index"] = json!(i);
        (TRANSITION.to_owned(), v.to_string())
    });
    let verdicts = state.analyses.iter().skip(counts[1]).map(|a| {
        (
            STEP_VERDICT.to_owned(),
            serde_json::to_string(a).unwrap_or_default(),
        )
    });
    transitions.chain(verdicts).collect()
}

impl SqlRolloutStore {
    /// Notifies (and counts) what a commit appended.
    fn report(&self, appended: &[Event]) {
        for ev in appended {
            let base = Notification {
                event: "transition",
                run_id: self.id.clone(),
                kind: ROLLOUT.to_owned(),
                name: self.name.clone(),
                ..Notification::default()
            };
            let n = match ev.kind.as_str() {
                TRANSITION => match serde_json::from_str::<Transition>(&ev.payload_json) {
                    Ok(t) => Notification {
                        phase: Some(phase_word(t.phase).to_owned()),
                        step: Some(t.step),
                        weight: Some(t.weight),
                        reason: Some(t.message),
                        ..base
                    },
                    Err(_) => continue,
                },
                STEP_VERDICT => {
                    match serde_json::from_str::<rollout::StepAnalysis>(&ev.payload_json) {
                        Ok(a) => {
                            let verdict = crate::report::verdict_word(a.verdict);
                            self.metrics
                                .verdicts
                                .get_or_create(&labels(&[("kind", "step"), ("verdict", verdict)]))
                                .inc();
                            Notification {
                                event: "step",
                                step: Some(a.step),
                                weight: Some(a.weight),
                                verdict: Some(verdict.to_owned()),
                                score: a.report.as_ref().map(|r| r.score),
                                reason: Some(a.reason),
                                ..base
                            }
                        }
                        Err(_) => continue,
                    }
                }
                _ => continue,
            };
            self.notifier.send(n);
        }
    }
}

impl RolloutStore for SqlRolloutStore {
    fn save<'a>(&'a self, state: &'a RolloutState) -> BoxFuture<'a, Result<(), RolloutError>> {
        Box::pin(async move {
            let json =
                serde_json::to_string(state).map_err(|e| RolloutError::Store(e.to_string()))?;
            let (id, snapshot) = (self.id.clone(), state.clone());
            let appended = blocking(&self.store, move |s| {
                s.commit_state(
                    &id,
                    &json,
                    now_ms(),
                    &[TRANSITION, STEP_VERDICT],
                    |counts| new_events(&snapshot, counts),
                )
            })
            .await
            .map_err(|e| RolloutError::Store(e.to_string()))?
            .ok_or_else(|| RolloutError::Store(format!("rollout {} has ended", self.id)))?;
            self.saved
                .send_replace((state.log.len(), state.phase.is_terminal()));
            self.report(&appended);
            Ok(())
        })
    }
}

/// Hands committed commands to the driver, one at a time (see the module's doc). Never ends.
async fn forward_commands(
    store: Store,
    id: String,
    wake: Arc<Notify>,
    mut saved: watch::Receiver<(usize, bool)>,
    tx: mpsc::Sender<Command>,
) {
    let mut next = 0;
    loop {
        let key = id.clone();
        let events = match blocking(&store, move |s| s.events(&key)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%id, error = %e, "cannot read the rollout's commands");
                Vec::new()
            }
        };
        let from = next;
        for ev in events.iter().filter(|e| e.kind == COMMAND && e.seq >= from) {
            next = ev.seq + 1;
            let Ok(p) = serde_json::from_str::<PendingCommand>(&ev.payload_json) else {
                tracing::warn!(%id, seq = ev.seq, "ignored an unreadable command");
                continue;
            };
            let (len, done) = *saved.borrow();
            if done || len != p.at_log {
                tracing::info!(%id, command = command_word(p.command), "command superseded by a transition");
                let (key, seq) = (id.clone(), ev.seq);
                let noted = blocking(&store, move |s| {
                    s.append_checked(&key, SUPERSEDED, now_ms(), |_| {
                        Ok::<_, ()>(json!({ "seq": seq }).to_string())
                    })
                })
                .await;
                if let Err(e) = noted {
                    tracing::warn!(%id, error = %e, "cannot note a superseded command");
                }
                continue;
            }
            tracing::info!(%id, command = command_word(p.command), "manual command");
            if tx.send(p.command).await.is_err() {
                return std::future::pending().await;
            }
            // The next command is judged against the state this one led to.
            let _ = saved.wait_for(|&(len, done)| done || len > p.at_log).await;
        }
        wake.notified().await;
    }
}

/// A short view of a rollout (list).
#[derive(Deserialize)]
struct Summary {
    step: usize,
    phase: Phase,
    weight: u32,
    steps: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

fn name_of(run: &Run) -> String {
    serde_json::from_str::<Named>(&run.config_json)
        .map(|n| n.name)
        .unwrap_or_default()
}

fn common_view(run: &Run) -> Value {
    json!({
        "id": run.id,
        "kind": run.kind,
        "name": name_of(run),
        "status": run.status,
        "error": run.error,
        "created_at": crate::engine::format_time(run.created_at),
        "updated_at": crate::engine::format_time(run.updated_at),
    })
}

/// Whether the rollout waits for a person: held, at a `pause: {}` step, or at a gate hook
/// that said no (a manual promote approves it).
fn held(state: &RolloutState) -> bool {
    state.phase == Phase::Held
        || (state.phase == Phase::Progressing
            && (state.gate.is_some()
                || matches!(
                    state.steps.get(state.step),
                    Some(Step::Pause(rollout::Pause::Manual(_)))
                )))
}

/// `{id, name, status, phase, weight, step, steps, created_at, updated_at}`.
pub fn summary_view(run: &Run) -> Value {
    let mut v = common_view(run);
    if let Some(s) = run
        .state_json
        .as_deref()
        .and_then(|s| serde_json::from_str::<Summary>(s).ok())
    {
        v["phase"] = json!(phase_word(s.phase));
        v["weight"] = json!(s.weight);
        v["step"] = json!(s.step);
        v["steps"] = json!(s.steps.len());
    }
    v
}

/// Everything about one rollout: the state's progress, every step verdict with its report,
/// and the transition log as committed (one event per transition).
pub fn full_view(run: &Run, events: &[Event]) -> Value {
    let mut v = common_view(run);
    let state: Option<RolloutState> = run
        .state_json
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    if let Some(s) = &state {
        v["phase"] = json!(phase_word(s.phase));
        v["held"] = json!(held(s));
        v["waiting_for"] = match &s.gate {
            Some(g) if s.phase == Phase::Progressing => json!({
                "hook": g.hook,
                "since": crate::engine::format_time(g.since),
            }),
            _ => Value::Null,
        };
        v["weight"] = json!(s.weight);
        v["step"] = json!(s.step);
        v["steps"] = serde_json::to_value(&s.steps).unwrap_or_default();
        v["reason"] = json!(s.reason);
        v["step_started"] = json!(crate::engine::format_time(s.step_started));
        v["analyses"] = serde_json::to_value(&s.analyses).unwrap_or_default();
    }
    let payloads = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .filter_map(|e| serde_json::from_str(&e.payload_json).ok())
            .collect()
    };
    v["log"] = Value::Array(payloads(TRANSITION));
    let superseded: Vec<i64> = payloads(SUPERSEDED)
        .iter()
        .filter_map(|p| p["seq"].as_i64())
        .collect();
    let log_len = state.as_ref().map_or(0, |s| s.log.len());
    let commands = events.iter().filter(|e| e.kind == COMMAND).filter_map(|e| {
        let p: PendingCommand = serde_json::from_str(&e.payload_json).ok()?;
        let outcome = if superseded.contains(&e.seq) {
            "superseded"
        } else if p.at_log == log_len && !run.status.is_final() {
            "pending"
        } else {
            "delivered"
        };
        Some(json!({
            "seq": e.seq,
            "at": crate::engine::format_time(e.at),
            "command": command_word(p.command),
            "at_log": p.at_log,
            "outcome": outcome,
        }))
    });
    v["commands"] = Value::Array(commands.collect());
    v
}

impl Supervisor {
    /// Commits a new rollout (pending, with its first state fixed now) and starts it.
    pub async fn create_rollout(&self, config: &Config) -> Result<String, SupervisorError> {
        let state = rollout::initial_state(config, now_ms())
            .map_err(|e| SupervisorError::Internal(e.to_string()))?;
        let state_json =
            serde_json::to_string(&state).map_err(|e| SupervisorError::Internal(e.to_string()))?;
        self.insert_and_spawn(ROLLOUT, config, "{}".to_owned(), Some(state_json))
            .await
    }

    /// Commits a manual command for rollout `id` (see the module's doc) and wakes its driver.
    pub async fn gate(
        &self,
        id: &str,
        command: Command,
    ) -> Result<Result<i64, GateRefusal>, SupervisorError> {
        let key = id.to_owned();
        let now = now_ms();
        let r = blocking(self.store(), move |s| {
            s.append_checked(&key, COMMAND, now, |run| check_gate(run, command, now))
        })
        .await?;
        Ok(match r {
            Ok(Some(seq)) => {
                if let Some(w) = self.waker(id) {
                    w.notify_one();
                }
                Ok(seq)
            }
            Ok(None) => Err(GateRefusal::NotFound),
            Err(e) => Err(e),
        })
    }

    /// Drives (or resumes) a rollout run to its end.
    pub(super) async fn drive_rollout(
        &self,
        run: Run,
        mut cancel: watch::Receiver<bool>,
        wake: Arc<Notify>,
    ) {
        let setup = (|| -> Result<(Config, RolloutState), String> {
            let value: Value = serde_json::from_str(&run.config_json).map_err(|e| e.to_string())?;
            let cfg = config::from_json_value(value).map_err(|e| e.to_string())?;
            let state = match &run.state_json {
                Some(s) => serde_json::from_str(s).map_err(|e| format!("stored state: {e}"))?,
                None => rollout::initial_state(&cfg, now_ms()).map_err(|e| e.to_string())?,
            };
            Ok((cfg, state))
        })();
        let (cfg, state) = match setup {
            Ok(x) => x,
            Err(e) => return self.fail(&run, "", e).await,
        };
        let name = cfg.name.clone();
        let built = (|| -> Result<_, String> {
            let spec = cfg.to_spec().map_err(|e| e.to_string())?;
            let source = crate::source::build(&cfg).map_err(|e| e.to_string())?;
            let rc = cfg.rollout.as_ref().ok_or("the config has no `rollout:`")?;
            let router = rollout::router::build(&rc.router).map_err(|e| e.to_string())?;
            let errors = self
                .metrics()
                .router_errors
                .get_or_create(&labels(&[("router", &router_type(&rc.router))]))
                .clone();
            Ok((
                spec,
                source,
                CountingRouter {
                    inner: router,
                    errors,
                },
            ))
        })();
        let (spec, source, router) = match built {
            Ok(x) => x,
            Err(e) => return self.fail(&run, &name, e).await,
        };
        let settle = cfg
            .source
            .as_ref()
            .map_or(0, |s| s.settle().as_millis() as Millis);
        if !self.mark_running(&run).await {
            return;
        }
        let (saved, saved_rx) = watch::channel((state.log.len(), state.phase.is_terminal()));
        let store = SqlRolloutStore {
            store: self.store().clone(),
            id: run.id.clone(),
            name: name.clone(),
            notifier: self.notifier().clone(),
            metrics: Arc::clone(self.metrics()),
            saved,
        };
        let (tx, rx) = mpsc::channel(1);
        let forward = forward_commands(self.store().clone(), run.id.clone(), wake, saved_rx, tx);
        let mut observer = |_: &Transition| {};
        let driver = Driver {
            router: &router,
            source: source.as_ref(),
            spec,
            settle,
            store: &store,
            observer: &mut observer,
        };
        let outcome = tokio::select! {
            r = rollout::run(driver, state, rx) => r,
            () = forward => return,
            _ = cancel.wait_for(|c| *c) => return, // `cancelled` is committed already
        };
        match outcome {
            Ok(state) => {
                let result = json!({
                    "phase": phase_word(state.phase),
                    "weight": state.weight,
                    "reason": state.reason,
                });
                tracing::info!(id = %run.id, phase = phase_word(state.phase), weight = state.weight, "rollout ended");
                self.finish(
                    &run,
                    &name,
                    RunStatus::Completed,
                    Some(result.to_string()),
                    None,
                )
                .await;
            }
            Err(e) => self.fail(&run, &name, e.to_string()).await,
        }
    }

    async fn fail(&self, run: &Run, name: &str, e: String) {
        tracing::warn!(id = %run.id, error = %e, "rollout failed");
        self.finish(run, name, RunStatus::Failed, None, Some(e))
            .await;
    }
}

fn check_gate(run: &Run, command: Command, now: Millis) -> Result<String, GateRefusal> {
    if run.kind != ROLLOUT {
        return Err(GateRefusal::NotFound);
    }
    let word = command_word(command);
    let state: Option<RolloutState> = run
        .state_json
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let ended = |how: String| {
        GateRefusal::Conflict(format!("cannot {word}: the rollout has ended ({how})"))
    };
    if run.status.is_final() {
        let phase = state.as_ref().map(|s| format!(", {}", phase_word(s.phase)));
        return Err(ended(format!(
            "{}{}",
            run.status.as_str(),
            phase.unwrap_or_default()
        )));
    }
    let Some(state) = state else {
        return Err(GateRefusal::Conflict(format!(
            "cannot {word}: the rollout has no state yet"
        )));
    };
    if state.phase.is_terminal() {
        return Err(ended(phase_word(state.phase).to_owned()));
    }
    let mut probe = state.clone();
    machine::apply(&mut probe, machine::Event::Command { now, command });
    if probe.log.len() == state.log.len() {
        let at = state
            .steps
            .get(state.step)
            .and_then(|s| serde_json::to_value(s).ok())
            .map_or_else(|| "the end".to_owned(), |v| v.to_string());
        return Err(GateRefusal::Conflict(format!(
            "`{word}` does not apply now: the rollout is {} at step {} of {} ({at}); promote \
             applies to a hold, a pause or a running analysis, resume to a hold or a manual pause",
            phase_word(state.phase),
            state.step + 1,
            state.steps.len()
        )));
    }
    serde_json::to_string(&PendingCommand {
        command,
        at_log: state.log.len(),
    })
    .map_err(|e| GateRefusal::Conflict(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration;
    use crate::rollout::spec::ManualPause;

    fn run_with(state: &RolloutState, status: RunStatus) -> Run {
        Run {
            id: "r".into(),
            kind: ROLLOUT.into(),
            status,
            config_json: "{\"name\":\"n\"}".into(),
            request_json: "{}".into(),
            state_json: Some(serde_json::to_string(state).unwrap()),
            result_json: None,
            error: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn gates_are_checked_against_the_committed_state() {
        let steps = vec![
            Step::SetWeight(50),
            Step::Pause(rollout::Pause::Manual(ManualPause {})),
            Step::Analysis(Duration::from_secs(5)),
        ];
        let mut s = RolloutState::new(steps, 60_000, 0);
        // At a set_weight step, nothing but abort applies.
        let r = run_with(&s, RunStatus::Running);
        assert!(
            matches!(check_gate(&r, Command::Promote, 1), Err(GateRefusal::Conflict(m)) if m.contains("does not apply"))
        );
        assert!(check_gate(&r, Command::Abort, 1).is_ok());
        machine::apply(&mut s, machine::Event::Advance { now: 1 });
        let r = run_with(&s, RunStatus::Running);
        assert!(held(&s));
        let p: PendingCommand =
            serde_json::from_str(&check_gate(&r, Command::Promote, 2).unwrap()).unwrap();
        assert_eq!((p.command, p.at_log), (Command::Promote, 2));
        // Ended: 409 with the status and phase.
        machine::apply(
            &mut s,
            machine::Event::Command {
                now: 3,
                command: Command::Abort,
            },
        );
        let r = run_with(&s, RunStatus::Completed);
        assert_eq!(
            check_gate(&r, Command::Resume, 4),
            Err(GateRefusal::Conflict(
                "cannot resume: the rollout has ended (completed, rolled_back)".into()
            ))
        );
        let mut other = r.clone();
        other.kind = "analysis".into();
        assert_eq!(
            check_gate(&other, Command::Abort, 4),
            Err(GateRefusal::NotFound)
        );
    }

    #[test]
    fn a_gate_hook_that_said_no_shows_as_waiting_and_a_promote_approves_it() {
        use crate::rollout::spec::{Hook, HookType};
        let gate = Hook {
            name: "release-approval".into(),
            kind: HookType::ConfirmPromotion,
            url: "http://127.0.0.1:9/approve".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
            metadata: Default::default(),
        };
        let mut s = RolloutState::new(vec![Step::SetWeight(50)], 60_000, 0).with_hooks(
            "n",
            vec![gate],
            5_000,
        );
        machine::apply(&mut s, machine::Event::Advance { now: 1 });
        assert_eq!(s.weight, 50);
        assert_eq!(machine::plan(&s), machine::Action::CallHook { hook: 0 });
        machine::apply(
            &mut s,
            machine::Event::Hook {
                now: 2,
                hook: "release-approval".into(),
                outcome: machine::HookOutcome {
                    ok: false,
                    detail: "answered 403 Forbidden".into(),
                },
            },
        );
        // The API shows what the rollout waits for, and that a person can decide.
        let r = run_with(&s, RunStatus::Running);
        let v = full_view(&r, &[]);
        assert_eq!(v["held"], true, "{v:#}");
        assert_eq!(v["waiting_for"]["hook"], "release-approval", "{v:#}");
        assert_eq!(v["weight"], 50);
        // A promote applies to the waiting gate and approves it; the promotion follows.
        assert!(check_gate(&r, Command::Promote, 3).is_ok());
        machine::apply(
            &mut s,
            machine::Event::Command {
                now: 3,
                command: Command::Promote,
            },
        );
        let v = full_view(&run_with(&s, RunStatus::Running), &[]);
        assert_eq!(
            (v["held"].clone(), v["waiting_for"].clone()),
            (json!(false), Value::Null)
        );
        assert_eq!(machine::plan(&s), machine::Action::Advance);
    }

    /// A rollout at a manual pause whose router is `true` (exec), in a store under `dir`.
    fn paused_rollout(dir: &std::path::Path) -> (Store, String, Config) {
        let rec = dir.join("rec.csv");
        std::fs::write(
            &rec,
            "timestamp,metric,cohort,value\n0,latency,baseline,1\n",
        )
        .unwrap();
        let cfg = config::from_json_value(json!({
            "name": "gates",
            "analysis": {"interval": "1s"},
            "metrics": [{"name": "latency", "group": "latency", "direction": "increase"}],
            "source": {"type": "recording", "path": rec, "step": "1s"},
            "rollout": {
                "router": {"type": "exec", "command": ["true"]},
                "steps": [{"set_weight": 50}, {"pause": {}}, {"set_weight": 70}, {"pause": {}}],
            },
        }))
        .unwrap();
        let mut state = rollout::initial_state(&cfg, now_ms()).unwrap();
        machine::apply(&mut state, machine::Event::Advance { now: now_ms() });
        assert!(held(&state));
        let store = Store::open(dir).unwrap();
        let run = Run {
            id: "g".into(),
            kind: ROLLOUT.into(),
            status: RunStatus::Running,
            config_json: cfg.to_json().unwrap().to_string(),
            request_json: "{}".into(),
            state_json: Some(serde_json::to_string(&state).unwrap()),
            result_json: None,
            error: None,
            created_at: 0,
            updated_at: 0,
        };
        store.insert_run(&run).unwrap();
        (store, run.id, cfg)
    }

    fn state_of(store: &Store, id: &str) -> RolloutState {
        serde_json::from_str(&store.run(id).unwrap().unwrap().state_json.unwrap()).unwrap()
    }

    /// Polls until the committed state of `id` satisfies `ok`.
    async fn until(store: &Store, id: &str, ok: impl Fn(&RolloutState) -> bool) -> RolloutState {
        for _ in 0..200 {
            let s = state_of(store, id);
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{:#?}", state_of(store, id));
    }

    #[test]
    fn a_committed_command_survives_a_crash_and_is_applied_once() {
        let dir = std::env::temp_dir().join(format!("fledge-gates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (store, id, _) = paused_rollout(&dir);
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        };
        let supervisor =
            |store: &Store| Supervisor::new(store.clone(), Arc::default(), Notifier::default());
        // The promote is committed while no driver runs (the process died right after
        // answering 202): the next start applies it.
        let rt = runtime();
        rt.block_on(async {
            let sup = supervisor(&store);
            assert_eq!(sup.gate(&id, Command::Promote).await.unwrap(), Ok(0));
            assert_eq!(sup.resume_all().await.unwrap(), 1);
            let s = until(&store, &id, |s| s.step == 3).await;
            assert_eq!(s.weight, 70);
        });
        drop(rt); // every task of that "process" is gone
        // Restarted again: the applied command is not applied a second time.
        let rt = runtime();
        rt.block_on(async {
            let sup = supervisor(&store);
            assert_eq!(sup.resume_all().await.unwrap(), 1);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let s = state_of(&store, &id);
            assert_eq!((s.step, s.weight, held(&s)), (3, 70, true), "{s:#?}");
            let promoted: Vec<&str> = s
                .log
                .iter()
                .map(|t| t.message.as_str())
                .filter(|m| m.contains("manual"))
                .collect();
            assert_eq!(promoted, ["promoted by a manual command"]);
            // A second promote goes on to the end.
            assert!(sup.gate(&id, Command::Promote).await.unwrap().is_ok());
            let s = until(&store, &id, |s| s.phase == Phase::Promoted).await;
            assert_eq!(s.weight, 100);
            for _ in 0..100 {
                if store.run(&id).unwrap().unwrap().status == RunStatus::Completed {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(
                store.run(&id).unwrap().unwrap().status,
                RunStatus::Completed
            );
            let refused = sup.gate(&id, Command::Abort).await.unwrap();
            assert!(matches!(refused, Err(GateRefusal::Conflict(m)) if m.contains("ended")));
        });
        // A command committed for a state the log has moved past is never applied, and the
        // view says so.
        let stale = serde_json::to_string(&PendingCommand {
            command: Command::Abort,
            at_log: 1,
        })
        .unwrap();
        let dir2 = dir.join("stale");
        std::fs::create_dir_all(&dir2).unwrap();
        let (store2, id2, _) = paused_rollout(&dir2);
        store2
            .append_checked(&id2, COMMAND, 1, |_| Ok::<_, ()>(stale))
            .unwrap()
            .unwrap();
        let rt = runtime();
        rt.block_on(async {
            let sup = supervisor(&store2);
            sup.resume_all().await.unwrap();
            for _ in 0..100 {
                let ev = store2.events(&id2).unwrap();
                if ev.iter().any(|e| e.kind == SUPERSEDED) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert!(sup.gate(&id2, Command::Promote).await.unwrap().is_ok());
            until(&store2, &id2, |s| s.step == 3).await;
        });
        drop(rt);
        let run2 = store2.run(&id2).unwrap().unwrap();
        let view = full_view(&run2, &store2.events(&id2).unwrap());
        let outcomes: Vec<(&str, &str)> = view["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["command"].as_str().unwrap(),
                    c["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [("abort", "superseded"), ("promote", "delivered")]
        );
        assert_eq!(
            state_of(&store2, &id2).phase,
            Phase::Progressing,
            "never aborted"
        );

        // One event per transition, in order.
        let transitions: Vec<Value> = store
            .events(&id)
            .unwrap()
            .iter()
            .filter(|e| e.kind == TRANSITION)
            .map(|e| serde_json::from_str(&e.payload_json).unwrap())
            .collect();
        let idx: Vec<u64> = transitions
            .iter()
            .map(|t| t["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            idx,
            (0..state_of(&store, &id).log.len() as u64).collect::<Vec<_>>()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_state_brings_only_the_events_not_stored_yet() {
        let mut s = RolloutState::new(vec![Step::SetWeight(10)], 1000, 0);
        machine::apply(&mut s, machine::Event::Advance { now: 1 });
        let all = new_events(&s, &[0, 0]);
        assert_eq!(all.len(), 2);
        let rest = new_events(&s, &[1, 0]);
        assert_eq!(rest.len(), 1);
        let v: Value = serde_json::from_str(&rest[0].1).unwrap();
        assert_eq!(
            (v["index"].as_u64(), v["weight"].as_u64()),
            (Some(1), Some(10))
        );
        assert!(new_events(&s, &[2, 0]).is_empty());
        assert!(new_events(&s, &[5, 3]).is_empty());
    }
}
