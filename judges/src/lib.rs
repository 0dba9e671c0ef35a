//! Pure statistics for canary analysis.
//!
//! Everything here is a function of its arguments: no I/O, no async, no clock and no
//! randomness. The same input always gives the same output, bit for bit.
//!
//! Conventions, everywhere in this crate: `canary` is the sample x of size n, `baseline` is
//! the sample y of size m, and a *shift* is canary − baseline.
//!
//! - [`mann_whitney`]: the U statistic (R's `W`) and its two-sided p-value, exact or normal.
//! - [`shift`]: the exact Hodges–Lehmann shift and its distribution-free confidence interval,
//!   found by selection over the n·m pairwise differences without materialising them.
//! - [`compare`]: the two together, as one comparison of canary against baseline.
//! - [`effect`]: effect sizes (mean ratio, CLES, relative shift).
//! - [`preprocess`]: NaN/Inf handling and IQR outlier removal.
//! - [`classify`]: the metric classifier (pass, high, low, nodata, nodata_fail, error).
//! - [`score`]: group weights, the 0–100 score and the verdict (promote, hold, abort).
//! - [`autocorr`]: long-run variances, effective sample sizes and the Mann–Whitney variance
//!   inflation for autocorrelated series.
//! - [`paired`]: the paired comparison at equal time stamps, with a HAC standard error.
//! - [`series`]: classifying time series with `independence: assume | auto | paired`, and
//!   scoring metrics that lack independent evidence.
//! - [`checks`]: threshold checks (the canary against fixed bounds) and relative checks
//!   (canary against baseline on an aggregate, with a tolerance).
//! - [`proportion`]: two rates from counts: Fisher's exact test, the two-proportion z-test
//!   and the rate ratio's score interval.
//! - [`sequential`]: anytime-valid sequential tests (counts, distributions, means) that may
//!   be looked at after every data point without inflating the false-alarm rate.

pub mod autocorr;
pub mod checks;
pub mod classify;
pub mod compare;
pub mod effect;
pub mod mann_whitney;
pub mod paired;
pub mod preprocess;
pub mod proportion;
pub mod score;
pub mod sequential;
pub mod series;
pub mod shift;

#[cfg(test)]
mod test_support {
    /// A deterministic standard-normal stream (LCG + Box–Muller), so the tests need no
    /// random crate and give the same numbers everywhere.
    pub(crate) struct Normals(pub(crate) u64);

    impl Normals {
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        pub(crate) fn next(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// A stationary unit-variance AR(1) series.
    pub(crate) fn ar1(seed: u64, n: usize, rho: f64) -> Vec<f64> {
        let mut g = Normals(seed);
        let mut x = g.next();
        let s = (1.0 - rho * rho).sqrt();
        (0..n)
            .map(|i| {
                if i > 0 {
                    x = rho * x + s * g.next();
                }
                x
            })
            .collect()
    }
}

pub use autocorr::{Independence, Inflation, LongRun};
pub use checks::{
    Aggregate, CheckDetail, RelativeOptions, ThresholdMode, ThresholdOptions, Tolerance,
};
pub use classify::{
    Classification, Direction, MetricOptions, MetricResult, TestKind, classify, format_number,
    format_signed,
};
pub use compare::{CompareOptions, Comparison, Method, compare, compare_with};
pub use effect::{EffectSize, effect_size};
pub use preprocess::{NanStrategy, Preprocessed};
pub use proportion::{CountNames, Counts, ProportionDetail, ProportionMethod, classify_proportion};
pub use score::{GroupScore, GroupWeights, Scorecard, ScoredMetric, Thresholds, Verdict, score};
pub use sequential::{
    QuantileBand, SequentialDetail, SequentialKind, SequentialOptions, judge_sequential,
};
pub use series::{Series, classify_series, classify_series_ordered, classify_series_traced};
pub use shift::{Anchor, Guide, ShiftHint, ShiftTrace};

/// Errors from the statistics. Every variant says which side and what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    /// A sample had no values left to compare.
    #[error("the {side} sample is empty")]
    EmptySample { side: Side },
    /// A NaN or infinite value reached a test that needs finite numbers.
    #[error("the {side} sample has a non-finite value ({value}) at position {index}")]
    NonFinite {
        side: Side,
        index: usize,
        value: f64,
    },
    /// The confidence level must lie strictly between 0 and 1.
    #[error("confidence level {0} is not strictly between 0 and 1")]
    InvalidConfidence(f64),
    /// An option was out of its range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },
}

/// Which cohort a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Baseline,
    Canary,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Baseline => "baseline",
            Side::Canary => "canary",
        })
    }
}
