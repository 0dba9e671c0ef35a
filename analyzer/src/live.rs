//! Live drivers: run the sans-IO [`Engine`] against a [`MetricSource`], reading the clock
//! here and never in the engine.
//!
//! - [`analyze`] in [`Mode::RealTime`]: waits for the warmup and then for each interval's end
//!   (plus `settle`, the source's lag), fetches that interval's windows, judges them, and stops
//!   as soon as an interval aborts (or is interrupted).
//! - [`analyze`] in [`Mode::Retrospective`]: fetches the whole span once and judges every
//!   interval back to back, exactly as `fledge replay` would judge a recording of that span.
//! - [`record`]: fetches a span and returns it as a [`Recording`] for `fledge replay`.
//!
//! Missing data never promotes: a metric whose data could not be had is judged `error`
//! (which caps the interval at hold), and when the source gives nothing usable for any metric
//! (it is down) the analysis stops and holds with the source's message.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::engine::{
    AnalysisReport, AnalysisSpec, Engine, IntervalReport, Millis, Progress, format_time,
    judge_interval,
};
use crate::recording::Recording;
use crate::source::{
    FetchRange, LiveData, MetricSource, SourceError, expand_spec, merge_recording, now_ms,
};

/// When the analysis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Paced by the clock from `start` (default: now).
    RealTime { start: Option<Millis> },
    /// Over `[start, end)`, which lies in the past; intervals back to back.
    Retrospective { start: Millis, end: Millis },
}

/// What a live analysis produced.
#[derive(Debug, Clone)]
pub struct LiveRun {
    pub report: AnalysisReport,
    /// Every (sub-)metric that was judged, in the order of the config's metrics.
    pub spec: AnalysisSpec,
    /// Everything fetched, merged (for the HTML report's charts).
    pub data: Recording,
}

/// Why a live run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "{0} has no history: only a real-time `fledge analyze` (without --start and --end) can use it"
    )]
    NoHistory(String),
    #[error("--end {end} is in the future (now {now}); leave --end out to analyse in real time")]
    EndInFuture { end: String, now: String },
    #[error("--end {end} is not after --start {start}")]
    EmptyRange { start: String, end: String },
    #[error("{count} of {total} metrics could not be fetched:\n{list}")]
    Fetch {
        count: usize,
        total: usize,
        list: String,
    },
}

/// Rounds `t` down to a multiple of `step`.
fn floor_to(t: Millis, step: Millis) -> Millis {
    t.div_euclid(step) * step
}

/// Rounds `t` up to a multiple of `step`.
fn ceil_to(t: Millis, step: Millis) -> Millis {
    -floor_to(-t, step)
}

/// Runs an analysis against `source`. `on_interval` sees each interval as soon as it is
/// judged. When `stop` completes (Ctrl-C), the analysis ends with hold.
pub async fn analyze(
    source: &dyn MetricSource,
    spec: Arc<AnalysisSpec>,
    mode: Mode,
    settle: Millis,
    mut on_interval: impl FnMut(&IntervalReport),
    stop: impl Future<Output = ()>,
) -> Result<LiveRun, LiveError> {
    let step = source.step().max(1);
    tokio::pin!(stop);
    match mode {
        Mode::Retrospective { start, end } => {
            if !source.has_history() {
                return Err(LiveError::NoHistory(source.describe()));
            }
            let now = now_ms();
            if end > now {
                return Err(LiveError::EndInFuture {
                    end: format_time(end),
                    now: format_time(now),
                });
            }
            // Times on the step grid, as `record` uses, so a recording replays the same.
            let (start, end) = (ceil_to(start, step), floor_to(end, step));
            if end <= start {
                return Err(LiveError::EmptyRange {
                    start: format_time(start),
                    end: format_time(end),
                });
            }
            source.check().await?;
            let data = fetch_span(source, &spec, start, end).await;
            let expanded = expand_spec(&spec, data.recording.metric_names());
            let mut engine = Engine::new(Arc::clone(&spec), start);
            let mut why_unfinished = None;
            if data.all_failed(&spec) {
                why_unfinished = Some(source_failure(source, &data));
            }
            while why_unfinished.is_none()
                && let Some(plan) = engine.next().copied()
            {
                if plan.end > end {
                    why_unfinished = Some(format!(
                        "the analysed span ends at {}, before interval {} ends at {}",
                        format_time(end),
                        plan.index,
                        format_time(plan.end)
                    ));
                    break;
                }
                let report = judge_interval(&expanded, &plan, &data);
                on_interval(&report);
                if let Progress::Decided(_) = engine.record(report) {
                    break;
                }
            }
            let mut report = engine.finish(why_unfinished);
            report.notes.extend(data.notes);
            Ok(LiveRun {
                report,
                spec: expanded,
                data: data.recording,
            })
        }
        Mode::RealTime { start } => {
            let now = now_ms();
            let start = start.unwrap_or(now);
            if !source.has_history() && start < now - step {
                return Err(LiveError::NoHistory(source.describe()));
            }
            source.check().await?;
            let mut engine = Engine::new(Arc::clone(&spec), start);
            let mut merged = Recording::default();
            let mut why_unfinished = None;
            let mut notes = Vec::new();
            tracing::info!(
                source = %source.describe(),
                start = %format_time(start),
                intervals = engine.plan().len(),
                "real-time analysis started"
            );
            while let Some(plan) = engine.next().copied() {
                let due = plan.end + settle;
                let interrupted = tokio::select! {
                    () = sleep_until(due) => false,
                    () = &mut stop => true,
                };
                if interrupted {
                    why_unfinished = Some(format!(
                        "interrupted at {} while waiting for interval {}",
                        format_time(now_ms()),
                        plan.index
                    ));
                    break;
                }
                let data = tokio::select! {
                    d = source.fetch(FetchRange::of(&plan)) => Some(d),
                    () = &mut stop => None,
                };
                let Some(data) = data else {
                    why_unfinished = Some(format!(
                        "interrupted while fetching interval {}",
                        plan.index
                    ));
                    break;
                };
                merge_recording(&mut merged, &data.recording);
                notes.extend(data.notes.iter().cloned());
                if data.all_failed(&spec) {
                    why_unfinished = Some(format!(
                        "interval {}: {}",
                        plan.index,
                        source_failure(source, &data)
                    ));
                    tracing::error!(interval = plan.index, reason = ?why_unfinished, "source failed");
                    break;
                }
                let expanded = expand_spec(&spec, data.recording.metric_names());
                let report = judge_interval(&expanded, &plan, &data);
                tracing::info!(
                    interval = plan.index,
                    verdict = ?report.verdict,
                    score = report.score,
                    "interval judged"
                );
                on_interval(&report);
                if let Progress::Decided(_) = engine.record(report) {
                    break;
                }
            }
            let mut report = engine.finish(why_unfinished);
            notes.sort();
            notes.dedup();
            report.notes.extend(notes);
            let expanded = expand_spec(&spec, merged.metric_names());
            Ok(LiveRun {
                report,
                spec: expanded,
                data: merged,
            })
        }
    }
}

