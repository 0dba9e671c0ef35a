//! NaN/Inf handling and IQR outlier removal, applied to each side on its own.
//!
//! [`preprocess`] runs two steps, in this order, and keeps the surviving values in their
//! original order:
//!
//! 1. **Non-finite values.** NaN, +Inf and −Inf are all handled by the [`NanStrategy`]:
//!    [`NanStrategy::Remove`] drops them, [`NanStrategy::Replace`] substitutes a chosen value.
//!    (Kayenta only handles NaN, and its "replace" is a hard-coded 0, which is wrong for
//!    gauges; here the value is the caller's.)
//! 2. **Outliers** (only when an outlier factor k is given). Percentiles are R's type 7 (see
//!    [`quantile_type7`]), the same estimator Kayenta uses. With Q1, Q3 the quartiles,
//!    IQR = Q3 − Q1, and P1, P99 the 1st and 99th percentiles, the fences are
//!
//!    ```text
//!    lower = min(P1,  Q1 − k·IQR)
//!    upper = max(P99, Q3 + k·IQR)
//!    ```
//!
//!    and points *strictly* outside `[lower, upper]` are dropped. Taking the wider of the
//!    IQR fence and the 1st/99th percentile is Kayenta's "reduced sensitivity" rule: it
//!    never removes more than the extreme percent on each side, however tight the IQR.
//!
//!    k should be finite and ≥ 0 ([`DEFAULT_OUTLIER_FACTOR`] is 3.0; [`crate::classify()`]
//!    rejects other values). The fences are computed from the values left after step 1.

/// Kayenta's default IQR outlier factor k.
pub const DEFAULT_OUTLIER_FACTOR: f64 = 3.0;

/// What to do with NaN and ±Inf values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanStrategy {
    /// Drop them.
    Remove,
    /// Replace each with this value.
    Replace(f64),
}

/// Counts of what preprocessing did to one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Preprocessed {
    pub non_finite_removed: usize,
    pub non_finite_replaced: usize,
    pub outliers_removed: usize,
}

/// Applies the [`NanStrategy`] to NaN and ±Inf, then, when `outlier_factor` is `Some(k)`,
/// drops the points strictly outside the IQR fences (see the module docs). The values that
/// remain keep their input order.
pub fn preprocess(
    values: &[f64],
    nan: NanStrategy,
    outlier_factor: Option<f64>,
) -> (Vec<f64>, Preprocessed) {
    let mut counts = Preprocessed::default();
    let mut kept = Vec::with_capacity(values.len());
    for &v in values {
        if v.is_finite() {
            kept.push(v);
        } else {
            match nan {
                NanStrategy::Remove => counts.non_finite_removed += 1,
                NanStrategy::Replace(r) => {
                    counts.non_finite_replaced += 1;
                    kept.push(r);
                }
            }
        }
    }

    if let (Some(k), false) = (outlier_factor, kept.is_empty()) {
        let [lower, upper] = outlier_fences(&kept, k);
        let before = kept.len();
        // NaN fences (possible only with a non-finite k or replacement) drop nothing.
        kept.retain(|&v| !(v < lower || v > upper));
        counts.outliers_removed = before - kept.len();
    }

    (kept, counts)
}

/// The outlier fences `[lower, upper]` of `values` (any order) for factor `k`:
/// `lower = min(P1, Q1 − k·IQR)`, `upper = max(P99, Q3 + k·IQR)`, percentiles by R type 7.
/// Both are NaN for an empty slice.
pub fn outlier_fences(values: &[f64], k: f64) -> [f64; 2] {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q1 = quantile_type7(&sorted, 0.25);
    let q3 = quantile_type7(&sorted, 0.75);
    let iqr = q3 - q1;
    let p1 = quantile_type7(&sorted, 0.01);
    let p99 = quantile_type7(&sorted, 0.99);
    [p1.min(q1 - k * iqr), p99.max(q3 + k * iqr)]
}

