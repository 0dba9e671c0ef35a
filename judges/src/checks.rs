//! Checks without a statistical test: the canary alone against fixed bounds ([`threshold`],
//! Flagger's `thresholdRange`, Argo's `failureLimit`), and the canary against the baseline on
//! an aggregate with a tolerance ([`relative`], Keptn's `<=+10%`).
//!
//! Both give the same [`MetricResult`] as the Mann–Whitney classifier (the same labels,
//! `critical`, `must_have_data` and one-line reason), so they score exactly like it.
//!
//! # Threshold
//!
//! 1. **Options** as in [`crate::classify()`] (rule 1), and at least one of `min`/`max`, both
//!    finite, `min ≤ max`. Otherwise **`error`**.
//! 2. **Preprocessing** of the canary (NaN strategy, outliers), as for Mann–Whitney.
//!    `preprocessing[1]` and `n_baseline` stay 0: the baseline is not looked at.
//! 3. **No data:** fewer than `max(min_samples, 1)` canary values is **`nodata`**
//!    (**`nodata_fail`** with `must_have_data`).
//! 4. **Decision.** On an aggregate `v` of the window ([`Aggregate`]): **`high`** when
//!    `v > max`, **`low`** when `v < min`, else **`pass`**: the bounds themselves pass, as in
//!    Flagger. On every point (`each_point`): the points above `max` and below `min` are
//!    counted; more than `failure_limit` of them in all (Argo's `failed > failureLimit`) is
//!    **`high`** if at least as many are above as below, else **`low`**.
//!
//! # Relative
//!
//! 1. **Options** as above, and at least one of `max_increase`/`max_decrease`, each finite
//!    and ≥ 0. Otherwise **`error`**.
//! 2. **Preprocessing** of both sides; 3. **no data** when either side is short.
//! 4. **Decision** on the aggregates `c` (canary) and `b` (baseline). A tolerance is an
//!    absolute amount `a`, or a percentage `q` of `|b|`. The canary's limits are
//!    `b + tolerance` (with `max_increase`) and `b − tolerance` (with `max_decrease`);
//!    **`high`** when `c` is above the upper limit, **`low`** when below the lower one,
//!    **`pass`** otherwise (the limits themselves pass, as Keptn's `<=`).
//!
//!    **A baseline aggregate of 0** makes every percentage 0: the limit is the baseline
//!    itself, so any increase (decrease) fails a percentage `max_increase`
//!    (`max_decrease`), and the reason says that the relative change is undefined and
//!    counted as ±∞. Keptn instead passes a comparison with nothing to compare with. Use an
//!    absolute tolerance for a metric that can be 0, or a proportion test for counts. A
//!    negative baseline works through `|b|`: from −10, `+10%` allows up to −9.
//!
//! The aggregate, the limits and the counts are in [`MetricResult::check`].

use crate::classify::format_signed;
use crate::classify::{Classification, MetricOptions, MetricResult, TestKind, format_number};
use crate::effect::{mean, median};
use crate::preprocess::{Preprocessed, preprocess, quantile_type7};

/// How a window's values are summarised.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Mean,
    Median,
    Min,
    Max,
    /// 90th percentile of the window's values (R's type 7).
    P90,
    P95,
    P99,
    /// The latest value.
    Last,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::P90 => "p90",
            Aggregate::P95 => "p95",
            Aggregate::P99 => "p99",
            Aggregate::Last => "last",
        }
    }

    /// The aggregate of `values` (finite, in time order). NaN for an empty slice.
    pub fn of(self, values: &[f64]) -> f64 {
        if values.is_empty() {
            return f64::NAN;
        }
        let quantile = |p: f64| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            quantile_type7(&sorted, p)
        };
        match self {
            Aggregate::Mean => mean(values),
            Aggregate::Median => median(values),
            Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::P90 => quantile(0.90),
            Aggregate::P95 => quantile(0.95),
            Aggregate::P99 => quantile(0.99),
            Aggregate::Last => values[values.len() - 1],
        }
    }
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a threshold check looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdMode {
    /// One aggregate of the window.
    Aggregate(Aggregate),
    /// Every point; more than `failure_limit` outside the bounds fails.
    EachPoint { failure_limit: usize },
}

/// A threshold check: the canary against fixed bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdOptions {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mode: ThresholdMode,
}