/// The hold reason when a fetch gave nothing usable.
fn source_failure(source: &dyn MetricSource, data: &LiveData) -> String {
    format!(
        "{} gave no usable data for any metric (first: {})",
        source.describe(),
        data.first_problem().unwrap_or_default()
    )
}

/// Fetches `[start, end)` for the canary and the same span less the baseline offset for the
/// baseline: everything every interval of that span needs.
async fn fetch_span(
    source: &dyn MetricSource,
    spec: &AnalysisSpec,
    start: Millis,
    end: Millis,
) -> LiveData {
    source
        .fetch(FetchRange {
            canary: (start, end),
            baseline: (start - spec.baseline_offset, end - spec.baseline_offset),
        })
        .await
}

/// Fetches `[start, end)` (times rounded to the step grid) as a recording that `fledge replay`
/// judges the same as a retrospective [`analyze`] over that span. Any metric that could not be
/// fetched is an error: a recording with holes would replay as no data.
pub async fn record(
    source: &dyn MetricSource,
    spec: &AnalysisSpec,
    start: Millis,
    end: Millis,
) -> Result<(Recording, Vec<String>), LiveError> {
    if !source.has_history() {
        return Err(LiveError::NoHistory(source.describe()));
    }
    let step = source.step().max(1);
    let (start, end) = (ceil_to(start, step), floor_to(end, step));
    if end <= start {
        return Err(LiveError::EmptyRange {
            start: format_time(start),
            end: format_time(end),
        });
    }
    let now = now_ms();
    if end > now {
        return Err(LiveError::EndInFuture {
            end: format_time(end),
            now: format_time(now),
        });
    }
    source.check().await?;
    let data = fetch_span(source, spec, start, end).await;
    if !data.problems.is_empty() {
        let list: Vec<String> = data
            .problems
            .iter()
            .map(|(m, p)| format!("  metric `{m}`: {p}"))
            .collect();
        return Err(LiveError::Fetch {
            count: data.problems.len(),
            total: spec.metrics.len(),
            list: list.join("\n"),
        });
    }
    Ok((data.recording, data.notes))
}

/// Sleeps until the wall clock reaches `t`, re-reading it so that a clock step or a long
/// suspend does not make the wait wrong by much.
async fn sleep_until(t: Millis) {
    loop {
        let left = t - now_ms();
        if left <= 0 {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(left.min(1000) as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_the_step_grid() {
        assert_eq!(floor_to(10_500, 1000), 10_000);
        assert_eq!(ceil_to(10_500, 1000), 11_000);
        assert_eq!(ceil_to(10_000, 1000), 10_000);
        assert_eq!(floor_to(-1, 1000), -1000);
        assert_eq!(ceil_to(-1, 1000), 0);
    }
}
