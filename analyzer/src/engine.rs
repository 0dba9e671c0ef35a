//! The interval engine: a sans-IO core that plans intervals the way Spinnaker does, judges
//! each one with `fledge-judges`, and decides.
//!
//! **Architecture invariant:** nothing here reads the wall clock, sleeps, or does I/O. Time
//! comes in with the data (as `i64` milliseconds since the Unix epoch), so offline replay and
//! a live run drive exactly the same code: the live driver fetches the windows [`Engine::next`]
//! asks for and hands them to [`Engine::judge_next`].
//!
//! # Planning
//! With `start` the analysis start, `N = floor(lifetime / interval)` intervals are planned.
//! Interval `i` (1-based) ends at `start + warmup + i·interval`. Its canary window begins at
//! `start + warmup` (growing window, `lookback = 0`, Spinnaker's default) or at
//! `max(start + warmup, end − lookback)` (sliding window). The baseline window is the canary
//! window moved back by `baseline_offset`. Windows are half-open: `[begin, end)`.
//!
//! # Deciding
//! Each interval is scored on its own (group weights, thresholds, critical metrics). The
//! analysis then:
//! - aborts as soon as an interval aborts (later intervals are not judged);
//! - promotes when the last planned interval promotes;
//! - holds otherwise, including when the data ends before the lifetime does.
//!
//! # Sequential metrics
//! A metric with `test: sequential` ([`MetricTest::Sequential`]) reads every point from
//! `start + warmup` to the end of the window, whatever the lookback, and its anytime-valid
//! test is evaluated after every data point ([`fledge_judges::sequential`]); re-walking the
//! growing window each interval gives exactly what a point-by-point run has at that time.
//! Its false-alarm budget is `1 − confidence` split equally across the sequential metrics
//! (Bonferroni), so all of them together falsely cross with probability at most
//! `1 − confidence` however often they are looked at.
//! - **Abort at the crossing.** When a sequential metric crosses at a data time stamp `τ`
//!   inside an interval, the interval is judged as if it ended there (every metric on the
//!   data up to and including `τ`); if that aborts, the interval stops at `τ`: its report
//!   keeps its planned window and carries `decided_at = τ`, and so does the analysis.
//!   Otherwise (a non-critical crossing the score absorbs) the interval runs to its end.
//! - **Early promotion.** When *every* metric is sequential and settled (its confidence
//!   sequence rules out a harmful effect larger than the allowed one) at `τ`, the interval
//!   promotes at `τ` and the analysis promotes before its planned lifetime. With any
//!   fixed-horizon metric, promotion waits for the lifetime.
//! - **Live drivers** call [`Engine::watch`] as often as they like between interval ends; it
//!   records the interval as soon as one of the above has happened in the data so far.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fledge_judges::score::{GroupScore, ScoredMetric};
use fledge_judges::{
    Classification, GroupWeights, MetricOptions, MetricResult, Scorecard, Side, Thresholds, Verdict,
};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// What the engine needs to know about one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub name: String,
    pub group: String,
    pub options: MetricOptions,
    /// Which test judges it, and what that test needs beyond `options`.
    pub test: MetricTest,
}

impl MetricSpec {
    /// The series the metric's test reads: its own name, or a proportion's numerator and
    /// denominator.
    pub fn series(&self) -> Vec<&str> {
        match &self.test {
            MetricTest::Proportion {
                numerator,
                denominator,
            } => vec![numerator.as_str(), denominator.as_str()],
            _ => vec![self.name.as_str()],
        }
    }
}

/// How a metric is judged (`test:` in the config).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetricTest {
    /// Mann–Whitney with the Hodges–Lehmann shift: [`fledge_judges::classify()`].
    #[default]
    MannWhitney,
    /// The canary alone against fixed bounds: [`fledge_judges::checks::threshold`].
    Threshold(fledge_judges::ThresholdOptions),
    /// Canary against baseline on an aggregate: [`fledge_judges::checks::relative`].
    Relative(fledge_judges::RelativeOptions),
    /// Two rates from counts, summed over the window from two series:
    /// [`fledge_judges::classify_proportion`].
    Proportion {
        numerator: String,
        denominator: String,
    },
    /// An anytime-valid sequential test, updated at every data point since the end of the
    /// warmup: [`fledge_judges::judge_sequential`]. See "Sequential metrics" in the module
    /// docs.
    Sequential(fledge_judges::SequentialOptions),
}

