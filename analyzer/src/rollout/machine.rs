//! The rollout's decision logic: a pure state machine. [`plan`] says what the driver must do
//! next for a [`RolloutState`]; [`apply`] folds what happened (an [`Event`]) into the state.
//! No I/O, no clock: time comes in with the events, so every path is unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use fledge_judges::Verdict;

use super::spec::{Hook, HookType, Pause, Step};
use crate::engine::Millis;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Working through the steps.
    Progressing,
    /// An analysis held (or `pause: {}`): waiting for a manual promote, resume or abort.
    Held,
    /// Done: 100% canary.
    Promoted,
    /// Done: 100% baseline.
    RolledBack,
    /// Done: held past `hold_timeout`, at the weight of the hold.
    HoldTimedOut,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Promoted | Phase::RolledBack | Phase::HoldTimedOut
        )
    }
}

/// A person's decision, from the CLI or the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Accept the current step (a hold, a pause or a running analysis) and go on.
    Promote,
    /// Roll back now.
    Abort,
    /// After a hold: run the held analysis step again, on a fresh window.
    Resume,
}

/// The outcome of one analysis step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAnalysis {
    pub step: usize,
    pub weight: u32,
    pub verdict: Verdict,
    pub reason: String,
    /// The full report (numbers behind the verdict), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::engine::AnalysisReport>,
}

/// One entry of the transition log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Millis,
    /// Index of the step the rollout is at after the transition.
    pub step: usize,
    pub weight: u32,
    pub phase: Phase,
    pub message: String,
}

/// Everything about a rollout's progress: persisting it is enough to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The expanded steps (kept so a resumed rollout runs the same plan).
    pub steps: Vec<Step>,
    /// Index of the current step; `steps.len()` means all steps are done.
    pub step: usize,
    pub phase: Phase,
    /// The canary weight the router must have.
    pub weight: u32,
    /// When the current step began.
    pub step_started: Millis,
    /// When the current hold began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<Millis>,
    pub hold_timeout: Millis,
    /// Why the rollout ended (rollback or hold), when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub analyses: Vec<StepAnalysis>,
    pub log: Vec<Transition>,
    /// The config's name, sent to the hooks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The config's hooks (kept so a resumed rollout calls the same ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// How long before a gate that said no is asked again, and between rollback polls.
    #[serde(default = "default_hook_interval")]
    pub hook_interval: Millis,
    /// Hooks that have had their say: gates that approved, `pre_rollout` hooks that passed,
    /// `post_rollout` hooks that were called. None of them is called again, after a restart
    /// either.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub hooks_done: BTreeSet<String>,
    /// A gate that said no, while the rollout waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateWait>,
    /// When the `rollback` hooks are polled next (`None`: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_poll_at: Option<Millis>,
    /// Each `rollback` hook's last answer: a poll is logged when its answer changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollback_answers: BTreeMap<String, String>,
}

fn default_hook_interval() -> Millis {
    super::spec::default_hook_interval().as_millis() as Millis
}

/// A gate hook that did not approve yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateWait {
    /// The hook's name.
    pub hook: String,
    /// When it first said no: the wait is bounded by `hold_timeout` from here.
    pub since: Millis,
    /// When to ask it again (`None`: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_at: Option<Millis>,
}

/// What a hook call came to, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookOutcome {
    /// A 2xx answer.
    pub ok: bool,
    /// `answered 200 OK`, `answered 503 Service Unavailable after 3 attempts`, ….
    pub detail: String,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Apply [`Event::Advance`] now (a `set_weight` step, or the final promotion).
    Advance,
    /// Judge the canary window `[start, end)` and report [`Event::Verdict`].
    Analyse { start: Millis, end: Millis },
    /// Wait until `until` ([`Event::Elapsed`]) or a [`Command`]; `None` waits for a command.
    Wait { until: Millis },
    /// Call `state.hooks[hook]` and report [`Event::Hook`].
    CallHook { hook: usize },
    /// The rollout is over.
    Done(Phase),
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Advance {
        now: Millis,
    },
    Verdict {
        now: Millis,
        analysis: StepAnalysis,
    },
    Elapsed {
        now: Millis,
    },
    Command {
        now: Millis,
        command: Command,
    },
    /// The driver cannot go on (router or source broken): roll back.
    Failed {
        now: Millis,
        reason: String,
    },
    /// The hook of that name answered.
    Hook {
        now: Millis,
        hook: String,
        outcome: HookOutcome,
    },
}

