//! `fledge judge`: classify one canary sample against one baseline sample, or every metric of
//! a recording, and exit with the decision.
//!
//! - `fledge judge --baseline FILE --canary FILE`: each FILE holds one number per line; blank
//!   lines and `#` comments (whole-line or trailing) are skipped; `-` reads stdin (for one of
//!   the two only). Values such as `NaN` and `inf` are read and left to the NaN strategy.
//! - `fledge judge --recording FILE.csv`: every metric of the recording, all points, in the
//!   recording's metric order (sorted by name); timestamps play no part in the statistics.
//!   Metrics are judged in parallel. `-` reads the recording from stdin.
//!
//! Output: `--format text` (default) is a short human summary, or a table for a recording;
//! `json` is one JSON object per metric, one per line, with the [`MetricResult`] fields
//! (preceded by `"metric"` for a recording); `markdown` is a table.
//!
//! Exit codes, from [`Decision`]: 0 every metric passes, 3 hold (some `nodata`, none failing),
//! 4 abort (some `high`, `low` or `nodata_fail`), 1 error (bad input, I/O, or any metric
//! labelled `error`; an error outranks the others). clap's usage errors exit 2.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use fledge_analyzer::recording::{self, MetricSeries, Recording};
use fledge_judges::classify::{format_number, format_signed};
use fledge_judges::{
    Classification, Direction, Independence, MetricOptions, MetricResult, Series, classify,
    classify_series,
};

use super::Format;

/// Compare canary values with baseline values, or judge every metric of a recording.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 every metric passes, 3 hold (some nodata), 4 abort (some high, low or nodata_fail), 1 error, 2 usage."
)]
#[command(group(
    clap::ArgGroup::new("input").required(true).multiple(true).args(["baseline", "canary", "recording"])
))]
pub struct JudgeArgs {
    /// Baseline values: one number per line, `#` comments allowed; `-` reads stdin.
    #[arg(
        long,
        value_name = "FILE",
        requires = "canary",
        conflicts_with = "recording"
    )]
    pub baseline: Option<PathBuf>,
    /// Canary values: one number per line, `#` comments allowed; `-` reads stdin.
    #[arg(
        long,
        value_name = "FILE",
        requires = "baseline",
        conflicts_with = "recording"
    )]
    pub canary: Option<PathBuf>,
    /// A recording (CSV: timestamp,metric,cohort,value): judge every metric in it; `-` reads
    /// stdin.
    #[arg(long, value_name = "FILE.csv")]
    pub recording: Option<PathBuf>,
    /// Confidence level of the shift interval, strictly between 0 and 1.
    #[arg(long, default_value_t = 0.98, value_parser = parse_confidence)]
    pub confidence: f64,
    /// Which way a change is harmful.
    #[arg(long, value_enum, default_value_t = DirectionArg::Either)]
    pub direction: DirectionArg,
    /// An increase is `high` only if canary mean / baseline mean ≥ R (R > 0).
    #[arg(long, value_name = "R", default_value_t = 1.0, value_parser = parse_ratio)]
    pub allowed_increase: f64,
    /// A decrease is `low` only if canary mean / baseline mean ≤ R (R > 0).
    #[arg(long, value_name = "R", default_value_t = 1.0, value_parser = parse_ratio)]
    pub allowed_decrease: f64,
    /// Missing data fails (`nodata_fail`, exit 4) instead of holding (`nodata`, exit 3).
    #[arg(long)]
    pub must_have_data: bool,
    /// How the points' dependence is treated: `assume` (independent: plain Mann–Whitney, R's
    /// wilcox.test exactly), `auto` (estimate the autocorrelation and widen the test by it;
    /// files are read as series in line order, line i of both files taken as simultaneous
    /// when they have as many lines), or `paired` (mean difference of line i with line i, or
    /// of equal time stamps in a recording, with a HAC standard error).
    #[arg(long, value_enum, default_value_t = IndependenceArg::Assume)]
    pub independence: IndependenceArg,
    /// Fewest values per side (with `auto` and `paired`: effective, independent values);
    /// fewer is `nodata`. Default 1 with `assume` (R's behaviour), 10 with `auto` and
    /// `paired` (as in configs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_samples: Option<u64>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--independence` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndependenceArg {
    /// Points are independent: plain Mann–Whitney (the default; R's and Kayenta's behaviour).
    Assume,
    /// Estimate the autocorrelation and widen the Mann–Whitney variance by it.
    Auto,
    /// Paired differences at equal positions (files) or time stamps (recordings).
    Paired,
}

