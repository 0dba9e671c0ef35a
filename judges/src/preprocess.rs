//! NaN/Inf handling and IQR outlier removal. (Stub.)

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