impl RolloutState {
    /// A new rollout at weight 0, starting at `now`.
    pub fn new(steps: Vec<Step>, hold_timeout: Millis, now: Millis) -> Self {
        let mut s = RolloutState {
            steps,
            step: 0,
            phase: Phase::Progressing,
            weight: 0,
            step_started: now,
            held_since: None,
            hold_timeout,
            reason: None,
            analyses: Vec::new(),
            log: Vec::new(),
            name: String::new(),
            hooks: Vec::new(),
            hook_interval: default_hook_interval(),
            hooks_done: BTreeSet::new(),
            gate: None,
            rollback_poll_at: None,
            rollback_answers: BTreeMap::new(),
        };
        s.note(now, "rollout started".to_owned());
        s
    }

    /// The same rollout, named `name` (for the hooks), with these hooks, asking a gate again
    /// and polling the rollback hooks every `interval`.
    pub fn with_hooks(mut self, name: &str, hooks: Vec<Hook>, interval: Millis) -> Self {
        self.name = name.to_owned();
        self.hooks = hooks;
        self.hook_interval = interval.max(1);
        self
    }

    fn note(&mut self, at: Millis, message: String) {
        self.log.push(Transition {
            at,
            step: self.step,
            weight: self.weight,
            phase: self.phase,
            message,
        });
    }

    fn next_step(&mut self, now: Millis, message: String) {
        self.step += 1;
        self.step_started = now;
        self.held_since = None;
        self.note(now, message);
    }

    fn roll_back(&mut self, now: Millis, reason: String) {
        self.phase = Phase::RolledBack;
        self.weight = 0;
        self.held_since = None;
        self.note(now, reason.clone());
        self.reason = Some(reason);
    }

    fn hold(&mut self, now: Millis, why: String) {
        self.phase = Phase::Held;
        self.held_since = Some(now);
        self.note(now, why.clone());
        self.reason = Some(why);
    }
}

/// The hook that must answer before the rollout goes on, if any: `confirm_rollout` then
/// `pre_rollout` hooks before the first step, `confirm_promotion` hooks before the canary
/// gets 100% (a `set_weight: 100` step, or the promotion after the last step).
fn pending_hook(state: &RolloutState) -> Option<usize> {
    if state.phase != Phase::Progressing {
        return None;
    }
    let promotes_next = state.weight < 100
        && match state.steps.get(state.step) {
            None => true,
            Some(Step::SetWeight(w)) => *w >= 100,
            _ => false,
        };
    let mut kinds = Vec::new();
    if state.step == 0 {
        kinds.extend([HookType::ConfirmRollout, HookType::PreRollout]);
    }
    if promotes_next {
        kinds.push(HookType::ConfirmPromotion);
    }
    kinds.into_iter().find_map(|kind| next_hook(state, kind))
}

/// The first hook of `kind` that has not had its say.
fn next_hook(state: &RolloutState, kind: HookType) -> Option<usize> {
    state
        .hooks
        .iter()
        .position(|h| h.kind == kind && !state.hooks_done.contains(&h.name))
}

/// When the `rollback` hooks are due to be polled, while the rollout runs and has any; the
/// driver polls them beside whatever else it is doing and reports each as [`Event::Hook`].
pub fn rollback_poll_due(state: &RolloutState) -> Option<Millis> {
    let any = state.hooks.iter().any(|h| h.kind == HookType::Rollback);
    (any && !state.phase.is_terminal()).then(|| state.rollback_poll_at.unwrap_or(0))
}

/// The next thing to do in `state`.
pub fn plan(state: &RolloutState) -> Action {
    if let Some(i) = pending_hook(state) {
        let hook = &state.hooks[i];
        return match &state.gate {
            Some(GateWait {
                hook: name,
                since,
                ask_at: Some(at),
            }) if *name == hook.name => Action::Wait {
                until: (*at).min(since + state.hold_timeout),
            },
            _ => Action::CallHook { hook: i },
        };
    }
    match state.phase {
        p if p.is_terminal() => match next_hook(state, HookType::PostRollout) {
            Some(i) => Action::CallHook { hook: i },
            None => Action::Done(p),
        },
        Phase::Held => Action::Wait {
            until: state.held_since.unwrap_or(state.step_started) + state.hold_timeout,
        },
        _ => match state.steps.get(state.step) {
            None | Some(Step::SetWeight(_)) => Action::Advance,
            Some(Step::Analysis(d)) => Action::Analyse {
                start: state.step_started,
                end: state.step_started + d.as_millis() as Millis,
            },
            Some(Step::Pause(Pause::For(d))) => Action::Wait {
                until: state.step_started + d.as_millis() as Millis,
            },
            // A manual pause is a hold that begins with the step.
            Some(Step::Pause(Pause::Manual(_))) => Action::Wait {
                until: state.step_started + state.hold_timeout,
            },
        },
    }
}

