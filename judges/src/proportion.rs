//! Two proportions built from counts (errors of requests, failures of jobs): the canary's
//! rate against the baseline's, with an exact test for small counts.
//!
//! Per-step error counts are mostly zero on a healthy service, which defeats a rank test on
//! the per-step values: when almost every step is 0 on both sides, nearly all pairwise
//! differences are 0, the Hodges–Lehmann shift and its interval are `[0, 0]`, and a canary
//! that goes from 0 errors to several passes (Kayenta issue #426). Summing the counts over the
//! window and comparing the two proportions `x1/n1` (canary) and `x2/n2` (baseline) does not
//! have that blind spot.
//!
//! # The tests
//!
//! With the 2×2 table `[[x1, n1 − x1], [x2, n2 − x2]]` (canary first), N = n1 + n2 and
//! m = x1 + x2 events in all:
//!
//! - **Fisher's exact test** ([`fisher_exact`]) when any expected count
//!   `row total × column total / N` is below 5 (Cochran's rule; typical of a small canary
//!   with rare errors). Conditional on the margins, x1 is hypergeometric,
//!   `P(k) = C(m, k)·C(N − m, n1 − k) / C(N, n1)`; the two-sided p-value is R's
//!   `fisher.test`: the sum of the `P(k) ≤ P(x1)·(1 + 10⁻⁷)`.
//! - Otherwise the **two-proportion z-test** ([`z_test`]):
//!   `z = (p1 − p2) / √(p̂(1 − p̂)(1/n1 + 1/n2))` with the pooled `p̂ = m/N`, two-sided
//!   `p = erfc(|z|/√2) = P(χ²₁ > z²)`. This is R's `prop.test(correct = FALSE)` (Pearson's χ² = z², 1 df,
//!   without Yates' correction).
//!
//! Either way, zero baseline events with canary events present is decided by the test: it is
//! not a special case, and it is not skipped.
//!
//! # The rate ratio and its interval
//!
//! The rate ratio is `(x1/n1) / (x2/n2)`, undefined (`None`) when the baseline rate is 0. Its
//! confidence interval ([`rate_ratio_ci`]) is **Koopman's (1984) score interval**: the ratios θ
//! that a score test of `p1 = θ·p2` does not reject,
//!
//! ```text
//! U(θ) = (x1 − n1 p̃1)² / (n1 p̃1 (1 − p̃1)) + (x2 − n2 p̃2)² / (n2 p̃2 (1 − p̃2)) ≤ χ²₁(confidence)
//! ```
//!
//! where `p̃2` is the maximum-likelihood estimate of p2 under `p1 = θ·p2` (a root of a
//! quadratic) and `p̃1 = θ·p̃2`. At θ = 1 the statistic is Pearson's χ², so the interval
//! excludes 1 exactly when the z-test rejects at the same level. It needs no continuity
//! correction for zeros: no canary events give a lower end of 0, no baseline events an
//! unbounded upper end. (R's `fisher.test` reports an interval for the conditional odds ratio
//! instead; for rare events the two ratios nearly agree, but a rate ratio is what people
//! mean by "the error rate doubled".) `testdata/proportion/golden.R` checks it against an
//! independent numerical computation.
//!
//! # Sources
//!
//! R 4.2 `stats::fisher.test` and `stats::prop.test`; A. Agresti, *Categorical Data
//! Analysis* (3rd ed.), §3.5 (Fisher) and §3.1 (z-test); P. A. R. Koopman, "Confidence
//! intervals for the ratio of two binomial proportions", *Biometrics* 40 (1984) 513–517.

use statrs::function::erf::erfc_inv;
use statrs::function::gamma::checked_gamma_ur;

use crate::classify::format_number;
use crate::classify::{Classification, Direction, MetricOptions, MetricResult, TestKind};
use crate::compare::Method;
use crate::preprocess::{Preprocessed, preprocess};

/// Cochran's rule: Fisher's exact test when an expected count is below this.
pub const FISHER_BELOW_EXPECTED: f64 = 5.0;

/// R's relative tolerance in `fisher.test`: tables as probable as the observed one, up to
/// this factor, count as "at least as extreme".
const FISHER_REL_ERR: f64 = 1e-7;