impl MetricTest {
    /// The kind every result reports.
    pub fn kind(&self) -> fledge_judges::TestKind {
        use fledge_judges::TestKind;
        match self {
            MetricTest::MannWhitney => TestKind::MannWhitney,
            MetricTest::Threshold(_) => TestKind::Threshold,
            MetricTest::Relative(_) => TestKind::Relative,
            MetricTest::Proportion { .. } => TestKind::Proportion,
            MetricTest::Sequential(_) => TestKind::Sequential,
        }
    }
}

/// What the engine needs to know about an analysis, independent of the config's syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSpec {
    pub name: String,
    pub lifetime: Millis,
    pub interval: Millis,
    pub warmup: Millis,
    pub lookback: Millis,
    pub baseline_offset: Millis,
    pub thresholds: Thresholds,
    pub weights: GroupWeights,
    pub metrics: Vec<MetricSpec>,
}

/// One planned interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalPlan {
    /// 1-based, as Spinnaker numbers its runs.
    pub index: usize,
    /// Canary window `[start, end)`.
    pub start: Millis,
    pub end: Millis,
    /// Baseline window `[baseline_start, baseline_end)`: the canary window less the offset.
    pub baseline_start: Millis,
    pub baseline_end: Millis,
}

/// Plans the intervals of `spec` for an analysis starting at `start`.
pub fn plan(spec: &AnalysisSpec, start: Millis) -> Vec<IntervalPlan> {
    if spec.interval <= 0 {
        return Vec::new();
    }
    let count = (spec.lifetime / spec.interval).max(0) as usize;
    let first = start + spec.warmup;
    (1..=count)
        .map(|index| {
            let end = first + index as i64 * spec.interval;
            let begin = if spec.lookback > 0 {
                (end - spec.lookback).max(first)
            } else {
                first
            };
            IntervalPlan {
                index,
                start: begin,
                end,
                baseline_start: begin - spec.baseline_offset,
                baseline_end: end - spec.baseline_offset,
            }
        })
        .collect()
}

/// Time-ordered points of one cohort's series within a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowRef<'a> {
    pub t: &'a [Millis],
    pub v: &'a [f64],
}

/// Where the engine gets its data: a recording, or what a live source fetched.
pub trait WindowData: Sync {
    /// The points of `metric` for `side` with timestamps in `[start, end)`, in time order.
    /// A metric the data does not have gives an empty window.
    fn window(&self, metric: &str, side: Side, start: Millis, end: Millis) -> WindowRef<'_>;

    /// The value order of the same window, when the data knows it without sorting (a
    /// recording sorted once): the indices `0..len` of the window's points in ascending
    /// [`f64::total_cmp`] order of their values. `None` (the default) lets the judges sort.
    /// It only saves time: every result is the same with it or without it.
    fn window_order(
        &self,
        metric: &str,
        side: Side,
        start: Millis,
        end: Millis,
    ) -> Option<Vec<u32>> {
        let _ = (metric, side, start, end);
        None
    }

    /// Why the data for `metric` could not be had (a live source's failed query, for
    /// example), or `None`. A metric with a problem is judged `error` with this message,
    /// never `pass`, whatever its windows hold.
    fn problem(&self, metric: &str) -> Option<String> {
        let _ = metric;
        None
    }
}

/// One metric's result in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReport {
    pub name: String,
    pub group: String,
    #[serde(flatten)]
    pub result: MetricResult,
    /// Where the shift selections landed, to seed the next interval's (never serialised).
    #[serde(skip)]
    pub trace: Trace,
}