/// Folds `event` into `state`. Events that do not fit the state (a stale timer, a resume
/// while progressing) change nothing, so replaying one is harmless.
pub fn apply(state: &mut RolloutState, event: Event) {
    if state.phase.is_terminal() {
        if let Event::Hook { now, hook, outcome } = event {
            post_rollout_answered(state, now, &hook, &outcome);
        }
        return;
    }
    let step = state.steps.get(state.step).cloned();
    let pending = pending_hook(state).map(|i| state.hooks[i].clone());
    match event {
        Event::Hook { now, hook, outcome } => hook_answered(state, now, &hook, &outcome),
        // Nothing moves on while a hook must answer first.
        Event::Advance { .. }
        | Event::Verdict { .. }
        | Event::Command {
            command: Command::Resume,
            ..
        } if pending.is_some() => {}
        Event::Elapsed { now } if pending.is_some() => {
            if let (Some(hook), Some(gate)) = (&pending, state.gate.as_mut()) {
                if now >= gate.since + state.hold_timeout {
                    let what = describe(hook);
                    state.phase = Phase::HoldTimedOut;
                    state.reason = Some(format!(
                        "{what} did not approve within the hold timeout ({})",
                        crate::config::Duration::from_millis(state.hold_timeout.max(0) as u64)
                    ));
                    state.note(now, format!("{what}: no approval within the hold timeout"));
                } else if gate.ask_at.is_some_and(|t| now >= t) {
                    gate.ask_at = None;
                }
            }
        }
        // A manual promote approves a waiting gate (and does not skip a `pre_rollout` check).
        Event::Command {
            now,
            command: Command::Promote,
        } if pending.is_some() => {
            if let Some(hook) = pending.filter(|h| h.kind.is_gate()) {
                state.hooks_done.insert(hook.name.clone());
                state.gate = None;
                state.step_started = now;
                state.note(
                    now,
                    format!("{}: approved by a manual command", describe(&hook)),
                );
            }
        }
        Event::Failed { now, reason } => state.roll_back(now, reason),
        Event::Command {
            now,
            command: Command::Abort,
        } => state.roll_back(now, "aborted by a manual command".to_owned()),
        Event::Advance { now } => match step {
            None => {
                state.phase = Phase::Promoted;
                state.weight = 100;
                state.reason = None;
                state.note(now, "promoted: all steps passed".to_owned());
            }
            Some(Step::SetWeight(w)) if state.phase == Phase::Progressing => {
                state.weight = w.min(100);
                state.next_step(now, format!("set canary weight {w}"));
            }
            _ => {}
        },
        Event::Verdict { now, analysis } => {
            if !matches!(step, Some(Step::Analysis(_))) || state.phase != Phase::Progressing {
                return;
            }
            let verdict = analysis.verdict;
            let reason = analysis.reason.clone();
            state.analyses.push(analysis);
            match verdict {
                Verdict::Promote => state.next_step(now, format!("analysis passed: {reason}")),
                Verdict::Abort => state.roll_back(now, format!("analysis aborted: {reason}")),
                Verdict::Hold => state.hold(now, format!("analysis held: {reason}")),
            }
        }
        Event::Elapsed { now } => match (state.phase, step) {
            (Phase::Held, _) => {
                let since = state.held_since.unwrap_or(state.step_started);
                if now >= since + state.hold_timeout {
                    state.phase = Phase::HoldTimedOut;
                    state.note(now, "no manual decision within the hold timeout".to_owned());
                }
            }
            (Phase::Progressing, Some(Step::Pause(Pause::For(d))))
                if now >= state.step_started + d.as_millis() as Millis =>
            {
                state.next_step(now, format!("pause of {d} over"));
            }
            (Phase::Progressing, Some(Step::Pause(Pause::Manual(_))))
                if now >= state.step_started + state.hold_timeout =>
            {
                state.phase = Phase::HoldTimedOut;
                state.reason = Some("paused for a manual promote that did not come".into());
                state.note(now, "no manual promote within the hold timeout".to_owned());
            }
            _ => {}
        },
        Event::Command {
            now,
            command: Command::Promote,
        } => match (state.phase, step) {
            (_, None) | (Phase::Progressing, Some(Step::SetWeight(_))) => {}
            _ => {
                state.phase = Phase::Progressing;
                state.reason = None;
                state.next_step(now, "promoted by a manual command".to_owned());
            }
        },
        Event::Command {
            now,
            command: Command::Resume,
        } => match (state.phase, step) {
            (Phase::Held, Some(Step::Analysis(_))) => {
                state.phase = Phase::Progressing;
                state.held_since = None;
                state.reason = None;
                state.step_started = now;
                state.note(now, "resumed: analysing this step again".to_owned());
            }
            (Phase::Held, _) | (Phase::Progressing, Some(Step::Pause(Pause::Manual(_)))) => {
                state.phase = Phase::Progressing;
                state.reason = None;
                state.next_step(now, "resumed by a manual command".to_owned());
            }
            _ => {}
        },
    }
}