impl From<IndependenceArg> for Independence {
    fn from(i: IndependenceArg) -> Independence {
        match i {
            IndependenceArg::Assume => Independence::Assume,
            IndependenceArg::Auto => Independence::Auto,
            IndependenceArg::Paired => Independence::Paired,
        }
    }
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    /// Only an increase is harmful (latency, errors).
    Increase,
    /// Only a decrease is harmful (throughput, success rate).
    Decrease,
    /// Either way is harmful.
    Either,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::Increase => Direction::Increase,
            DirectionArg::Decrease => Direction::Decrease,
            DirectionArg::Either => Direction::Either,
        }
    }
}

fn parse_confidence(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not strictly between 0 and 1 (e.g. 0.98)"))
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite ratio > 0 (e.g. 1.1)"))
    }
}

/// What a set of metric labels decides, in increasing precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// Every metric passes: exit 0.
    Promote,
    /// Some metric has no data, none fails: exit 3.
    Hold,
    /// Some metric is `high`, `low` or `nodata_fail`: exit 4.
    Abort,
    /// Some metric could not be judged (`error`): exit 1.
    Error,
}

impl Decision {
    /// The decision of one label.
    pub fn of(c: Classification) -> Decision {
        match c {
            Classification::Pass => Decision::Promote,
            Classification::Nodata => Decision::Hold,
            Classification::High | Classification::Low | Classification::NodataFail => {
                Decision::Abort
            }
            Classification::Error => Decision::Error,
        }
    }

    /// The decision of many labels: the one of highest precedence (promote when empty).
    pub fn of_all(labels: impl IntoIterator<Item = Classification>) -> Decision {
        labels
            .into_iter()
            .map(Decision::of)
            .max()
            .unwrap_or(Decision::Promote)
    }

    /// The process exit code: 0, 3, 4 or 1.
    pub fn exit_code(self) -> u8 {
        match self {
            Decision::Promote => 0,
            Decision::Hold => 3,
            Decision::Abort => 4,
            Decision::Error => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "promote",
            Decision::Hold => "hold",
            Decision::Abort => "abort",
            Decision::Error => "error",
        }
    }
}