/// The `p`-quantile of an ascending `sorted` slice by R's type 7 (R's default, and
/// commons-math's `R_7`): with h = (n − 1)·p, it interpolates linearly between the
/// order statistics at ⌊h⌋ and ⌈h⌉ (0-based).
///
/// Returns NaN for an empty slice or a `p` outside `[0, 1]`. The slice must already be
/// sorted ascending; this is not checked.
pub fn quantile_type7(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor();
    let frac = h - lo;
    let i = lo as usize;
    if frac == 0.0 || i + 1 >= sorted.len() {
        // Exactly on an order statistic: no interpolation (and no 0 · ∞).
        return sorted[i];
    }
    sorted[i] + frac * (sorted[i + 1] - sorted[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn type7_matches_r() {
        // R: quantile(c(1, 2, 3, 4, 5, 6, 7, 8, 9, 100), c(0, .01, .25, .5, .75, .99, 1))
        //    1.00 1.09 3.25 5.50 7.75 91.81 100.00
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0];
        let want = [
            (0.0, 1.0),
            (0.01, 1.09),
            (0.25, 3.25),
            (0.5, 5.5),
            (0.75, 7.75),
        ];
        for (p, q) in want {
            assert!(
                close(quantile_type7(&x, p), q),
                "p={p}: {}",
                quantile_type7(&x, p)
            );
        }
        assert!(close(quantile_type7(&x, 0.99), 91.81));
        assert_eq!(quantile_type7(&x, 1.0), 100.0);
        assert_eq!(quantile_type7(&[4.0], 0.3), 4.0);
        assert!(quantile_type7(&[], 0.5).is_nan());
        assert!(quantile_type7(&x, 1.5).is_nan());
        assert!(quantile_type7(&x, f64::NAN).is_nan());
    }

    #[test]
    fn type7_does_not_interpolate_into_infinity_on_an_order_statistic() {
        let x = [1.0, 2.0, f64::INFINITY];
        assert_eq!(quantile_type7(&x, 0.5), 2.0);
    }

    #[test]
    fn nan_and_inf_removed() {
        let x = [1.0, f64::NAN, 2.0, f64::INFINITY, 3.0, f64::NEG_INFINITY];
        let (v, c) = preprocess(&x, NanStrategy::Remove, None);
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
        assert_eq!(
            c,
            Preprocessed {
                non_finite_removed: 3,
                ..Preprocessed::default()
            }
        );
    }

    #[test]
    fn nan_and_inf_replaced_in_place() {
        let x = [1.0, f64::NAN, 2.0, f64::NEG_INFINITY];
        let (v, c) = preprocess(&x, NanStrategy::Replace(-7.5), None);
        assert_eq!(v, vec![1.0, -7.5, 2.0, -7.5]);
        assert_eq!(
            c,
            Preprocessed {
                non_finite_replaced: 2,
                ..Preprocessed::default()
            }
        );
    }

    #[test]
    fn iqr_upper_fence_is_p99_here() {
        // Hand computation, k = 3, sorted x = 1..9, 100 (n = 10):
        //   Q1 = x[2] + .25·(x[3] − x[2]) = 3.25, Q3 = x[6] + .75·(x[7] − x[6]) = 7.75,
        //   IQR = 4.5, Q1 − 3·IQR = −10.25, Q3 + 3·IQR = 21.25,
        //   P1 = x[0] + .09·(x[1] − x[0]) = 1.09, P99 = x[8] + .91·(x[9] − x[8]) = 91.81.
        //   lower = min(1.09, −10.25) = −10.25; upper = max(91.81, 21.25) = 91.81.
        // 100 > 91.81 is dropped; the order of the rest is kept.
        let x = [5.0, 100.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0];
        let [lo, hi] = outlier_fences(&x, 3.0);
        assert!(close(lo, -10.25), "{lo}");
        assert!(close(hi, 91.81), "{hi}");
        let (v, c) = preprocess(&x, NanStrategy::Remove, Some(3.0));
        assert_eq!(v, vec![5.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0]);
        assert_eq!(c.outliers_removed, 1);
    }

    #[test]
    fn iqr_lower_fence_is_p1_here_and_upper_is_iqr() {
        // Sorted x = −100, 1..9: Q1 = 2.25, Q3 = 6.75, IQR = 4.5,
        // P1 = −100 + .09·101 = −90.91 < Q1 − 13.5 = −11.25, so lower = −90.91;
        // P99 = 8.91 < Q3 + 13.5 = 20.25, so upper = 20.25. Only −100 goes.
        let x = [1.0, 2.0, 3.0, -100.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let [lo, hi] = outlier_fences(&x, 3.0);
        assert!(close(lo, -90.91), "{lo}");
        assert!(close(hi, 20.25), "{hi}");
        let (v, c) = preprocess(&x, NanStrategy::Remove, Some(3.0));
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(c.outliers_removed, 1);
    }

    #[test]
    fn points_on_a_fence_are_kept() {
        // Constant data: every fence equals the constant, nothing is strictly outside.
        let (v, c) = preprocess(&[2.0; 5], NanStrategy::Remove, Some(0.0));
        assert_eq!(v, vec![2.0; 5]);
        assert_eq!(c.outliers_removed, 0);
        // Uniform data with k = 3 keeps everything.
        let x: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(preprocess(&x, NanStrategy::Remove, Some(3.0)).0, x);
    }

    #[test]
    fn outliers_are_found_after_nan_handling() {
        let mut x = vec![f64::NAN; 3];
        x.extend([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]);
        let (v, c) = preprocess(&x, NanStrategy::Remove, Some(3.0));
        assert_eq!(v.len(), 9);
        assert_eq!(
            c,
            Preprocessed {
                non_finite_removed: 3,
                non_finite_replaced: 0,
                outliers_removed: 1
            }
        );
        let (v, _) = preprocess(&[f64::NAN, f64::NAN], NanStrategy::Remove, Some(3.0));
        assert!(v.is_empty());
    }
}