/// `confirm_promotion hook `gate``.
fn describe(hook: &Hook) -> String {
    format!("{} hook `{}`", hook.kind, hook.name)
}

fn hook_answered(state: &mut RolloutState, now: Millis, name: &str, outcome: &HookOutcome) {
    let Some(i) = state.hooks.iter().position(|h| h.name == name) else {
        return;
    };
    let hook = state.hooks[i].clone();
    let what = describe(&hook);
    let every = crate::config::Duration::from_millis(state.hook_interval.max(0) as u64);
    let detail = &outcome.detail;
    match hook.kind {
        // An answer the rollout is not waiting for (a replayed event) changes nothing.
        _ if hook.kind != HookType::Rollback && pending_hook(state) != Some(i) => {}
        HookType::ConfirmRollout | HookType::ConfirmPromotion if outcome.ok => {
            state.hooks_done.insert(hook.name);
            state.gate = None;
            state.step_started = now;
            state.note(now, format!("{what} approved: {detail}"));
        }
        HookType::ConfirmRollout | HookType::ConfirmPromotion => {
            let since = match &state.gate {
                Some(g) if g.hook == hook.name => g.since,
                _ => now,
            };
            state.gate = Some(GateWait {
                hook: hook.name,
                since,
                ask_at: Some(now + state.hook_interval),
            });
            state.note(
                now,
                format!("{what} did not approve: {detail}; asking again in {every}"),
            );
        }
        HookType::PreRollout if outcome.ok => {
            state.hooks_done.insert(hook.name);
            state.step_started = now;
            state.note(now, format!("{what} passed: {detail}"));
        }
        HookType::PreRollout => state.roll_back(now, format!("{what} failed: {detail}")),
        HookType::Rollback if outcome.ok => {
            state.roll_back(now, format!("{what} asked for a rollback: {detail}"));
        }
        HookType::Rollback => {
            state.rollback_poll_at = Some(now + state.hook_interval);
            if state.rollback_answers.get(&hook.name) != Some(detail) {
                state.rollback_answers.insert(hook.name, detail.clone());
                state.note(
                    now,
                    format!("{what}: no rollback asked ({detail}); polling every {every}"),
                );
            }
        }
        // Only called once the rollout has ended.
        HookType::PostRollout => {}
    }
}