/// A [`fledge_judges::ShiftTrace`] kept beside a result. It only speeds up the next
/// interval's selections (results never depend on it), so it takes no part in equality: a
/// report read back from the store equals the one judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace(pub Option<fledge_judges::ShiftTrace>);

impl PartialEq for Trace {
    fn eq(&self, _: &Trace) -> bool {
        true
    }
}

/// One interval's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    pub index: usize,
    #[serde(with = "rfc3339")]
    pub start: Millis,
    #[serde(with = "rfc3339")]
    pub end: Millis,
    #[serde(with = "rfc3339")]
    pub baseline_start: Millis,
    #[serde(with = "rfc3339")]
    pub baseline_end: Millis,
    pub score: f64,
    pub verdict: Verdict,
    pub reason: String,
    pub groups: Vec<GroupScore>,
    /// Latest timestamp of data seen in this interval's windows, if any.
    #[serde(with = "rfc3339_opt")]
    pub last_data: Option<Millis>,
    /// Set when the interval stopped before its planned end: the time stamp of the data
    /// point at which a sequential metric's evidence crossed (abort) or every metric became
    /// settled (promote). Every metric was judged on the data up to and including it.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Millis>,
    pub metrics: Vec<MetricReport>,
}

/// The whole analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisReport {
    pub name: String,
    pub verdict: Verdict,
    /// Score of the deciding interval (the last judged one), 0–100.
    pub score: f64,
    pub reason: String,
    /// Timestamp of the data that settled the verdict.
    #[serde(with = "rfc3339_opt")]
    pub decided_at: Option<Millis>,
    #[serde(with = "rfc3339")]
    pub start: Millis,
    pub planned_intervals: usize,
    pub intervals: Vec<IntervalReport>,
    /// Things a person should know that did not decide the verdict.
    pub notes: Vec<String>,
}

/// Where an analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More intervals are planned.
    Continue,
    /// The verdict is settled; no more intervals will be judged.
    Decided(Verdict),
}

/// The sans-IO state machine of one analysis.
#[derive(Debug, Clone)]
pub struct Engine {
    spec: Arc<AnalysisSpec>,
    start: Millis,
    plan: Vec<IntervalPlan>,
    judged: Vec<IntervalReport>,
    decided: Option<Verdict>,
}

impl Engine {
    pub fn new(spec: Arc<AnalysisSpec>, start: Millis) -> Engine {
        let plan = plan(&spec, start);
        Engine {
            spec,
            start,
            plan,
            judged: Vec::new(),
            decided: None,
        }
    }

    pub fn spec(&self) -> &AnalysisSpec {
        &self.spec
    }

    pub fn plan(&self) -> &[IntervalPlan] {
        &self.plan
    }

    pub fn judged(&self) -> &[IntervalReport] {
        &self.judged
    }

    /// The next interval to judge, or `None` when the verdict is settled or every planned
    /// interval has been judged. A live driver waits until the clock passes its `end`.
    pub fn next(&self) -> Option<&IntervalPlan> {
        if self.decided.is_some() {
            return None;
        }
        self.plan.get(self.judged.len())
    }

    /// Judges the next interval from `data` and records it.
    pub fn judge_next(&mut self, data: &dyn WindowData) -> Progress {
        let Some(plan) = self.next().copied() else {
            return self.progress();
        };
        // The previous interval's selections are where this one's start looking: a window
        // that grew a little has its estimate and interval nearby (same results, fewer passes).
        let report = judge_interval_after(&self.spec, &plan, data, self.judged.last());
        self.record(report)
    }

    /// Judges the next `count` planned intervals (fewer when the plan ends first) together,
    /// as [`judge_intervals_after`] does, and records them in order until the verdict is
    /// settled; the intervals judged past that point are dropped. The same reports as
    /// `count` calls of [`Engine::judge_next`], for a driver that has the data of all of them
    /// (replay): the work is split across threads by metric, not interval by interval.
    pub fn judge_ahead(&mut self, data: &dyn WindowData, count: usize) -> Progress {
        if self.decided.is_some() {
            return self.progress();
        }
        let from = self.judged.len();
        let to = (from + count).min(self.plan.len());
        let reports =
            judge_intervals_after(&self.spec, &self.plan[from..to], data, self.judged.last());
        for report in reports {
            if let Progress::Decided(v) = self.record(report) {
                return Progress::Decided(v);
            }
        }
        self.progress()
    }

