//! The metric classifier: one metric's canary and baseline samples in, one label out, with
//! every number that decided it and a one-line reason.
//!
//! # The rules (this is the contract)
//!
//! [`classify`] applies these steps in order; the first that decides, decides.
//!
//! 1. **Options.** `confidence` must lie strictly in (0, 1); `allowed_increase` and
//!    `allowed_decrease` must be finite and > 0; `variance_inflation` finite and ≥ 1; an
//!    `outlier_factor` finite and ≥ 0; a [`NanStrategy::Replace`] value finite. Otherwise the
//!    label is **`error`**, the reason names the option, and `n_canary`/`n_baseline` are the
//!    raw input lengths (nothing else ran).
//! 2. **Preprocessing.** Each side goes through [`preprocess`] on its own (NaN/±Inf handling,
//!    then optional IQR outlier removal). `preprocessing[0]` is the canary's counts,
//!    `preprocessing[1]` the baseline's; `n_canary`/`n_baseline` from here on are the counts
//!    after preprocessing.
//! 3. **No data.** If either side has fewer than `max(min_samples, 1)` values left, the label
//!    is **`nodata_fail`** when `must_have_data` is set and **`nodata`** otherwise; the reason
//!    names the short side(s) and their counts. (Unlike Kayenta, `must_have_data` works
//!    whatever the NaN strategy and whether or not the metric is critical.)
//! 4. **Comparison.** [`crate::compare_with`] gives U, the p-value, the exact Hodges–Lehmann
//!    shift `estimate` (canary − baseline) and its confidence interval `[lo, hi]`. Any
//!    [`crate::JudgeError`] makes the label **`error`** with the error's text as the reason.
//!    An error never passes.
//! 5. **Decision.** With `r` the *gate ratio* (below):
//!    - **`high`** when `direction` is `increase` or `either`, `lo > 0` (the whole interval
//!      lies above 0) and `r ≥ allowed_increase`;
//!    - **`low`** when `direction` is `decrease` or `either`, `hi < 0` and
//!      `r ≤ allowed_decrease`;
//!    - **`pass`** otherwise: the interval contains 0, or the change is in a harmless
//!      direction, or its size is within the allowed ratio. The reason says which.
//!
//!    There is no Kayenta-style "tolerance" band (`lo > 0.25·|estimate|`): significance is
//!    the interval excluding 0, and practical size is the effect-size gate.
//!
//! # The gate ratio
//!
//! `r` is built from the canary mean c̄ and the baseline mean b̄ so that `r > 1` always means
//! "the mean went up" and `r − 1` is the change relative to |b̄|:
//!
//! - b̄ > 0: `r = c̄ / b̄`, the reported `mean_ratio`.
//! - b̄ < 0: `r = 2 − c̄ / b̄` = 1 + (c̄ − b̄)/|b̄|. The plain ratio inverts on a negative
//!   baseline (from −10 to −5 is a ratio of 0.5 yet an increase), which would disable the
//!   gate; the reason shows both numbers.
//! - b̄ = 0 (the mean ratio is undefined, `mean_ratio` is `None`): `r = +∞` when c̄ > 0, so an
//!   increase from 0 reaches any tolerance; `r = −∞` when c̄ < 0, so a decrease from 0
//!   reaches any tolerance; `r = 1` when c̄ = 0 too (equal means). Kayenta instead skips the
//!   gate silently when a mean is 0; here the reason says what was counted.
//!
//! If `r` is NaN (only possible if a mean overflows) and the gate is needed, the label is
//! `error`.
//!
//! # Constant data
//!
//! Constant-versus-constant samples need no special case and no noise (Kayenta adds
//! unseeded random noise, so its verdicts vary from run to run). The exact order statistics
//! give the interval `[c − b, c − b]`: identical constants give `[0, 0]`, which contains 0,
//! so **pass**; different constants give a one-point interval on one side of 0, so **high**
//! or **low** (subject to direction and the gate), the same every time.
//!
//! # The reason
//!
//! One line, starting with the label, with the deciding numbers in [`format_number`]'s
//! compact form (4 significant digits), for example
//! `high: canary − baseline shift +12.3 (98% CI [+8.1, +16] above 0, p = 0.0002), mean ratio 1.21 ≥ allowed 1.05`.

use crate::autocorr::Independence;
use crate::compare::{CompareOptions, Comparison, Method};
use crate::effect::{self, EffectSize};
use crate::preprocess::{NanStrategy, Preprocessed, preprocess};
use crate::{JudgeError, compare_with};

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

