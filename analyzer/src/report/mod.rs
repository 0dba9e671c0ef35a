//! Human-facing renderings of an [`AnalysisReport`]: a self-contained HTML page, a short
//! Markdown summary for pull-request comments, and the terminal text.
//!
//! Every rendering leads with the verdict and carries the numbers and the reason that
//! decided it. JSON is plain `serde_json` of the report and lives elsewhere.
//!
//! - [`html()`]: one file, inline CSS and inline SVG charts, no network at view time.
//! - [`markdown()`]: verdict line, metrics of the deciding interval, per-interval scores.
//! - [`text()`]: per-interval lines, failing metrics with their reasons, the verdict line.
//! - [`text_interval()`]: the block printed as each interval completes in a live run.

mod html;
mod markdown;
mod text;

pub use html::html;
pub use markdown::markdown;
pub use text::{text, text_interval};

use chrono::{DateTime, Utc};
use fledge_judges::{CheckDetail, Classification, Verdict};

use crate::engine::{AnalysisReport, IntervalReport, MetricReport, Millis, is_failure};

/// The lower-case word for a verdict.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Promote => "promote",
        Verdict::Hold => "hold",
        Verdict::Abort => "abort",
    }
}

/// The label of a classification, as in the JSON.
pub(crate) fn class_word(c: Classification) -> &'static str {
    match c {
        Classification::Pass => "pass",
        Classification::High => "high",
        Classification::Low => "low",
        Classification::Nodata => "nodata",
        Classification::NodataFail => "nodata_fail",
        Classification::Error => "error",
    }
}

/// The interval whose score the report carries: the last judged one.
pub(crate) fn deciding(report: &AnalysisReport) -> Option<&IntervalReport> {
    report.intervals.last()
}

/// How urgently a person should look at a metric: lower comes first.
pub(crate) fn severity(m: &MetricReport) -> u8 {
    let c = m.result.classification;
    match (is_failure(c), m.result.critical) {
        (true, true) => 0,
        (true, false) => 1,
        _ => match c {
            Classification::Error => 2,
            Classification::Nodata => 3,
            _ => 4,
        },
    }
}

/// The metrics of an interval, failing (critical first) before errors, no data and passes;
/// otherwise in report order.
pub(crate) fn ordered_metrics(interval: &IntervalReport) -> Vec<&MetricReport> {
    let mut v: Vec<&MetricReport> = interval.metrics.iter().collect();
    v.sort_by_key(|m| severity(m));
    v
}

/// A number in at most `sig` significant digits, without trailing zeros; scientific
/// notation for very large or very small magnitudes. Non-finite values print as words.
pub(crate) fn num(x: f64) -> String {
    num_sig(x, 4)
}

pub(crate) fn num_sig(x: f64, sig: usize) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "∞".to_string()
        } else {
            "−∞".to_string()
        };
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-3..7).contains(&mag) {
        let s = format!("{:.*e}", sig.saturating_sub(1), x);
        // Trim the mantissa: 1.500e-5 -> 1.5e-5.
        if let Some((m, e)) = s.split_once('e') {
            let m = if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.')
            } else {
                m
            };
            return format!("{m}e{e}");
        }
        return s;
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let s = format!("{:.*}", decimals, x);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A number with an explicit sign, for shifts.
pub(crate) fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", num(x))
    } else {
        num(x)
    }
}

/// A p-value: four decimals, or two significant digits in scientific notation below 1e-4.
pub(crate) fn pval(p: f64) -> String {
    if !p.is_finite() {
        return num(p);
    }
    if p == 0.0 {
        "0".to_string()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// A score, 0–100, with one decimal.
pub(crate) fn score(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.1}")
    } else {
        num(s)
    }
}

/// Estimate and interval as `+1.2 [0.8, 1.6]`, or `–` when no test ran. For the other
/// tests, what they compared: `p99 512 (max 400)`, `mean 112 vs 100`, `rate ratio 2
/// [1.3, 3.1]`.
pub(crate) fn estimate_ci(m: &MetricReport) -> String {
    let r = &m.result;
    if let Some(p) = &r.proportion {
        let ratio = p.rate_ratio.map_or_else(
            || {
                if p.canary_events > 0 {
                    "∞".to_string()
                } else {
                    "–".to_string()
                }
            },
            num,
        );
        let hi = p.ratio_upper.map_or_else(|| "∞".to_string(), num);
        return format!("rate ratio {ratio} [{}, {hi}]", num(p.ratio_lower));
    }
    if let Some(c) = &r.check {
        return check_text(c);
    }
    match (r.estimate, r.ci) {
        (Some(e), Some([lo, hi])) => format!("{} [{}, {}]", signed(e), num(lo), num(hi)),
        (Some(e), None) => signed(e),
        _ => "–".to_string(),
    }
}

