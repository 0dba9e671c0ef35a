//! Judging one metric in one interval: the seam between the engine's windows and the
//! statistics in `fledge-judges`.
//!
//! The engine calls [`judge_metric`] for every metric of an interval. It picks the test the
//! metric's spec asks for, reads the windows it needs from [`MetricInput::data`] (a test may
//! read other series too, e.g. a numerator and a denominator), and returns the
//! `MetricResult` every output shows. Each test kind is one branch here; the statistics
//! themselves stay in the judges crate.

use fledge_judges::{
    CountNames, Counts, MetricResult, Series, ShiftHint, ShiftTrace, Side, checks, classify,
    classify_proportion, classify_series_traced,
};

use crate::engine::{
    IntervalPlan, MetricReport, MetricSpec, MetricTest, Millis, WindowData, WindowRef, format_time,
};

/// What a metric's judgement may look at.
#[derive(Clone, Copy)]
pub struct MetricInput<'a> {
    /// The interval being judged: canary window `[start, end)`, baseline window
    /// `[baseline_start, baseline_end)`.
    pub plan: &'a IntervalPlan,
    pub data: &'a dyn WindowData,
    /// Where sequential metrics start reading, on the canary's clock: the end of the warmup.
    /// They accumulate from there whatever the `lookback`.
    pub origin: Millis,
    /// How many sequential metrics the analysis has; each gets 1/this of the false-alarm
    /// budget (Bonferroni).
    pub sequential_family: usize,
    /// The metric's result in the interval judged before this one, if any: its shift
    /// estimates and intervals seed the selections (the results do not depend on it).
    pub prior: Option<Prior<'a>>,
}

/// A metric's result in an earlier interval, with where that interval's windows were.
#[derive(Clone, Copy)]
pub struct Prior<'a> {
    /// The earlier interval's canary window start and end, and baseline window start.
    pub start: Millis,
    pub end: Millis,
    pub baseline_start: Millis,
    pub report: &'a MetricReport,
}

impl<'a> MetricInput<'a> {
    /// Where `metric`'s shift selections landed in the prior interval. Its selection trace
    /// is passed on only when its windows start where this interval's do (a growing
    /// window): its samples are then a prefix of these.
    pub fn hint(&self, metric: &str) -> Option<ShiftHint> {
        let prior = self.prior.filter(|p| p.report.name == metric)?;
        let report = prior.report;
        let r = &report.result;
        let grown = prior.start == self.plan.start
            && prior.baseline_start == self.plan.baseline_start
            && prior.end <= self.plan.end;
        Some(ShiftHint {
            trace: report.trace.0.filter(|_| grown),
            ..ShiftHint::new(r.estimate?, r.ci?)
        })
    }

    /// The canary window of `metric` in this interval.
    pub fn canary(&self, metric: &str) -> WindowRef<'a> {
        self.data
            .window(metric, Side::Canary, self.plan.start, self.plan.end)
    }

    /// The value orders of the canary and baseline windows of `metric`, when the data has
    /// them ([`WindowData::window_order`]).
    pub fn orders(&self, metric: &str) -> [Option<Vec<u32>>; 2] {
        let p = self.plan;
        [
            self.data.window_order(metric, Side::Canary, p.start, p.end),
            self.data
                .window_order(metric, Side::Baseline, p.baseline_start, p.baseline_end),
        ]
    }

    /// The baseline window of `metric` in this interval.
    pub fn baseline(&self, metric: &str) -> WindowRef<'a> {
        self.data.window(
            metric,
            Side::Baseline,
            self.plan.baseline_start,
            self.plan.baseline_end,
        )
    }
}

/// Judges one metric in one interval, with the test its spec names.
pub fn judge_metric(spec: &MetricSpec, input: &MetricInput<'_>) -> MetricResult {
    judge_metric_traced(spec, input).0
}