/// How far the canary may move from the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// A percentage of the baseline aggregate's magnitude: `Percent(10.0)` is 10%.
    Percent(f64),
    /// An amount in the metric's unit.
    Absolute(f64),
}

impl Tolerance {
    /// The amount allowed around a baseline aggregate `b`.
    pub fn amount(self, b: f64) -> f64 {
        match self {
            Tolerance::Percent(q) => b.abs() * q / 100.0,
            Tolerance::Absolute(a) => a,
        }
    }

    fn value(self) -> f64 {
        match self {
            Tolerance::Percent(q) | Tolerance::Absolute(q) => q,
        }
    }

    /// `+10%`, `+25` (sign is `+` or `-`).
    fn text(self, sign: char) -> String {
        match self {
            Tolerance::Percent(q) => format!("{sign}{}%", format_number(q)),
            Tolerance::Absolute(a) => format!("{sign}{}", format_number(a)),
        }
    }
}

/// A relative check: canary against baseline on an aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeOptions {
    pub aggregate: Aggregate,
    pub max_increase: Option<Tolerance>,
    pub max_decrease: Option<Tolerance>,
}

/// The numbers behind a threshold or relative check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckDetail {
    /// The aggregate compared; `None` when every point was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// The canary's aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_value: Option<f64>,
    /// The baseline's aggregate (relative checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f64>,
    /// The lowest passing canary value: `min`, or the baseline less `max_decrease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest passing canary value: `max`, or the baseline plus `max_increase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `each_point`: canary points above `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_above: Option<usize>,
    /// `each_point`: canary points below `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_below: Option<usize>,
    /// `each_point`: how many points may be outside before the check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<usize>,
}

fn blank(options: &MetricOptions, test: TestKind, canary: usize, baseline: usize) -> MetricResult {
    MetricResult {
        classification: Classification::Error,
        critical: options.critical,
        method: None,
        n_canary: canary,
        n_baseline: baseline,
        u: None,
        p_value: None,
        estimate: None,
        ci: None,
        confidence: options.confidence,
        effect_size: None,
        reason: String::new(),
        preprocessing: [Preprocessed::default(); 2],
        test,
        warnings: Vec::new(),
        check: None,
        proportion: None,
        n_eff: None,
        variance_inflation: None,
        sequential: None,
    }
}

fn nodata(result: &mut MetricResult, options: &MetricOptions, why: String) {
    if options.must_have_data {
        result.classification = Classification::NodataFail;
        result.reason = format!("nodata_fail: {why} (must_have_data)");
    } else {
        result.classification = Classification::Nodata;
        result.reason = format!("nodata: {why}");
    }
}

fn values_text(n: usize) -> String {
    format!("{n} value{}", if n == 1 { "" } else { "s" })
}