    /// For a live driver between interval ends: judges the next interval on the data before
    /// `until` and records it when a sequential metric has already decided it (an abort at
    /// a crossing, or an early promotion when every metric is settled; see the module
    /// docs). Records nothing and returns `Continue` otherwise, so the driver calls
    /// [`Engine::judge_next`] at the interval's end as usual. Without sequential metrics
    /// this does nothing.
    pub fn watch(&mut self, data: &dyn WindowData, until: Millis) -> Progress {
        let Some(plan) = self.next().copied() else {
            return self.progress();
        };
        let sequential = self
            .spec
            .metrics
            .iter()
            .any(|m| matches!(m.test, MetricTest::Sequential(_)));
        if !sequential {
            return self.progress();
        }
        let until = until.min(plan.end);
        let cut = IntervalPlan {
            end: until,
            baseline_end: until - (plan.start - plan.baseline_start),
            ..plan
        };
        let origin = sequential_origin(&self.spec, &plan);
        let judged = judge_window(&self.spec, &cut, origin, data, self.judged.last());
        match early_stop(&self.spec, &plan, origin, data, &judged, until) {
            Some(report) => self.record(report),
            None => self.progress(),
        }
    }

    /// Records an interval judged elsewhere (for example on another thread, or restored
    /// from storage). Intervals must arrive in order.
    pub fn record(&mut self, report: IntervalReport) -> Progress {
        if self.decided.is_some() {
            return self.progress();
        }
        let verdict = report.verdict;
        let early = report.decided_at.is_some();
        self.judged.push(report);
        if verdict == Verdict::Abort {
            self.decided = Some(Verdict::Abort);
        } else if early && verdict == Verdict::Promote {
            // Every metric is sequential and settled: promote before the planned lifetime.
            self.decided = Some(Verdict::Promote);
        } else if self.judged.len() == self.plan.len() {
            self.decided = Some(verdict);
        }
        self.progress()
    }

    pub fn progress(&self) -> Progress {
        match self.decided {
            Some(v) => Progress::Decided(v),
            None => Progress::Continue,
        }
    }

    /// Closes the analysis. `why_unfinished` explains, when the verdict is not settled, why
    /// no more intervals will be judged (for example "the recording ends at …").
    pub fn finish(self, why_unfinished: Option<String>) -> AnalysisReport {
        let planned = self.plan.len();
        let mut notes = Vec::new();
        let last = self.judged.last();
        let (verdict, reason) = match (self.decided, last) {
            (_, None) => {
                let why = why_unfinished.unwrap_or_else(|| "no interval was judged".to_string());
                (
                    Verdict::Hold,
                    if planned == 0 {
                        "hold: no interval is planned (lifetime shorter than one interval)"
                            .to_string()
                    } else {
                        format!("hold: no interval was judged: {why}")
                    },
                )
            }
            (Some(Verdict::Abort), Some(last)) => (
                Verdict::Abort,
                match last.decided_at {
                    Some(at) => format!(
                        "abort at {} (interval {} of {}, before its end): {}",
                        format_time(at),
                        last.index,
                        planned,
                        strip_verdict(&last.reason)
                    ),
                    None => format!(
                        "abort at interval {} of {}: {}",
                        last.index,
                        planned,
                        strip_verdict(&last.reason)
                    ),
                },
            ),
            (Some(Verdict::Promote), Some(last)) if last.decided_at.is_some() => (
                Verdict::Promote,
                format!(
                    "promote at {} (interval {} of {}, before the planned lifetime): every \
                     metric is settled: {}",
                    format_time(last.decided_at.unwrap_or(last.end)),
                    last.index,
                    planned,
                    strip_verdict(&last.reason)
                ),
            ),
            (Some(v), Some(last)) => (
                v,
                format!(
                    "{} after the last interval ({} of {}): {}",
                    verdict_word(v),
                    last.index,
                    planned,
                    strip_verdict(&last.reason)
                ),
            ),
            (None, Some(last)) => {
                let why = why_unfinished.unwrap_or_else(|| "the analysis was stopped".to_string());
                notes.push(format!(
                    "last judged interval {} was {}: {}",
                    last.index,
                    verdict_word(last.verdict),
                    strip_verdict(&last.reason)
                ));
                (
                    Verdict::Hold,
                    format!(
                        "hold: only {} of {} intervals were judged: {}",
                        self.judged.len(),
                        planned,
                        why
                    ),
                )
            }
        };
        let score = last.map_or(0.0, |l| l.score);
        let decided_at = match verdict {
            Verdict::Hold if self.decided.is_none() => last.and_then(|l| l.last_data),
            _ => last.map(|l| l.decided_at.or(l.last_data).unwrap_or(l.end)),
        };
        AnalysisReport {
            name: self.spec.name.clone(),
            verdict,
            score,
            reason,
            decided_at,
            start: self.start,
            planned_intervals: planned,
            intervals: self.judged,
            notes,
        }
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Promote => "promote",
        Verdict::Hold => "hold",
        Verdict::Abort => "abort",
    }
}