impl Classification {
    /// The label as serialised and as it starts a reason: `pass`, `high`, `low`, `nodata`,
    /// `nodata_fail`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "pass",
            Classification::High => "high",
            Classification::Low => "low",
            Classification::Nodata => "nodata",
            Classification::NodataFail => "nodata_fail",
            Classification::Error => "error",
        }
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-metric options, with Kayenta's names.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricOptions {
    pub direction: Direction,
    /// Mean-ratio tolerance for an increase: `high` needs canary mean / baseline mean ≥ this
    /// (see the module docs for a baseline mean ≤ 0). Finite and > 0.
    pub allowed_increase: f64,
    /// Mean-ratio tolerance for a decrease: `low` needs canary mean / baseline mean ≤ this
    /// (see the module docs for a baseline mean ≤ 0). Finite and > 0.
    pub allowed_decrease: f64,
    pub critical: bool,
    pub must_have_data: bool,
    /// Fewest values per side (after preprocessing) needed to judge; fewer is no data.
    /// 0 is read as 1.
    pub min_samples: usize,
    /// Confidence level of the shift interval.
    pub confidence: f64,
    pub nan_strategy: NanStrategy,
    /// IQR outlier factor; `None` keeps outliers.
    pub outlier_factor: Option<f64>,
    /// Variance inflation for autocorrelated samples, passed to [`crate::compare_with`].
    pub variance_inflation: f64,
    /// How the points' dependence is treated: [`Independence::Assume`] (the default) is
    /// plain Mann–Whitney; `Auto` and `Paired` are [`crate::series::classify_series`]'s.
    pub independence: Independence,
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
            independence: Independence::Assume,
        }
    }
}

impl MetricOptions {
    /// Checks the option ranges listed in the module docs (rule 1).
    pub fn validate(&self) -> Result<(), JudgeError> {
        let c = self.confidence;
        if !(c > 0.0 && c < 1.0) {
            return Err(JudgeError::InvalidConfidence(c));
        }
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(JudgeError::InvalidOption {
                    name,
                    reason: format!("must be a finite number > 0, got {}", format_number(v)),
                })
            }
        };
        positive("allowed_increase", self.allowed_increase)?;
        positive("allowed_decrease", self.allowed_decrease)?;
        let vi = self.variance_inflation;
        if !(vi.is_finite() && vi >= 1.0) {
            return Err(JudgeError::InvalidOption {
                name: "variance_inflation",
                reason: format!("must be a finite number ≥ 1, got {}", format_number(vi)),
            });
        }
        let bad_factor = self
            .outlier_factor
            .filter(|k| !(k.is_finite() && *k >= 0.0));
        if let Some(k) = bad_factor {
            return Err(JudgeError::InvalidOption {
                name: "outlier_factor",
                reason: format!("must be a finite number ≥ 0, got {}", format_number(k)),
            });
        }
        match self.nan_strategy {
            NanStrategy::Replace(v) if !v.is_finite() => Err(JudgeError::InvalidOption {
                name: "nan_strategy",
                reason: format!(
                    "the replacement value must be finite, got {}",
                    format_number(v)
                ),
            }),
            _ => Ok(()),
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
    /// Canary values judged, after preprocessing.
    pub n_canary: usize,
    /// Baseline values judged, after preprocessing.
    pub n_baseline: usize,
    pub u: Option<f64>,
    pub p_value: Option<f64>,
    pub estimate: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub confidence: f64,
    pub effect_size: Option<EffectSize>,
    /// One line a person can read: what decided the label.
    pub reason: String,
    /// What preprocessing removed or replaced, per side: `[canary, baseline]`.
    pub preprocessing: [Preprocessed; 2],
    /// Which test decided this metric.
    #[serde(default)]
    pub test: TestKind,
    /// Things a reader should know that did not decide the label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Threshold and relative checks: the aggregate, the limits and the points outside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::checks::CheckDetail>,
    /// Proportion tests: both rates, the rate ratio and its interval, the test used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportion: Option<crate::proportion::ProportionDetail>,
    /// Effective sample sizes `[canary, baseline]`: how many independent values the test's
    /// precision is worth, given the autocorrelation (`independence: auto` or `paired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_eff: Option<[f64; 2]>,
    /// The factor the test's variance was multiplied by for autocorrelation (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance_inflation: Option<f64>,
    /// Sequential tests: the anytime-valid evidence, when it crossed or settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::SequentialDetail>,
}

/// The kind of test that judged a metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    /// Mann–Whitney U with the Hodges–Lehmann shift and its confidence interval.
    #[default]
    MannWhitney,
    /// The canary alone against fixed bounds.
    Threshold,
    /// Canary against baseline on an aggregate, with a tolerance.
    Relative,
    /// Two proportions built from counts (errors / requests).
    Proportion,
    /// An anytime-valid sequential test.
    Sequential,
    /// Canary against baseline at equal time stamps: the mean paired difference with a HAC
    /// standard error.
    Paired,
}

impl TestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::MannWhitney => "mann-whitney",
            TestKind::Threshold => "threshold",
            TestKind::Relative => "relative",
            TestKind::Proportion => "proportion",
            TestKind::Sequential => "sequential",
            TestKind::Paired => "paired",
        }
    }
}

