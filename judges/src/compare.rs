//! One comparison of canary against baseline: Mann–Whitney U and p-value, the exact
//! Hodges–Lehmann shift and its confidence interval.

use crate::JudgeError;

/// How the null distribution of U was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exact null distribution: both samples have fewer than 50 values and there are no ties
    /// (R's rule), and no variance inflation was asked for.
    Exact,
    /// Normal approximation with tie-corrected variance and continuity correction.
    Normal,
}

/// Options for [`compare_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Two-sided confidence level of the shift interval, strictly in (0, 1). Default 0.98.
    pub confidence: f64,
    /// Factor (≥ 1) by which the variance of U under the null is multiplied, to account for
    /// autocorrelated samples (effective sample size). 1.0 means independent samples. A
    /// factor above 1 forces the normal method, since the exact distribution assumes
    /// independence.
    pub variance_inflation: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { confidence: 0.98, variance_inflation: 1.0 }
    }
}

/// The result of comparing canary against baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub method: Method,
    pub n_canary: usize,
    pub n_baseline: usize,
    /// Mann–Whitney U for the canary: sum of canary ranks − n(n+1)/2 (R's `W`).
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Exact Hodges–Lehmann shift: the median of all canary_i − baseline_j.
    pub estimate: f64,
    /// Confidence interval for the shift, `[lo, hi]`.
    pub ci: [f64; 2],
    /// The confidence level the interval was computed at.
    pub confidence: f64,
}

/// Compares `canary` with `baseline` at the default options but the given confidence.
pub fn compare(canary: &[f64], baseline: &[f64], confidence: f64) -> Result<Comparison, JudgeError> {
    compare_with(canary, baseline, &CompareOptions { confidence, ..CompareOptions::default() })
}

/// Compares `canary` with `baseline`. Inputs need not be sorted; they must be finite and
/// non-empty.
pub fn compare_with(
    canary: &[f64],
    baseline: &[f64],
    options: &CompareOptions,
) -> Result<Comparison, JudgeError> {
    let _ = (canary, baseline, options);
    todo!("implemented with mann_whitney and shift")
}
