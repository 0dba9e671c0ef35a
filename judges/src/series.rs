//! Classifying time series: the metric classifier with the points' dependence taken into
//! account, and the scoring rule for metrics that do not yet have enough independent
//! evidence.
//!
//! [`classify_series`] takes each cohort's window as time stamps and values and applies
//! [`MetricOptions::independence`]:
//!
//! - **`assume`**: exactly [`crate::classify()`] on the values (plain Mann–Whitney, R's and
//!   Kayenta's behaviour); the time stamps are ignored and `n_eff` is not reported.
//! - **`auto`**: the same steps as [`crate::classify()`] (options, preprocessing, no data,
//!   comparison, decision), but the Mann–Whitney null variance is multiplied by the factor
//!   [`crate::autocorr::mann_whitney_inflation`] estimates from the two series, in the
//!   p-value and in the Hodges–Lehmann interval alike.
//! - **`paired`**: the canary point at `t` is matched with the baseline point at
//!   `t − baseline_offset`; the test is [`crate::paired::paired_test`] on the pairs (mean
//!   difference, HAC standard error, Student-t interval) and the decision rule is the same
//!   (interval wholly above 0 and the mean ratio reaching `allowed_increase`, …). Points
//!   without a partner are left out and counted in a warning; `min_samples` counts pairs.
//!
//! Preprocessing (NaN handling, outliers) is [`crate::preprocess::preprocess`]'s, applied so
//! that every kept value keeps its time stamp.
//!
//! # Too little independent evidence
//!
//! With `auto` and `paired` every judged result reports `n_eff`, the effective sample size of
//! each side. When either is below `max(min_samples, 1)`:
//!
//! - a warning says so;
//! - a `pass`, `high` or `low` becomes **`nodata`**: its reason starts with
//!   `nodata: too little independent evidence` and ends with what the test alone said. The
//!   test's numbers stay in the result. Never `nodata_fail`, even with `must_have_data`: the
//!   data is there, it is just not yet worth enough independent values. An `error` stays an
//!   error.
//! - scoring ([`score_with_evidence`]) caps the interval at **hold**: it cannot promote while
//!   a metric is unjudged for this reason, and it aborts only if it would abort whatever
//!   that metric turns out to be (as if it passed). So too little evidence is never a silent
//!   pass and never a false abort. A longer window settles it (a coarser step does not: fewer
//!   points, each worth more, about the same n_eff).

use std::borrow::Cow;
use std::cell::Cell;

use crate::autocorr::{Independence, Inflation, Sorted, mann_whitney_inflation_sorted};
use crate::classify::{
    Classification, MetricOptions, MetricResult, TestKind, format_number, initial_result,
    judge_preprocessed,
};
use crate::compare::{
    CompareOptions, Comparison, Method, compare_sorted_given, compare_with, sorted_copy,
    validate_options,
};
use crate::mann_whitney::{RankSummary, rank_summary_grown};
use crate::paired::{PairedComparison, pair_by_time, paired_test};
use crate::preprocess::{NanStrategy, Preprocessed, outlier_fences};
use crate::score::{Scorecard, ScoredMetric, Verdict, score};
use crate::shift::{Anchor, ShiftHint, ShiftTrace, grown_guide};
use crate::{GroupWeights, JudgeError, Thresholds};

/// One cohort's points: time stamps (ms since the epoch, ascending) and values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Series<'a> {
    pub t: &'a [i64],
    pub v: &'a [f64],
}

/// Classifies the canary series against the baseline series by the rules of
/// [`crate::classify()`] and the module docs. `baseline_offset` is how far the baseline window
/// lies before the canary's (ms; only `paired` uses it). Never panics.
pub fn classify_series(
    canary: Series<'_>,
    baseline: Series<'_>,
    baseline_offset: i64,
    options: &MetricOptions,
) -> MetricResult {
    classify_series_ordered(canary, baseline, [None, None], baseline_offset, options)
}

/// [`classify_series`], with `order` each series' value order when the caller knows it
/// (`[canary, baseline]`): the indices `0..v.len()` of its values in ascending
/// [`f64::total_cmp`] order, as a recording sorted once can give for any window. The result
/// is the same as [`classify_series`]'s, bit for bit; the order only saves sorting the
/// windows (the selections, ranks and effect sizes read sorted copies). An order whose length
/// differs from its series' is ignored, and so are both when preprocessing drops or replaces
/// any value.
pub fn classify_series_ordered(
    canary: Series<'_>,
    baseline: Series<'_>,
    order: [Option<&[u32]>; 2],
    baseline_offset: i64,
    options: &MetricOptions,
) -> MetricResult {
    classify_series_traced(canary, baseline, order, baseline_offset, options, None).0
}

/// [`classify_series_ordered`], with `hint` where an earlier, similar judgement's shift
/// selections landed (the previous interval's estimate and interval, for a window that grew):
/// the result is the same bit for bit, found with fewer passes over the data. Also returns
/// where this judgement's selections landed ([`ShiftTrace`]), for the next hint. A hint's
/// `trace` is used only when these series extend the traced ones in time (its values are a
/// prefix of these) and nothing was removed by preprocessing.
pub fn classify_series_traced(
    canary: Series<'_>,
    baseline: Series<'_>,
    order: [Option<&[u32]>; 2],
    baseline_offset: i64,
    options: &MetricOptions,
    hint: Option<ShiftHint>,
) -> (MetricResult, Option<ShiftTrace>) {
    let traced = Cell::new(None);
    let sides = (canary, baseline, order);
    let result = classify_series_inner(sides, baseline_offset, options, hint, &traced);
    (result, traced.get())
}

