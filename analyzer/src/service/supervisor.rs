//! The run supervisor: spawns, tracks, cancels and, on startup, resumes runs by kind:
//! analyses (driven here) and rollouts (driven in [`super::rollouts`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::metrics::{Metrics, labels};
use super::notify::{Notification, Notifier};
use crate::config::{self, Config};
use crate::engine::{Engine, IntervalReport, Millis, Progress, judge_interval};
use crate::source::{FetchRange, expand_spec, now_ms};
use crate::store::{Event, Run, RunStatus, Store, StoreError};

/// The kind name of an analysis run.
pub const ANALYSIS: &str = "analysis";

/// How an analysis runs, as persisted in `request_json`. A real-time start is fixed at
/// creation, so a resumed run keeps its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AnalysisRequest {
    RealTime { start: Millis },
    Retrospective { start: Millis, end: Millis },
}

/// Why the supervisor could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

struct Inner {
    store: Store,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    /// Each run being driven: its cancel signal, and what wakes it for a new command.
    active: Mutex<HashMap<String, Active>>,
}

/// A run being driven: its cancel signal, and what wakes it for a new command.
type Active = (watch::Sender<bool>, Arc<Notify>);

/// Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Runs a store call off the async threads.
pub async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SupervisorError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| SupervisorError::Internal(e.to_string()))?
        .map_err(SupervisorError::from)
}

pub(super) fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    format!("{:016x}", h.finish())
}

impl Supervisor {
    pub fn new(store: Store, metrics: Arc<Metrics>, notifier: Notifier) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                store,
                metrics,
                notifier,
                active: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(super) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(super) fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// What wakes run `id`'s driver for a new command, while it is driven.
    pub(super) fn waker(&self, id: &str) -> Option<Arc<Notify>> {
        self.lock().get(id).map(|(_, w)| Arc::clone(w))
    }

    /// Commits a new analysis (pending) and starts it. Returns its id.
    pub async fn create_analysis(
        &self,
        config: &Config,
        request: AnalysisRequest,
    ) -> Result<String, SupervisorError> {
        let request_json = serde_json::to_string(&request)
            .map_err(|e| SupervisorError::Internal(e.to_string()))?;
        self.insert_and_spawn(ANALYSIS, config, request_json, None)
            .await
    }

