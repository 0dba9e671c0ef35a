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

pub mod classify;
pub mod compare;
pub mod effect;
pub mod mann_whitney;
pub mod preprocess;
pub mod score;
pub mod shift;

pub use classify::{
    Classification, Direction, MetricOptions, MetricResult, TestKind, classify, format_number,
    format_signed,
};
pub use compare::{CompareOptions, Comparison, Method, compare, compare_with};
pub use effect::{EffectSize, effect_size};
pub use preprocess::{NanStrategy, Preprocessed};
pub use score::{GroupScore, GroupWeights, Scorecard, ScoredMetric, Thresholds, Verdict, score};

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
