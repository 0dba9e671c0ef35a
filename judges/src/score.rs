//! Group scoring and the verdict.
//!
//! # The score
//!
//! Every metric belongs to one group (a metric in several groups is passed once per group);
//! every group has a weight. Weights are validated and normalised to sum to 1 by
//! [`GroupWeights::new`]. For each group:
//!
//! ```text
//! counted = #pass + #high + #low + #nodata_fail + #error
//! group score = 100 · #pass / counted        (0 when counted = 0)
//! score = round₂( Σ_g weight_g · group score_g )
//! ```
//!
//! - **`error` counts as a failure**: it is in the denominator and not the numerator, so it
//!   lowers the score. Kayenta (§1.6) leaves errors out of both, so a failing data source
//!   makes the remaining metrics weigh more and can *raise* the score.
//! - **`nodata` is left out of its group's denominator**: a metric the source had nothing
//!   for says neither "good" nor "bad". (`nodata_fail`, from `must_have_data`, is a failure.)
//! - **A group with nothing counted scores 0, not 100.** Kayenta scores a group whose
//!   metrics are all `Nodata` or `Error` as perfect; absence of evidence is not evidence of
//!   health, so here it pulls the score down. A weighted group with no metrics at all is
//!   treated the same way.
//! - Muted metrics are the caller's business: leave them out of the slice.
//!
//! # The verdict
//!
//! Decided in this order:
//!
//! 1. **No data.** Every metric is `nodata` (or there are none): **hold**, reason "no data".
//!    Nothing can be judged, which is no reason either to promote or to abort.
//! 2. **Critical failure.** The first critical metric (in input order) that is `high`, `low`
//!    or `nodata_fail`: **abort**, and the reason names the metric and gives its reason.
//!    A critical `error` does not abort (we cannot tell if the canary is bad) but is capped
//!    by rule 4; a critical `nodata` does nothing unless `must_have_data` made it
//!    `nodata_fail`.
//! 3. **Thresholds.** score ≥ `pass`: **promote**; score ≥ `marginal`: **hold**; otherwise
//!    **abort**. Both comparisons are `≥`, on the rounded score.
//! 4. **Error cap.** If any metric is `error`, the verdict is at most **hold**: never promote
//!    on a source error. The reason says so and names the first such metric.
//!
//! Every reason is one line and ends with the group breakdown `name score × weight`.

use std::collections::HashMap;

use crate::JudgeError;
use crate::classify::{Classification, MetricResult, format_number};

/// The verdict of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Promote,
    Hold,
    Abort,
}

impl Verdict {
    /// `promote`, `hold` or `abort`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promote => "promote",
            Verdict::Hold => "hold",
            Verdict::Abort => "abort",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Score thresholds, 0–100, with 0 ≤ `marginal` ≤ `pass` ≤ 100. Build with
/// [`Thresholds::new`]; [`score`] checks them again, since the fields are public.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

impl Thresholds {
    /// Checked thresholds: both finite and 0 ≤ `marginal` ≤ `pass` ≤ 100.
    pub fn new(pass: f64, marginal: f64) -> Result<Thresholds, JudgeError> {
        let t = Thresholds { pass, marginal };
        t.validate()?;
        Ok(t)
    }

    /// Checks 0 ≤ `marginal` ≤ `pass` ≤ 100 (which also rules out NaN).
    pub fn validate(&self) -> Result<(), JudgeError> {
        let (p, m) = (self.pass, self.marginal);
        if 0.0 <= m && m <= p && p <= 100.0 {
            Ok(())
        } else {
            Err(JudgeError::InvalidOption {
                name: "thresholds",
                reason: format!(
                    "need 0 ≤ marginal ≤ pass ≤ 100, got pass {}, marginal {}",
                    format_number(p),
                    format_number(m)
                ),
            })
        }
    }
}

/// Normalised group weights: non-negative, summing to 1, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWeights {
    weights: Vec<(String, f64)>,
}