/// Checks the canary against fixed bounds (module docs). `canary` is the window's values in
/// time order. Never panics.
pub fn threshold(
    canary: &[f64],
    check: &ThresholdOptions,
    options: &MetricOptions,
) -> MetricResult {
    let mut result = blank(options, TestKind::Threshold, canary.len(), 0);

    // 1. Options.
    if let Err(e) = options.validate() {
        result.reason = format!("error: {e}");
        return result;
    }
    let bad = |v: Option<f64>| v.is_some_and(|x| !x.is_finite());
    let problem = if check.min.is_none() && check.max.is_none() {
        Some("a threshold needs min or max".to_string())
    } else if bad(check.min) || bad(check.max) {
        Some("min and max must be finite".to_string())
    } else {
        match (check.min, check.max) {
            (Some(lo), Some(hi)) if lo > hi => Some(format!(
                "min {} is above max {}",
                format_number(lo),
                format_number(hi)
            )),
            _ => None,
        }
    };
    if let Some(p) = problem {
        result.reason = format!("error: invalid threshold: {p}");
        return result;
    }

    // 2. Preprocessing.
    let (values, pre) = preprocess(canary, options.nan_strategy, options.outlier_factor);
    result.preprocessing[0] = pre;
    result.n_canary = values.len();

    // 3. No data.
    let need = options.min_samples.max(1);
    if values.len() < need {
        let why = format!(
            "canary has {} after preprocessing, need ≥ {need} (a threshold checks the canary only)",
            values_text(values.len())
        );
        nodata(&mut result, options, why);
        return result;
    }

    // 4. Decision.
    let bounds = bounds_text(check.min, check.max);
    let mut detail = CheckDetail {
        aggregate: None,
        canary_value: None,
        baseline_value: None,
        min: check.min,
        max: check.max,
        points_above: None,
        points_below: None,
        failure_limit: None,
    };
    let (classification, reason) = match check.mode {
        ThresholdMode::Aggregate(agg) => {
            let v = agg.of(&values);
            detail.aggregate = Some(agg);
            detail.canary_value = Some(v);
            let head = format!("canary {agg} {}", format_number(v));
            match (check.min, check.max) {
                (_, Some(hi)) if v > hi => (
                    Classification::High,
                    format!("high: {head} > max {}", format_number(hi)),
                ),
                (Some(lo), _) if v < lo => (
                    Classification::Low,
                    format!("low: {head} < min {}", format_number(lo)),
                ),
                _ if v.is_nan() => (
                    Classification::Error,
                    format!("error: {head} is not a number"),
                ),
                _ => (
                    Classification::Pass,
                    format!("pass: {head} within {bounds}"),
                ),
            }
        }
        ThresholdMode::EachPoint { failure_limit } => {
            let above: Vec<f64> = check
                .max
                .map(|hi| values.iter().copied().filter(|v| *v > hi).collect())
                .unwrap_or_default();
            let below: Vec<f64> = check
                .min
                .map(|lo| values.iter().copied().filter(|v| *v < lo).collect())
                .unwrap_or_default();
            detail.points_above = Some(above.len());
            detail.points_below = Some(below.len());
            detail.failure_limit = Some(failure_limit);
            let outside = above.len() + below.len();
            let n = values.len();
            let mut parts = Vec::new();
            if let Some(hi) = check.max {
                let highest = above.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut s = format!("{} above max {}", above.len(), format_number(hi));
                if !above.is_empty() {
                    s.push_str(&format!(" (highest {})", format_number(highest)));
                }
                parts.push(s);
            }
            if let Some(lo) = check.min {
                let lowest = below.iter().copied().fold(f64::INFINITY, f64::min);
                let mut s = format!("{} below min {}", below.len(), format_number(lo));
                if !below.is_empty() {
                    s.push_str(&format!(" (lowest {})", format_number(lowest)));
                }
                parts.push(s);
            }
            let head = format!(
                "{outside} of {n} canary points outside {bounds}: {}",
                parts.join(", ")
            );
            if outside > failure_limit {
                let label = if above.len() >= below.len() {
                    Classification::High
                } else {
                    Classification::Low
                };
                (
                    label,
                    format!("{label}: {head}, more than failure_limit {failure_limit}"),
                )
            } else {
                (
                    Classification::Pass,
                    format!("pass: {head}, within failure_limit {failure_limit}"),
                )
            }
        }
    };
    result.check = Some(detail);
    result.classification = classification;
    result.reason = reason;
    result
}

/// `≤ max 400`, `≥ min 0.99`, `[0.5, 2]`.
fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("[{}, {}]", format_number(lo), format_number(hi)),
        (Some(lo), None) => format!("min {}", format_number(lo)),
        (None, Some(hi)) => format!("max {}", format_number(hi)),
        (None, None) => "no bounds".to_string(),
    }
}