type Sides<'a> = (Series<'a>, Series<'a>, [Option<&'a [u32]>; 2]);

fn classify_series_inner(
    (canary, baseline, order): Sides<'_>,
    baseline_offset: i64,
    options: &MetricOptions,
    hint: Option<ShiftHint>,
    traced: &Cell<Option<ShiftTrace>>,
) -> MetricResult {
    let order = [
        order[0].filter(|o| o.len() == canary.v.len()),
        order[1].filter(|o| o.len() == baseline.v.len()),
    ];
    debug_assert!(
        [(order[0], canary.v), (order[1], baseline.v)]
            .iter()
            .all(|(o, v)| o.is_none_or(|o| o
                .windows(2)
                .all(|w| v[w[0] as usize].total_cmp(&v[w[1] as usize]).is_le()))),
        "an order must sort its values"
    );
    if options.independence == Independence::Assume {
        let options = MetricOptions {
            independence: Independence::Assume,
            ..options.clone()
        };
        if let [Some(oc), Some(ob)] = order {
            if options.outlier_factor.is_none()
                && canary.v.iter().chain(baseline.v).all(|v| v.is_finite())
            {
                return assume_sorted(canary.v, baseline.v, [oc, ob], &options, hint, traced);
            }
        }
        return crate::classify::classify(canary.v, baseline.v, &options);
    }
    let mut result = initial_result(options, canary.v.len(), baseline.v.len());
    for (s, side) in [(canary, "canary"), (baseline, "baseline")] {
        if s.t.len() != s.v.len() {
            result.reason = format!(
                "error: the {side} series has {} time stamps for {} values",
                s.t.len(),
                s.v.len()
            );
            return result;
        }
    }
    if let Err(e) = options.validate() {
        result.reason = format!("error: {e}");
        return result;
    }
    let (ct, cv, pc) = preprocess_timed(canary, options.nan_strategy, options.outlier_factor);
    let (bt, bv, pb) = preprocess_timed(baseline, options.nan_strategy, options.outlier_factor);
    match options.independence {
        Independence::Paired => paired(
            result,
            (&ct, &cv, pc),
            (&bt, &bv, pb),
            baseline_offset,
            options,
        ),
        _ => {
            let untouched = |p: &Preprocessed| *p == Preprocessed::default();
            let order = if untouched(&pc) && untouched(&pb) {
                order
            } else {
                [None, None]
            };
            let hint = if order.iter().all(Option::is_some) {
                hint
            } else {
                hint.map(|h| ShiftHint { trace: None, ..h })
            };
            auto(
                result,
                (&ct, &cv, pc),
                (&bt, &bv, pb),
                order,
                options,
                hint,
                traced,
            )
        }
    }
}

/// What an earlier interval's trace gives the comparison of the current samples.
struct Resolved {
    /// The hint, with its guides resolved where the trace allowed.
    hint: Option<ShiftHint>,
    /// The current samples' rank summary, grown from the trace's.
    summary: Option<RankSummary>,
    /// [`digest`]s of the current samples in time order, `[canary, baseline]`, for the next
    /// interval's trace.
    digest: [u64; 2],
}

/// `hint` resolved for the sorted samples `xs`, `ys`, whose values in time order are `x`
/// and `y`. When the traced samples are a prefix of these and the points added since are few
/// (a window that grew by an interval), the trace's anchors become guides; when the prefixes'
/// digests also match the trace's, its rank summary is grown to these samples. Otherwise the
/// trace is not used.
fn resolve(
    hint: Option<ShiftHint>,
    (xs, ys): (&[f64], &[f64]),
    (x, y): (&[f64], &[f64]),
) -> Resolved {
    let (n, m) = (xs.len(), ys.len());
    // Without a usable trace: the hint as it is, and the digests of the whole samples.
    let unresolved = |hint| Resolved {
        hint,
        summary: None,
        digest: [digest(DIGEST_SEED, x), digest(DIGEST_SEED, y)],
    };
    let Some(mut h) = hint else {
        return unresolved(hint);
    };
    let Some(tr) = h.trace else {
        return unresolved(hint);
    };
    let grown = tr.n > 0 && tr.m > 0 && tr.n <= n && tr.m <= m;
    if !(grown && x.len() == n && y.len() == m && (n - tr.n) + (m - tr.m) <= (n + m) / 4) {
        return unresolved(hint);
    }
    let (new_x, new_y) = (&x[tr.n..], &y[tr.m..]);
    let guide = |a: &Option<Anchor>| a.map(|a| grown_guide(&a, (tr.n, tr.m), xs, ys, new_x, new_y));
    h.guides = [guide(&tr.estimate), guide(&tr.ci[0]), guide(&tr.ci[1])];
    // The summary is a result, not a guide: it is grown only from samples known to be these
    // prefixes, and only while the new × new pairs stay few.
    let prefix = [
        digest(DIGEST_SEED, &x[..tr.n]),
        digest(DIGEST_SEED, &y[..tr.m]),
    ];
    let summary = tr
        .ranks
        .filter(|prev| {
            prefix == tr.digest
                && (prev.n, prev.m) == (tr.n, tr.m)
                && new_x.len() * new_y.len() <= n + m
        })
        .map(|prev| rank_summary_grown(&prev, xs, ys, new_x, new_y));
    Resolved {
        hint: Some(h),
        summary,
        // The whole samples' digests, continued from their prefixes'.
        digest: [digest(prefix[0], new_x), digest(prefix[1], new_y)],
    }
}