/// Classifies one metric by the rules in the module docs. Never panics; bad data and bad
/// options become `error` with a reason.
///
/// With `independence` other than `assume`, the values are taken as two time series in
/// input order, one point per step; when both have the same length the i-th values are
/// taken as simultaneous (see [`crate::series::classify_values`]).
pub fn classify(canary: &[f64], baseline: &[f64], options: &MetricOptions) -> MetricResult {
    if options.independence != Independence::Assume {
        return crate::series::classify_values(canary, baseline, options);
    }
    classify_using(canary, baseline, options, compare_with)
}

/// [`classify`] with the comparison passed in, so the decision rules can be tested on
/// chosen comparisons.
fn classify_using(
    canary: &[f64],
    baseline: &[f64],
    options: &MetricOptions,
    compare: impl Fn(&[f64], &[f64], &CompareOptions) -> Result<Comparison, JudgeError>,
) -> MetricResult {
    let mut result = initial_result(options, canary.len(), baseline.len());

    // 1. Options.
    if let Err(e) = options.validate() {
        result.reason = format!("error: {e}");
        return result;
    }

    // 2. Preprocessing.
    let (canary, pre_canary) = preprocess(canary, options.nan_strategy, options.outlier_factor);
    let (baseline, pre_baseline) =
        preprocess(baseline, options.nan_strategy, options.outlier_factor);
    judge_preprocessed(
        result,
        &canary,
        &baseline,
        [pre_canary, pre_baseline],
        None,
        options,
        compare,
    )
}

/// The result before anything ran: `error` with an empty reason, no test numbers, the raw
/// input lengths.
pub(crate) fn initial_result(
    options: &MetricOptions,
    n_canary: usize,
    n_baseline: usize,
) -> MetricResult {
    MetricResult {
        classification: Classification::Error,
        critical: options.critical,
        method: None,
        n_canary,
        n_baseline,
        u: None,
        p_value: None,
        estimate: None,
        ci: None,
        confidence: options.confidence,
        effect_size: None,
        reason: String::new(),
        preprocessing: [Preprocessed::default(); 2],
        test: TestKind::MannWhitney,
        warnings: Vec::new(),
        check: None,
        proportion: None,
        n_eff: None,
        variance_inflation: None,
        sequential: None,
    }
}