fn post_rollout_answered(state: &mut RolloutState, now: Millis, name: &str, outcome: &HookOutcome) {
    let Some(hook) = state.hooks.iter().find(|h| h.name == name).cloned() else {
        return;
    };
    if hook.kind != HookType::PostRollout || !state.hooks_done.insert(hook.name.clone()) {
        return;
    }
    let word = if outcome.ok {
        "called"
    } else {
        "failed (only recorded)"
    };
    state.note(
        now,
        format!("{} {word}: {}", describe(&hook), outcome.detail),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration;
    use crate::rollout::spec::ManualPause;

    const S: Millis = 1000;

    fn steps() -> Vec<Step> {
        vec![
            Step::SetWeight(20),
            Step::Analysis(Duration::from_secs(10)),
            Step::SetWeight(60),
            Step::Pause(Pause::For(Duration::from_secs(30))),
            Step::Analysis(Duration::from_secs(10)),
            Step::SetWeight(100),
        ]
    }

    fn verdict(state: &RolloutState, now: Millis, v: Verdict) -> Event {
        Event::Verdict {
            now,
            analysis: StepAnalysis {
                step: state.step,
                weight: state.weight,
                verdict: v,
                reason: format!("{v:?}"),
                report: None,
            },
        }
    }

    /// Drives `state` with the given verdict for every analysis, no commands.
    fn run(state: &mut RolloutState, v: Verdict) -> Vec<(Action, u32)> {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let a = plan(state);
            seen.push((a.clone(), state.weight));
            match a {
                Action::Done(_) => break,
                Action::Advance => apply(state, Event::Advance { now: 0 }),
                Action::Analyse { end, .. } => {
                    let e = verdict(state, end, v);
                    apply(state, e)
                }
                Action::Wait { until } => apply(state, Event::Elapsed { now: until }),
                Action::CallHook { .. } => unreachable!("no hooks here"),
            }
        }
        seen
    }

    #[test]
    fn all_passing_walks_every_step_and_promotes_at_100() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        let seen = run(&mut s, Verdict::Promote);
        assert_eq!(s.phase, Phase::Promoted);
        assert_eq!(s.weight, 100);
        assert_eq!(s.analyses.len(), 2);
        let weights: Vec<u32> = s.log.iter().map(|t| t.weight).collect();
        assert_eq!(weights, [0, 20, 20, 60, 60, 60, 100, 100]);
        // The first analysis judges the 10 s since its step began (right after set_weight).
        assert!(seen.contains(&(
            Action::Analyse {
                start: 0,
                end: 10 * S
            },
            20
        )));
        assert_eq!(seen.last().unwrap().0, Action::Done(Phase::Promoted));
    }

    #[test]
    fn an_abort_routes_everything_to_the_baseline_with_the_reason() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        run(&mut s, Verdict::Abort);
        assert_eq!(s.phase, Phase::RolledBack);
        assert_eq!(s.weight, 0);
        assert_eq!(s.step, 1, "stopped at the first analysis");
        assert!(s.reason.as_deref().unwrap().contains("Abort"));
    }

    #[test]
    fn a_hold_waits_at_its_weight_then_times_out() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        run(&mut s, Verdict::Hold);
        assert_eq!(s.phase, Phase::HoldTimedOut);
        assert_eq!(s.weight, 20, "stays at the weight of the hold");
        assert_eq!(s.log.last().unwrap().at, 10 * S + 60 * S);
    }

    #[test]
    fn a_stale_timer_does_not_end_a_hold_early() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        apply(&mut s, Event::Advance { now: 0 });
        let e = verdict(&s, 10 * S, Verdict::Hold);
        apply(&mut s, e);
        apply(&mut s, Event::Elapsed { now: 20 * S });
        assert_eq!(s.phase, Phase::Held);
        assert_eq!(plan(&s), Action::Wait { until: 70 * S });
    }

    #[test]
    fn promote_on_hold_goes_on_and_resume_reanalyses_the_step() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        apply(&mut s, Event::Advance { now: 0 });
        let e = verdict(&s, 10 * S, Verdict::Hold);
        apply(&mut s, e);
        let resume = Event::Command {
            now: 15 * S,
            command: Command::Resume,
        };
        apply(&mut s, resume);
        assert_eq!(s.phase, Phase::Progressing);
        assert_eq!(
            plan(&s),
            Action::Analyse {
                start: 15 * S,
                end: 25 * S
            }
        );
        let e = verdict(&s, 25 * S, Verdict::Hold);
        apply(&mut s, e);
        apply(
            &mut s,
            Event::Command {
                now: 30 * S,
                command: Command::Promote,
            },
        );
        assert_eq!((s.phase, s.step), (Phase::Progressing, 2));
        assert_eq!(plan(&s), Action::Advance);
    }

    #[test]
    fn a_manual_pause_waits_for_promote_and_abort_rolls_back_anywhere() {
        let steps = vec![
            Step::SetWeight(50),
            Step::Pause(Pause::Manual(ManualPause {})),
            Step::SetWeight(100),
        ];
        let mut s = RolloutState::new(steps.clone(), 60 * S, 0);
        apply(&mut s, Event::Advance { now: 0 });
        assert_eq!(plan(&s), Action::Wait { until: 60 * S });
        apply(&mut s, Event::Elapsed { now: 30 * S });
        assert_eq!(s.step, 1, "a manual pause does not end by itself");
        apply(
            &mut s,
            Event::Command {
                now: 31 * S,
                command: Command::Promote,
            },
        );
        assert_eq!(s.step, 2);

        let mut s = RolloutState::new(steps, 60 * S, 0);
        apply(&mut s, Event::Advance { now: 0 });
        apply(
            &mut s,
            Event::Command {
                now: 5 * S,
                command: Command::Abort,
            },
        );
        assert_eq!((s.phase, s.weight), (Phase::RolledBack, 0));
        // Terminal: nothing changes it any more.
        apply(
            &mut s,
            Event::Command {
                now: 6 * S,
                command: Command::Promote,
            },
        );
        assert_eq!(plan(&s), Action::Done(Phase::RolledBack));
    }

    #[test]
    fn a_state_round_trips_through_json_and_resumes_at_the_same_step() {
        let mut s = RolloutState::new(steps(), 60 * S, 0);
        apply(&mut s, Event::Advance { now: 0 });
        let e = verdict(&s, 10 * S, Verdict::Promote);
        apply(&mut s, e);
        apply(&mut s, Event::Advance { now: 10 * S });
        let json = serde_json::to_string(&s).unwrap();
        let back: RolloutState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(plan(&back), Action::Wait { until: 40 * S });
        assert_eq!(back.weight, 60);
    }
}