/// [`judge_metric`], with where its shift selections landed (a Mann–Whitney metric's), for
/// the next interval's [`MetricInput::hint`].
pub fn judge_metric_traced(
    spec: &MetricSpec,
    input: &MetricInput<'_>,
) -> (MetricResult, Option<ShiftTrace>) {
    if let Some(message) = input.data.problem(&spec.name) {
        return (error_result(spec, &message), None);
    }
    for series in spec.series() {
        if let Some(message) = input.data.problem(series).filter(|_| series != spec.name) {
            return (error_result(spec, &message), None);
        }
    }
    let result = match &spec.test {
        MetricTest::MannWhitney => {
            // `independence` (assume, auto, paired) decides how the time stamps are used.
            let canary = input.canary(&spec.name);
            let baseline = input.baseline(&spec.name);
            let [oc, ob] = input.orders(&spec.name);
            return classify_series_traced(
                Series {
                    t: canary.t,
                    v: canary.v,
                },
                Series {
                    t: baseline.t,
                    v: baseline.v,
                },
                [oc.as_deref(), ob.as_deref()],
                input.plan.start - input.plan.baseline_start,
                &spec.options,
                input.hint(&spec.name),
            );
        }
        MetricTest::Threshold(check) => {
            checks::threshold(input.canary(&spec.name).v, check, &spec.options)
        }
        MetricTest::Relative(check) => checks::relative(
            input.canary(&spec.name).v,
            input.baseline(&spec.name).v,
            check,
            &spec.options,
        ),
        MetricTest::Proportion {
            numerator,
            denominator,
        } => {
            // Per-step counts, summed over each window by the test.
            classify_proportion(
                Counts {
                    numerator: input.canary(numerator).v,
                    denominator: input.canary(denominator).v,
                },
                Counts {
                    numerator: input.baseline(numerator).v,
                    denominator: input.baseline(denominator).v,
                },
                CountNames {
                    numerator,
                    denominator,
                },
                &spec.options,
            )
        }
        MetricTest::Sequential(seq) => sequential(spec, seq, input),
    };
    (result, None)
}

/// A sequential metric: every point from the end of the warmup to the end of the window,
/// the baseline's moved onto the canary's clock (by the baseline offset), walked in time
/// order by [`fledge_judges::judge_sequential`]. The reason gets the crossing's or the
/// settling's time stamp.
fn sequential(
    spec: &MetricSpec,
    seq: &fledge_judges::SequentialOptions,
    input: &MetricInput<'_>,
) -> MetricResult {
    let plan = input.plan;
    let offset = plan.start - plan.baseline_start;
    let canary = input
        .data
        .window(&spec.name, Side::Canary, input.origin, plan.end);
    let baseline = input.data.window(
        &spec.name,
        Side::Baseline,
        input.origin - offset,
        plan.baseline_end,
    );
    let baseline_t: Vec<Millis> = baseline.t.iter().map(|t| t + offset).collect();
    let mut seq = seq.clone();
    seq.family_size = input.sequential_family.max(1);
    let mut result = fledge_judges::judge_sequential(
        canary.t,
        canary.v,
        &baseline_t,
        baseline.v,
        &spec.options,
        &seq,
    );
    if let Some(d) = result.sequential.as_ref() {
        if let Some(t) = d.crossed_at {
            result.reason = result.reason.replacen(
                "(crossed at step",
                &format!("(crossed at {}, step", format_time(t)),
                1,
            );
        } else if let Some(t) = d.settled_at {
            result.reason = result.reason.replacen(
                "pass (settled):",
                &format!("pass (settled at {}):", format_time(t)),
                1,
            );
        }
    }
    result
}

/// The `error` result of a metric whose data could not be had: no test ran, the reason is
/// `error: <message>`. Never `pass`, so the interval is capped at hold.
pub fn error_result(spec: &MetricSpec, message: &str) -> MetricResult {
    // `classify` on nothing fills every field with its "no test ran" value; only the label
    // and the reason change.
    let mut result = classify(&[], &[], &spec.options);
    result.test = spec.test.kind();
    result.classification = fledge_judges::Classification::Error;
    result.reason = format!("error: {message}");
    result
}
