//! The paired comparison: canary and baseline at equal time stamps.
//!
//! When both cohorts are measured at the same moments, the difference `d_t = x_t − y_t`
//! cancels what they share (traffic, time of day, a noisy neighbour on the same hosts), which
//! is often most of the variation of a metric. The differences are still autocorrelated, so
//! their mean gets a HAC (heteroskedasticity- and autocorrelation-consistent) standard error:
//!
//! ```text
//! estimate  d̄ = mean(d)                              (canary − baseline)
//! SE        √(σ̂²_LR / T)                             σ̂²_LR: crate::autocorr::long_run on d
//! CI        d̄ ± t_{ν, 1−α/2} · SE                    ν: the estimate's degrees of freedom
//! p         2 · P(T_ν > |d̄| / SE)
//! ```
//!
//! The long-run variance is the prewhitened Bartlett estimate of [`crate::autocorr`], with
//! its degrees of freedom. When the differences show positive autocorrelation (τ̂ > 1) the
//! interval reported is the wider of this one and the plain paired t-interval (`s² / T`,
//! `T − 1` degrees of freedom), with that interval's p-value and degrees of freedom;
//! otherwise it is the plain one. So the test is never more liberal than Student's paired
//! t-test, and *is* the paired t-test when there is no sign of positive dependence. Constant differences (SE = 0) give the
//! one-point interval `[d̄, d̄]` and p = 1 when d̄ = 0, else 0: deterministic, like the
//! Mann–Whitney path on constant samples.
//!
//! The classifier ([`crate::series`]) applies the same rule as to Mann–Whitney: `high` when
//! the interval lies wholly above 0 and the mean ratio reaches `allowed_increase`, and so on.
//!
//! Sources: Newey & West (1987); the paired t-test (Student 1908) as the independent special
//! case; for the long-run variance see [`crate::autocorr`].

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::autocorr::{LongRun, long_run_timed};
use crate::shift::two_sided_z;
use crate::{JudgeError, Side};

/// Points of the two cohorts matched by time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs {
    /// Canary time stamps of the pairs, ascending.
    pub t: Vec<i64>,
    pub canary: Vec<f64>,
    pub baseline: Vec<f64>,
    /// Points without a partner: `[canary, baseline]`.
    pub unpaired: [usize; 2],
}

/// Matches canary point `(t, x)` with the baseline point at `t − offset` (the baseline
/// window is the canary's moved back by `offset`). Both time-stamp slices must be ascending.
///
/// # Panics
/// If a time-stamp slice and its value slice differ in length.
pub fn pair_by_time(
    canary_t: &[i64],
    canary: &[f64],
    baseline_t: &[i64],
    baseline: &[f64],
    offset: i64,
) -> Pairs {
    assert_eq!(
        canary_t.len(),
        canary.len(),
        "one time stamp per canary value"
    );
    assert_eq!(
        baseline_t.len(),
        baseline.len(),
        "one time stamp per baseline value"
    );
    let mut out = Pairs::default();
    let (mut i, mut j) = (0, 0);
    while i < canary_t.len() && j < baseline_t.len() {
        let tc = canary_t[i];
        let tb = baseline_t[j].saturating_add(offset);
        match tc.cmp(&tb) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.t.push(tc);
                out.canary.push(canary[i]);
                out.baseline.push(baseline[j]);
                i += 1;
                j += 1;
            }
        }
    }
    out.unpaired = [canary.len() - out.t.len(), baseline.len() - out.t.len()];
    out
}

/// The result of [`paired_test`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairedComparison {
    pub n_pairs: usize,
    /// Mean of the differences canary − baseline.
    pub estimate: f64,
    /// `[lo, hi]` at `confidence`.
    pub ci: [f64; 2],
    pub p_value: f64,
    /// HAC standard error of the mean difference.
    pub std_error: f64,
    /// Degrees of freedom of the Student-t critical value and p-value.
    pub df: f64,
    pub confidence: f64,
    /// The long-run variance of the differences (its `n_eff` is the number of independent
    /// differences the test had).
    pub long_run: LongRun,
}