#[cfg(test)]
mod hook_tests {
    use super::*;
    use crate::config::Duration;

    const S: Millis = 1000;

    fn hook(name: &str, kind: HookType) -> Hook {
        Hook {
            name: name.to_owned(),
            kind,
            url: format!("http://127.0.0.1:9/{name}"),
            timeout: Duration::from_secs(1),
            retries: 0,
            metadata: BTreeMap::new(),
        }
    }

    fn state(hooks: Vec<Hook>) -> RolloutState {
        let steps = vec![
            Step::SetWeight(20),
            Step::Analysis(Duration::from_secs(10)),
            Step::SetWeight(60),
            Step::Analysis(Duration::from_secs(10)),
        ];
        RolloutState::new(steps, 60 * S, 0).with_hooks("shop", hooks, 5 * S)
    }

    fn answer(now: Millis, hook: &str, ok: bool) -> Event {
        Event::Hook {
            now,
            hook: hook.to_owned(),
            outcome: HookOutcome {
                ok,
                detail: if ok {
                    "answered 200 OK"
                } else {
                    "answered 403 Forbidden"
                }
                .to_owned(),
            },
        }
    }

    /// Runs `state` to its end on a simulated clock: every analysis promotes, each hook call
    /// is answered by `ok(name, now)`, and the rollback hooks are polled when due. Returns
    /// the calls made, as (name, time).
    fn drive(
        state: &mut RolloutState,
        mut ok: impl FnMut(&str, Millis) -> bool,
    ) -> Vec<(String, Millis)> {
        let mut now = 0;
        let mut calls = Vec::new();
        for _ in 0..1000 {
            if let Some(due) = rollback_poll_due(state)
                && due <= now
            {
                for h in state.hooks.clone() {
                    if h.kind == HookType::Rollback {
                        calls.push((h.name.clone(), now));
                        let e = answer(now, &h.name, ok(&h.name, now));
                        apply(state, e);
                    }
                }
                continue;
            }
            match plan(state) {
                Action::Done(_) => return calls,
                Action::Advance => apply(state, Event::Advance { now }),
                Action::CallHook { hook } => {
                    let name = state.hooks[hook].name.clone();
                    calls.push((name.clone(), now));
                    let e = answer(now, &name, ok(&name, now));
                    apply(state, e);
                    now += S / 10;
                }
                Action::Wait { until } => {
                    // A rollback poll may come first.
                    now = match rollback_poll_due(state) {
                        Some(due) => until.min(due.max(now)),
                        None => until,
                    };
                    apply(state, Event::Elapsed { now });
                }
                Action::Analyse { start, end } => {
                    assert!(start >= 0);
                    while let Some(due) = rollback_poll_due(state).filter(|d| *d < end) {
                        now = due.max(now);
                        for h in state.hooks.clone() {
                            if h.kind == HookType::Rollback {
                                calls.push((h.name.clone(), now));
                                let e = answer(now, &h.name, ok(&h.name, now));
                                apply(state, e);
                            }
                        }
                        if state.phase.is_terminal() {
                            break;
                        }
                    }
                    if state.phase.is_terminal() {
                        continue;
                    }
                    now = end;
                    let analysis = StepAnalysis {
                        step: state.step,
                        weight: state.weight,
                        verdict: Verdict::Promote,
                        reason: "fine".into(),
                        report: None,
                    };
                    apply(state, Event::Verdict { now, analysis });
                }
            }
        }
        panic!("the rollout did not end: {state:#?}");
    }

