//! Group scoring and the verdict. (Stub.)

/// The verdict of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Promote,
    Hold,
    Abort,
}

/// Score thresholds, 0–100.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

/// Normalised group weights.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWeights {
    _private: (),
}

/// The scored result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scorecard {
    pub score: f64,
    pub verdict: Verdict,
    pub reason: String,
}

pub fn score() {}