/// Which test gave a proportion's p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProportionMethod {
    /// Fisher's exact test (some expected count below 5).
    Fisher,
    /// The two-proportion z-test (Pearson's χ² without continuity correction).
    ZTest,
}

impl ProportionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ProportionMethod::Fisher => "Fisher's exact test",
            ProportionMethod::ZTest => "two-proportion z-test",
        }
    }
}

/// What a proportion test found, as every output shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProportionDetail {
    pub method: ProportionMethod,
    /// Canary events (the numerator summed over the window).
    pub canary_events: u64,
    /// Canary trials (the denominator summed over the window).
    pub canary_trials: u64,
    /// `canary_events / canary_trials`.
    pub canary_rate: f64,
    pub baseline_events: u64,
    pub baseline_trials: u64,
    pub baseline_rate: f64,
    /// canary rate / baseline rate; `None` when the baseline rate is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ratio: Option<f64>,
    /// Lower end of the rate ratio's confidence interval (Koopman's score interval).
    pub ratio_lower: f64,
    /// Upper end; `None` when unbounded (no baseline events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_upper: Option<f64>,
    /// The z statistic (canary − baseline), when the z-test ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    /// The smallest expected cell count under equal rates (chooses the test).
    pub min_expected: f64,
}

/// The smallest expected count of the 2×2 table under equal rates:
/// `min(n1, n2) · min(m, N − m) / N`. 0 for an empty table.
pub fn min_expected(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    let n = (n1 + n2) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let m = (x1 + x2) as f64;
    n1.min(n2) as f64 * m.min(n - m) / n
}

/// Two-sided p-value of Fisher's exact test on `[[x1, n1 − x1], [x2, n2 − x2]]`, by R's rule:
/// the sum of the hypergeometric probabilities `P(k) ≤ P(x1)·(1 + 10⁻⁷)`.
///
/// Computed in log space from ratios of consecutive probabilities, starting at the mode, so
/// no factorial is ever formed; the cost is linear in the size of the support (at most
/// `min(m, N − m, n1, n2) + 1` terms). Requires `x1 ≤ n1`, `x2 ≤ n2` (otherwise NaN).
pub fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if x1 > n1 || x2 > n2 {
        return f64::NAN;
    }
    // R's names: m events (column 1), n non-events (column 2), k = n1 (row 1), x = x1.
    let m = x1 + x2;
    let n = (n1 - x1) + (n2 - x2);
    let k = n1;
    let lo = k.saturating_sub(n);
    let hi = k.min(m);
    if lo == hi {
        return 1.0;
    }
    // ln P(j+1) − ln P(j) = ln[(m − j)(k − j)] − ln[(j + 1)(n − k + j + 1)].
    let step_up = |j: u64| -> f64 {
        let a = (m - j) as f64 * (k - j) as f64;
        let b = (j + 1) as f64 * (n + j + 1 - k) as f64;
        (a / b).ln()
    };
    let total = m + n;
    let mode =
        (((k + 1) as f64 * (m + 1) as f64 / (total + 2) as f64).floor() as u64).clamp(lo, hi);
    let len = (hi - lo + 1) as usize;
    let mut lw = vec![0.0_f64; len];
    let at = |j: u64| (j - lo) as usize;
    for j in mode..hi {
        lw[at(j + 1)] = lw[at(j)] + step_up(j);
    }
    for j in (lo..mode).rev() {
        lw[at(j)] = lw[at(j + 1)] - step_up(j);
    }
    let cutoff = lw[at(x1)] + FISHER_REL_ERR.ln_1p();
    let top = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut all = Neumaier::default();
    let mut tail = Neumaier::default();
    for &w in &lw {
        let p = (w - top).exp();
        all.add(p);
        if w <= cutoff {
            tail.add(p);
        }
    }
    (tail.sum() / all.sum()).min(1.0)
}