/// Scorecard reasons start with the verdict word; the analysis reason has its own.
fn strip_verdict(reason: &str) -> &str {
    for w in ["promote: ", "hold: ", "abort: "] {
        if let Some(rest) = reason.strip_prefix(w) {
            return rest;
        }
    }
    reason
}

/// Judges one interval: classifies every metric on its windows and scores the interval.
/// Metrics are classified in parallel on the machine's cores.
///
/// With sequential metrics the interval may stop before its end (module docs, "Sequential
/// metrics"); its report then carries `decided_at`.
pub fn judge_interval(
    spec: &AnalysisSpec,
    plan: &IntervalPlan,
    data: &dyn WindowData,
) -> IntervalReport {
    judge_interval_after(spec, plan, data, None)
}

/// [`judge_interval`], given the report of the interval before (`prior`), whose shift
/// estimates and intervals seed this one's selections. The report is the same with or
/// without it.
pub fn judge_interval_after(
    spec: &AnalysisSpec,
    plan: &IntervalPlan,
    data: &dyn WindowData,
    prior: Option<&IntervalReport>,
) -> IntervalReport {
    judge_intervals_after(spec, std::slice::from_ref(plan), data, prior)
        .pop()
        .expect("one report per plan")
}

/// Where sequential metrics start reading (the end of the warmup, on the canary's clock):
/// interval `i` ends `i` intervals after it.
fn sequential_origin(spec: &AnalysisSpec, plan: &IntervalPlan) -> Millis {
    plan.end - plan.index as i64 * spec.interval
}

/// The interval as a point-by-point run would have stopped it, if it stopped before
/// `until`: the first data time stamp `τ` in `[plan.end − interval, until)` at which a
/// sequential metric crossed and the interval, judged on the data up to and including `τ`,
/// aborts; or at which every metric (all sequential) is settled and it promotes. `judged` is
/// the interval judged on the data before `until`, which gives every sequential metric's
/// crossing and settling times (they do not depend on later data).
fn early_stop(
    spec: &AnalysisSpec,
    plan: &IntervalPlan,
    origin: Millis,
    data: &dyn WindowData,
    judged: &IntervalReport,
    until: Millis,
) -> Option<IntervalReport> {
    let from = plan.end - spec.interval;
    let details: Vec<Option<&fledge_judges::SequentialDetail>> = judged
        .metrics
        .iter()
        .map(|m| m.result.sequential.as_ref())
        .collect();
    let in_range = |t: &Millis| from <= *t && *t < until;
    let mut candidates: Vec<(Millis, Verdict)> = details
        .iter()
        .flatten()
        .filter_map(|d| d.crossed_at)
        .filter(in_range)
        .map(|t| (t, Verdict::Abort))
        .collect();
    let all_settled: Option<Vec<Millis>> = details
        .iter()
        .map(|d| d.and_then(|d| d.settled_at))
        .collect();
    if let Some(t) = all_settled
        .and_then(|ts| ts.into_iter().max())
        .filter(in_range)
    {
        candidates.push((t, Verdict::Promote));
    }
    candidates.sort_by_key(|c| c.0);
    let offset = plan.start - plan.baseline_start;
    for (t, stops_on) in candidates {
        let cut = IntervalPlan {
            end: t + 1,
            baseline_end: t + 1 - offset,
            ..*plan
        };
        let mut report = judge_window(spec, &cut, origin, data, Some(judged));
        if report.verdict == stops_on {
            report.end = plan.end;
            report.baseline_end = plan.baseline_end;
            report.decided_at = Some(t);
            return Some(report);
        }
    }
    None
}

