//! The rollout's decision logic: a pure state machine. [`plan`] says what the driver must do
//! next for a [`RolloutState`]; [`apply`] folds what happened (an [`Event`]) into the state.
//! No I/O, no clock: time comes in with the events, so every path is unit-tested.

use serde::{Deserialize, Serialize};

use fledge_judges::Verdict;

use super::spec::{Pause, Step};
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
        };
        s.note(now, "rollout started".to_owned());
        s
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

/// The next thing to do in `state`.
pub fn plan(state: &RolloutState) -> Action {
    match state.phase {
        p if p.is_terminal() => Action::Done(p),
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
        return;
    }
    let step = state.steps.get(state.step).cloned();
    match event {
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