/// A threshold or relative check in a few words.
pub(crate) fn check_text(c: &CheckDetail) -> String {
    let bounds = match (c.min, c.max) {
        (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
        (Some(lo), None) => format!("min {}", num(lo)),
        (None, Some(hi)) => format!("max {}", num(hi)),
        (None, None) => String::new(),
    };
    match (c.aggregate, c.canary_value, c.baseline_value) {
        (Some(a), Some(v), Some(b)) => format!("{a} {} vs {} ({bounds})", num(v), num(b)),
        (Some(a), Some(v), None) => format!("{a} {} ({bounds})", num(v)),
        _ => {
            let out = c.points_above.unwrap_or(0) + c.points_below.unwrap_or(0);
            format!(
                "{out} point{} out of {bounds} (limit {})",
                if out == 1 { "" } else { "s" },
                c.failure_limit.unwrap_or(0)
            )
        }
    }
}

/// The test that decided a metric: `mann-whitney`, `threshold`, …
pub(crate) fn test_word(m: &MetricReport) -> &'static str {
    m.result.test.as_str()
}

/// The mean ratio, or `–`.
pub(crate) fn mean_ratio(m: &MetricReport) -> String {
    match m.result.effect_size.as_ref().and_then(|e| e.mean_ratio) {
        Some(r) => num_sig(r, 3),
        None => "–".to_string(),
    }
}

pub(crate) fn p_or_dash(m: &MetricReport) -> String {
    m.result.p_value.map_or_else(|| "–".to_string(), pval)
}

fn utc(ms: Millis) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// `2024-05-01 10:00:00Z`: a compact full timestamp (seconds shown only when not zero;
/// milliseconds only when not zero).
pub(crate) fn time_full(ms: Millis) -> String {
    match utc(ms) {
        Some(t) => {
            let fmt = if ms.rem_euclid(1000) != 0 {
                "%Y-%m-%d %H:%M:%S%.3fZ"
            } else if ms.rem_euclid(60_000) != 0 {
                "%Y-%m-%d %H:%M:%SZ"
            } else {
                "%Y-%m-%d %H:%MZ"
            };
            t.format(fmt).to_string()
        }
        None => ms.to_string(),
    }
}

/// A window `[start, end)` as text; the end drops the date when it is the same day.
pub(crate) fn window(start: Millis, end: Millis) -> String {
    let a = time_full(start);
    let b = time_full(end);
    match (utc(start), utc(end)) {
        (Some(s), Some(e)) if s.date_naive() == e.date_naive() => {
            format!("{a} – {}", b.split_once(' ').map_or(b.as_str(), |(_, t)| t))
        }
        _ => format!("{a} – {b}"),
    }
}

/// A duration in the largest whole units that fit: `1d 2h`, `10m`, `45s`, `250ms`.
pub(crate) fn duration(ms: i64) -> String {
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let parts = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ];
    let mut out = Vec::new();
    let mut rest = ms;
    for (unit, name) in parts {
        if rest >= unit {
            out.push(format!("{}{name}", rest / unit));
            rest %= unit;
        }
        if out.len() == 2 {
            break;
        }
    }
    let s = if out.is_empty() {
        "0s".to_string()
    } else {
        out.join(" ")
    };
    if neg { format!("−{s}") } else { s }
}

/// One line of text: newlines and tabs become spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(12.345678), "12.35");
        assert_eq!(num(-0.5), "-0.5");
        assert_eq!(num(1234567.4), "1234567");
        assert_eq!(num(12345678.0), "1.235e7");
        assert_eq!(num(0.00001234), "1.234e-5");
        assert_eq!(signed(2.0), "+2");
        assert_eq!(pval(0.04), "0.0400");
        assert_eq!(pval(0.00001), "1.0e-5");
    }

    #[test]
    fn durations_and_windows() {
        assert_eq!(duration(600_000), "10m");
        assert_eq!(duration(90_061_000), "1d 1h");
        assert_eq!(duration(0), "0s");
        assert_eq!(window(0, 600_000), "1970-01-01 00:00Z – 00:10Z");
        assert_eq!(
            window(0, 86_400_000),
            "1970-01-01 00:00Z – 1970-01-02 00:00Z"
        );
    }
}