/// Runs `fledge judge`.
pub fn run(args: JudgeArgs) -> anyhow::Result<ExitCode> {
    let options = MetricOptions {
        direction: args.direction.into(),
        allowed_increase: args.allowed_increase,
        allowed_decrease: args.allowed_decrease,
        must_have_data: args.must_have_data,
        independence: args.independence.into(),
        min_samples: match (args.min_samples, args.independence) {
            (Some(n), _) => usize::try_from(n).unwrap_or(usize::MAX),
            (None, IndependenceArg::Assume) => 1,
            (None, _) => fledge_analyzer::config::DEFAULT_MIN_SAMPLES,
        },
        confidence: args.confidence,
        ..MetricOptions::default()
    };
    options.validate().context("invalid options")?;

    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let (decision, written) = match (&args.recording, &args.baseline, &args.canary) {
        (Some(path), _, _) => {
            let (origin, rec) = if is_stdin(path) {
                let mut buf = Vec::new();
                io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .context("cannot read stdin")?;
                (
                    "<stdin>".to_owned(),
                    recording::parse_recording(&buf, "<stdin>")?,
                )
            } else {
                (path.display().to_string(), recording::read_recording(path)?)
            };
            for note in &rec.notes {
                eprintln!("note: {origin}: {note}");
            }
            let started = std::time::Instant::now();
            let results = judge_recording(&rec, &options);
            tracing::debug!(
                metrics = results.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "judged recording"
            );
            let decision = Decision::of_all(results.iter().map(|r| r.classification));
            let names: Vec<&str> = rec.metric_names().collect();
            let written = write_recording_results(&mut out, &names, &results, decision, &args);
            (decision, written)
        }
        (None, Some(baseline), Some(canary)) => {
            if is_stdin(baseline) && is_stdin(canary) {
                bail!("only one of --baseline and --canary can be `-` (stdin)");
            }
            let baseline = read_values(baseline)?;
            let canary = read_values(canary)?;
            let result = classify(&canary, &baseline, &options);
            let decision = Decision::of(result.classification);
            let written = write_single(&mut out, &result, decision, args.format);
            (decision, written)
        }
        // clap's argument group and `requires` rule these out.
        _ => bail!("give --baseline and --canary, or --recording"),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => {}
        // A closed pipe (`| head`) is the reader's choice, not an error of ours.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("cannot write to stdout"),
    }
    Ok(ExitCode::from(decision.exit_code()))
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Reads a file of numbers (or stdin for `-`): one per line, blank lines and `#` comments
/// skipped. Errors name the file and the 1-based line.
pub fn read_values(path: &Path) -> anyhow::Result<Vec<f64>> {
    let (name, bytes) = if is_stdin(path) {
        let mut buf = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        ("<stdin>".to_owned(), buf)
    } else {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("{name}: cannot read"))?;
        (name, bytes)
    };
    parse_values(&bytes, &name)
}

fn parse_values(bytes: &[u8], name: &str) -> anyhow::Result<Vec<f64>> {
    let mut values = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            bail!("{name}:{}: invalid UTF-8", i + 1);
        };
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        match text.parse::<f64>() {
            Ok(v) => values.push(v),
            Err(_) => {
                let shown: String = text.chars().take(60).collect();
                bail!("{name}:{}: non-numeric value `{shown}`", i + 1);
            }
        }
    }
    if values.is_empty() {
        bail!("{name}: no values");
    }
    Ok(values)
}

/// Classifies every metric of a recording, in the recording's order, on all available cores.
pub fn judge_recording(rec: &Recording, options: &MetricOptions) -> Vec<MetricResult> {
    let metrics: Vec<&MetricSeries> = rec.metrics.values().collect();
    // With `--independence assume` (the default) the time stamps play no part.
    let judge = |m: &MetricSeries| {
        classify_series(
            Series {
                t: &m.canary.t,
                v: &m.canary.v,
            },
            Series {
                t: &m.baseline.t,
                v: &m.baseline.v,
            },
            0,
            options,
        )
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(metrics.len());
    if threads <= 1 {
        return metrics.into_iter().map(judge).collect();
    }
    // Work stealing by index: metrics differ a lot in cost (exact vs normal, sample sizes).
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(m) = metrics.get(i) else { break done };
            done.push((i, judge(m)));
        }
    };
    let mut slots: Vec<Option<MetricResult>> = vec![None; metrics.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(worker)).collect();
        let mut all = worker();
        for h in handles {
            match h.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (i, r) in all {
            slots[i] = Some(r);
        }
    });
    slots
        .into_iter()
        .zip(metrics)
        .map(|(r, m)| r.unwrap_or_else(|| judge(m)))
        .collect()
}

/// One JSON line: the metric name first, then the result's fields.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'a str>,
    #[serde(flatten)]
    result: &'a MetricResult,
}

fn write_json<W: Write>(w: &mut W, metric: Option<&str>, result: &MetricResult) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &JsonRow { metric, result }).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), format_number)
}