impl GroupWeights {
    /// Validates and normalises `(group, weight)` pairs. Errors name the group: a negative
    /// or non-finite weight, a group given twice; and no groups, or all weights 0.
    /// A weight of 0 is allowed (the group is reported but does not count).
    pub fn new(weights: Vec<(String, f64)>) -> Result<GroupWeights, JudgeError> {
        let invalid = |reason: String| JudgeError::InvalidOption {
            name: "group_weights",
            reason,
        };
        if weights.is_empty() {
            return Err(invalid("no groups are given".to_string()));
        }
        for (i, (name, w)) in weights.iter().enumerate() {
            if !w.is_finite() || *w < 0.0 {
                return Err(invalid(format!(
                    "group {name:?} has weight {}; weights must be finite and ≥ 0",
                    format_number(*w)
                )));
            }
            if weights[..i].iter().any(|(other, _)| other == name) {
                return Err(invalid(format!("group {name:?} is given twice")));
            }
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        if total == 0.0 {
            return Err(invalid("every weight is 0".to_string()));
        }
        if !total.is_finite() {
            return Err(invalid(
                "the weights sum to more than a float can hold".to_string(),
            ));
        }
        let weights = weights
            .into_iter()
            .map(|(name, w)| (name, w / total))
            .collect();
        Ok(GroupWeights { weights })
    }

    /// The normalised weight of `group`, if it has one.
    pub fn get(&self, group: &str) -> Option<f64> {
        self.weights
            .iter()
            .find(|(name, _)| name == group)
            .map(|&(_, w)| w)
    }

    /// `(group, normalised weight)` in the order given to [`GroupWeights::new`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.weights.iter().map(|(name, w)| (name.as_str(), *w))
    }

    /// Number of groups (never 0).
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Always false: [`GroupWeights::new`] rejects an empty list.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
}

/// One classified metric, as scoring sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredMetric {
    pub name: String,
    pub group: String,
    pub classification: Classification,
    pub critical: bool,
    /// The classifier's one-line reason, quoted in the verdict when this metric decides it.
    pub reason: String,
}

impl ScoredMetric {
    /// The scoring view of a classifier result.
    pub fn new(name: impl Into<String>, group: impl Into<String>, result: &MetricResult) -> Self {
        ScoredMetric {
            name: name.into(),
            group: group.into(),
            classification: result.classification,
            critical: result.critical,
            reason: result.reason.clone(),
        }
    }
}

/// One group's share of the score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupScore {
    pub name: String,
    /// Normalised weight (the weights sum to 1).
    pub weight: f64,
    /// 100 · passed / counted, or 0 when nothing was counted. Not rounded.
    pub score: f64,
    /// Metrics in the denominator: pass, high, low, nodata_fail and error.
    pub counted: usize,
    pub passed: usize,
    /// `nodata` metrics, left out of `counted`.
    pub nodata: usize,
}

/// The scored result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scorecard {
    /// Σ weight · group score, rounded to 2 decimals, in [0, 100].
    pub score: f64,
    pub verdict: Verdict,
    /// One line: what decided the verdict, with the numbers.
    pub reason: String,
    /// Per group, in the order of the weights.
    pub groups: Vec<GroupScore>,
}

/// Scores `metrics` and decides the verdict by the rules in the module docs.
///
/// Errors (the configuration is wrong, not the canary): invalid `thresholds`, or a metric
/// whose group has no weight (the error names the metric and the group).
pub fn score(
    metrics: &[ScoredMetric],
    weights: &GroupWeights,
    thresholds: &Thresholds,
) -> Result<Scorecard, JudgeError> {
    thresholds.validate()?;

    let mut groups: Vec<GroupScore> = weights
        .iter()
        .map(|(name, weight)| GroupScore {
            name: name.to_string(),
            weight,
            score: 0.0,
            counted: 0,
            passed: 0,
            nodata: 0,
        })
        .collect();
    let index: HashMap<&str, usize> = weights
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name, i))
        .collect();
    for m in metrics {
        let Some(&i) = index.get(m.group.as_str()) else {
            return Err(JudgeError::InvalidOption {
                name: "group_weights",
                reason: format!(
                    "metric {} is in group {:?}, which has no weight",
                    m.name, m.group
                ),
            });
        };
        let g = &mut groups[i];
        match m.classification {
            Classification::Nodata => g.nodata += 1,
            Classification::Pass => {
                g.counted += 1;
                g.passed += 1;
            }
            Classification::High
            | Classification::Low
            | Classification::NodataFail
            | Classification::Error => g.counted += 1,
        }
    }
    let mut total = 0.0;
    for g in &mut groups {
        if g.counted > 0 {
            g.score = 100.0 * g.passed as f64 / g.counted as f64;
        }
        total += g.weight * g.score;
    }
    let total = ((total * 100.0).round() / 100.0).clamp(0.0, 100.0);

    let breakdown = groups
        .iter()
        .map(|g| format!("{} {:.2} × {:.2}", g.name, g.score, g.weight))
        .collect::<Vec<_>>()
        .join(", ");
    let pass = format_number(thresholds.pass);
    let marginal = format_number(thresholds.marginal);

    let (verdict, reason) = if metrics
        .iter()
        .all(|m| m.classification == Classification::Nodata)
    {
        let what = match metrics.len() {
            0 => "there are no metrics".to_string(),
            1 => "the only metric returned nodata".to_string(),
            n => format!("all {n} metrics returned nodata"),
        };
        (
            Verdict::Hold,
            format!("hold: no data: {what} ({breakdown})"),
        )
    } else if let Some(m) = metrics.iter().find(|m| {
        m.critical
            && matches!(
                m.classification,
                Classification::High | Classification::Low | Classification::NodataFail
            )
    }) {
        let label = m.classification.as_str();
        (
            Verdict::Abort,
            format!("abort: critical metric {} is {label}{}", m.name, detail(m)),
        )
    } else {
        let (verdict, why) = if total >= thresholds.pass {
            (Verdict::Promote, format!("score {total:.2} ≥ pass {pass}"))
        } else if total >= thresholds.marginal {
            (
                Verdict::Hold,
                format!("score {total:.2} < pass {pass}, ≥ marginal {marginal}"),
            )
        } else {
            (
                Verdict::Abort,
                format!("score {total:.2} < marginal {marginal}"),
            )
        };
        let errors: Vec<&ScoredMetric> = metrics
            .iter()
            .filter(|m| m.classification == Classification::Error)
            .collect();
        match errors.first() {
            Some(first) if verdict == Verdict::Promote => {
                let count = match errors.len() {
                    1 => "1 metric is error".to_string(),
                    n => format!("{n} metrics are error"),
                };
                (
                    Verdict::Hold,
                    format!(
                        "hold: {why}, but never promote on a source error: {count} \
                         (first {}{}) ({breakdown})",
                        first.name,
                        detail(first)
                    ),
                )
            }
            _ => (verdict, format!("{verdict}: {why} ({breakdown})")),
        }
    };

    Ok(Scorecard {
        score: total,
        verdict,
        reason,
        groups,
    })
}