/// Judges every metric on the windows of `plan` (sequential metrics from `origin`) and
/// scores them.
fn judge_window(
    spec: &AnalysisSpec,
    plan: &IntervalPlan,
    origin: Millis,
    data: &dyn WindowData,
    prior: Option<&IntervalReport>,
) -> IntervalReport {
    let family = sequential_family(spec);
    let judged = parallel_map(&spec.metrics, |m| {
        let prior = prior.and_then(|p| prior_of(p, &m.name));
        judge_one(m, plan, origin, family, data, prior)
    });
    assemble(spec, plan, judged)
}

/// How many sequential metrics `spec` has (they share one false-alarm budget).
fn sequential_family(spec: &AnalysisSpec) -> usize {
    spec.metrics
        .iter()
        .filter(|m| matches!(m.test, MetricTest::Sequential(_)))
        .count()
}

/// `metric`'s result in `report`, with where `report`'s windows were.
fn prior_of<'a>(report: &'a IntervalReport, metric: &str) -> Option<crate::judge::Prior<'a>> {
    let found = report.metrics.iter().find(|m| m.name == metric)?;
    Some(crate::judge::Prior {
        start: report.start,
        end: report.end,
        baseline_start: report.baseline_start,
        report: found,
    })
}

/// One metric judged on the windows of `plan`, with the time stamp of its last canary point.
fn judge_one(
    m: &MetricSpec,
    plan: &IntervalPlan,
    origin: Millis,
    sequential_family: usize,
    data: &dyn WindowData,
    prior: Option<crate::judge::Prior<'_>>,
) -> (MetricReport, Option<Millis>) {
    let input = crate::judge::MetricInput {
        plan,
        data,
        origin,
        sequential_family,
        prior,
    };
    let (result, trace) = crate::judge::judge_metric_traced(m, &input);
    let last = m
        .series()
        .into_iter()
        .filter_map(|s| input.canary(s).t.last().copied())
        .max();
    (
        MetricReport {
            name: m.name.clone(),
            group: m.group.clone(),
            result,
            trace: Trace(trace),
        },
        last,
    )
}

/// The interval report of `plan` from its metrics' results (in `spec`'s order), scored.
fn assemble(
    spec: &AnalysisSpec,
    plan: &IntervalPlan,
    judged: Vec<(MetricReport, Option<Millis>)>,
) -> IntervalReport {
    let last_data = judged.iter().filter_map(|(_, t)| *t).max();
    let metrics: Vec<MetricReport> = judged.into_iter().map(|(m, _)| m).collect();
    let card = score_metrics(spec, &metrics);
    IntervalReport {
        index: plan.index,
        start: plan.start,
        end: plan.end,
        baseline_start: plan.baseline_start,
        baseline_end: plan.baseline_end,
        score: card.score,
        verdict: card.verdict,
        reason: card.reason,
        groups: card.groups,
        last_data,
        decided_at: None,
        metrics,
    }
}