    /// Commits a new run of `kind` (pending) and starts it. Returns its id.
    pub(super) async fn insert_and_spawn(
        &self,
        kind: &str,
        config: &Config,
        request_json: String,
        state_json: Option<String>,
    ) -> Result<String, SupervisorError> {
        let now = now_ms();
        let run = Run {
            id: new_id(),
            kind: kind.to_owned(),
            status: RunStatus::Pending,
            config_json: serde_json::to_string(
                &config
                    .to_json()
                    .map_err(|e| SupervisorError::Internal(e.to_string()))?,
            )
            .map_err(|e| SupervisorError::Internal(e.to_string()))?,
            request_json,
            state_json,
            result_json: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        let id = run.id.clone();
        let r = run.clone();
        blocking(&self.inner.store, move |s| s.insert_run(&r)).await?;
        self.inner
            .metrics
            .transitions
            .get_or_create(&labels(&[("kind", kind), ("status", "pending")]))
            .inc();
        self.spawn(run);
        Ok(id)
    }

    /// Resumes every run that had not ended (after a restart). Returns how many.
    pub async fn resume_all(&self) -> Result<usize, SupervisorError> {
        let mut n = 0;
        for kind in [ANALYSIS, super::rollouts::ROLLOUT] {
            let runs = blocking(&self.inner.store, move |s| {
                s.runs(kind, &[RunStatus::Pending, RunStatus::Running])
            })
            .await?;
            n += runs.len();
            for run in runs {
                tracing::info!(id = %run.id, kind = %run.kind, "resuming run");
                self.spawn(run);
            }
        }
        Ok(n)
    }

    /// Commits `running` for a run about to be driven; false when it has been cancelled.
    pub(super) async fn mark_running(&self, run: &Run) -> bool {
        let id = run.id.clone();
        match blocking(&self.inner.store, move |s| {
            s.set_status(&id, RunStatus::Running, None, None, now_ms())
        })
        .await
        {
            Ok(moved) => moved,
            Err(e) => {
                tracing::error!(id = %run.id, error = %e, "cannot commit running");
                false
            }
        }
    }

    /// Cancels a run: commits `cancelled`, then stops its task. `Ok(false)` when the run
    /// has already ended or is unknown.
    pub async fn cancel(&self, id: &str, kind: &str) -> Result<bool, SupervisorError> {
        let key = id.to_owned();
        let moved = blocking(&self.inner.store, move |s| {
            s.set_status(&key, RunStatus::Cancelled, None, None, now_ms())
        })
        .await?;
        if moved {
            if let Some((tx, _)) = self.lock().get(id) {
                let _ = tx.send(true);
            }
            self.inner
                .metrics
                .transitions
                .get_or_create(&labels(&[("kind", kind), ("status", "cancelled")]))
                .inc();
        }
        Ok(moved)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts driving `run`, by kind.
    fn spawn(&self, run: Run) {
        let (tx, rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        self.lock().insert(run.id.clone(), (tx, Arc::clone(&wake)));
        let this = self.clone();
        let kind = run.kind.clone();
        let gauge = self
            .inner
            .metrics
            .active
            .get_or_create(&labels(&[("kind", &kind)]))
            .clone();
        gauge.inc();
        tokio::spawn(async move {
            let id = run.id.clone();
            match run.kind.as_str() {
                ANALYSIS => this.drive_analysis(run, rx).await,
                super::rollouts::ROLLOUT => this.drive_rollout(run, rx, wake).await,
                other => tracing::error!(id = %id, kind = other, "unknown run kind"),
            }
            this.lock().remove(&id);
            gauge.dec();
        });
    }

    pub(super) async fn finish(
        &self,
        run: &Run,
        name: &str,
        status: RunStatus,
        result: Option<String>,
        error: Option<String>,
    ) {
        let (id, st) = (run.id.clone(), status);
        let (res, err) = (result.clone(), error.clone());
        let moved = blocking(&self.inner.store, move |s| {
            s.set_status(&id, st, res.as_deref(), err.as_deref(), now_ms())
        })
        .await;
        match moved {
            Ok(true) => {
                self.inner
                    .metrics
                    .transitions
                    .get_or_create(&labels(&[("kind", &run.kind), ("status", status.as_str())]))
                    .inc();
                self.inner.notifier.send(Notification {
                    event: "transition",
                    run_id: run.id.clone(),
                    kind: run.kind.clone(),
                    name: name.to_owned(),
                    status: Some(status.as_str().to_owned()),
                    interval: None,
                    verdict: None,
                    reason: error,
                    ..Notification::default()
                });
            }
            Ok(false) => {
                // Cancelled meanwhile: keep the report of what was judged.
                if let Some(result) = result {
                    let id = run.id.clone();
                    let _ = blocking(&self.inner.store, move |s| {
                        s.set_result_if_missing(&id, &result, now_ms())
                    })
                    .await;
                }
            }
            Err(e) => tracing::error!(id = %run.id, error = %e, "cannot commit the run's end"),
        }
    }

    async fn drive_analysis(&self, run: Run, mut cancel: watch::Receiver<bool>) {
        let setup = (|| -> Result<(Config, AnalysisRequest), String> {
            let value: serde_json::Value =
                serde_json::from_str(&run.config_json).map_err(|e| e.to_string())?;
            let cfg = config::from_json_value(value).map_err(|e| e.to_string())?;
            let req: AnalysisRequest =
                serde_json::from_str(&run.request_json).map_err(|e| e.to_string())?;
            Ok((cfg, req))
        })();
        let (cfg, req) = match setup {
            Ok(x) => x,
            Err(e) => {
                return self
                    .finish(&run, "", RunStatus::Failed, None, Some(e))
                    .await;
            }
        };
        let name = cfg.name.clone();
        let spec = match cfg.to_spec() {
            Ok(s) => Arc::new(s),
            Err(e) => {
                return self
                    .finish(&run, &name, RunStatus::Failed, None, Some(e.to_string()))
                    .await;
            }
        };
        let source = match crate::source::build(&cfg) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .finish(&run, &name, RunStatus::Failed, None, Some(e.to_string()))
                    .await;
            }
        };
        let settle = cfg
            .source
            .as_ref()
            .map_or(0, |s| s.settle().as_millis() as Millis);
        let (start, end) = match req {
            AnalysisRequest::RealTime { start } => (start, None),
            AnalysisRequest::Retrospective { start, end } => (start, Some(end)),
        };
        if end.is_some() && !source.has_history() {
            let e = format!(
                "{} has no history: a retrospective analysis needs one",
                source.describe()
            );
            return self
                .finish(&run, &name, RunStatus::Failed, None, Some(e))
                .await;
        }
        // Resume: feed the engine what was committed, then continue with the next interval.
        let id = run.id.clone();
        let events = match blocking(&self.inner.store, move |s| s.events(&id)).await {
            Ok(e) => e,
            Err(e) => {
                return tracing::error!(id = %run.id, error = %e, "cannot read the run's events");
            }
        };
        let mut engine = Engine::new(Arc::clone(&spec), start);
        for ev in events.iter().filter(|e| e.kind == "interval") {
            match serde_json::from_str::<IntervalReport>(&ev.payload_json) {
                Ok(r) => {
                    engine.record(r);
                }
                Err(e) => {
                    let e = format!("stored interval {} is unreadable: {e}", ev.seq);
                    return self
                        .finish(&run, &name, RunStatus::Failed, None, Some(e))
                        .await;
                }
            }
        }
        if !self.mark_running(&run).await {
            return; // cancelled before it started
        }
        if let Err(e) = source.check().await {
            return self
                .finish(&run, &name, RunStatus::Failed, None, Some(e.to_string()))
                .await;
        }
        let mut why_unfinished = None;
        while let Some(plan) = engine.next().copied() {
            if let Some(end) = end {
                if plan.end > end {
                    why_unfinished = Some(format!(
                        "the analysed span ends at {}, before interval {} ends at {}",
                        crate::engine::format_time(end),
                        plan.index,
                        crate::engine::format_time(plan.end)
                    ));
                    break;
                }
            } else {
                let due = plan.end + settle;
                loop {
                    let left = due - now_ms();
                    if left <= 0 {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_millis(left.min(1000) as u64)) => {}
                        _ = cancel.changed() => {}
                    }
                    if *cancel.borrow() {
                        break;
                    }
                }
            }
            if *cancel.borrow() {
                why_unfinished = Some(format!("cancelled before interval {}", plan.index));
                break;
            }
            let t0 = Instant::now();
            let data = source.fetch(FetchRange::of(&plan)).await;
            self.inner
                .metrics
                .fetch_seconds
                .observe(t0.elapsed().as_secs_f64());
            if data.all_failed(&spec) {
                why_unfinished = Some(format!(
                    "interval {}: {} gave no usable data for any metric (first: {})",
                    plan.index,
                    source.describe(),
                    data.first_problem().unwrap_or_default()
                ));
                break;
            }
            let t0 = Instant::now();
            let sp = Arc::clone(&spec);
            let report = match tokio::task::spawn_blocking(move || {
                let expanded = expand_spec(&sp, data.recording.metric_names());
                judge_interval(&expanded, &plan, &data)
            })
            .await
            {
                Ok(r) => r,
                Err(e) => return tracing::error!(error = %e, "judge task failed"),
            };
            self.inner
                .metrics
                .judge_seconds
                .observe(t0.elapsed().as_secs_f64());
            // Commit before reporting or acting.
            let (id, payload) = (
                run.id.clone(),
                serde_json::to_string(&report).unwrap_or_default(),
            );
            let ev = Event {
                seq: report.index as i64,
                at: now_ms(),
                kind: "interval".to_owned(),
                payload_json: payload,
            };
            if let Err(e) = blocking(&self.inner.store, move |s| s.append_event(&id, &ev)).await {
                return tracing::error!(id = %run.id, error = %e, "cannot commit an interval; the run stops and resumes on restart");
            }
            let verdict = crate::report::verdict_word(report.verdict);
            self.inner
                .metrics
                .verdicts
                .get_or_create(&labels(&[("kind", "interval"), ("verdict", verdict)]))
                .inc();
            tracing::info!(id = %run.id, interval = report.index, verdict, score = report.score, "interval judged");
            self.inner.notifier.send(Notification {
                event: "interval",
                run_id: run.id.clone(),
                kind: run.kind.clone(),
                name: name.clone(),
                status: None,
                interval: Some(report.index),
                verdict: Some(verdict.to_owned()),
                score: Some(report.score),
                reason: Some(report.reason.clone()),
                ..Notification::default()
            });
            if let Progress::Decided(_) = engine.record(report) {
                break;
            }
        }
        let cancelled = *cancel.borrow();
        let report = engine.finish(why_unfinished);
        let verdict = crate::report::verdict_word(report.verdict);
        if !cancelled {
            self.inner
                .metrics
                .verdicts
                .get_or_create(&labels(&[("kind", "final"), ("verdict", verdict)]))
                .inc();
            self.inner.notifier.send(Notification {
                event: "verdict",
                run_id: run.id.clone(),
                kind: run.kind.clone(),
                name: name.clone(),
                status: None,
                interval: None,
                verdict: Some(verdict.to_owned()),
                score: Some(report.score),
                reason: Some(report.reason.clone()),
                ..Notification::default()
            });
        }
        let result = serde_json::to_string(&report).ok();
        self.finish(&run, &name, RunStatus::Completed, result, None)
            .await;
    }
}