/// Steps 3–5 of [`classify`] on samples that were already preprocessed (`pre`: what that
/// did, `[canary, baseline]`), with `result` as the options step left it. `sorted`, when
/// given, is the two samples sorted ascending by [`f64::total_cmp`] (for the effect sizes).
pub(crate) fn judge_preprocessed(
    mut result: MetricResult,
    canary: &[f64],
    baseline: &[f64],
    pre: [Preprocessed; 2],
    sorted: Option<[&[f64]; 2]>,
    options: &MetricOptions,
    compare: impl Fn(&[f64], &[f64], &CompareOptions) -> Result<Comparison, JudgeError>,
) -> MetricResult {
    let [pre_canary, pre_baseline] = pre;
    result.n_canary = canary.len();
    result.n_baseline = baseline.len();
    result.preprocessing = pre;

    // 3. No data.
    let need = options.min_samples.max(1);
    let canary_short = canary.len() < need;
    let baseline_short = baseline.len() < need;
    if canary_short || baseline_short {
        let label = if options.must_have_data {
            Classification::NodataFail
        } else {
            Classification::Nodata
        };
        let c = describe_side("canary", canary.len(), &pre_canary);
        let b = describe_side("baseline", baseline.len(), &pre_baseline);
        let what = match (canary_short, baseline_short) {
            (true, true) => format!("{c} and {b} after preprocessing, need ≥ {need} per side"),
            (true, false) => format!(
                "{c} after preprocessing, need ≥ {need} per side (baseline has {})",
                baseline.len()
            ),
            _ => format!(
                "{b} after preprocessing, need ≥ {need} per side (canary has {})",
                canary.len()
            ),
        };
        let tail = if options.must_have_data {
            " (must_have_data)"
        } else {
            ""
        };
        result.classification = label;
        result.reason = format!("{label}: {what}{tail}");
        return result;
    }

    // 4. Comparison.
    let compare_options = CompareOptions {
        confidence: options.confidence,
        variance_inflation: options.variance_inflation,
    };
    let cmp = match compare(canary, baseline, &compare_options) {
        Ok(cmp) => cmp,
        Err(e) => {
            result.reason = format!("error: {e}");
            return result;
        }
    };
    let [lo, hi] = cmp.ci;
    result.method = Some(cmp.method);
    result.u = Some(cmp.u);
    result.p_value = Some(cmp.p_value);
    result.estimate = Some(cmp.estimate);
    result.ci = Some(cmp.ci);
    let effect = crate::effect::effect_size_sorted(
        canary,
        baseline,
        sorted,
        // With sorted copies the comparison is the judges' own, so its U is these samples'.
        sorted.map(|_| cmp.u),
        cmp.estimate,
    );
    result.effect_size = Some(effect);
    let well_formed = lo <= hi && cmp.estimate.is_finite() && cmp.p_value.is_finite();
    if !well_formed {
        // Cannot come from a correct comparison; refuse to pass on it.
        result.reason = format!(
            "error: the comparison gave an invalid result (estimate {}, CI [{}, {}], p = {})",
            format_number(cmp.estimate),
            format_number(lo),
            format_number(hi),
            format_number(cmp.p_value)
        );
        return result;
    }

    // 5. Decision.
    let shift = format!(
        "canary − baseline shift {} ({}% CI [{}, {}]",
        format_signed(cmp.estimate),
        format_number(options.confidence * 100.0),
        format_signed(lo),
        format_signed(hi)
    );
    let p = format_number(cmp.p_value);
    let (classification, reason) = if lo > 0.0 || hi < 0.0 {
        let up = lo > 0.0;
        let (harmful, side, allowed, label) = if up {
            (
                matches!(options.direction, Direction::Increase | Direction::Either),
                "above",
                options.allowed_increase,
                Classification::High,
            )
        } else {
            (
                matches!(options.direction, Direction::Decrease | Direction::Either),
                "below",
                options.allowed_decrease,
                Classification::Low,
            )
        };
        let head = format!("{shift} {side} 0, p = {p})");
        if !harmful {
            let only = if up { "decrease" } else { "increase" };
            (
                Classification::Pass,
                format!("pass: {head}, but only a {only} is harmful"),
            )
        } else {
            let gate = GateRatio::new(effect::mean(canary), effect::mean(baseline));
            let reached = if up {
                gate.r >= allowed
            } else {
                gate.r <= allowed
            };
            let (cmp_sign, miss_sign) = if up { ("≥", "<") } else { ("≤", ">") };
            let allowed = format_number(allowed);
            if gate.r.is_nan() {
                (
                    Classification::Error,
                    format!(
                        "error: {head}, but the mean ratio is not a number ({})",
                        gate.text
                    ),
                )
            } else if reached {
                (
                    label,
                    format!(
                        "{label}: {head}, {} {cmp_sign} allowed {allowed}",
                        gate.text
                    ),
                )
            } else {
                (
                    Classification::Pass,
                    format!(
                        "pass: {head}, but {} {miss_sign} allowed {allowed}",
                        gate.text
                    ),
                )
            }
        }
    } else {
        (
            Classification::Pass,
            format!("pass: {shift} contains 0, p = {p})"),
        )
    };
    result.classification = classification;
    result.reason = reason;
    result
}

/// The effect-size gate's ratio `r` and how to say it (module docs, "The gate ratio").
struct GateRatio {
    r: f64,
    text: String,
}

impl GateRatio {
    fn new(canary_mean: f64, baseline_mean: f64) -> GateRatio {
        let (c, b) = (canary_mean, baseline_mean);
        if b > 0.0 {
            let r = c / b;
            GateRatio {
                r,
                text: format!("mean ratio {}", format_number(r)),
            }
        } else if b < 0.0 {
            let plain = c / b;
            let r = 2.0 - plain;
            GateRatio {
                r,
                text: format!(
                    "mean ratio {} on a negative baseline mean {}, read as {}",
                    format_number(plain),
                    format_number(b),
                    format_number(r)
                ),
            }
        } else if b == 0.0 {
            let (r, counted) = if c > 0.0 {
                (f64::INFINITY, "+inf")
            } else if c < 0.0 {
                (f64::NEG_INFINITY, "-inf")
            } else {
                (1.0, "1 (both means 0)")
            };
            GateRatio {
                r,
                text: format!(
                    "mean ratio undefined (baseline mean 0, canary mean {}: counted as {counted})",
                    format_number(c)
                ),
            }
        } else {
            GateRatio {
                r: f64::NAN,
                text: format!(
                    "canary mean {}, baseline mean {}",
                    format_number(c),
                    format_number(b)
                ),
            }
        }
    }
}

/// "canary has 0 values (3 non-finite removed)".
fn describe_side(side: &str, n: usize, pre: &Preprocessed) -> String {
    let mut s = format!("{side} has {n} value{}", if n == 1 { "" } else { "s" });
    let mut did = Vec::new();
    if pre.non_finite_removed > 0 {
        did.push(format!("{} non-finite removed", pre.non_finite_removed));
    }
    if pre.outliers_removed > 0 {
        let o = pre.outliers_removed;
        did.push(format!(
            "{o} outlier{} removed",
            if o == 1 { "" } else { "s" }
        ));
    }
    if !did.is_empty() {
        s.push_str(&format!(" ({})", did.join(", ")));
    }
    s
}

