//! One comparison of canary against baseline: Mann–Whitney U and p-value, the exact
//! Hodges–Lehmann shift and its confidence interval.

use crate::{JudgeError, Side, mann_whitney, shift};

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
        CompareOptions {
            confidence: 0.98,
            variance_inflation: 1.0,
        }
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
pub fn compare(
    canary: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Result<Comparison, JudgeError> {
    compare_with(
        canary,
        baseline,
        &CompareOptions {
            confidence,
            ..CompareOptions::default()
        },
    )
}

/// Compares `canary` with `baseline`. Inputs need not be sorted; they must be finite and
/// non-empty.
///
/// Errors, checked in this order: an empty sample ([`JudgeError::EmptySample`], canary
/// first), a NaN or infinite value ([`JudgeError::NonFinite`], with its side and position),
/// a confidence level outside (0, 1) ([`JudgeError::InvalidConfidence`]), a
/// `variance_inflation` that is not finite or is below 1 ([`JudgeError::InvalidOption`]).
///
/// The method is [`Method::Exact`] when both samples have fewer than 50 values, the pooled
/// sample has no ties and `variance_inflation` is 1 (R's rule before R 4.6); otherwise
/// [`Method::Normal`]. See [`crate::mann_whitney`] and [`crate::shift`] for the formulas.
pub fn compare_with(
    canary: &[f64],
    baseline: &[f64],
    options: &CompareOptions,
) -> Result<Comparison, JudgeError> {
    for (sample, side) in [(canary, Side::Canary), (baseline, Side::Baseline)] {
        if sample.is_empty() {
            return Err(JudgeError::EmptySample { side });
        }
    }
    for (sample, side) in [(canary, Side::Canary), (baseline, Side::Baseline)] {
        if let Some((index, &value)) = sample.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(JudgeError::NonFinite { side, index, value });
        }
    }
    validate_options(options)?;
    let x = sorted_copy(canary);
    let y = sorted_copy(baseline);
    Ok(compare_sorted(&x, &y, options))
}

/// Checks `options` as [`compare_with`] does.
pub fn validate_options(options: &CompareOptions) -> Result<(), JudgeError> {
    let c = options.confidence;
    if !(c > 0.0 && c < 1.0) {
        return Err(JudgeError::InvalidConfidence(c));
    }
    let f = options.variance_inflation;
    if !f.is_finite() || f < 1.0 {
        return Err(JudgeError::InvalidOption {
            name: "variance_inflation",
            reason: format!("must be a finite number of at least 1, got {f}"),
        });
    }
    Ok(())
}

/// A copy of `sample` sorted ascending by [`f64::total_cmp`] (bit for bit the same result),
/// sorted as integers: each value is mapped to a u64 whose order is the total order.
pub fn sorted_copy(sample: &[f64]) -> Vec<f64> {
    // Values equal under `total_cmp` have the same bits, so an already ordered sample is its
    // own sorted copy (the engine may pass sorted windows).
    if sample.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
        return sample.to_vec();
    }
    let mut keys: Vec<u64> = sample
        .iter()
        .map(|v| {
            let b = v.to_bits();
            if b >> 63 == 1 { !b } else { b | (1 << 63) }
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|k| {
            if k >> 63 == 1 {
                f64::from_bits(k & !(1 << 63))
            } else {
                f64::from_bits(!k)
            }
        })
        .collect()
}

/// [`compare_with`] for samples that are already sorted ascending, non-empty and finite, with
/// valid options (unchecked: see [`validate_options`] and [`sorted_copy`]).
///
/// # Panics
/// If a sample is empty.
pub fn compare_sorted(x_sorted: &[f64], y_sorted: &[f64], options: &CompareOptions) -> Comparison {
    compare_sorted_given(x_sorted, y_sorted, options, None, None, None).0
}

/// [`compare_sorted`], with the Hodges–Lehmann estimate of the two samples already known
/// ([`shift::hodges_lehmann`], the same bits) so that the normal branch does not select it
/// again, and with guesses of where the selections land ([`shift::ShiftHint`]; the same
/// result, in fewer passes when they are close). `summary`, when given, is the samples'
/// [`mann_whitney::rank_summary`] (the same value; it is then not merged again). The trace
/// carries the summary on.
pub(crate) fn compare_sorted_given(
    x_sorted: &[f64],
    y_sorted: &[f64],
    options: &CompareOptions,
    estimate: Option<f64>,
    hint: Option<&shift::ShiftHint>,
    summary: Option<mann_whitney::RankSummary>,
) -> (Comparison, shift::ShiftTrace) {
    let (n, m) = (x_sorted.len(), y_sorted.len());
    let summary = summary
        .filter(|s| s.n == n && s.m == m)
        .unwrap_or_else(|| mann_whitney::rank_summary(x_sorted, y_sorted));
    debug_assert_eq!(summary, mann_whitney::rank_summary(x_sorted, y_sorted));
    let exact_dist = if n < 50 && m < 50 && !summary.has_ties && options.variance_inflation == 1.0 {
        mann_whitney::NullDistribution::new(n, m)
    } else {
        None
    };
    let (method, p_value, (shift, trace)) = match &exact_dist {
        Some(dist) => (
            Method::Exact,
            dist.two_sided_p(summary.u_twice as u64 / 2),
            (
                shift::shift_exact(x_sorted, y_sorted, dist, options.confidence),
                shift::ShiftTrace::default(),
            ),
        ),
        None => (
            Method::Normal,
            mann_whitney::normal_p_value(&summary, options.variance_inflation),
            shift::shift_normal_given(
                x_sorted,
                y_sorted,
                summary.within_ties,
                options.confidence,
                options.variance_inflation,
                estimate,
                hint,
            ),
        ),
    };
    let comparison = Comparison {
        method,
        n_canary: n,
        n_baseline: m,
        u: summary.u(),
        p_value,
        estimate: shift.estimate,
        ci: shift.ci,
        confidence: options.confidence,
    };
    let trace = shift::ShiftTrace {
        ranks: Some(summary),
        ..trace
    };
    (comparison, trace)
}
