//! The terminal summary.

use std::fmt::Write as _;

use fledge_judges::Classification;

use super::{
    class_word, deciding, one_line, ordered_metrics, score, test_word, time_full, verdict_word,
    window,
};
use crate::engine::{AnalysisReport, IntervalReport, MetricReport, is_failure};

/// The terminal summary of a finished analysis: one line per judged interval (index,
/// canary window, score, verdict), the failing metrics of the deciding interval with their
/// reasons, notes, and the final verdict line.
pub fn text(report: &AnalysisReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "analysis {}: {} of {} planned intervals judged, start {}",
        one_line(&report.name),
        report.intervals.len(),
        report.planned_intervals,
        time_full(report.start)
    );
    if !report.intervals.is_empty() {
        let windows: Vec<String> = report
            .intervals
            .iter()
            .map(|i| window(i.start, i.end))
            .collect();
        let idx_w = report
            .intervals
            .iter()
            .map(|i| i.index.to_string().len())
            .max()
            .unwrap_or(1);
        let win_w = windows
            .iter()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
            .max(13);
        let _ = writeln!(
            out,
            "  {:>idx_w$}  {:<win_w$}  {:>5}  verdict",
            "#", "canary window", "score"
        );
        for (i, w) in report.intervals.iter().zip(&windows) {
            let early = i.decided_at.map_or(String::new(), |t| {
                format!(" (stopped early at {})", time_full(t))
            });
            let _ = writeln!(
                out,
                "  {:>idx_w$}  {:<win_w$}  {:>5}  {}{early}",
                i.index,
                w,
                score(i.score),
                verdict_word(i.verdict)
            );
        }
    }
    if let Some(last) = deciding(report) {
        let flagged: Vec<&MetricReport> = ordered_metrics(last)
            .into_iter()
            .filter(|m| flagged(m))
            .collect();
        if !flagged.is_empty() {
            let _ = writeln!(out, "failing metrics in interval {}:", last.index);
            out.push_str(&metric_lines(&flagged));
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {}", one_line(n));
    }
    if let Some(t) = report.decided_at {
        let _ = writeln!(out, "decided at {}", time_full(t));
    }
    let _ = writeln!(
        out,
        "verdict: {}  score {}  {}",
        verdict_word(report.verdict).to_uppercase(),
        score(report.score),
        one_line(&report.reason)
    );
    out
}

/// The block printed as one interval completes in a live run: a header line with the
/// window, score and verdict, the interval's reason, and its failing metrics.
pub fn text_interval(interval: &IntervalReport) -> String {
    let mut out = String::new();
    let counts = class_counts(interval);
    let _ = writeln!(
        out,
        "interval {}  {}  score {:>5}  {}  ({})",
        interval.index,
        window(interval.start, interval.end),
        score(interval.score),
        verdict_word(interval.verdict),
        counts
    );
    let _ = writeln!(out, "  {}", one_line(&interval.reason));
    let flagged: Vec<&MetricReport> = ordered_metrics(interval)
        .into_iter()
        .filter(|m| flagged(m))
        .collect();
    out.push_str(&metric_lines(&flagged));
    out
}

/// Metrics worth a line: failures and errors.
fn flagged(m: &MetricReport) -> bool {
    is_failure(m.result.classification) || m.result.classification == Classification::Error
}

/// `12 metrics: 10 pass, 2 high`.
fn class_counts(interval: &IntervalReport) -> String {
    let order = [
        Classification::Pass,
        Classification::High,
        Classification::Low,
        Classification::NodataFail,
        Classification::Nodata,
        Classification::Error,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|c| {
            let n = interval
                .metrics
                .iter()
                .filter(|m| m.result.classification == *c)
                .count();
            (n > 0).then(|| format!("{n} {}", class_word(*c)))
        })
        .collect();
    let n = interval.metrics.len();
    let noun = if n == 1 { "metric" } else { "metrics" };
    if parts.is_empty() {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}: {}", parts.join(", "))
    }
}

/// Aligned lines: name, label (critical marked), the test that decided, reason (which
/// carries the numbers).
fn metric_lines(metrics: &[&MetricReport]) -> String {
    let mut out = String::new();
    let names: Vec<String> = metrics.iter().map(|m| one_line(&m.name)).collect();
    let labels: Vec<String> = metrics
        .iter()
        .map(|m| {
            let c = class_word(m.result.classification);
            if m.result.critical {
                format!("{c} (critical)")
            } else {
                c.to_string()
            }
        })
        .collect();
    let width = |v: &[String], cap: usize| {
        v.iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .min(cap)
    };
    let tests: Vec<String> = metrics.iter().map(|m| test_word(m).to_string()).collect();
    let (nw, lw, tw) = (width(&names, 40), width(&labels, 20), width(&tests, 20));
    for (i, m) in metrics.iter().enumerate() {
        let _ = writeln!(
            out,
            "  - {:<nw$}  {:<lw$}  {:<tw$}  {}",
            names[i],
            labels[i],
            tests[i],
            one_line(&m.result.reason)
        );
    }
    out
}