/// ": <the metric's reason without its leading label>", or "" when it has none.
fn detail(m: &ScoredMetric) -> String {
    let label = m.classification.as_str();
    let reason = m.reason.trim();
    let reason = reason
        .strip_prefix(label)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(reason)
        .trim();
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Classification::*;

    fn m(name: &str, group: &str, classification: Classification) -> ScoredMetric {
        ScoredMetric {
            name: name.to_string(),
            group: group.to_string(),
            classification,
            critical: false,
            reason: format!("{classification}: because"),
        }
    }

    fn critical(mut s: ScoredMetric) -> ScoredMetric {
        s.critical = true;
        s
    }

    fn weights(w: &[(&str, f64)]) -> GroupWeights {
        GroupWeights::new(w.iter().map(|(n, w)| (n.to_string(), *w)).collect()).unwrap()
    }

    fn t(pass: f64, marginal: f64) -> Thresholds {
        Thresholds::new(pass, marginal).unwrap()
    }

    #[test]
    fn weights_are_normalised() {
        let w = weights(&[("latency", 3.0), ("errors", 2.0), ("cpu", 0.0)]);
        assert_eq!(w.get("latency"), Some(0.6));
        assert_eq!(w.get("errors"), Some(0.4));
        assert_eq!(w.get("cpu"), Some(0.0));
        assert_eq!(w.get("nope"), None);
        assert_eq!(
            w.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["latency", "errors", "cpu"]
        );
    }

    #[test]
    fn bad_weights_are_errors_naming_the_group() {
        let err = |w: Vec<(&str, f64)>| {
            GroupWeights::new(w.into_iter().map(|(n, w)| (n.to_string(), w)).collect())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(vec![("a", 1.0), ("b", -1.0)]),
            "invalid option group_weights: group \"b\" has weight -1; weights must be finite and ≥ 0"
        );
        assert!(err(vec![("a", f64::NAN)]).contains("group \"a\" has weight NaN"));
        assert!(err(vec![("a", f64::INFINITY)]).contains("group \"a\" has weight inf"));
        assert!(err(vec![("a", 0.0), ("b", 0.0)]).contains("every weight is 0"));
        assert!(err(vec![]).contains("no groups"));
        assert!(err(vec![("a", 1.0), ("a", 1.0)]).contains("group \"a\" is given twice"));
        assert!(err(vec![("a", f64::MAX), ("b", f64::MAX)]).contains("sum"));
    }

    #[test]
    fn thresholds_are_validated() {
        assert!(Thresholds::new(90.0, 75.0).is_ok());
        assert!(Thresholds::new(100.0, 0.0).is_ok());
        assert!(Thresholds::new(80.0, 80.0).is_ok());
        for (p, mg) in [
            (75.0, 90.0),
            (101.0, 50.0),
            (50.0, -1.0),
            (f64::NAN, 50.0),
            (90.0, f64::NAN),
        ] {
            let e = Thresholds::new(p, mg).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid option thresholds: need 0 ≤ marginal ≤ pass ≤ 100"),
                "{e}"
            );
        }
        // Unchecked thresholds are checked by `score` too.
        let bad = Thresholds {
            pass: 50.0,
            marginal: 60.0,
        };
        assert!(score(&[m("a", "g", Pass)], &weights(&[("g", 1.0)]), &bad).is_err());
    }

    #[test]
    fn weighted_group_scores_and_promote() {
        let metrics = [
            m("p50", "latency", Pass),
            m("p99", "latency", Pass),
            m("5xx", "errors", Pass),
            m("4xx", "errors", Pass),
            m("timeouts", "errors", Pass),
            m("retries", "errors", Pass),
            m("resets", "errors", Pass),
            m("drops", "errors", Pass),
            m("aborts", "errors", Pass),
            m("panics", "errors", High),
        ];
        let s = score(
            &metrics,
            &weights(&[("latency", 6.0), ("errors", 4.0)]),
            &t(90.0, 75.0),
        )
        .unwrap();
        assert_eq!(s.score, 95.0);
        assert_eq!(s.verdict, Verdict::Promote);
        assert_eq!(
            s.reason,
            "promote: score 95.00 ≥ pass 90 (latency 100.00 × 0.60, errors 87.50 × 0.40)"
        );
        assert_eq!(
            s.groups[1],
            GroupScore {
                name: "errors".into(),
                weight: 0.4,
                score: 87.5,
                counted: 8,
                passed: 7,
                nodata: 0
            }
        );
    }

    #[test]
    fn threshold_boundaries_are_inclusive() {
        // One group, 3 of 4 pass: 75.00.
        let metrics = [
            m("a", "g", Pass),
            m("b", "g", Pass),
            m("c", "g", Pass),
            m("d", "g", Low),
        ];
        let w = weights(&[("g", 1.0)]);
        let v = |pass, marginal| score(&metrics, &w, &t(pass, marginal)).unwrap();
        assert_eq!(v(75.0, 50.0).verdict, Verdict::Promote);
        assert_eq!(v(75.01, 75.0).verdict, Verdict::Hold);
        assert_eq!(
            v(75.01, 75.0).reason,
            "hold: score 75.00 < pass 75.01, ≥ marginal 75 (g 75.00 × 1.00)"
        );
        assert_eq!(v(80.0, 75.01).verdict, Verdict::Abort);
        assert_eq!(
            v(80.0, 75.01).reason,
            "abort: score 75.00 < marginal 75.01 (g 75.00 × 1.00)"
        );
    }

    #[test]
    fn score_is_rounded_to_two_decimals() {
        let metrics = [m("a", "g", Pass), m("b", "g", Pass), m("c", "g", High)];
        let s = score(&metrics, &weights(&[("g", 1.0)]), &t(90.0, 50.0)).unwrap();
        assert_eq!(s.score, 66.67);
        assert!((s.groups[0].score - 200.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn nodata_is_left_out_and_an_all_nodata_group_scores_zero() {
        let metrics = [
            m("a", "latency", Pass),
            m("b", "latency", Nodata),
            m("c", "errors", Nodata),
            m("d", "errors", Nodata),
        ];
        let s = score(
            &metrics,
            &weights(&[("latency", 1.0), ("errors", 1.0)]),
            &t(90.0, 40.0),
        )
        .unwrap();
        assert_eq!(s.groups[0].score, 100.0);
        assert_eq!((s.groups[0].counted, s.groups[0].nodata), (1, 1));
        assert_eq!(s.groups[1].score, 0.0);
        assert_eq!((s.groups[1].counted, s.groups[1].nodata), (0, 2));
        assert_eq!(s.score, 50.0);
        assert_eq!(s.verdict, Verdict::Hold);
    }

    #[test]
    fn a_weighted_group_without_metrics_scores_zero() {
        let s = score(
            &[m("a", "g", Pass)],
            &weights(&[("g", 1.0), ("empty", 1.0)]),
            &t(90.0, 40.0),
        )
        .unwrap();
        assert_eq!(s.score, 50.0);
        assert_eq!(s.groups[1].counted, 0);
    }

    #[test]
    fn all_nodata_holds() {
        let metrics = [m("a", "g", Nodata), m("b", "g", Nodata)];
        let s = score(&metrics, &weights(&[("g", 1.0)]), &t(90.0, 75.0)).unwrap();
        assert_eq!(s.verdict, Verdict::Hold);
        assert_eq!(s.score, 0.0);
        assert_eq!(
            s.reason,
            "hold: no data: all 2 metrics returned nodata (g 0.00 × 1.00)"
        );
        let s = score(&[], &weights(&[("g", 1.0)]), &t(90.0, 75.0)).unwrap();
        assert_eq!(s.verdict, Verdict::Hold);
        assert!(
            s.reason.starts_with("hold: no data: there are no metrics"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn errors_lower_the_score_and_cap_at_hold() {
        // 9 pass, 1 error: 90.00 ≥ pass 90, but an error never promotes.
        let mut metrics: Vec<ScoredMetric> =
            (0..9).map(|i| m(&format!("m{i}"), "g", Pass)).collect();
        metrics.push(ScoredMetric {
            reason: "error: the baseline sample is empty".into(),
            ..m("cpu", "g", Error)
        });
        let w = weights(&[("g", 1.0)]);
        let s = score(&metrics, &w, &t(90.0, 75.0)).unwrap();
        assert_eq!(s.score, 90.0);
        assert_eq!(s.groups[0].counted, 10);
        assert_eq!(s.verdict, Verdict::Hold);
        assert_eq!(
            s.reason,
            "hold: score 90.00 ≥ pass 90, but never promote on a source error: 1 metric is error \
             (first cpu: the baseline sample is empty) (g 90.00 × 1.00)"
        );
        // An error does not lift an abort.
        let s = score(&metrics, &w, &t(95.0, 92.0)).unwrap();
        assert_eq!(s.verdict, Verdict::Abort);
        // A group of nothing but errors scores 0 (Kayenta: 100).
        let s = score(&[m("a", "g", Error)], &w, &t(90.0, 75.0)).unwrap();
        assert_eq!((s.score, s.verdict), (0.0, Verdict::Abort));
        // A critical error is capped, not aborted.
        let metrics: Vec<ScoredMetric> = (0..20)
            .map(|i| m(&format!("m{i}"), "g", Pass))
            .chain([critical(m("x", "g", Error))])
            .collect();
        let s = score(&metrics, &w, &t(90.0, 75.0)).unwrap();
        assert_eq!(s.verdict, Verdict::Hold, "{}", s.reason);
    }

    #[test]
    fn critical_failures_abort_whatever_the_score() {
        let w = weights(&[("latency", 1.0), ("other", 1.0)]);
        let mut metrics: Vec<ScoredMetric> = (0..50)
            .map(|i| m(&format!("m{i}"), "other", Pass))
            .collect();
        metrics.push(critical(ScoredMetric {
            reason: "high: canary − baseline shift +12.3 (98% CI [+8.1, +16] above 0, p = 0.001), mean ratio 1.21 ≥ allowed 1.05".into(),
            ..m("latency_p99", "latency", High)
        }));
        metrics.push(critical(m("latency_p50", "latency", Low)));
        let s = score(&metrics, &w, &t(50.0, 25.0)).unwrap();
        assert_eq!(s.verdict, Verdict::Abort);
        assert_eq!(
            s.reason,
            "abort: critical metric latency_p99 is high: canary − baseline shift +12.3 \
             (98% CI [+8.1, +16] above 0, p = 0.001), mean ratio 1.21 ≥ allowed 1.05"
        );
        assert_eq!(s.score, 50.0); // still reported

        let s = score(
            &[
                critical(m("x", "latency", NodataFail)),
                m("y", "other", Pass),
            ],
            &w,
            &t(10.0, 5.0),
        )
        .unwrap();
        assert_eq!(s.verdict, Verdict::Abort);
        assert_eq!(s.reason, "abort: critical metric x is nodata_fail: because");

        // Critical nodata and critical pass do not abort.
        let s = score(
            &[
                critical(m("x", "latency", Nodata)),
                critical(m("y", "other", Pass)),
            ],
            &w,
            &t(50.0, 25.0),
        )
        .unwrap();
        assert_eq!(s.verdict, Verdict::Promote, "{}", s.reason);
    }

    #[test]
    fn a_metric_without_a_weighted_group_is_an_error() {
        let e = score(
            &[m("p99", "latency", Pass)],
            &weights(&[("errors", 1.0)]),
            &t(90.0, 75.0),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid option group_weights: metric p99 is in group \"latency\", which has no weight"
        );
    }

    #[test]
    fn scorecard_round_trips_through_json() {
        let s = score(
            &[m("a", "g", Pass)],
            &weights(&[("g", 1.0)]),
            &t(90.0, 75.0),
        )
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"verdict\":\"promote\""), "{json}");
        assert_eq!(serde_json::from_str::<Scorecard>(&json).unwrap(), s);
    }
}