    fn names(calls: &[(String, Millis)], name: &str) -> Vec<Millis> {
        calls
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .collect()
    }

    #[test]
    fn gates_and_pre_rollout_come_before_the_first_weight_and_post_rollout_after_the_end() {
        let mut s = state(vec![
            hook("go", HookType::ConfirmRollout),
            hook("smoke", HookType::PreRollout),
            hook("approve", HookType::ConfirmPromotion),
            hook("done", HookType::PostRollout),
        ]);
        // `go` says no twice, `approve` three times.
        let calls = drive(&mut s, |name, _| !matches!(name, "go" | "approve"));
        // Nobody approved: the gate at the start times out, nothing else is called but the
        // post_rollout hook.
        assert_eq!(s.phase, Phase::HoldTimedOut);
        assert_eq!(s.weight, 0);
        let go = names(&calls, "go");
        assert_eq!(go.first(), Some(&0));
        assert!(go.windows(2).all(|w| w[1] - w[0] == 5 * S), "{go:?}");
        assert_eq!(*go.last().unwrap(), 55 * S, "asked until the hold timeout");
        assert!(names(&calls, "smoke").is_empty());
        assert_eq!(names(&calls, "done").len(), 1);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .contains("confirm_rollout hook `go`")
        );

        let mut s = state(vec![
            hook("go", HookType::ConfirmRollout),
            hook("smoke", HookType::PreRollout),
            hook("approve", HookType::ConfirmPromotion),
            hook("done", HookType::PostRollout),
        ]);
        let mut approve_asked = 0;
        let calls = drive(&mut s, |name, now| match name {
            "go" => now >= 10 * S,
            "approve" => {
                approve_asked += 1;
                approve_asked > 3
            }
            _ => true,
        });
        assert_eq!(s.phase, Phase::Promoted);
        assert_eq!(s.weight, 100);
        assert_eq!(names(&calls, "go"), [0, 5 * S, 10 * S]);
        assert_eq!(
            names(&calls, "smoke").len(),
            1,
            "pre_rollout is called once"
        );
        assert_eq!(names(&calls, "approve").len(), 4);
        assert_eq!(
            names(&calls, "done").len(),
            1,
            "post_rollout is called once"
        );
        // The order of events: the gate, the check, the first weight; the promotion gate
        // after the last analysis and before 100%; the notification at the end.
        let order: Vec<&str> = s
            .log
            .iter()
            .map(|t| t.message.as_str())
            .filter(|m| {
                m.contains("hook") || m.starts_with("set canary") || m.starts_with("promoted")
            })
            .collect();
        let first = |needle: &str| order.iter().position(|m| m.contains(needle)).unwrap();
        assert!(first("`go` approved") < first("`smoke` passed"));
        assert!(first("`smoke` passed") < first("set canary weight 20"));
        assert!(first("set canary weight 60") < first("`approve` did not approve"));
        assert!(first("`approve` approved") < first("promoted: all steps passed"));
        assert!(first("promoted: all steps passed") < first("`done` called"));
        // The first analysis window starts when the weight was set, after the gates.
        assert!(s.analyses.len() == 2);
        let set20 = s
            .log
            .iter()
            .find(|t| t.message == "set canary weight 20")
            .unwrap();
        assert!(set20.at >= 10 * S);
        assert_eq!(
            s.log
                .iter()
                .filter(|t| t.message.contains("did not approve"))
                .count(),
            5
        );
    }

    #[test]
    fn a_failing_pre_rollout_rolls_back_naming_the_hook() {
        let mut s = state(vec![
            hook("smoke", HookType::PreRollout),
            hook("done", HookType::PostRollout),
        ]);
        let calls = drive(&mut s, |name, _| name != "smoke");
        assert_eq!((s.phase, s.weight), (Phase::RolledBack, 0));
        assert_eq!(
            s.reason.as_deref(),
            Some("pre_rollout hook `smoke` failed: answered 403 Forbidden")
        );
        assert!(s.analyses.is_empty(), "no traffic was shifted");
        assert_eq!(names(&calls, "done").len(), 1);
    }

    #[test]
    fn a_confirm_promotion_gate_times_out_at_the_last_weight() {
        let mut s = state(vec![hook("approve", HookType::ConfirmPromotion)]);
        drive(&mut s, |_, _| false);
        assert_eq!((s.phase, s.weight), (Phase::HoldTimedOut, 60));
        assert_eq!(s.analyses.len(), 2);
        assert!(
            s.reason.as_deref().unwrap().contains(
                "confirm_promotion hook `approve` did not approve within the hold timeout (1m)"
            ),
            "{:?}",
            s.reason
        );
    }

    #[test]
    fn a_rollback_hook_that_answers_2xx_rolls_back_and_its_noes_are_logged_once() {
        let mut s = state(vec![hook("stop", HookType::Rollback)]);
        // No until 17 s, then yes: during the first analysis (at 20%, from 0 to 10 s) and the
        // second (60%, from 10 s).
        let calls = drive(&mut s, |_, now| now >= 17 * S);
        assert_eq!((s.phase, s.weight), (Phase::RolledBack, 0));
        assert_eq!(names(&calls, "stop"), [0, 5 * S, 10 * S, 15 * S, 20 * S]);
        assert_eq!(
            s.reason.as_deref(),
            Some("rollback hook `stop` asked for a rollback: answered 200 OK")
        );
        let noes = s
            .log
            .iter()
            .filter(|t| t.message.contains("no rollback asked"))
            .count();
        assert_eq!(noes, 1, "the same answer is logged once");
        // Not polled once the rollout has ended.
        assert_eq!(rollback_poll_due(&s), None);
    }

    #[test]
    fn a_passed_pre_rollout_survives_a_restart_and_is_not_called_again() {
        let mut s = state(vec![
            hook("go", HookType::ConfirmRollout),
            hook("smoke", HookType::PreRollout),
        ]);
        assert_eq!(plan(&s), Action::CallHook { hook: 0 });
        apply(&mut s, answer(0, "go", true));
        assert_eq!(plan(&s), Action::CallHook { hook: 1 });
        apply(&mut s, answer(S, "smoke", true));
        let back: RolloutState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(plan(&back), Action::Advance);
        // A replayed answer changes nothing.
        let mut again = back.clone();
        apply(&mut again, answer(2 * S, "smoke", false));
        assert_eq!(again, back);
    }

    #[test]
    fn a_manual_promote_approves_a_waiting_gate_and_nothing_else_skips_it() {
        let mut s = state(vec![hook("go", HookType::ConfirmRollout)]);
        apply(&mut s, answer(0, "go", false));
        assert_eq!(plan(&s), Action::Wait { until: 5 * S });
        apply(&mut s, Event::Advance { now: S });
        let resume = Event::Command {
            now: S,
            command: Command::Resume,
        };
        apply(&mut s, resume);
        assert_eq!((s.step, s.weight), (0, 0), "a gate is not skipped");
        apply(&mut s, Event::Elapsed { now: 5 * S });
        assert_eq!(plan(&s), Action::CallHook { hook: 0 }, "asked again");
        let promote = Event::Command {
            now: 6 * S,
            command: Command::Promote,
        };
        apply(&mut s, promote);
        assert!(s.hooks_done.contains("go"));
        assert_eq!(s.gate, None);
        assert_eq!(plan(&s), Action::Advance);
        assert!(
            s.log
                .last()
                .unwrap()
                .message
                .contains("approved by a manual command")
        );
    }

    #[test]
    fn the_payload_names_the_rollout_the_hook_and_where_it_is() {
        let mut h = hook("approve", HookType::ConfirmPromotion);
        h.metadata.insert("ticket".into(), "CHG-1".into());
        let mut s = state(vec![h.clone()]);
        apply(&mut s, Event::Advance { now: 0 });
        let p = super::super::hooks::payload(&s, &h);
        assert_eq!(
            p,
            serde_json::json!({"name": "shop", "hook": "approve", "type": "confirm_promotion",
                "phase": "progressing", "weight": 20, "step": 1, "metadata": {"ticket": "CHG-1"}})
        );
    }
}