/// Where [`digest`]s start.
const DIGEST_SEED: u64 = 0x243f_6a88_85a3_08d3;

/// A 64-bit digest of the multiset of the bits of `v`, continued from `state`: the wrapping
/// sum of a bijective mix of each value's bits, so the digest of `a` then `b` is
/// `digest(digest(seed, a), b)`, and a single changed value always changes it. Not
/// cryptographic: it tells a window that grew from an earlier one from a window whose
/// earlier points changed (a live source that re-read them), with a chance of about 2⁻⁶⁴
/// of missing several changes at once. The terms are independent, so the sum runs at the
/// processor's throughput, not at the latency of a chain.
fn digest(state: u64, v: &[f64]) -> u64 {
    v.iter().fold(state, |h, x| {
        let b = x.to_bits();
        h.wrapping_add((b ^ (b >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    })
}

/// The values of `v` in the order `order`.
fn gather(v: &[f64], order: &[u32]) -> Vec<f64> {
    order.iter().map(|&i| v[i as usize]).collect()
}

/// `assume` ([`crate::classify()`]) on finite samples whose order is known and which no
/// preprocessing changes (no outlier removal): the same steps, with the sorted copies taken
/// from the order.
fn assume_sorted(
    canary: &[f64],
    baseline: &[f64],
    order: [&[u32]; 2],
    options: &MetricOptions,
    hint: Option<ShiftHint>,
    traced: &Cell<Option<ShiftTrace>>,
) -> MetricResult {
    let result = initial_result(options, canary.len(), baseline.len());
    if let Err(e) = options.validate() {
        let mut result = result;
        result.reason = format!("error: {e}");
        return result;
    }
    let (xs, ys) = (gather(canary, order[0]), gather(baseline, order[1]));
    let resolved = resolve(hint, (&xs, &ys), (canary, baseline));
    let compare = |_: &[f64], _: &[f64], o: &CompareOptions| -> Result<Comparison, JudgeError> {
        validate_options(o)?;
        let hint = resolved.hint.as_ref();
        let (comparison, trace) = compare_sorted_given(&xs, &ys, o, None, hint, resolved.summary);
        traced.set(Some(ShiftTrace {
            digest: resolved.digest,
            ..trace
        }));
        Ok(comparison)
    };
    judge_preprocessed(
        result,
        canary,
        baseline,
        [Preprocessed::default(); 2],
        Some([&xs, &ys]),
        options,
        compare,
    )
}

type Side<'a> = (&'a [i64], &'a [f64], Preprocessed);

fn auto(
    result: MetricResult,
    c: Side<'_>,
    b: Side<'_>,
    order: [Option<&[u32]>; 2],
    options: &MetricOptions,
    hint: Option<ShiftHint>,
    traced: &Cell<Option<ShiftTrace>>,
) -> MetricResult {
    let (ct, cv, pc) = c;
    let (bt, bv, pb) = b;
    let found: Cell<Option<Inflation>> = Cell::new(None);
    // Sorted copies, once, for the selection, the placements and the effect sizes.
    let xs = order[0].map_or_else(|| sorted_copy(cv), |o| gather(cv, o));
    let ys = order[1].map_or_else(|| sorted_copy(bv), |o| gather(bv, o));
    let resolved = resolve(hint, (&xs, &ys), (cv, bv));
    let hint = resolved.hint;
    let compare = |x: &[f64], y: &[f64], o: &CompareOptions| -> Result<Comparison, JudgeError> {
        // `x` and `y` are `cv` and `bv`: judge_preprocessed passes them through.
        if x.iter().chain(y).any(|v| !v.is_finite()) || x.is_empty() || y.is_empty() {
            return compare_with(x, y, o);
        }
        let guide = hint.map(|h| h.guide(0));
        let (hl, estimate_anchor) = crate::shift::hodges_lehmann_guided(&xs, &ys, guide);
        let sorted = Sorted {
            order,
            values: Some([&xs, &ys]),
        };
        let inflation = mann_whitney_inflation_sorted(ct, x, bt, y, hl, o.confidence, sorted);
        found.set(Some(inflation));
        let inflated = CompareOptions {
            variance_inflation: o.variance_inflation * inflation.factor,
            ..*o
        };
        validate_options(&inflated)?;
        let (comparison, trace) = compare_sorted_given(
            &xs,
            &ys,
            &inflated,
            Some(hl),
            hint.as_ref(),
            resolved.summary,
        );
        traced.set(Some(ShiftTrace {
            estimate: estimate_anchor,
            digest: resolved.digest,
            ..trace
        }));
        Ok(comparison)
    };
    let sorted = Some([xs.as_slice(), ys.as_slice()]);
    let mut result = judge_preprocessed(result, cv, bv, [pc, pb], sorted, options, compare);
    if let Some(inflation) = found.get() {
        result.n_eff = Some(inflation.n_eff);
        result.variance_inflation = Some(inflation.factor);
        if inflation.factor > 1.0 && result.classification != Classification::Error {
            result.reason.push_str(&format!(
                "; autocorrelation: variance ×{}, n_eff {} | {}",
                format_number(inflation.factor),
                format_number(inflation.n_eff[0]),
                format_number(inflation.n_eff[1])
            ));
        }
        evidence_rule(&mut result, options, inflation.n_eff, [cv.len(), bv.len()]);
    }
    result
}

fn paired(
    result: MetricResult,
    c: Side<'_>,
    b: Side<'_>,
    offset: i64,
    options: &MetricOptions,
) -> MetricResult {
    let (ct, cv, pc) = c;
    let (bt, bv, pb) = b;
    let pairs = pair_by_time(ct, cv, bt, bv, offset);
    let found: Cell<Option<PairedComparison>> = Cell::new(None);
    let compare = |x: &[f64], y: &[f64], o: &CompareOptions| -> Result<Comparison, JudgeError> {
        let p = paired_test(&pairs.t, x, y, o.confidence)?;
        found.set(Some(p));
        Ok(Comparison {
            method: Method::Normal,
            n_canary: x.len(),
            n_baseline: y.len(),
            u: f64::NAN,
            p_value: p.p_value,
            estimate: p.estimate,
            ci: p.ci,
            confidence: o.confidence,
        })
    };
    let mut result = judge_preprocessed(
        result,
        &pairs.canary,
        &pairs.baseline,
        [pc, pb],
        None,
        options,
        compare,
    );
    result.test = TestKind::Paired;
    result.method = None;
    result.u = None;
    let [uc, ub] = pairs.unpaired;
    if uc + ub > 0 {
        result.warnings.push(format!(
            "{uc} canary and {ub} baseline points had no partner at the same time and were \
             left out"
        ));
    }
    match found.get() {
        Some(p) => {
            result.reason = result.reason.replacen(
                "canary − baseline shift",
                "mean paired difference (canary − baseline)",
                1,
            );
            let n_eff = p.long_run.n_eff;
            result.n_eff = Some([n_eff, n_eff]);
            result.variance_inflation = Some(p.long_run.tau.max(1.0));
            if p.long_run.tau > 1.0 && result.classification != Classification::Error {
                result.reason.push_str(&format!(
                    "; autocorrelation: variance ×{}, n_eff {}",
                    format_number(p.long_run.tau),
                    format_number(n_eff)
                ));
            }
            evidence_rule(&mut result, options, [n_eff, n_eff], [p.n_pairs, p.n_pairs]);
        }
        None if matches!(
            result.classification,
            Classification::Nodata | Classification::NodataFail
        ) =>
        {
            result
                .reason
                .push_str(" (counting pairs at equal time stamps)");
        }
        None => {}
    }
    result
}

/// The rule of the module docs for an effective sample size below `min_samples`.
fn evidence_rule(
    result: &mut MetricResult,
    options: &MetricOptions,
    n_eff: [f64; 2],
    points: [usize; 2],
) {
    let need = options.min_samples.max(1);
    if !(n_eff[0] < need as f64 || n_eff[1] < need as f64) {
        return;
    }
    let what = format!(
        "effective sample size canary {}, baseline {} ({} and {} autocorrelated points), \
         need ≥ {need} per side",
        format_number(n_eff[0]),
        format_number(n_eff[1]),
        points[0],
        points[1]
    );
    result
        .warnings
        .push(format!("too little independent evidence: {what}"));
    if matches!(
        result.classification,
        Classification::Pass | Classification::High | Classification::Low
    ) {
        let said = std::mem::take(&mut result.reason);
        result.classification = Classification::Nodata;
        result.reason =
            format!("nodata: too little independent evidence: {what}; the test alone says {said}");
    }
}

/// [`classify_series`] for two plain value lists taken as time series in input order, one
/// point per step: with equal lengths, the i-th canary and baseline values are taken as
/// simultaneous (aligned rows); otherwise the two are taken as not simultaneous, and
/// `paired` is an error.
pub fn classify_values(canary: &[f64], baseline: &[f64], options: &MetricOptions) -> MetricResult {
    let (n, m) = (canary.len(), baseline.len());
    if options.independence == Independence::Paired && n != m {
        let mut result = initial_result(options, n, m);
        result.test = TestKind::Paired;
        result.reason = format!(
            "error: independence paired needs as many canary as baseline values (value i \
             with value i), got {n} and {m}"
        );
        return result;
    }
    let ct: Vec<i64> = (0..n as i64).collect();
    let start = if n == m { 0 } else { n as i64 + 1 };
    let bt: Vec<i64> = (0..m as i64).map(|i| start + i).collect();
    classify_series(
        Series { t: &ct, v: canary },
        Series {
            t: &bt,
            v: baseline,
        },
        0,
        options,
    )
}

/// Whether a result is `nodata` because its effective sample size was too small (the rule of
/// the module docs), as opposed to missing data.
pub fn lacks_evidence(result: &MetricResult) -> bool {
    result.classification == Classification::Nodata && result.n_eff.is_some()
}

/// [`score`], then the evidence rule of the module docs: when some metric `lacking` (same
/// order as `metrics`) independent evidence, the verdict is at most **hold**, and **abort**
/// only when the metrics scored as passing would abort too.
pub fn score_with_evidence(
    metrics: &[ScoredMetric],
    lacking: &[bool],
    weights: &GroupWeights,
    thresholds: &Thresholds,
) -> Result<Scorecard, JudgeError> {
    let card = score(metrics, weights, thresholds)?;
    let names: Vec<&str> = metrics
        .iter()
        .zip(lacking)
        .filter(|&(_, &l)| l)
        .map(|(m, _)| m.name.as_str())
        .collect();
    if names.is_empty() || card.verdict == Verdict::Hold {
        return Ok(card);
    }
    if card.verdict == Verdict::Abort {
        let optimistic: Vec<ScoredMetric> = metrics
            .iter()
            .zip(lacking)
            .map(|(m, &l)| ScoredMetric {
                classification: if l {
                    Classification::Pass
                } else {
                    m.classification
                },
                ..m.clone()
            })
            .collect();
        if score(&optimistic, weights, thresholds)?.verdict == Verdict::Abort {
            return Ok(card);
        }
    }
    let rest = ["promote: ", "abort: "]
        .iter()
        .find_map(|p| card.reason.strip_prefix(p))
        .unwrap_or(&card.reason)
        .to_string();
    Ok(Scorecard {
        verdict: Verdict::Hold,
        reason: format!(
            "hold: too little independent evidence yet for {} (effective sample size below \
             min_samples); without {}: {rest}",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        ),
        ..card
    })
}

/// [`crate::preprocess::preprocess`] keeping each value's time stamp: the same values in the
/// same order, and the same counts. Borrowed when it changes nothing (finite values and no
/// outlier removal, the common case), copied otherwise.
fn preprocess_timed<'a>(
    s: Series<'a>,
    nan: NanStrategy,
    outlier_factor: Option<f64>,
) -> (Cow<'a, [i64]>, Cow<'a, [f64]>, Preprocessed) {
    if outlier_factor.is_none() && s.v.iter().all(|v| v.is_finite()) {
        return (
            Cow::Borrowed(s.t),
            Cow::Borrowed(s.v),
            Preprocessed::default(),
        );
    }
    let mut counts = Preprocessed::default();
    let mut t = Vec::with_capacity(s.v.len());
    let mut v = Vec::with_capacity(s.v.len());
    for (&ti, &vi) in s.t.iter().zip(s.v) {
        if vi.is_finite() {
            t.push(ti);
            v.push(vi);
        } else {
            match nan {
                NanStrategy::Remove => counts.non_finite_removed += 1,
                NanStrategy::Replace(r) => {
                    counts.non_finite_replaced += 1;
                    t.push(ti);
                    v.push(r);
                }
            }
        }
    }
    if let (Some(k), false) = (outlier_factor, v.is_empty()) {
        let [lower, upper] = outlier_fences(&v, k);
        let before = v.len();
        let keep: Vec<bool> = v.iter().map(|&x| !(x < lower || x > upper)).collect();
        let mut i = 0;
        t.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        v.retain(|&x| !(x < lower || x > upper));
        counts.outliers_removed = before - v.len();
    }
    (Cow::Owned(t), Cow::Owned(v), counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use crate::preprocess::preprocess;

    use crate::test_support::Normals;

    /// A stationary unit-variance AR(1) series around `mean`.
    fn ar1(seed: u64, n: usize, rho: f64, mean: f64) -> Vec<f64> {
        crate::test_support::ar1(seed, n, rho)
            .into_iter()
            .map(|x| mean + x)
            .collect()
    }

    fn stamps(n: usize) -> Vec<i64> {
        (0..n as i64)
            .map(|i| 1_767_225_600_000 + 10_000 * i)
            .collect()
    }

    fn opts(independence: Independence) -> MetricOptions {
        MetricOptions {
            independence,
            min_samples: 10,
            ..MetricOptions::default()
        }
    }

    /// Indices of `v` in ascending total order.
    fn order_of(v: &[f64]) -> Vec<u32> {
        let mut o: Vec<u32> = (0..v.len() as u32).collect();
        o.sort_by(|&a, &b| v[a as usize].total_cmp(&v[b as usize]));
        o
    }

    #[test]
    fn a_traced_growing_window_gives_the_fresh_result_and_a_changed_prefix_is_not_reused() {
        // Tied values (rounded), so the rank summary has tie groups to grow.
        let round =
            |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| (x * 4.0).round()).collect() };
        let (x, y) = (round(ar1(5, 900, 0.6, 0.3)), round(ar1(6, 900, 0.6, 0.0)));
        let t = stamps(900);
        for independence in [Independence::Assume, Independence::Auto] {
            let o = opts(independence);
            let judge = |x: &[f64], y: &[f64], hint: Option<ShiftHint>| {
                let n = x.len();
                let (ox, oy) = (order_of(x), order_of(y));
                classify_series_traced(
                    Series { t: &t[..n], v: x },
                    Series { t: &t[..n], v: y },
                    [Some(&ox), Some(&oy)],
                    0,
                    &o,
                    hint,
                )
            };
            let hint_of = |r: &MetricResult, trace: Option<ShiftTrace>| ShiftHint {
                trace,
                ..ShiftHint::new(r.estimate.unwrap(), r.ci.unwrap())
            };
            let (mut prev, mut trace) = judge(&x[..600], &y[..600], None);
            for n in [630, 660, 690] {
                let (fresh, _) = judge(&x[..n], &y[..n], None);
                let (grown, next) = judge(&x[..n], &y[..n], Some(hint_of(&prev, trace)));
                assert_eq!(grown, fresh, "{independence:?} n={n}");
                let next = next.expect("a trace");
                assert!(next.ranks.is_some() && next.digest != [0, 0]);
                (prev, trace) = (grown, Some(next));
            }
            // The same sizes, but an early canary point changed (a source that re-read it):
            // the trace's summary must not be grown, or U would be the old data's.
            let mut changed = x[..720].to_vec();
            changed[3] = 1e6;
            let (fresh, _) = judge(&changed, &y[..720], None);
            let (grown, _) = judge(&changed, &y[..720], Some(hint_of(&prev, trace)));
            assert_eq!(grown, fresh, "{independence:?} changed prefix");
            let (unchanged, _) = judge(&x[..720], &y[..720], None);
            assert_ne!(
                fresh.u, unchanged.u,
                "the change must move U for this test to bite"
            );
        }
    }

    #[test]
    fn a_known_order_gives_the_same_result_bit_for_bit() {
        for (seed, n, m, rho, rounding) in [
            (1, 40, 30, 0.0, None),
            (2, 300, 280, 0.8, None),
            (3, 500, 500, 0.95, Some(1.0)),
            (4, 2000, 1900, 0.5, Some(10.0)),
            (5, 30, 600, 0.3, Some(0.0)),
        ] {
            let round = |v: Vec<f64>| -> Vec<f64> {
                match rounding {
                    Some(0.0) => v.iter().map(|_| 1.0).collect(),
                    Some(r) => v.iter().map(|x| (x * r).round()).collect(),
                    None => v,
                }
            };
            let mut x = round(ar1(seed, n, rho, 0.2));
            let y = round(ar1(seed + 100, m, rho, 0.0));
            let (tx, ty) = (stamps(n), stamps(m));
            for nan in [false, true] {
                if nan {
                    x[n / 2] = f64::NAN;
                }
                let (ox, oy) = (order_of(&x), order_of(&y));
                for independence in [
                    Independence::Assume,
                    Independence::Auto,
                    Independence::Paired,
                ] {
                    for outlier_factor in [None, Some(1.5)] {
                        let o = MetricOptions {
                            outlier_factor,
                            ..opts(independence)
                        };
                        let (c, b) = (Series { t: &tx, v: &x }, Series { t: &ty, v: &y });
                        let plain = classify_series(c, b, 0, &o);
                        let ordered = classify_series_ordered(c, b, [Some(&ox), Some(&oy)], 0, &o);
                        assert_eq!(
                            serde_json::to_string(&plain).unwrap(),
                            serde_json::to_string(&ordered).unwrap(),
                            "seed {seed}, {independence}, nan {nan}, outliers {outlier_factor:?}"
                        );
                        // An order of the wrong length is ignored.
                        let short = classify_series_ordered(c, b, [Some(&ox[1..]), None], 0, &o);
                        assert_eq!(plain, short);
                    }
                }
            }
        }
    }

    #[test]
    fn assume_is_plain_mann_whitney_exactly() {
        let x = ar1(1, 120, 0.8, 0.3);
        let y = ar1(2, 120, 0.8, 0.0);
        let t = stamps(120);
        let plain = crate::classify::classify(&x, &y, &MetricOptions::default());
        let r = classify_series(
            Series { t: &t, v: &x },
            Series { t: &t, v: &y },
            0,
            &opts(Independence::Assume),
        );
        // Identical but for min_samples (10 vs 1), which does not matter here.
        assert_eq!(r.p_value, plain.p_value);
        assert_eq!(r.ci, plain.ci);
        assert_eq!(r.u, plain.u);
        assert_eq!(r.estimate, plain.estimate);
        assert_eq!(r.reason, plain.reason);
        assert_eq!(r.n_eff, None);
        assert_eq!(r.variance_inflation, None);
        // And `classify` with the default options is R's wilcox.test: the exact method for
        // small tie-free samples.
        let small = crate::classify::classify(&x[..20], &y[..20], &MetricOptions::default());
        assert_eq!(small.method, Some(Method::Exact));
    }

    #[test]
    fn auto_widens_the_interval_on_autocorrelated_data() {
        let x = ar1(3, 360, 0.9, 0.0);
        let y = ar1(4, 360, 0.9, 0.0);
        let t = stamps(360);
        let s = |v| Series { t: &t, v };
        let plain = classify_series(s(&x), s(&y), 0, &opts(Independence::Assume));
        let auto = classify_series(s(&x), s(&y), 0, &opts(Independence::Auto));
        let width = |r: &MetricResult| {
            let [lo, hi] = r.ci.unwrap();
            hi - lo
        };
        let f = auto.variance_inflation.unwrap();
        assert!(f > 8.0, "inflation {f}");
        // The interval is about √f wider (exactly so for the normal approximation of a
        // pure location shift; the order statistics make it approximate).
        let ratio = width(&auto) / width(&plain);
        assert!(
            (ratio / f.sqrt() - 1.0).abs() < 0.15,
            "ratio {ratio}, √f {}",
            f.sqrt()
        );
        let [nc, nb] = auto.n_eff.unwrap();
        assert!(nc < 60.0 && nb < 60.0 && nc > 5.0, "{nc} {nb}");
        assert_eq!(auto.method, Some(Method::Normal));
        assert!(
            auto.reason.contains("autocorrelation: variance ×"),
            "{}",
            auto.reason
        );
    }

    #[test]
    fn auto_leaves_iid_data_nearly_unchanged() {
        let mut ratios = Vec::new();
        for seed in 0..10 {
            let x = ar1(100 + seed, 360, 0.0, 0.0);
            let y = ar1(200 + seed, 360, 0.0, 0.0);
            let t = stamps(360);
            let s = |v| Series { t: &t, v };
            let plain = classify_series(s(&x), s(&y), 0, &opts(Independence::Assume));
            let auto = classify_series(s(&x), s(&y), 0, &opts(Independence::Auto));
            let w = |r: &MetricResult| r.ci.unwrap()[1] - r.ci.unwrap()[0];
            ratios.push(w(&auto) / w(&plain));
            let [nc, _] = auto.n_eff.unwrap();
            assert!(nc > 250.0, "{nc}");
        }
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        assert!(
            (1.0..1.08).contains(&mean),
            "mean width ratio {mean}: {ratios:?}"
        );
    }

    #[test]
    fn too_little_independent_evidence_is_nodata_never_high() {
        // A big shift on very persistent, short series: the test alone says high, but 60
        // points at ρ = 0.95 are worth about 2 independent ones per side.
        let x = ar1(5, 60, 0.95, 3.0);
        let y = ar1(6, 60, 0.95, 0.0);
        let t = stamps(60);
        let o = MetricOptions {
            must_have_data: true,
            critical: true,
            ..opts(Independence::Auto)
        };
        let r = classify_series(Series { t: &t, v: &x }, Series { t: &t, v: &y }, 0, &o);
        assert_eq!(r.classification, Classification::Nodata, "{}", r.reason);
        assert!(
            r.reason
                .starts_with("nodata: too little independent evidence: effective sample size"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("the test alone says "), "{}", r.reason);
        assert!(r.warnings[0].starts_with("too little independent evidence"));
        assert!(lacks_evidence(&r));
        assert!(r.ci.is_some());
        // Plain data shortage is still plain nodata_fail.
        let r = classify_series(
            Series {
                t: &t[..3],
                v: &x[..3],
            },
            Series { t: &t, v: &y },
            0,
            &o,
        );
        assert_eq!(r.classification, Classification::NodataFail);
        assert!(!lacks_evidence(&r));
    }

    #[test]
    fn paired_cancels_a_shared_load() {
        // Both cohorts ride the same big wave; the canary is 0.5 higher. Mann–Whitney sees
        // two wide, overlapping distributions; the paired differences see the 0.5.
        let n = 360;
        let t = stamps(n);
        let mut g = Normals(9);
        let wave: Vec<f64> = (0..n).map(|i| 20.0 * (i as f64 / 50.0).sin()).collect();
        let y: Vec<f64> = wave.iter().map(|w| 100.0 + w + 0.5 * g.next()).collect();
        let x: Vec<f64> = wave.iter().map(|w| 100.5 + w + 0.5 * g.next()).collect();
        let o = MetricOptions {
            direction: Direction::Increase,
            ..opts(Independence::Paired)
        };
        let r = classify_series(Series { t: &t, v: &x }, Series { t: &t, v: &y }, 0, &o);
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!(r.test, TestKind::Paired);
        assert!(
            r.reason
                .starts_with("high: mean paired difference (canary − baseline) +0.5"),
            "{}",
            r.reason
        );
        assert_eq!((r.u, r.method), (None, None));
        let mw = classify_series(
            Series { t: &t, v: &x },
            Series { t: &t, v: &y },
            0,
            &opts(Independence::Assume),
        );
        assert_eq!(mw.classification, Classification::Pass, "{}", mw.reason);
    }

    #[test]
    fn paired_matches_by_offset_and_counts_the_rest() {
        let t = stamps(30);
        let early: Vec<i64> = t.iter().map(|s| s - 3_600_000).collect();
        let x: Vec<f64> = (0..30).map(|i| f64::from(i % 5)).collect();
        let y: Vec<f64> = x.clone();
        let r = classify_series(
            Series { t: &t, v: &x },
            Series {
                t: &early[..25],
                v: &y[..25],
            },
            3_600_000,
            &opts(Independence::Paired),
        );
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!((r.n_canary, r.n_baseline), (25, 25));
        assert_eq!(r.estimate, Some(0.0));
        assert_eq!(
            r.warnings,
            vec![
                "5 canary and 0 baseline points had no partner at the same time and were left out"
            ]
        );
        // Without the offset nothing pairs.
        let r = classify_series(
            Series { t: &t, v: &x },
            Series { t: &early, v: &y },
            0,
            &opts(Independence::Paired),
        );
        assert_eq!(r.classification, Classification::Nodata);
        assert!(
            r.reason.ends_with("(counting pairs at equal time stamps)"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn classify_values_aligns_rows_of_equal_length() {
        let x = ar1(7, 200, 0.8, 0.0);
        let y = ar1(8, 200, 0.8, 0.0);
        let r = crate::classify::classify(&x, &y, &opts(Independence::Auto));
        assert!(r.variance_inflation.unwrap() > 3.0);
        let r = crate::classify::classify(&x, &y[..150], &opts(Independence::Auto));
        assert!(r.variance_inflation.unwrap() > 3.0);
        let r = crate::classify::classify(&x, &y[..150], &opts(Independence::Paired));
        assert_eq!(r.classification, Classification::Error);
        assert!(r.reason.contains("got 200 and 150"), "{}", r.reason);
    }

    #[test]
    fn preprocessing_keeps_time_stamps_and_matches_preprocess() {
        let v = [
            1.0,
            f64::NAN,
            3.0,
            1000.0,
            2.0,
            f64::INFINITY,
            2.5,
            1.5,
            2.0,
            3.0,
        ];
        let t: Vec<i64> = (0..10).collect();
        let finite: Vec<f64> = v
            .iter()
            .map(|x| if x.is_finite() { *x } else { 7.0 })
            .collect();
        for v in [&v[..], &finite[..]] {
            for nan in [NanStrategy::Remove, NanStrategy::Replace(2.0)] {
                for k in [None, Some(3.0), Some(0.0)] {
                    let (tt, vv, c) = preprocess_timed(Series { t: &t, v }, nan, k);
                    let (want, wc) = preprocess(v, nan, k);
                    assert_eq!(*vv, want);
                    assert_eq!(c, wc);
                    assert_eq!(tt.len(), vv.len());
                    for (ti, vi) in tt.iter().zip(vv.iter()) {
                        let orig = v[*ti as usize];
                        assert!(orig == *vi || !orig.is_finite());
                    }
                    // Nothing to change: the input itself, not a copy.
                    let untouched = k.is_none() && v.iter().all(|x| x.is_finite());
                    assert_eq!(matches!(vv, Cow::Borrowed(_)), untouched);
                }
            }
        }
    }

    #[test]
    fn mismatched_series_and_bad_options_are_errors() {
        let r = classify_series(
            Series {
                t: &[1, 2],
                v: &[1.0],
            },
            Series { t: &[1], v: &[1.0] },
            0,
            &opts(Independence::Auto),
        );
        assert_eq!(r.classification, Classification::Error);
        assert_eq!(
            r.reason,
            "error: the canary series has 2 time stamps for 1 values"
        );
        let r = classify_series(
            Series::default(),
            Series::default(),
            0,
            &MetricOptions {
                confidence: 2.0,
                ..opts(Independence::Auto)
            },
        );
        assert_eq!(r.classification, Classification::Error);
    }

    fn scored(name: &str, group: &str, c: Classification, critical: bool) -> ScoredMetric {
        ScoredMetric {
            name: name.into(),
            group: group.into(),
            classification: c,
            critical,
            reason: format!("{c}: because"),
        }
    }

    #[test]
    fn lacking_evidence_caps_at_hold_and_never_aborts_by_itself() {
        use Classification::*;
        let w = GroupWeights::new(vec![("latency".into(), 60.0), ("errors".into(), 40.0)]).unwrap();
        let th = Thresholds::new(90.0, 70.0).unwrap();
        // The latency group has only an unjudged metric: plain scoring gives it 0 and aborts
        // on the score; with the rule it holds.
        let m = [
            scored("p99", "latency", Nodata, true),
            scored("errors", "errors", Pass, true),
        ];
        assert_eq!(score(&m, &w, &th).unwrap().verdict, Verdict::Abort);
        let card = score_with_evidence(&m, &[true, false], &w, &th).unwrap();
        assert_eq!(card.verdict, Verdict::Hold);
        assert!(
            card.reason
                .starts_with("hold: too little independent evidence yet for p99"),
            "{}",
            card.reason
        );
        // Everything else passing would promote: hold instead.
        let m = [
            scored("p99", "latency", Nodata, true),
            scored("p50", "latency", Pass, false),
            scored("errors", "errors", Pass, true),
        ];
        assert_eq!(score(&m, &w, &th).unwrap().verdict, Verdict::Promote);
        let card = score_with_evidence(&m, &[true, false, false], &w, &th).unwrap();
        assert_eq!(card.verdict, Verdict::Hold);
        // A critical failure elsewhere still aborts.
        let m = [
            scored("p99", "latency", Nodata, true),
            scored("errors", "errors", High, true),
        ];
        let card = score_with_evidence(&m, &[true, false], &w, &th).unwrap();
        assert_eq!(card.verdict, Verdict::Abort);
        // Nothing lacking: plain scoring.
        let card = score_with_evidence(&m, &[false, false], &w, &th).unwrap();
        assert_eq!(card, score(&m, &w, &th).unwrap());
    }
}