/// A compact number for reasons: 4 significant digits (but all the integer digits, so
/// 123456 stays 123456), trailing zeros dropped; plain notation when the rounded magnitude
/// is in [0.0001, 1 000 000), scientific (`1.235e-7`, `4.2e9`) outside that. `0`, `inf`,
/// `-inf` and `NaN` are spelled out. Deterministic.
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    // Rounding to 4 significant digits fixes the decimal exponent; plain notation then
    // rounds at the same decimal position (or at the units, for exponents 4 and 5), so a
    // value never changes exponent between the two steps.
    let sci = format!("{x:.3e}");
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        return sci;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return sci;
    };
    if (-4..6).contains(&exponent) {
        let decimals = (3 - exponent).max(0) as usize;
        trim_zeros(format!("{x:.decimals$}"))
    } else {
        format!("{}e{exponent}", trim_zeros(mantissa.to_string()))
    }
}

/// [`format_number`] with an explicit `+` on positive numbers, for shifts and intervals.
pub fn format_signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", format_number(x))
    } else {
        format_number(x)
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    /// A comparison with the given shift estimate and interval (the numbers the rules look at).
    fn comparison(estimate: f64, ci: [f64; 2], p_value: f64) -> Comparison {
        Comparison {
            method: Method::Exact,
            n_canary: 0,
            n_baseline: 0,
            u: 7.0,
            p_value,
            estimate,
            ci,
            confidence: 0.98,
        }
    }

    /// Classifies with the comparison replaced by `cmp` (only the decision rules run).
    fn with(
        canary: &[f64],
        baseline: &[f64],
        options: &MetricOptions,
        cmp: Comparison,
    ) -> MetricResult {
        classify_using(canary, baseline, options, |c, b, _| {
            Ok(Comparison {
                n_canary: c.len(),
                n_baseline: b.len(),
                ..cmp.clone()
            })
        })
    }

    fn opts(direction: Direction) -> MetricOptions {
        MetricOptions {
            direction,
            ..MetricOptions::default()
        }
    }

    const BASE: [f64; 4] = [10.0, 11.0, 9.0, 10.0];
    const UP: [f64; 4] = [12.0, 13.0, 11.0, 12.0]; // mean ratio 1.2
    const DOWN: [f64; 4] = [8.0, 9.0, 7.0, 8.0]; // mean ratio 0.8

    #[test]
    fn formats_numbers_compactly() {
        let cases = [
            (12.3, "12.3"),
            (16.0, "16"),
            (0.41, "0.41"),
            (1.23456, "1.235"),
            (-1.2, "-1.2"),
            (98.0, "98"),
            (0.98 * 100.0, "98"),
            (97.5, "97.5"),
            (123456.0, "123456"),
            (123456.7, "123457"),
            (99_999.7, "100000"),
            (999_960.0, "1e6"),
            (1234567.0, "1.235e6"),
            (0.00012346, "0.0001235"),
            (0.000012346, "1.235e-5"),
            (9.9996, "10"),
            (0.0, "0"),
            (-0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(format_number(x), want, "{x}");
        }
        assert_eq!(format_signed(8.1), "+8.1");
        assert_eq!(format_signed(-8.1), "-8.1");
        assert_eq!(format_signed(0.0), "0");
    }

    #[test]
    fn high_when_interval_above_zero_and_ratio_reaches_tolerance() {
        let o = MetricOptions {
            allowed_increase: 1.05,
            ..opts(Direction::Increase)
        };
        let r = with(&UP, &BASE, &o, comparison(2.0, [1.0, 3.0], 0.0012));
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(
            r.reason,
            "high: canary − baseline shift +2 (98% CI [+1, +3] above 0, p = 0.0012), \
             mean ratio 1.2 ≥ allowed 1.05"
        );
        assert_eq!((r.n_canary, r.n_baseline), (4, 4));
        assert_eq!(r.method, Some(Method::Exact));
        assert_eq!(
            (r.u, r.p_value, r.estimate, r.ci),
            (Some(7.0), Some(0.0012), Some(2.0), Some([1.0, 3.0]))
        );
        let e = r.effect_size.unwrap();
        assert!((e.mean_ratio.unwrap() - 1.2).abs() < 1e-12);
        assert_eq!(e.cles, 0.96875); // 15.5 of 16 pairs
        assert_eq!(r.confidence, 0.98);
    }

    #[test]
    fn low_when_interval_below_zero_and_ratio_reaches_tolerance() {
        let o = MetricOptions {
            allowed_decrease: 0.9,
            ..opts(Direction::Decrease)
        };
        let r = with(&DOWN, &BASE, &o, comparison(-2.0, [-3.0, -1.0], 0.001));
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
        assert!(
            r.reason
                .starts_with("low: canary − baseline shift -2 (98% CI [-3, -1] below 0"),
            "{}",
            r.reason
        );
        assert!(
            r.reason.ends_with("mean ratio 0.8 ≤ allowed 0.9"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn pass_when_interval_contains_zero() {
        let r = with(
            &UP,
            &BASE,
            &opts(Direction::Either),
            comparison(1.1, [-1.2, 3.4], 0.41),
        );
        assert_eq!(r.classification, Classification::Pass);
        assert_eq!(
            r.reason,
            "pass: canary − baseline shift +1.1 (98% CI [-1.2, +3.4] contains 0, p = 0.41)"
        );
        // Touching 0 is not excluding it.
        let r = with(
            &UP,
            &BASE,
            &opts(Direction::Either),
            comparison(1.0, [0.0, 2.0], 0.02),
        );
        assert_eq!(r.classification, Classification::Pass);
    }

    #[test]
    fn direction_decides_which_side_is_harmful() {
        let up = comparison(2.0, [1.0, 3.0], 0.001);
        let down = comparison(-2.0, [-3.0, -1.0], 0.001);
        let label =
            |d, c: &[f64], cmp: &Comparison| with(c, &BASE, &opts(d), cmp.clone()).classification;
        use Classification::*;
        assert_eq!(label(Direction::Increase, &UP, &up), High);
        assert_eq!(label(Direction::Either, &UP, &up), High);
        assert_eq!(label(Direction::Decrease, &UP, &up), Pass);
        assert_eq!(label(Direction::Decrease, &DOWN, &down), Low);
        assert_eq!(label(Direction::Either, &DOWN, &down), Low);
        assert_eq!(label(Direction::Increase, &DOWN, &down), Pass);
        let r = with(&UP, &BASE, &opts(Direction::Decrease), up);
        assert!(
            r.reason
                .starts_with("pass: canary − baseline shift +2 (98% CI [+1, +3] above 0"),
            "{}",
            r.reason
        );
        assert!(
            r.reason.ends_with(", but only a decrease is harmful"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn allowed_increase_gates_small_effects() {
        let cmp = comparison(2.0, [1.0, 3.0], 0.001);
        let o = |allowed| MetricOptions {
            allowed_increase: allowed,
            ..opts(Direction::Either)
        };
        // Mean ratio exactly 1.2 (48/40): the boundary is inclusive.
        assert_eq!(
            with(&UP, &BASE, &o(1.2), cmp.clone()).classification,
            Classification::High
        );
        let r = with(&UP, &BASE, &o(1.25), cmp);
        assert_eq!(r.classification, Classification::Pass);
        assert!(
            r.reason.ends_with(", but mean ratio 1.2 < allowed 1.25"),
            "{}",
            r.reason
        );

        let down = comparison(-2.0, [-3.0, -1.0], 0.001);
        let o = |allowed| MetricOptions {
            allowed_decrease: allowed,
            ..opts(Direction::Either)
        };
        assert_eq!(
            with(&DOWN, &BASE, &o(0.8), down.clone()).classification,
            Classification::Low
        );
        let r = with(&DOWN, &BASE, &o(0.75), down);
        assert_eq!(r.classification, Classification::Pass);
        assert!(
            r.reason.ends_with(", but mean ratio 0.8 > allowed 0.75"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn zero_baseline_mean_does_not_skip_the_gate() {
        let zeros = [0.0; 4];
        let o = MetricOptions {
            allowed_increase: 1000.0,
            allowed_decrease: 0.001,
            ..MetricOptions::default()
        };
        // An increase from 0 reaches any tolerance.
        let r = with(
            &[0.0, 1.0, 2.0, 1.0],
            &zeros,
            &o,
            comparison(1.0, [0.5, 2.0], 0.01),
        );
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert!(
            r.reason.ends_with("mean ratio undefined (baseline mean 0, canary mean 1: counted as +inf) ≥ allowed 1000"),
            "{}",
            r.reason
        );
        let e = r.effect_size.unwrap();
        assert_eq!(e.mean_ratio, None);
        assert!(
            e.note
                .unwrap()
                .contains("baseline mean is 0: mean ratio undefined")
        );
        // A decrease from 0 reaches any tolerance too.
        let r = with(
            &[-1.0, -2.0],
            &zeros,
            &o,
            comparison(-1.5, [-2.0, -1.0], 0.01),
        );
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
        assert!(
            r.reason.contains("counted as -inf) ≤ allowed 0.001"),
            "{}",
            r.reason
        );
        // Both means 0: equal means, ratio 1, which does not reach 1000.
        let r = with(
            &[-1.0, 1.0, 1.0, -1.0],
            &zeros,
            &o,
            comparison(0.5, [0.1, 1.0], 0.01),
        );
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert!(
            r.reason
                .contains("counted as 1 (both means 0)) < allowed 1000"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn negative_baseline_mean_reads_the_ratio_the_right_way_round() {
        // From −10 to −5 is an increase: plain ratio 0.5, read as 1.5.
        let o = MetricOptions {
            allowed_increase: 1.2,
            ..MetricOptions::default()
        };
        let r = with(
            &[-5.0, -5.0],
            &[-10.0, -10.0],
            &o,
            comparison(5.0, [5.0, 5.0], 0.3),
        );
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert!(
            r.reason.ends_with(
                "mean ratio 0.5 on a negative baseline mean -10, read as 1.5 ≥ allowed 1.2"
            ),
            "{}",
            r.reason
        );
        assert_eq!(r.effect_size.unwrap().mean_ratio, Some(0.5));
    }

    #[test]
    fn nodata_and_nodata_fail_name_the_sides() {
        let o = MetricOptions {
            min_samples: 3,
            ..MetricOptions::default()
        };
        let never = |_: &[f64], _: &[f64], _: &CompareOptions| -> Result<Comparison, JudgeError> {
            unreachable!("no comparison without data")
        };
        let r = classify_using(&[1.0, f64::NAN, 2.0], &BASE, &o, never);
        assert_eq!(r.classification, Classification::Nodata);
        assert_eq!(
            r.reason,
            "nodata: canary has 2 values (1 non-finite removed) after preprocessing, need ≥ 3 per side (baseline has 4)"
        );
        assert_eq!((r.n_canary, r.n_baseline), (2, 4));
        assert_eq!(r.preprocessing[0].non_finite_removed, 1);
        assert_eq!((r.method, r.ci, r.effect_size), (None, None, None));

        let o = MetricOptions {
            must_have_data: true,
            critical: true,
            ..MetricOptions::default()
        };
        let r = classify_using(&[], &[f64::NAN], &o, never);
        assert_eq!(r.classification, Classification::NodataFail);
        assert!(r.critical);
        assert_eq!(
            r.reason,
            "nodata_fail: canary has 0 values and baseline has 0 values (1 non-finite removed) \
             after preprocessing, need ≥ 1 per side (must_have_data)"
        );
        // min_samples 0 is read as 1.
        let o = MetricOptions {
            min_samples: 0,
            ..MetricOptions::default()
        };
        assert_eq!(
            classify_using(&BASE, &[], &o, never).classification,
            Classification::Nodata
        );
    }

    #[test]
    fn comparison_errors_become_error_never_pass() {
        let failing = |_: &[f64], _: &[f64], _: &CompareOptions| {
            Err(JudgeError::NonFinite {
                side: Side::Canary,
                index: 0,
                value: f64::NAN,
            })
        };
        let r = classify_using(&BASE, &BASE, &MetricOptions::default(), failing);
        assert_eq!(r.classification, Classification::Error);
        assert_eq!(
            r.reason,
            "error: the canary sample has a non-finite value (NaN) at position 0"
        );
        assert_eq!(r.method, None);

        // A broken interval is refused too.
        let r = with(
            &UP,
            &BASE,
            &MetricOptions::default(),
            comparison(f64::NAN, [f64::NAN, f64::NAN], 0.5),
        );
        assert_eq!(r.classification, Classification::Error, "{}", r.reason);
    }

    #[test]
    fn invalid_options_are_errors() {
        let cases: [(MetricOptions, &str); 7] = [
            (
                MetricOptions {
                    confidence: 1.0,
                    ..MetricOptions::default()
                },
                "error: confidence level 1 is not strictly between 0 and 1",
            ),
            (
                MetricOptions {
                    confidence: f64::NAN,
                    ..MetricOptions::default()
                },
                "error: confidence level NaN is not strictly between 0 and 1",
            ),
            (
                MetricOptions {
                    allowed_increase: 0.0,
                    ..MetricOptions::default()
                },
                "error: invalid option allowed_increase: must be a finite number > 0, got 0",
            ),
            (
                MetricOptions {
                    allowed_decrease: -1.0,
                    ..MetricOptions::default()
                },
                "error: invalid option allowed_decrease: must be a finite number > 0, got -1",
            ),
            (
                MetricOptions {
                    variance_inflation: 0.5,
                    ..MetricOptions::default()
                },
                "error: invalid option variance_inflation: must be a finite number ≥ 1, got 0.5",
            ),
            (
                MetricOptions {
                    outlier_factor: Some(-1.0),
                    ..MetricOptions::default()
                },
                "error: invalid option outlier_factor: must be a finite number ≥ 0, got -1",
            ),
            (
                MetricOptions {
                    nan_strategy: NanStrategy::Replace(f64::NAN),
                    ..MetricOptions::default()
                },
                "error: invalid option nan_strategy: the replacement value must be finite, got NaN",
            ),
        ];
        for (o, reason) in cases {
            let r = with(&UP, &BASE, &o, comparison(2.0, [1.0, 3.0], 0.001));
            assert_eq!(r.classification, Classification::Error);
            assert_eq!(r.reason, reason);
            assert_eq!((r.n_canary, r.n_baseline), (4, 4));
        }
    }

    #[test]
    fn preprocessing_counts_are_reported_per_side() {
        let o = MetricOptions {
            nan_strategy: NanStrategy::Replace(10.0),
            ..MetricOptions::default()
        };
        let r = with(
            &[f64::NAN, 12.0],
            &[10.0, f64::INFINITY, f64::NAN],
            &o,
            comparison(1.0, [-1.0, 3.0], 0.5),
        );
        assert_eq!(r.preprocessing[0].non_finite_replaced, 1);
        assert_eq!(r.preprocessing[1].non_finite_replaced, 2);
        assert_eq!((r.n_canary, r.n_baseline), (2, 3));
    }

    #[test]
    fn cles_from_u_is_the_counted_cles() {
        // Ties, −0.0 against +0.0, exact and normal methods.
        let mut s = 3u64;
        for (n, m, levels) in [
            (10, 12, 1000.0),
            (30, 20, 3.0),
            (400, 300, 7.0),
            (90, 2000, 1e9),
        ] {
            let mut g = |k: usize| -> Vec<f64> {
                (0..k)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let v = ((s >> 11) as f64 / (1u64 << 53) as f64 * levels).floor() - 1.0;
                        if v == 0.0 && s % 2 == 0 { -0.0 } else { v }
                    })
                    .collect()
            };
            let (x, y) = (g(n), g(m));
            let (tx, ty): (Vec<i64>, Vec<i64>) = ((0..n as i64).collect(), (0..m as i64).collect());
            let order = |v: &[f64]| -> Vec<u32> {
                let mut o: Vec<u32> = (0..v.len() as u32).collect();
                o.sort_by(|&a, &b| v[a as usize].total_cmp(&v[b as usize]));
                o
            };
            for independence in [Independence::Assume, Independence::Auto] {
                let r = crate::series::classify_series_ordered(
                    crate::Series { t: &tx, v: &x },
                    crate::Series { t: &ty, v: &y },
                    [Some(&order(&x)), Some(&order(&y))],
                    0,
                    &MetricOptions {
                        independence,
                        ..MetricOptions::default()
                    },
                );
                assert_eq!(r.effect_size.unwrap().cles, effect::cles(&x, &y), "{n} {m}");
            }
        }
    }

    #[test]
    fn critical_is_copied() {
        let o = MetricOptions {
            critical: true,
            ..MetricOptions::default()
        };
        assert!(with(&UP, &BASE, &o, comparison(0.0, [-1.0, 1.0], 1.0)).critical);
        assert!(
            !with(
                &UP,
                &BASE,
                &MetricOptions::default(),
                comparison(0.0, [-1.0, 1.0], 1.0)
            )
            .critical
        );
    }

    // End to end, with the real `compare_with`.

    #[test]
    fn identical_constants_pass() {
        let r = classify(&[5.0; 10], &[5.0; 12], &MetricOptions::default());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!(r.ci, Some([0.0, 0.0]));
        assert_eq!(r.estimate, Some(0.0));
        assert!(
            r.reason
                .starts_with("pass: canary − baseline shift 0 (98% CI [0, 0] contains 0"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn different_constants_are_high_or_low_every_time() {
        let o = MetricOptions::default();
        for _ in 0..3 {
            let r = classify(&[6.0; 10], &[5.0; 12], &o);
            assert_eq!(r.classification, Classification::High, "{}", r.reason);
            assert_eq!(r.ci, Some([1.0, 1.0]));
            let r = classify(&[4.0; 10], &[5.0; 12], &o);
            assert_eq!(r.classification, Classification::Low, "{}", r.reason);
            assert_eq!(r.ci, Some([-1.0, -1.0]));
        }
        // The gate still applies: 6/5 = 1.2 < 1.5.
        let o = MetricOptions {
            allowed_increase: 1.5,
            ..o
        };
        assert_eq!(
            classify(&[6.0; 10], &[5.0; 12], &o).classification,
            Classification::Pass
        );
    }

    #[test]
    fn a_clear_shift_is_high_and_noise_passes() {
        let baseline: Vec<f64> = (0..30).map(|i| 100.0 + f64::from((i * 7) % 11)).collect();
        let canary: Vec<f64> = baseline.iter().map(|v| v + 20.0).collect();
        let o = MetricOptions {
            allowed_increase: 1.1,
            ..MetricOptions::default()
        };
        let r = classify(&canary, &baseline, &o);
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(r.estimate, Some(20.0));
        // CLES is U / (n·m).
        let cles = r.effect_size.as_ref().unwrap().cles;
        assert!((cles - r.u.unwrap() / (30.0 * 30.0)).abs() < 1e-12);
        let r = classify(&baseline, &baseline, &o);
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
    }
}