/// The two-proportion z-test: `(z, two-sided p)` with `z` positive when the canary rate is
/// higher. `None` when the pooled rate is 0 or 1 (no events, or nothing but events), where
/// the statistic is undefined (R gives NaN). Requires `n1, n2 > 0`.
pub fn z_test(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    if pooled <= 0.0 || pooled >= 1.0 {
        return None;
    }
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / se;
    // P(χ²₁ > z²) = Q(½, z²/2) = erfc(|z|/√2). statrs' `erfc` is off by about 4e-11
    // relative; its regularised incomplete gamma is accurate to a few ulps.
    let p = if z == 0.0 {
        1.0
    } else {
        checked_gamma_ur(0.5, 0.5 * z * z).unwrap_or(f64::NAN)
    };
    Some((z, p))
}

/// Koopman's score interval for the rate ratio `(x1/n1) / (x2/n2)` at `confidence` (module
/// docs): `(lower, upper)` with `upper = None` when unbounded. No events at all gives
/// `(0, None)`. Requires `n1, n2 > 0`, `x1 ≤ n1`, `x2 ≤ n2` and a confidence in (0, 1);
/// otherwise `(NaN, None)`.
pub fn rate_ratio_ci(x1: u64, n1: u64, x2: u64, n2: u64, confidence: f64) -> (f64, Option<f64>) {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 || !(confidence > 0.0 && confidence < 1.0) {
        return (f64::NAN, None);
    }
    if x1 + x2 == 0 {
        return (0.0, None);
    }
    let z = std::f64::consts::SQRT_2 * erfc_inv(1.0 - confidence);
    let crit = z * z;
    let u = |log_theta: f64| koopman_u(log_theta.exp(), x1, n1, x2, n2) - crit;
    // The statistic is 0 at the estimate and grows on both sides of it.
    let estimate = if x2 == 0 {
        None
    } else {
        Some((x1 as f64 / n1 as f64) / (x2 as f64 / n2 as f64))
    };
    let lower = if x1 == 0 {
        0.0
    } else {
        // Bracket: u(right) ≤ 0 ≤ u(left).
        let mut right = estimate.map_or(0.0, f64::ln);
        while u(right) > 0.0 && right < 700.0 {
            right += 8.0;
        }
        let mut left = right - 1.0;
        while u(left) < 0.0 && left > -700.0 {
            left -= 2.0 * (right - left);
        }
        bisect(u, left, right).exp()
    };
    let upper = if x2 == 0 {
        None
    } else {
        let mut left = estimate.filter(|e| *e > 0.0).map_or(0.0, f64::ln);
        while u(left) > 0.0 && left > -700.0 {
            left -= 8.0;
        }
        let mut right = left + 1.0;
        while u(right) < 0.0 && right < 700.0 {
            right += 2.0 * (right - left);
        }
        Some(bisect(u, right, left).exp())
    };
    (lower, upper)
}

/// Koopman's statistic U(θ) (module docs).
fn koopman_u(theta: f64, x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    let (x1f, n1f, x2f, n2f) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let s = x1f + x2f;
    // p̃2 is the smaller root of θN·p² − B·p + s = 0, B = θ(n1 + x2) + x1 + n2. The
    // discriminant B² − 4θNs equals (θ(n1 + x2) − (x1 + n2))² + 4θ(n1 − x1)(n2 − x2): a sum of
    // non-negative terms, so it is computed without cancellation, and the root as
    // 2s / (B + √disc) without it either.
    let a = theta * (n1f + x2f);
    let c = x1f + n2f;
    let b = a + c;
    let disc = (a - c) * (a - c) + 4.0 * theta * (n1f - x1f) * (n2f - x2f);
    let p2 = (2.0 * s / (b + disc.sqrt())).min(1.0);
    let p1 = (theta * p2).min(1.0);
    score_term(x1f, n1f, p1) + score_term(x2f, n2f, p2)
}

/// `(x − n p)² / (n p (1 − p))`, with the limit 0 when `x = n p` at a boundary.
fn score_term(x: f64, n: f64, p: f64) -> f64 {
    let d = x - n * p;
    if d == 0.0 {
        return 0.0;
    }
    let den = n * p * (1.0 - p);
    if den <= 0.0 {
        f64::INFINITY
    } else {
        d * d / den
    }
}