/// [`judge_interval_after`] for each of `plans` in turn, each seeded by the one before
/// (the first by `prior`): the same reports. The work is split by metric rather than by
/// interval: each metric is judged through all of `plans` on one thread (its own previous
/// result seeding the next), and the metrics are handed to the threads as they free up, so
/// no thread waits for the others at every interval.
pub fn judge_intervals_after(
    spec: &AnalysisSpec,
    plans: &[IntervalPlan],
    data: &dyn WindowData,
    prior: Option<&IntervalReport>,
) -> Vec<IntervalReport> {
    let family = sequential_family(spec);
    let origins: Vec<Millis> = plans.iter().map(|p| sequential_origin(spec, p)).collect();
    // by_metric[k][i]: metric k in plans[i].
    let mut by_metric: Vec<std::vec::IntoIter<(MetricReport, Option<Millis>)>> =
        parallel_map(&spec.metrics, |m| {
            let mut chain: Vec<(MetricReport, Option<Millis>)> = Vec::with_capacity(plans.len());
            for (i, plan) in plans.iter().enumerate() {
                let before = match i {
                    0 => prior.and_then(|p| prior_of(p, &m.name)),
                    _ => Some(crate::judge::Prior {
                        start: plans[i - 1].start,
                        end: plans[i - 1].end,
                        baseline_start: plans[i - 1].baseline_start,
                        report: &chain[i - 1].0,
                    }),
                };
                let judged = judge_one(m, plan, origins[i], family, data, before);
                chain.push(judged);
            }
            chain
        })
        .into_iter()
        .map(Vec::into_iter)
        .collect();
    plans
        .iter()
        .zip(&origins)
        .map(|(plan, &origin)| {
            let judged = by_metric
                .iter_mut()
                .map(|chain| chain.next().expect("one result per metric and plan"))
                .collect();
            let full = assemble(spec, plan, judged);
            early_stop(spec, plan, origin, data, &full, plan.end).unwrap_or(full)
        })
        .collect()
}

fn score_metrics(spec: &AnalysisSpec, metrics: &[MetricReport]) -> Scorecard {
    let scored: Vec<ScoredMetric> = metrics
        .iter()
        .map(|m| ScoredMetric {
            name: m.name.clone(),
            group: m.group.clone(),
            classification: m.result.classification,
            critical: m.result.critical,
            reason: m.result.reason.clone(),
        })
        .collect();
    // A metric without enough independent evidence (autocorrelated data, see
    // fledge_judges::series) caps the interval at hold and never aborts it by itself.
    let lacking: Vec<bool> = metrics
        .iter()
        .map(|m| fledge_judges::series::lacks_evidence(&m.result))
        .collect();
    match fledge_judges::series::score_with_evidence(
        &scored,
        &lacking,
        &spec.weights,
        &spec.thresholds,
    ) {
        Ok(card) => card,
        // The config layer validates groups against weights, so this is a bug or a spec
        // built by hand; never promote on it.
        Err(e) => Scorecard {
            score: 0.0,
            verdict: Verdict::Hold,
            reason: format!("hold: scoring failed: {e}"),
            groups: Vec::new(),
        },
    }
}

/// Maps `f` over `items` on up to `available_parallelism` scoped threads, keeping order.
/// Items are handed out one at a time as threads free up (their costs differ).
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        let theirs = handles.into_iter().map(|h| match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        });
        for (i, r) in std::iter::once(mine).chain(theirs).flatten() {
            slots[i] = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

/// Whether the classification counts as a failure of the metric.
pub fn is_failure(c: Classification) -> bool {
    matches!(
        c,
        Classification::High | Classification::Low | Classification::NodataFail
    )
}

/// RFC 3339 text for a timestamp in milliseconds (UTC, `Z`).
pub fn format_time(ms: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// Parses RFC 3339 text into milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_time(&text).ok_or_else(|| D::Error::custom(format!("not RFC 3339: {text}")))
    }
}

mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&super::format_time(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse_time(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("not RFC 3339: {text}"))),
            None => Ok(None),
        }
    }
}
