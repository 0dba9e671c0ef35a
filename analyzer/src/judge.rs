//! Judging one metric in one interval: the seam between the engine's windows and the
//! statistics in `fledge-judges`.
//!
//! The engine calls [`judge_metric`] for every metric of an interval. It picks the test the
//! metric's spec asks for, reads the windows it needs from [`MetricInput::data`] (a test may
//! read other series too, e.g. a numerator and a denominator), and returns the
//! `MetricResult` every output shows. Each test kind is one branch here; the statistics
//! themselves stay in the judges crate.

use fledge_judges::{MetricResult, Side, classify};

use crate::engine::{IntervalPlan, MetricSpec, WindowData, WindowRef};

/// What a metric's judgement may look at.
#[derive(Clone, Copy)]
pub struct MetricInput<'a> {
    /// The interval being judged: canary window `[start, end)`, baseline window
    /// `[baseline_start, baseline_end)`.
    pub plan: &'a IntervalPlan,
    pub data: &'a dyn WindowData,
}

impl<'a> MetricInput<'a> {
    /// The canary window of `metric` in this interval.
    pub fn canary(&self, metric: &str) -> WindowRef<'a> {
        self.data
            .window(metric, Side::Canary, self.plan.start, self.plan.end)
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

/// Judges one metric in one interval.
pub fn judge_metric(spec: &MetricSpec, input: &MetricInput<'_>) -> MetricResult {
    let canary = input.canary(&spec.name);
    let baseline = input.baseline(&spec.name);
    classify(canary.v, baseline.v, &spec.options)
}