/// A root of `f` between `pos` (f ≥ 0) and `neg` (f ≤ 0), by bisection to the last bit.
fn bisect(f: impl Fn(f64) -> f64, mut pos: f64, mut neg: f64) -> f64 {
    for _ in 0..2000 {
        let mid = 0.5 * (pos + neg);
        if mid == pos || mid == neg {
            break;
        }
        if f(mid) >= 0.0 {
            pos = mid;
        } else {
            neg = mid;
        }
    }
    0.5 * (pos + neg)
}

/// Compensated summation.
#[derive(Default)]
struct Neumaier {
    sum: f64,
    c: f64,
}

impl Neumaier {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }
    fn sum(&self) -> f64 {
        self.sum + self.c
    }
}

/// The two count series of one side, in time order: events per step and trials per step.
#[derive(Debug, Clone, Copy)]
pub struct Counts<'a> {
    pub numerator: &'a [f64],
    pub denominator: &'a [f64],
}

/// The series names, for reasons: e.g. `("errors", "requests")`.
#[derive(Debug, Clone, Copy)]
pub struct CountNames<'a> {
    pub numerator: &'a str,
    pub denominator: &'a str,
}

/// Judges a proportion metric: sums each side's counts over the window and compares the two
/// rates. The rules, in order:
///
/// 1. **Options** as in [`crate::classify()`] (rule 1); an outlier factor is refused too (it
///    makes no sense for counts). Otherwise **`error`**.
/// 2. **Preprocessing:** each of the four series goes through the NaN strategy
///    (`preprocessing[0]` adds up the canary's two series, `[1]` the baseline's).
///    `min_samples` does not apply: a count summed over the window is one quantity.
/// 3. **No data:** a side with no points in either series, or with no trials in the window,
///    is **`nodata`** (**`nodata_fail`** with `must_have_data`).
/// 4. **Counts:** a negative or non-finite count, or more events than trials, is **`error`**.
///    Sums that are not whole numbers (a Prometheus `increase()` extrapolates) are rounded,
///    with a warning.
/// 5. **Test:** Fisher or z (module docs). With `α = 1 − confidence`, the difference is
///    significant when `p < α`. Then the label is **`high`** when the canary rate is higher,
///    the direction allows increases and the rate ratio `r ≥ allowed_increase`; **`low`**
///    symmetrically with `r ≤ allowed_decrease`. A zero baseline rate counts as `r = +∞`
///    (any canary events reach every tolerance), a zero canary rate as `r = 0`. Otherwise
///    **`pass`**, and the reason says why.
///
/// `n_canary`/`n_baseline` are the canary's and the baseline's trials; `p_value`, `method`
/// (`exact` for Fisher, `normal` for z) and [`MetricResult::proportion`] carry the numbers.
pub fn classify_proportion(
    canary: Counts<'_>,
    baseline: Counts<'_>,
    names: CountNames<'_>,
    options: &MetricOptions,
) -> MetricResult {
    let mut result = MetricResult {
        classification: Classification::Error,
        critical: options.critical,
        method: None,
        n_canary: 0,
        n_baseline: 0,
        u: None,
        p_value: None,
        estimate: None,
        ci: None,
        confidence: options.confidence,
        effect_size: None,
        reason: String::new(),
        preprocessing: [Preprocessed::default(); 2],
        test: TestKind::Proportion,
        warnings: Vec::new(),
        check: None,
        proportion: None,
        n_eff: None,
        variance_inflation: None,
        sequential: None,
    };

    // 1. Options.
    if let Err(e) = options.validate() {
        result.reason = format!("error: {e}");
        return result;
    }
    if options.outlier_factor.is_some() {
        result.reason =
            "error: invalid option outlier_factor: outlier removal does not apply to counts"
                .to_string();
        return result;
    }

    // 2. Preprocessing (the NaN strategy only).
    let prep = |v: &[f64]| preprocess(v, options.nan_strategy, None);
    let (cn, pcn) = prep(canary.numerator);
    let (cd, pcd) = prep(canary.denominator);
    let (bn, pbn) = prep(baseline.numerator);
    let (bd, pbd) = prep(baseline.denominator);
    let add = |a: Preprocessed, b: Preprocessed| Preprocessed {
        non_finite_removed: a.non_finite_removed + b.non_finite_removed,
        non_finite_replaced: a.non_finite_replaced + b.non_finite_replaced,
        outliers_removed: 0,
    };
    result.preprocessing = [add(pcn, pcd), add(pbn, pbd)];

    // 3. and 4. Counts, and no data.
    let mut warnings = Vec::new();
    let side = |label: &str, num: &[f64], den: &[f64], warnings: &mut Vec<String>| {
        count_side(label, names, num, den, warnings)
    };
    let c = side("canary", &cn, &cd, &mut warnings);
    let b = side("baseline", &bn, &bd, &mut warnings);
    result.warnings = warnings;
    let (c, b) = match (c, b) {
        (Err(SideProblem::Invalid(e)), _) | (_, Err(SideProblem::Invalid(e))) => {
            result.reason = format!("error: {e}");
            return result;
        }
        (Err(SideProblem::NoData(why_c)), Err(SideProblem::NoData(why_b))) => {
            nodata(&mut result, options, &format!("{why_c} and {why_b}"));
            return result;
        }
        (Err(SideProblem::NoData(why)), Ok(_)) | (Ok(_), Err(SideProblem::NoData(why))) => {
            nodata(&mut result, options, &why);
            return result;
        }
        (Ok(c), Ok(b)) => (c, b),
    };
    let [(x1, n1), (x2, n2)] = [c, b];
    result.n_canary = n1 as usize;
    result.n_baseline = n2 as usize;

    // 5. Test.
    let min_e = min_expected(x1, n1, x2, n2);
    let z = z_test(x1, n1, x2, n2);
    let (method, p, z) = match z {
        Some((z, p)) if min_e >= FISHER_BELOW_EXPECTED => (ProportionMethod::ZTest, p, Some(z)),
        _ => (ProportionMethod::Fisher, fisher_exact(x1, n1, x2, n2), None),
    };
    let (lower, upper) = rate_ratio_ci(x1, n1, x2, n2, options.confidence);
    let (r1, r2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let ratio = (x2 > 0).then(|| r1 / r2);
    result.method = Some(match method {
        ProportionMethod::Fisher => Method::Exact,
        ProportionMethod::ZTest => Method::Normal,
    });
    result.p_value = Some(p);
    result.proportion = Some(ProportionDetail {
        method,
        canary_events: x1,
        canary_trials: n1,
        canary_rate: r1,
        baseline_events: x2,
        baseline_trials: n2,
        baseline_rate: r2,
        rate_ratio: ratio,
        ratio_lower: lower,
        ratio_upper: upper,
        z,
        min_expected: min_e,
    });
    if !p.is_finite() || !lower.is_finite() {
        result.reason = format!(
            "error: the proportion test gave an invalid result (p = {}, CI lower end {})",
            format_number(p),
            format_number(lower)
        );
        return result;
    }

    let alpha = 1.0 - options.confidence;
    let conf = format_number(options.confidence * 100.0);
    let ratio_text = match ratio {
        Some(r) => format!("rate ratio {}", format_number(r)),
        None if x1 > 0 => "rate ratio inf (baseline rate 0)".to_string(),
        None => "rate ratio undefined (both rates 0)".to_string(),
    };
    let ci_text = format!(
        "{conf}% CI [{}, {}]",
        format_number(lower),
        upper.map_or_else(|| "inf".to_string(), format_number)
    );
    let head = format!(
        "{}: canary {} vs baseline {}, p = {}",
        method.as_str(),
        rate_text(x1, n1, names.numerator, names.denominator),
        rate_text(x2, n2, names.numerator, names.denominator),
        format_number(p)
    );
    // p is finite here (checked above).
    let (classification, reason) = if p >= alpha || r1 == r2 {
        (
            Classification::Pass,
            format!(
                "pass: {head} ≥ {} (no significant difference), {ratio_text} ({ci_text})",
                format_number(alpha)
            ),
        )
    } else {
        let up = r1 > r2;
        let harmful = if up {
            matches!(options.direction, Direction::Increase | Direction::Either)
        } else {
            matches!(options.direction, Direction::Decrease | Direction::Either)
        };
        // The gate ratio: +inf for any events over a zero baseline rate, 0 for none.
        let gate = ratio.unwrap_or(f64::INFINITY);
        let sig = format!(
            "{head} < {}, {ratio_text} ({ci_text})",
            format_number(alpha)
        );
        if !harmful {
            let only = if up { "decrease" } else { "increase" };
            (
                Classification::Pass,
                format!("pass: {sig}, but only a {only} is harmful"),
            )
        } else if up {
            let allowed = options.allowed_increase;
            if gate >= allowed {
                (
                    Classification::High,
                    format!("high: {sig} ≥ allowed {}", format_number(allowed)),
                )
            } else {
                (
                    Classification::Pass,
                    format!("pass: {sig}, but < allowed {}", format_number(allowed)),
                )
            }
        } else {
            let allowed = options.allowed_decrease;
            if gate <= allowed {
                (
                    Classification::Low,
                    format!("low: {sig} ≤ allowed {}", format_number(allowed)),
                )
            } else {
                (
                    Classification::Pass,
                    format!("pass: {sig}, but > allowed {}", format_number(allowed)),
                )
            }
        }
    };
    result.classification = classification;
    result.reason = reason;
    result
}

/// `8/9834 errors/requests (0.08135%)`.
fn rate_text(x: u64, n: u64, num: &str, den: &str) -> String {
    let pct = 100.0 * x as f64 / n as f64;
    format!("{x}/{n} {num}/{den} ({}%)", format_number(pct))
}

enum SideProblem {
    NoData(String),
    Invalid(String),
}

/// Sums one side's counts: `(events, trials)`.
fn count_side(
    label: &str,
    names: CountNames<'_>,
    num: &[f64],
    den: &[f64],
    warnings: &mut Vec<String>,
) -> Result<(u64, u64), SideProblem> {
    let mut empty = Vec::new();
    if num.is_empty() {
        empty.push(format!("no `{}` points", names.numerator));
    }
    if den.is_empty() {
        empty.push(format!("no `{}` points", names.denominator));
    }
    if !empty.is_empty() {
        return Err(SideProblem::NoData(format!(
            "{label} has {}",
            empty.join(" and ")
        )));
    }
    let mut total = |name: &str, v: &[f64]| -> Result<u64, SideProblem> {
        if let Some((i, &bad)) = v.iter().enumerate().find(|(_, x)| **x < 0.0) {
            return Err(SideProblem::Invalid(format!(
                "the {label} `{name}` series has a negative count ({}) at position {i}",
                format_number(bad)
            )));
        }
        let mut sum = Neumaier::default();
        for &x in v {
            sum.add(x);
        }
        let s = sum.sum();
        // Counts must fit exactly in an f64 (and a u64).
        if !(s.is_finite() && s < 9.0e15) {
            return Err(SideProblem::Invalid(format!(
                "the {label} `{name}` total {} is not a usable count",
                format_number(s)
            )));
        }
        let rounded = s.round();
        if (rounded - s).abs() > 1e-9 * s.max(1.0) {
            warnings.push(format!(
                "{label} `{name}` total {} is not a whole number; counted as {}",
                format_number(s),
                format_number(rounded)
            ));
        }
        Ok(rounded as u64)
    };
    let x = total(names.numerator, num)?;
    let n = total(names.denominator, den)?;
    if n == 0 {
        return Err(SideProblem::NoData(format!(
            "{label} has no {} (`{}` sums to 0)",
            names.denominator, names.denominator
        )));
    }
    if x > n {
        return Err(SideProblem::Invalid(format!(
            "the {label} has more {} ({x}) than {} ({n}); the numerator must count a subset \
             of the denominator",
            names.numerator, names.denominator
        )));
    }
    Ok((x, n))
}

fn nodata(result: &mut MetricResult, options: &MetricOptions, why: &str) {
    if options.must_have_data {
        result.classification = Classification::NodataFail;
        result.reason = format!("nodata_fail: {why} (must_have_data)");
    } else {
        result.classification = Classification::Nodata;
        result.reason = format!("nodata: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts<'a>(num: &'a [f64], den: &'a [f64]) -> Counts<'a> {
        Counts {
            numerator: num,
            denominator: den,
        }
    }

    const NAMES: CountNames<'static> = CountNames {
        numerator: "errors",
        denominator: "requests",
    };

    #[test]
    fn fisher_matches_hand_computed_tables() {
        // [[1, 0], [0, 1]]: P(1) = P(0) = 1/2, both as extreme: p = 1.
        assert_eq!(fisher_exact(1, 1, 0, 1), 1.0);
        // [[3, 0], [0, 3]]: P(3) = 1/C(6,3) = 1/20, P(0) = 1/20: p = 0.1.
        assert!((fisher_exact(3, 3, 0, 3) - 0.1).abs() < 1e-15);
        // One-point support.
        assert_eq!(fisher_exact(0, 5, 0, 7), 1.0);
        assert!(fisher_exact(2, 1, 0, 1).is_nan());
    }

    #[test]
    fn z_test_is_undefined_without_events() {
        assert_eq!(z_test(0, 10, 0, 10), None);
        assert_eq!(z_test(10, 10, 10, 10), None);
        let (z, p) = z_test(10, 100, 20, 100).unwrap();
        assert!(z < 0.0 && p > 0.0 && p < 0.1, "{z} {p}");
    }

    #[test]
    fn ratio_interval_ends_at_zero_and_infinity() {
        assert_eq!(rate_ratio_ci(0, 10, 0, 10, 0.95), (0.0, None));
        let (lo, hi) = rate_ratio_ci(0, 10, 5, 10, 0.95);
        assert_eq!(lo, 0.0);
        assert!(hi.unwrap() > 0.0 && hi.unwrap() < 1.0);
        let (lo, hi) = rate_ratio_ci(5, 10, 0, 10, 0.95);
        assert!(lo > 1.0 && hi.is_none(), "{lo}");
        // 3 against 0 of 10 is not significant at 95%: the interval reaches below 1.
        let (lo, hi) = rate_ratio_ci(3, 10, 0, 10, 0.95);
        assert!(lo > 0.0 && lo < 1.0 && hi.is_none(), "{lo}");
        // Symmetry: swapping the sides inverts the interval.
        let (lo, hi) = rate_ratio_ci(7, 120, 3, 150, 0.9);
        let (lo2, hi2) = rate_ratio_ci(3, 150, 7, 120, 0.9);
        assert!((lo * hi2.unwrap() - 1.0).abs() < 1e-12);
        assert!((hi.unwrap() * lo2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn interval_excludes_one_exactly_when_the_z_test_rejects() {
        for (x1, n1, x2, n2) in [
            (50, 1000, 30, 1000),
            (25, 25000, 10, 25000),
            (60, 500, 41, 520),
        ] {
            let (_, p) = z_test(x1, n1, x2, n2).unwrap();
            for conf in [0.9, 0.95, 0.98, 0.99] {
                let (lo, hi) = rate_ratio_ci(x1, n1, x2, n2, conf);
                let excludes = lo > 1.0 || hi.unwrap() < 1.0;
                assert_eq!(
                    excludes,
                    p < 1.0 - conf,
                    "{x1}/{n1} {x2}/{n2} {conf}: p {p}"
                );
            }
        }
    }

    #[test]
    fn zero_baseline_errors_are_decided_by_the_test() {
        // The errors-zero-to-eight recording over the hour: 8 of 9,834 against 0 of 10,043.
        let canary = [vec![0.0; 353], vec![1.0; 6], vec![2.0]].concat();
        let c_req = [vec![27.0; 359], vec![141.0]].concat();
        let baseline = vec![0.0; 360];
        let b_req = [vec![27.0; 359], vec![350.0]].concat();
        let o = MetricOptions {
            direction: Direction::Increase,
            critical: true,
            ..MetricOptions::default()
        };
        let r = classify_proportion(
            counts(&canary, &c_req),
            counts(&baseline, &b_req),
            NAMES,
            &o,
        );
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(r.test, TestKind::Proportion);
        let d = r.proportion.as_ref().unwrap();
        assert_eq!((d.canary_events, d.canary_trials), (8, 9834));
        assert_eq!((d.baseline_events, d.baseline_trials), (0, 10043));
        assert_eq!(d.method, ProportionMethod::Fisher);
        assert_eq!(d.rate_ratio, None);
        assert_eq!(d.ratio_upper, None);
        assert!(d.ratio_lower > 1.0);
        assert!((r.p_value.unwrap() - 0.003_584_345_916_796_36).abs() < 1e-12);
        assert_eq!(
            r.reason,
            "high: Fisher's exact test: canary 8/9834 errors/requests (0.08135%) vs baseline \
             0/10043 errors/requests (0%), p = 0.003584 < 0.02, rate ratio inf (baseline rate 0) \
             (98% CI [1.51, inf]) ≥ allowed 1"
        );
        assert_eq!((r.n_canary, r.n_baseline), (9834, 10043));
    }

    #[test]
    fn direction_and_tolerance_gate_the_label() {
        let c = counts(&[60.0], &[1000.0]);
        let b = counts(&[30.0], &[1000.0]);
        let o = |direction, allowed_increase| MetricOptions {
            direction,
            allowed_increase,
            ..MetricOptions::default()
        };
        let r = classify_proportion(c, b, NAMES, &o(Direction::Either, 1.0));
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(
            r.proportion.as_ref().unwrap().method,
            ProportionMethod::ZTest
        );
        assert_eq!(r.proportion.as_ref().unwrap().rate_ratio, Some(2.0));
        let r = classify_proportion(c, b, NAMES, &o(Direction::Either, 2.5));
        assert_eq!(r.classification, Classification::Pass);
        assert!(r.reason.ends_with("but < allowed 2.5"), "{}", r.reason);
        let r = classify_proportion(c, b, NAMES, &o(Direction::Decrease, 1.0));
        assert_eq!(r.classification, Classification::Pass);
        assert!(
            r.reason.ends_with("but only a decrease is harmful"),
            "{}",
            r.reason
        );
        // The other way round is low.
        let r = classify_proportion(b, c, NAMES, &o(Direction::Either, 1.0));
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
        // Equal rates pass.
        let r = classify_proportion(c, c, NAMES, &o(Direction::Either, 1.0));
        assert_eq!(r.classification, Classification::Pass);
        assert!(
            r.reason.contains("no significant difference"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn missing_counts_are_nodata_and_bad_counts_are_errors() {
        let o = MetricOptions::default();
        let r = classify_proportion(counts(&[], &[10.0]), counts(&[0.0], &[10.0]), NAMES, &o);
        assert_eq!(r.classification, Classification::Nodata);
        assert_eq!(r.reason, "nodata: canary has no `errors` points");
        let must = MetricOptions {
            must_have_data: true,
            ..o.clone()
        };
        let r = classify_proportion(
            counts(&[0.0], &[0.0]),
            counts(&[0.0], &[10.0]),
            NAMES,
            &must,
        );
        assert_eq!(r.classification, Classification::NodataFail);
        assert_eq!(
            r.reason,
            "nodata_fail: canary has no requests (`requests` sums to 0) (must_have_data)"
        );
        let r = classify_proportion(counts(&[5.0], &[3.0]), counts(&[0.0], &[10.0]), NAMES, &o);
        assert_eq!(r.classification, Classification::Error);
        assert!(
            r.reason.contains("more errors (5) than requests (3)"),
            "{}",
            r.reason
        );
        let r = classify_proportion(counts(&[-1.0], &[3.0]), counts(&[0.0], &[10.0]), NAMES, &o);
        assert_eq!(r.classification, Classification::Error);
        assert!(
            r.reason.contains("negative count (-1) at position 0"),
            "{}",
            r.reason
        );
        // NaN follows the strategy; fractional sums are rounded with a warning.
        let r = classify_proportion(
            counts(&[f64::NAN, 0.4, 0.3], &[10.2, 10.0]),
            counts(&[0.0], &[20.0]),
            NAMES,
            &o,
        );
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!(r.preprocessing[0].non_finite_removed, 1);
        assert_eq!(r.proportion.as_ref().unwrap().canary_events, 1);
        assert_eq!(r.proportion.as_ref().unwrap().canary_trials, 20);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        let outliers = MetricOptions {
            outlier_factor: Some(3.0),
            ..o
        };
        let r = classify_proportion(
            counts(&[1.0], &[3.0]),
            counts(&[0.0], &[10.0]),
            NAMES,
            &outliers,
        );
        assert_eq!(r.classification, Classification::Error);
    }
}
