//! Effect sizes. (Stub.)

/// Effect sizes of canary against baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EffectSize {
    /// canary mean / baseline mean; `None` when the baseline mean is 0 (see `note`).
    pub mean_ratio: Option<f64>,
    /// P(canary > baseline) + ½ P(canary = baseline).
    pub cles: f64,
    /// Hodges–Lehmann estimate / baseline median; `None` when the baseline median is 0.
    pub relative_shift: Option<f64>,
    /// Why a field is missing, when one is.
    pub note: Option<String>,
}