/// The paired test of `canary[i] − baseline[i]` at time stamps `t` (ascending; the pairs of
/// [`pair_by_time`]) at a two-sided `confidence`. See the module docs.
///
/// Errors: no pairs ([`JudgeError::EmptySample`]), a non-finite value
/// ([`JudgeError::NonFinite`]), a confidence outside (0, 1), or slices of different lengths
/// ([`JudgeError::InvalidOption`]).
pub fn paired_test(
    t: &[i64],
    canary: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Result<PairedComparison, JudgeError> {
    if t.len() != canary.len() || canary.len() != baseline.len() {
        return Err(JudgeError::InvalidOption {
            name: "pairs",
            reason: format!(
                "{} time stamps, {} canary and {} baseline values",
                t.len(),
                canary.len(),
                baseline.len()
            ),
        });
    }
    if canary.is_empty() {
        return Err(JudgeError::EmptySample { side: Side::Canary });
    }
    for (sample, side) in [(canary, Side::Canary), (baseline, Side::Baseline)] {
        if let Some((index, &value)) = sample.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(JudgeError::NonFinite { side, index, value });
        }
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(JudgeError::InvalidConfidence(confidence));
    }
    let d: Vec<f64> = canary.iter().zip(baseline).map(|(x, y)| x - y).collect();
    let lr = long_run_timed(t, &d);
    let n = d.len();
    let estimate = lr.mean;
    let nf = n as f64;
    // The plain paired t-interval, the prewhitened HAC one (Student t) and the initial
    // monotone sequence one (normal); the widest is reported.
    let plain = (lr.variance / nf).sqrt();
    let plain_df = (nf - 1.0).max(1.0);
    let alpha = 1.0 - confidence;
    let critical = |df: f64| -> f64 {
        match StudentsT::new(0.0, 1.0, df) {
            Ok(dist) if df < 1e6 => dist.inverse_cdf(1.0 - alpha / 2.0),
            _ => two_sided_z(confidence),
        }
    };
    let mut se = plain;
    let mut df = plain_df;
    if lr.tau > 1.0 {
        let hac = (lr.prewhitened_variance / nf).sqrt();
        let guard = (lr.monotone_variance / nf).sqrt();
        let mut widest = plain * critical(plain_df);
        if hac.is_finite() && hac * critical(lr.df) > widest {
            (se, df, widest) = (hac, lr.df, hac * critical(lr.df));
        }
        if guard.is_finite() && guard * two_sided_z(confidence) > widest {
            (se, df) = (guard, f64::INFINITY);
        }
    }
    let (ci, p_value) = if se <= 0.0 || !se.is_finite() {
        let p = if estimate == 0.0 { 1.0 } else { 0.0 };
        ([estimate, estimate], p)
    } else {
        let q = critical(df);
        let p = match StudentsT::new(0.0, 1.0, df) {
            Ok(dist) if df < 1e6 => (2.0 * dist.sf((estimate / se).abs())).min(1.0),
            _ => crate::mann_whitney::two_sided_normal_p(estimate / se),
        };
        ([estimate - q * se, estimate + q * se], p)
    };
    Ok(PairedComparison {
        n_pairs: n,
        estimate,
        ci,
        p_value,
        std_error: se,
        df,
        confidence,
        long_run: lr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(n: usize) -> Vec<i64> {
        (0..n as i64).map(|i| 1_000 * i).collect()
    }

    #[test]
    fn pairs_match_equal_times_with_the_offset() {
        let p = pair_by_time(
            &[10, 20, 30, 40],
            &[1.0, 2.0, 3.0, 4.0],
            &[5, 15, 25, 27],
            &[0.5, 1.5, 2.5, 9.0],
            5,
        );
        assert_eq!(p.t, vec![10, 20, 30]);
        assert_eq!(p.canary, vec![1.0, 2.0, 3.0]);
        assert_eq!(p.baseline, vec![0.5, 1.5, 2.5]);
        assert_eq!(p.unpaired, [1, 1]);
    }

    #[test]
    fn independent_differences_give_the_paired_t_test() {
        // d = [2, -1, 3, 0, 1, 4, -2, 1]: mean 1, negative lag-1 autocorrelation, so the HAC
        // interval is the narrower one and this is Student's paired t-test with 7 degrees
        // of freedom.
        let d = [2.0, -1.0, 3.0, 0.0, 1.0, 4.0, -2.0, 1.0];
        let y = [10.0; 8];
        let x: Vec<f64> = d.iter().map(|v| v + 10.0).collect();
        let r = paired_test(&stamps(8), &x, &y, 0.98).unwrap();
        assert_eq!(r.n_pairs, 8);
        assert_eq!(r.estimate, 1.0);
        // Σ(d − 1)² = 1 + 4 + 4 + 1 + 0 + 9 + 9 + 0 = 28; s² = 4; SE = √(4/8).
        assert!((r.long_run.variance - 4.0).abs() < 1e-12);
        assert!(r.long_run.tau < 1.0, "{:?}", r.long_run);
        assert!((r.std_error - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.df, 7.0);
        // R: qt(0.99, 7) = 2.997952; 1 ± 2.997952·0.7071068 = [-1.119872, 3.119872].
        assert!((r.ci[0] - -1.119872).abs() < 1e-5, "{:?}", r.ci);
        assert!((r.ci[1] - 3.119872).abs() < 1e-5, "{:?}", r.ci);
        // R: t.test(d)$p.value = 2·pt(-1.414214, 7) = 0.2002
        assert!((r.p_value - 0.2002).abs() < 1e-4, "{}", r.p_value);
    }

    #[test]
    fn autocorrelated_differences_get_a_wider_interval() {
        // A slow wave in the differences: the HAC error is far above the naive one.
        let n = 200;
        let d: Vec<f64> = (0..n)
            .map(|i| (i as f64 / 15.0).sin() + 0.3 * ((i * 7919 % 13) as f64 / 13.0 - 0.5))
            .collect();
        let zeros = vec![0.0; n];
        let r = paired_test(&stamps(n), &d, &zeros, 0.98).unwrap();
        let naive = (r.long_run.variance / n as f64).sqrt();
        assert!(r.std_error > 3.0 * naive, "{} vs {naive}", r.std_error);
        assert!(r.df < 50.0);
    }

    #[test]
    fn constant_differences_are_decided_deterministically() {
        let t = stamps(20);
        let r = paired_test(&t, &[5.0; 20], &[4.0; 20], 0.98).unwrap();
        assert_eq!((r.estimate, r.ci, r.p_value), (1.0, [1.0, 1.0], 0.0));
        let r = paired_test(&t, &[5.0; 20], &[5.0; 20], 0.98).unwrap();
        assert_eq!((r.estimate, r.ci, r.p_value), (0.0, [0.0, 0.0], 1.0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            paired_test(&[], &[], &[], 0.98),
            Err(JudgeError::EmptySample { .. })
        ));
        assert!(matches!(
            paired_test(&[1, 2], &[1.0, f64::NAN], &[1.0, 2.0], 0.98),
            Err(JudgeError::NonFinite {
                side: Side::Canary,
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            paired_test(&[1], &[1.0], &[1.0], 1.0),
            Err(JudgeError::InvalidConfidence(_))
        ));
        assert!(paired_test(&[1], &[1.0, 2.0], &[1.0], 0.9).is_err());
    }
}
