//! A short Markdown summary, sized for a pull-request comment.

use std::fmt::Write as _;

use super::{
    class_word, deciding, estimate_ci, mean_ratio, one_line, ordered_metrics, p_or_dash, score,
    test_word, time_full, verdict_word,
};
use crate::engine::{AnalysisReport, is_failure};

/// The Markdown summary: a verdict line (status word, score), the reason, the metrics of
/// the deciding interval (name, test, classification, estimate \[CI\], mean ratio, p) and one line
/// of per-interval scores. About 10 + one line per metric.
pub fn markdown(report: &AnalysisReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Fledge canary analysis {}: **{}** (score {})",
        esc(&report.name),
        verdict_word(report.verdict).to_uppercase(),
        score(report.score)
    );
    out.push('\n');
    let _ = writeln!(out, "{}", esc(&report.reason));
    out.push('\n');
    let mut facts = vec![format!(
        "{} of {} planned intervals judged",
        report.intervals.len(),
        report.planned_intervals
    )];
    facts.push(format!("start {}", time_full(report.start)));
    if let Some(t) = report.decided_at {
        facts.push(format!("decided at {}", time_full(t)));
    }
    let _ = writeln!(out, "{}", facts.join(" · "));

    if let Some(last) = deciding(report) {
        out.push('\n');
        let _ = writeln!(
            out,
            "Metrics in interval {} (the deciding one):",
            last.index
        );
        out.push('\n');
        out.push_str("| metric | test | classification | estimate [CI] | mean ratio | p |\n");
        out.push_str("|---|---|---|---|--:|--:|\n");
        for m in ordered_metrics(last) {
            let c = class_word(m.result.classification);
            let mut label = if is_failure(m.result.classification) {
                format!("**{c}**")
            } else {
                c.to_string()
            };
            if m.result.critical {
                label.push_str(" (critical)");
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                esc(&m.name),
                test_word(m),
                label,
                esc(&estimate_ci(m)),
                esc(&mean_ratio(m)),
                esc(&p_or_dash(m))
            );
        }
        out.push('\n');
        // The last few intervals in full; earlier ones summed up, to stay one short line.
        const SHOWN: usize = 24;
        let skip = report.intervals.len().saturating_sub(SHOWN);
        let mut scores: Vec<String> = Vec::new();
        if skip > 0 {
            let earlier = &report.intervals[..skip];
            let lowest = earlier
                .iter()
                .map(|i| i.score)
                .fold(f64::INFINITY, f64::min);
            scores.push(format!("{skip} earlier (lowest {}) …", score(lowest)));
        }
        scores.extend(report.intervals[skip..].iter().map(|i| {
            let v = verdict_word(i.verdict);
            if v == "promote" {
                format!("#{} {}", i.index, score(i.score))
            } else {
                format!("#{} {} {v}", i.index, score(i.score))
            }
        }));
        let _ = writeln!(out, "Interval scores: {}", scores.join(" · "));
    }
    if !report.notes.is_empty() {
        out.push('\n');
        for n in &report.notes {
            let _ = writeln!(out, "- {}", esc(n));
        }
    }
    out
}

/// Escapes text for a Markdown table cell or paragraph: one line, pipes and the characters
/// that would start emphasis, code, links or HTML backslash-escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        if matches!(
            c,
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_pipes_and_markup() {
        assert_eq!(super::esc("a|b"), "a\\|b");
        assert_eq!(super::esc("x<y>\n*z*"), "x\\<y\\> \\*z\\*");
    }
}