/// Checks the canary against the baseline on an aggregate with a tolerance (module docs).
/// `canary` and `baseline` are the windows' values in time order. Never panics.
pub fn relative(
    canary: &[f64],
    baseline: &[f64],
    check: &RelativeOptions,
    options: &MetricOptions,
) -> MetricResult {
    let mut result = blank(options, TestKind::Relative, canary.len(), baseline.len());

    // 1. Options.
    if let Err(e) = options.validate() {
        result.reason = format!("error: {e}");
        return result;
    }
    let bad =
        |t: Option<Tolerance>| t.is_some_and(|t| !(t.value().is_finite() && t.value() >= 0.0));
    if check.max_increase.is_none() && check.max_decrease.is_none() {
        result.reason =
            "error: invalid relative check: it needs max_increase or max_decrease".to_string();
        return result;
    }
    if bad(check.max_increase) || bad(check.max_decrease) {
        result.reason =
            "error: invalid relative check: tolerances must be finite and ≥ 0".to_string();
        return result;
    }

    // 2. Preprocessing.
    let (c, pre_c) = preprocess(canary, options.nan_strategy, options.outlier_factor);
    let (b, pre_b) = preprocess(baseline, options.nan_strategy, options.outlier_factor);
    result.preprocessing = [pre_c, pre_b];
    result.n_canary = c.len();
    result.n_baseline = b.len();

    // 3. No data.
    let need = options.min_samples.max(1);
    let mut short = Vec::new();
    if c.len() < need {
        short.push(format!("canary has {}", values_text(c.len())));
    }
    if b.len() < need {
        short.push(format!("baseline has {}", values_text(b.len())));
    }
    if !short.is_empty() {
        let why = format!(
            "{} after preprocessing, need ≥ {need} per side",
            short.join(" and ")
        );
        nodata(&mut result, options, why);
        return result;
    }

    // 4. Decision.
    let agg = check.aggregate;
    let (cv, bv) = (agg.of(&c), agg.of(&b));
    let upper = check.max_increase.map(|t| bv + t.amount(bv));
    let lower = check.max_decrease.map(|t| bv - t.amount(bv));
    result.check = Some(CheckDetail {
        aggregate: Some(agg),
        canary_value: Some(cv),
        baseline_value: Some(bv),
        min: lower,
        max: upper,
        points_above: None,
        points_below: None,
        failure_limit: None,
    });
    if !(cv.is_finite() && bv.is_finite()) {
        result.reason = format!(
            "error: canary {agg} {} or baseline {agg} {} is not a finite number",
            format_number(cv),
            format_number(bv)
        );
        return result;
    }
    let change = cv - bv;
    let relative = if bv != 0.0 {
        format!("{}%", format_signed(100.0 * change / bv.abs()))
    } else if change > 0.0 {
        "relative change undefined on a zero baseline, counted as +inf".to_string()
    } else if change < 0.0 {
        "relative change undefined on a zero baseline, counted as -inf".to_string()
    } else {
        "no change".to_string()
    };
    let head = format!(
        "canary {agg} {} vs baseline {agg} {}: {} ({relative})",
        format_number(cv),
        format_number(bv),
        format_signed(change)
    );
    let limit =
        |t: Tolerance, sign: char, l: f64| format!("{} (limit {})", t.text(sign), format_number(l));
    let (classification, reason) =
        match (check.max_increase.zip(upper), check.max_decrease.zip(lower)) {
            (Some((t, hi)), _) if cv > hi => (
                Classification::High,
                format!("high: {head} > allowed {}", limit(t, '+', hi)),
            ),
            (_, Some((t, lo))) if cv < lo => (
                Classification::Low,
                format!("low: {head} < allowed {}", limit(t, '-', lo)),
            ),
            (inc, dec) => {
                let mut within = Vec::new();
                if let Some((t, hi)) = inc {
                    within.push(limit(t, '+', hi));
                }
                if let Some((t, lo)) = dec {
                    within.push(limit(t, '-', lo));
                }
                let mut reason = format!("pass: {head} within {}", within.join(" and "));
                if inc.is_none() && change > 0.0 {
                    reason.push_str("; only a decrease is checked");
                } else if dec.is_none() && change < 0.0 {
                    reason.push_str("; only an increase is checked");
                }
                (Classification::Pass, reason)
            }
        };
    result.classification = classification;
    result.reason = reason;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NanStrategy;

    fn opts() -> MetricOptions {
        MetricOptions {
            min_samples: 1,
            ..MetricOptions::default()
        }
    }

    fn agg(min: Option<f64>, max: Option<f64>, a: Aggregate) -> ThresholdOptions {
        ThresholdOptions {
            min,
            max,
            mode: ThresholdMode::Aggregate(a),
        }
    }

    #[test]
    fn aggregates() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        assert_eq!(Aggregate::Mean.of(&v), 3.9);
        assert_eq!(Aggregate::Median.of(&v), 3.5);
        assert_eq!(Aggregate::Min.of(&v), 1.0);
        assert_eq!(Aggregate::Max.of(&v), 9.0);
        assert_eq!(Aggregate::Last.of(&v), 3.0);
        // Type 7: h = 9·0.9 = 8.1 between the sorted 6 and 9.
        assert!((Aggregate::P90.of(&v) - 6.3).abs() < 1e-12);
        assert!((Aggregate::P99.of(&v) - 8.73).abs() < 1e-12);
        assert!(Aggregate::Mean.of(&[]).is_nan());
    }

    #[test]
    fn threshold_on_an_aggregate() {
        let latency = [300.0, 320.0, 410.0, 380.0, 390.0];
        let r = threshold(&latency, &agg(None, Some(400.0), Aggregate::Mean), &opts());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!(r.reason, "pass: canary mean 360 within max 400");
        assert_eq!(r.test, TestKind::Threshold);
        let r = threshold(&latency, &agg(None, Some(400.0), Aggregate::Max), &opts());
        assert_eq!(r.classification, Classification::High);
        assert_eq!(r.reason, "high: canary max 410 > max 400");
        let d = r.check.unwrap();
        assert_eq!(
            (d.canary_value, d.max, d.min),
            (Some(410.0), Some(400.0), None)
        );
        assert_eq!(r.n_baseline, 0);
        // The bound itself passes (Flagger: fail only when val > max).
        let r = threshold(&latency, &agg(None, Some(410.0), Aggregate::Max), &opts());
        assert_eq!(r.classification, Classification::Pass);
        // A success rate under its minimum is low.
        let r = threshold(
            &[0.995, 0.97, 0.98],
            &agg(Some(0.99), None, Aggregate::Last),
            &opts(),
        );
        assert_eq!(r.classification, Classification::Low);
        assert_eq!(r.reason, "low: canary last 0.98 < min 0.99");
    }

    #[test]
    fn threshold_on_every_point_with_a_failure_limit() {
        let v = [100.0, 500.0, 120.0, 450.0, 90.0, 30.0];
        let each = |limit| ThresholdOptions {
            min: Some(50.0),
            max: Some(400.0),
            mode: ThresholdMode::EachPoint {
                failure_limit: limit,
            },
        };
        // 3 points outside: more than 2 fails, 3 is allowed.
        let r = threshold(&v, &each(2), &opts());
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(
            r.reason,
            "high: 3 of 6 canary points outside [50, 400]: 2 above max 400 (highest 500), \
             1 below min 50 (lowest 30), more than failure_limit 2"
        );
        let d = r.check.as_ref().unwrap();
        assert_eq!(
            (d.points_above, d.points_below, d.failure_limit),
            (Some(2), Some(1), Some(2))
        );
        let r = threshold(&v, &each(3), &opts());
        assert_eq!(r.classification, Classification::Pass);
        assert!(r.reason.ends_with("within failure_limit 3"), "{}", r.reason);
        // Argo's default failure_limit 0: one point out fails; mostly below is low.
        let r = threshold(&[60.0, 10.0, 20.0, 500.0], &each(0), &opts());
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
    }

    #[test]
    fn threshold_data_rules() {
        let o = MetricOptions {
            min_samples: 3,
            must_have_data: true,
            ..MetricOptions::default()
        };
        let t = agg(None, Some(1.0), Aggregate::Mean);
        let r = threshold(&[0.5, f64::NAN], &t, &o);
        assert_eq!(r.classification, Classification::NodataFail);
        assert_eq!(
            r.reason,
            "nodata_fail: canary has 1 value after preprocessing, need ≥ 3 (a threshold \
             checks the canary only) (must_have_data)"
        );
        assert_eq!(r.preprocessing[0].non_finite_removed, 1);
        let r = threshold(&[0.5], &agg(None, None, Aggregate::Mean), &opts());
        assert_eq!(r.classification, Classification::Error);
        let r = threshold(&[0.5], &agg(Some(2.0), Some(1.0), Aggregate::Mean), &opts());
        assert_eq!(r.reason, "error: invalid threshold: min 2 is above max 1");
        let replace = MetricOptions {
            nan_strategy: NanStrategy::Replace(0.0),
            ..opts()
        };
        let r = threshold(
            &[f64::NAN, 2.0],
            &agg(Some(0.5), None, Aggregate::Min),
            &replace,
        );
        assert_eq!(r.classification, Classification::Low);
    }

    fn rel(inc: Option<Tolerance>, dec: Option<Tolerance>) -> RelativeOptions {
        RelativeOptions {
            aggregate: Aggregate::Mean,
            max_increase: inc,
            max_decrease: dec,
        }
    }

    #[test]
    fn relative_with_a_percentage() {
        let base = [100.0, 100.0, 100.0];
        let t = rel(Some(Tolerance::Percent(10.0)), None);
        let r = relative(&[112.0, 108.0, 115.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(
            r.reason,
            "high: canary mean 111.7 vs baseline mean 100: +11.67 (+11.67%) > allowed +10% (limit 110)"
        );
        let d = r.check.as_ref().unwrap();
        assert_eq!(
            (d.baseline_value, d.max, d.min),
            (Some(100.0), Some(110.0), None)
        );
        // The limit itself passes (Keptn's `<=+10%`).
        let r = relative(&[110.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        // A decrease is not checked without max_decrease.
        let r = relative(&[50.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::Pass);
        assert!(
            r.reason.ends_with("; only an increase is checked"),
            "{}",
            r.reason
        );
        let t = rel(None, Some(Tolerance::Percent(5.0)));
        let r = relative(&[94.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
        assert!(
            r.reason.ends_with("< allowed -5% (limit 95)"),
            "{}",
            r.reason
        );
        // A negative baseline: +10% of |−10| allows up to −9.
        let t = rel(Some(Tolerance::Percent(10.0)), None);
        assert_eq!(
            relative(&[-9.0], &[-10.0], &t, &opts()).classification,
            Classification::Pass
        );
        assert_eq!(
            relative(&[-8.5], &[-10.0], &t, &opts()).classification,
            Classification::High
        );
    }

    #[test]
    fn relative_with_an_absolute_amount() {
        let t = rel(
            Some(Tolerance::Absolute(25.0)),
            Some(Tolerance::Absolute(0.5)),
        );
        let base = [200.0, 210.0];
        let r = relative(&[230.0, 230.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!(
            r.reason,
            "pass: canary mean 230 vs baseline mean 205: +25 (+12.2%) within +25 (limit 230) \
             and -0.5 (limit 204.5)"
        );
        let r = relative(&[230.5], &base, &t, &opts());
        assert_eq!(r.classification, Classification::High);
        let r = relative(&[204.0], &base, &t, &opts());
        assert_eq!(r.classification, Classification::Low);
    }

    #[test]
    fn relative_on_a_zero_baseline() {
        let zeros = [0.0, 0.0, 0.0];
        // A percentage of 0 is 0: any increase fails, and the reason says why.
        let t = rel(Some(Tolerance::Percent(50.0)), None);
        let r = relative(&[0.0, 0.0, 3.0], &zeros, &t, &opts());
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(
            r.reason,
            "high: canary mean 1 vs baseline mean 0: +1 (relative change undefined on a zero \
             baseline, counted as +inf) > allowed +50% (limit 0)"
        );
        // No change passes.
        let r = relative(&zeros, &zeros, &t, &opts());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert!(r.reason.contains("(no change)"), "{}", r.reason);
        // An absolute tolerance is unaffected by the zero.
        let t = rel(Some(Tolerance::Absolute(2.0)), None);
        let r = relative(&[0.0, 0.0, 3.0], &zeros, &t, &opts());
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        // A decrease from 0 with a percentage fails too.
        let t = rel(None, Some(Tolerance::Percent(50.0)));
        let r = relative(&[-1.0], &zeros, &t, &opts());
        assert_eq!(r.classification, Classification::Low, "{}", r.reason);
        assert!(r.reason.contains("counted as -inf"), "{}", r.reason);
    }

    #[test]
    fn relative_needs_both_sides() {
        let t = rel(Some(Tolerance::Percent(10.0)), None);
        let o = MetricOptions {
            min_samples: 2,
            ..MetricOptions::default()
        };
        let r = relative(&[1.0, 2.0], &[1.0], &t, &o);
        assert_eq!(r.classification, Classification::Nodata);
        assert_eq!(
            r.reason,
            "nodata: baseline has 1 value after preprocessing, need ≥ 2 per side"
        );
        let r = relative(&[1.0], &[1.0], &rel(None, None), &opts());
        assert_eq!(r.classification, Classification::Error);
        let r = relative(
            &[1.0],
            &[1.0],
            &rel(Some(Tolerance::Percent(-1.0)), None),
            &opts(),
        );
        assert_eq!(r.classification, Classification::Error);
    }
}
