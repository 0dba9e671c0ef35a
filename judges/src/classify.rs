//! The metric classifier. (Stub: the types are settled, the logic is to be written.)

use crate::compare::Method;
use crate::effect::EffectSize;
use crate::preprocess::{NanStrategy, Preprocessed};

/// Which way a change is harmful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only an increase is harmful (latency, errors).
    Increase,
    /// Only a decrease is harmful (throughput, success rate).
    Decrease,
    /// Either way is harmful.
    #[default]
    Either,
}

/// A metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Pass,
    High,
    Low,
    Nodata,
    NodataFail,
    Error,
}

/// Per-metric options, with Kayenta's names.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricOptions {
    pub direction: Direction,
    /// Mean-ratio tolerance for an increase: `high` needs canary mean / baseline mean ≥ this.
    pub allowed_increase: f64,
    /// Mean-ratio tolerance for a decrease: `low` needs canary mean / baseline mean ≤ this.
    pub allowed_decrease: f64,
    pub critical: bool,
    pub must_have_data: bool,
    /// Fewest values per side (after preprocessing) needed to judge; fewer is no data.
    pub min_samples: usize,
    /// Confidence level of the shift interval.
    pub confidence: f64,
    pub nan_strategy: NanStrategy,
    /// IQR outlier factor; `None` keeps outliers.
    pub outlier_factor: Option<f64>,
    /// Variance inflation for autocorrelated samples, passed to [`crate::compare_with`].
    pub variance_inflation: f64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            direction: Direction::Either,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            critical: false,
            must_have_data: false,
            min_samples: 1,
            confidence: 0.98,
            nan_strategy: NanStrategy::Remove,
            outlier_factor: None,
            variance_inflation: 1.0,
        }
    }
}

/// Everything that decided one metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricResult {
    pub classification: Classification,
    pub critical: bool,
    /// `None` when no test ran (no data, error).
    pub method: Option<Method>,
    pub n_canary: usize,
    pub n_baseline: usize,
    pub u: Option<f64>,
    pub p_value: Option<f64>,
    pub estimate: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub confidence: f64,
    pub effect_size: Option<EffectSize>,
    /// One line a person can read: what decided the label.
    pub reason: String,
    /// What preprocessing removed or replaced, per side.
    pub preprocessing: [Preprocessed; 2],
}

/// Classifies one metric. Never panics; bad data becomes `error` with a reason.
pub fn classify(canary: &[f64], baseline: &[f64], options: &MetricOptions) -> MetricResult {
    let _ = (canary, baseline, options);
    todo!()
}