fn ci_text(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(
        || "-".to_owned(),
        |[lo, hi]| format!("[{}, {}]", format_signed(lo), format_signed(hi)),
    )
}

fn confidence_text(c: f64) -> String {
    format!("{}%", format_number(c * 100.0))
}

fn write_single<W: Write>(
    w: &mut W,
    r: &MetricResult,
    decision: Decision,
    format: Format,
) -> io::Result<()> {
    if format == Format::Json {
        return write_json(w, None, r);
    }
    let method = r.method.map_or("-", |m| match m {
        fledge_judges::Method::Exact => "exact",
        fledge_judges::Method::Normal => "normal (tie-corrected, continuity-corrected)",
    });
    let mut rows: Vec<(String, String)> = vec![
        ("result".into(), r.classification.to_string()),
        ("reason".into(), r.reason.clone()),
        ("method".into(), method.into()),
        (
            "n".into(),
            format!("canary {}, baseline {}", r.n_canary, r.n_baseline),
        ),
        ("U".into(), num(r.u)),
        ("p-value".into(), num(r.p_value)),
        (
            "shift".into(),
            r.estimate.map_or_else(
                || "-".to_owned(),
                |e| format!("{} (canary − baseline)", format_signed(e)),
            ),
        ),
        (
            format!("{} CI", confidence_text(r.confidence)),
            ci_text(r.ci),
        ),
    ];
    if r.test == fledge_judges::TestKind::Paired {
        rows[2].1 = "paired: mean difference, HAC (Newey–West) standard error, Student t".into();
    }
    if let Some([c, b]) = r.n_eff {
        rows.push((
            "n_eff".into(),
            format!("canary {}, baseline {}", format_number(c), format_number(b)),
        ));
    }
    if let Some(f) = r.variance_inflation {
        rows.push(("variance inflation".into(), format_number(f)));
    }
    for w in &r.warnings {
        rows.push(("warning".into(), w.clone()));
    }
    if let Some(e) = &r.effect_size {
        rows.push(("mean ratio".into(), num(e.mean_ratio)));
        rows.push(("relative shift".into(), num(e.relative_shift)));
        rows.push(("CLES".into(), format_number(e.cles)));
        if let Some(note) = &e.note {
            rows.push(("note".into(), note.clone()));
        }
    }
    for (side, p) in ["canary", "baseline"].into_iter().zip(&r.preprocessing) {
        let mut parts = Vec::new();
        if p.non_finite_removed > 0 {
            parts.push(format!("{} non-finite removed", p.non_finite_removed));
        }
        if p.non_finite_replaced > 0 {
            parts.push(format!("{} non-finite replaced", p.non_finite_replaced));
        }
        if p.outliers_removed > 0 {
            parts.push(format!("{} outliers removed", p.outliers_removed));
        }
        if !parts.is_empty() {
            rows.push((format!("{side} preprocessing"), parts.join(", ")));
        }
    }
    rows.push((
        "decision".into(),
        format!("{} (exit {})", decision.as_str(), decision.exit_code()),
    ));
    if format == Format::Markdown {
        writeln!(w, "| | |\n|---|---|")?;
        for (k, v) in rows {
            writeln!(w, "| {k} | {} |", md_escape(&v))?;
        }
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        writeln!(w, "{k:<width$}  {v}")?;
    }
    Ok(())
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn write_recording_results<W: Write>(
    w: &mut W,
    names: &[&str],
    results: &[MetricResult],
    decision: Decision,
    args: &JudgeArgs,
) -> io::Result<()> {
    if args.format == Format::Json {
        for (name, r) in names.iter().zip(results) {
            write_json(w, Some(name), r)?;
        }
        return Ok(());
    }
    let ci_header = format!("{} CI", confidence_text(args.confidence));
    let header = [
        "metric",
        "result",
        "n_canary",
        "n_baseline",
        "p_value",
        "shift",
        ci_header.as_str(),
        "reason",
    ];
    let rows: Vec<[String; 8]> = names
        .iter()
        .zip(results)
        .map(|(name, r)| {
            [
                (*name).to_owned(),
                r.classification.to_string(),
                r.n_canary.to_string(),
                r.n_baseline.to_string(),
                num(r.p_value),
                r.estimate.map_or_else(|| "-".to_owned(), format_signed),
                ci_text(r.ci),
                r.reason.clone(),
            ]
        })
        .collect();
    let summary = summary_line(results, decision);
    if args.format == Format::Markdown {
        writeln!(w, "| {} |", header.join(" | "))?;
        writeln!(w, "|{}", "---|".repeat(header.len()))?;
        for row in &rows {
            let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
            writeln!(w, "| {} |", cells.join(" | "))?;
        }
        return writeln!(w, "\n{summary}");
    }
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (wd, cell) in widths.iter_mut().zip(row) {
            *wd = (*wd).max(cell.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned; the reason is last and not padded.
    let write_row = |w: &mut W, cells: [&str; 8]| -> io::Result<()> {
        let mut line = String::new();
        for (i, (cell, wd)) in cells.iter().zip(widths).enumerate() {
            let pad = wd.saturating_sub(cell.chars().count());
            match i {
                7 => line.push_str(cell),
                2..=5 => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                    line.push_str("  ");
                }
                _ => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
        }
        writeln!(w, "{}", line.trim_end())
    };
    write_row(w, header)?;
    for row in &rows {
        write_row(w, std::array::from_fn(|i| row[i].as_str()))?;
    }
    writeln!(w, "\n{summary}")
}

fn summary_line(results: &[MetricResult], decision: Decision) -> String {
    let labels = [
        Classification::Pass,
        Classification::High,
        Classification::Low,
        Classification::Nodata,
        Classification::NodataFail,
        Classification::Error,
    ];
    let counts: Vec<String> = labels
        .iter()
        .filter_map(|&c| {
            let n = results.iter().filter(|r| r.classification == c).count();
            (n > 0).then(|| format!("{n} {c}"))
        })
        .collect();
    format!(
        "{} metrics: {} → {} (exit {})",
        results.len(),
        counts.join(", "),
        decision.as_str(),
        decision.exit_code()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_precedence() {
        use Classification::*;
        assert_eq!(Decision::of_all([]), Decision::Promote);
        assert_eq!(Decision::of_all([Pass, Pass]), Decision::Promote);
        assert_eq!(Decision::of_all([Pass, Nodata]), Decision::Hold);
        assert_eq!(Decision::of_all([Nodata, Low, Pass]), Decision::Abort);
        assert_eq!(Decision::of_all([NodataFail]), Decision::Abort);
        assert_eq!(Decision::of_all([High, Error, Nodata]), Decision::Error);
        let codes: Vec<u8> = [
            Decision::Promote,
            Decision::Hold,
            Decision::Abort,
            Decision::Error,
        ]
        .map(Decision::exit_code)
        .into();
        assert_eq!(codes, [0, 3, 4, 1]);
    }

    #[test]
    fn values_files() {
        let v = parse_values(b"# head\n1\n\n 2.5 # trailing\r\n-3e2\nNaN\n-inf", "f").unwrap();
        assert_eq!(v[..3], [1.0, 2.5, -300.0]);
        assert!(v[3].is_nan());
        assert_eq!(v[4], f64::NEG_INFINITY);
        let e = parse_values(b"1\n2\n 3x # c\n", "f.txt").unwrap_err();
        assert_eq!(e.to_string(), "f.txt:3: non-numeric value `3x`");
        let e = parse_values(b"# only a comment\n\n", "f.txt").unwrap_err();
        assert_eq!(e.to_string(), "f.txt: no values");
        let e = parse_values(b"1\n\xff\n", "f.txt").unwrap_err();
        assert_eq!(e.to_string(), "f.txt:2: invalid UTF-8");
    }
}
