//! Reports: HTML, Markdown and text renderings of a hand-built analysis.

use std::collections::HashMap;

use std::sync::Arc;

use fledge_analyzer::engine::{
    AnalysisReport, AnalysisSpec, Engine, IntervalReport, MetricReport, MetricSpec, Millis,
    Progress, WindowData, WindowRef,
};
use fledge_analyzer::report;
use fledge_judges::effect::{EffectSize, effect_size, median};
use fledge_judges::preprocess::Preprocessed;
use fledge_judges::score::GroupScore;
use fledge_judges::{
    Classification, Direction, GroupWeights, Method, MetricOptions, MetricResult, Side, Thresholds,
    Verdict,
};

const MIN: Millis = 60_000;
/// 2024-05-01T10:00:00Z.
const START: Millis = 1_714_557_600_000;

/// Series held in memory, one per (metric, side).
#[derive(Default)]
struct Mem {
    series: HashMap<(String, Side), (Vec<Millis>, Vec<f64>)>,
}

impl WindowData for Mem {
    fn window(&self, metric: &str, side: Side, start: Millis, end: Millis) -> WindowRef<'_> {
        match self.series.get(&(metric.to_string(), side)) {
            Some((t, v)) => {
                let a = t.partition_point(|x| *x < start);
                let b = t.partition_point(|x| *x < end);
                WindowRef {
                    t: &t[a..b],
                    v: &v[a..b],
                }
            }
            None => WindowRef::default(),
        }
    }
}

/// A small deterministic generator (xorshift64*), so the tests need no RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal (sum of uniforms).
    fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.next()).sum::<f64>() - 3.0
    }
}

/// How a metric behaves in the sample.
#[derive(Clone, Copy)]
struct Shape {
    level: f64,
    noise: f64,
    /// Relative canary change after `from` minutes past the start.
    change: f64,
    from: i64,
    direction: Direction,
    critical: bool,
    /// No canary data at all.
    missing: bool,
}

fn shapes(n: usize) -> Vec<(String, &'static str, Shape)> {
    let base = Shape {
        level: 100.0,
        noise: 5.0,
        change: 0.0,
        from: 0,
        direction: Direction::Increase,
        critical: false,
        missing: false,
    };
    let named: Vec<(String, &str, Shape)> = vec![
        (
            "http.latency.p99 ms".into(),
            "latency",
            Shape {
                level: 240.0,
                noise: 12.0,
                change: 0.18,
                from: 30,
                critical: true,
                ..base
            },
        ),
        (
            "http.errors|rate".into(),
            "errors",
            Shape {
                level: 0.8,
                noise: 0.1,
                change: 0.5,
                from: 35,
                ..base
            },
        ),
        (
            "cpu.utilisation".into(),
            "saturation",
            Shape {
                level: 42.0,
                noise: 3.0,
                ..base
            },
        ),
        (
            "a<b&c".into(),
            "saturation",
            Shape {
                level: 7.0,
                noise: 0.4,
                ..base
            },
        ),
        (
            "requests.per.second".into(),
            "throughput",
            Shape {
                level: 1500.0,
                noise: 40.0,
                direction: Direction::Decrease,
                ..base
            },
        ),
        (
            "gc.pause.ms".into(),
            "latency",
            Shape {
                level: 12.0,
                noise: 1.0,
                missing: true,
                ..base
            },
        ),
        (
            "queue.depth".into(),
            "saturation",
            Shape {
                level: 30.0,
                noise: 4.0,
                change: -0.25,
                from: 20,
                direction: Direction::Either,
                ..base
            },
        ),
        (
            "memory.rss".into(),
            "saturation",
            Shape {
                level: 820.0,
                noise: 9.0,
                ..base
            },
        ),
        (
            "http.latency.p50 ms".into(),
            "latency",
            Shape {
                level: 48.0,
                noise: 2.0,
                ..base
            },
        ),
        (
            "db.connections".into(),
            "saturation",
            Shape {
                level: 60.0,
                noise: 3.0,
                ..base
            },
        ),
    ];
    let mut out: Vec<_> = named.into_iter().take(n).collect();
    let mut k = out.len();
    while out.len() < n {
        out.push((
            format!("extra.metric.{k}"),
            "saturation",
            Shape {
                level: 10.0 + k as f64,
                ..base
            },
        ));
        k += 1;
    }
    out
}

fn weights() -> GroupWeights {
    let groups = ["errors", "latency", "saturation", "throughput"];
    GroupWeights::new(groups.iter().map(|g| (g.to_string(), 25.0)).collect())
        .expect("valid weights")
}

struct Sample {
    report: AnalysisReport,
    spec: AnalysisSpec,
    data: Mem,
}

/// An analysis of `n_metrics` metrics sampled every `step` ms, `interval_min` minutes per
/// interval, `planned` intervals planned, judged until the first abort unless `judge_all`.
/// `lookback_min` 0 gives growing windows, otherwise sliding ones.
fn sample(
    n_metrics: usize,
    step: Millis,
    interval_min: i64,
    lookback_min: i64,
    planned: usize,
    judge_all: bool,
) -> Sample {
    let warmup = 5 * MIN;
    let interval = interval_min * MIN;
    let shapes = shapes(n_metrics);
    let spec = AnalysisSpec {
        name: "checkout-api canary".into(),
        lifetime: planned as i64 * interval,
        interval,
        warmup,
        lookback: lookback_min * MIN,
        baseline_offset: 0,
        thresholds: Thresholds {
            pass: 75.0,
            marginal: 50.0,
        },
        weights: weights(),
        metrics: shapes
            .iter()
            .map(|(name, group, s)| MetricSpec {
                name: name.clone(),
                group: group.to_string(),
                options: MetricOptions {
                    direction: s.direction,
                    critical: s.critical,
                    allowed_increase: 1.05,
                    allowed_decrease: 0.95,
                    ..MetricOptions::default()
                },
                test: Default::default(),
            })
            .collect(),
    };
    let end = START + warmup + planned as i64 * interval;
    let mut data = Mem::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, _, s) in &shapes {
        for side in [Side::Baseline, Side::Canary] {
            if side == Side::Canary && s.missing {
                continue;
            }
            let mut t = Vec::new();
            let mut v = Vec::new();
            let mut at = START;
            while at < end {
                let minute = (at - START) / MIN;
                let wave = (at as f64 / 3.6e6 * std::f64::consts::TAU).sin() * s.noise * 0.5;
                let mut x = s.level + wave + rng.normal() * s.noise;
                if side == Side::Canary && s.change != 0.0 && minute >= s.from {
                    x *= 1.0 + s.change;
                }
                t.push(at);
                v.push(x);
                at += step;
            }
            data.series.insert((name.clone(), side), (t, v));
        }
    }

    let mut intervals = Vec::new();
    for index in 1..=planned {
        let iend = START + warmup + index as i64 * interval;
        let istart = if lookback_min > 0 {
            (iend - lookback_min * MIN).max(START + warmup)
        } else {
            START + warmup
        };
        let metrics: Vec<MetricReport> = spec
            .metrics
            .iter()
            .map(|m| MetricReport {
                name: m.name.clone(),
                group: m.group.clone(),
                result: judge(&data, m, istart, iend),
                trace: Default::default(),
            })
            .collect();
        let failing: Vec<&MetricReport> = metrics
            .iter()
            .filter(|m| {
                matches!(
                    m.result.classification,
                    Classification::High | Classification::Low
                )
            })
            .collect();
        let counted = metrics
            .iter()
            .filter(|m| m.result.classification != Classification::Nodata)
            .count()
            .max(1);
        let score = 100.0 * (counted - failing.len()) as f64 / counted as f64;
        let critical = failing.iter().find(|m| m.result.critical);
        let (verdict, reason) = if let Some(c) = critical {
            (
                Verdict::Abort,
                format!(
                    "abort: critical metric {} is {}",
                    c.name,
                    word(c.result.classification)
                ),
            )
        } else if score >= 75.0 {
            (Verdict::Promote, format!("promote: score {score:.1} ≥ 75"))
        } else if score >= 50.0 {
            (
                Verdict::Hold,
                format!("hold: score {score:.1} is marginal (50 ≤ score < 75)"),
            )
        } else {
            (Verdict::Abort, format!("abort: score {score:.1} < 50"))
        };
        let groups = ["errors", "latency", "saturation", "throughput"]
            .iter()
            .filter_map(|g| {
                let ms: Vec<_> = metrics.iter().filter(|m| m.group == *g).collect();
                let passed = ms
                    .iter()
                    .filter(|m| m.result.classification == Classification::Pass)
                    .count();
                let json = serde_json::json!({
                    "name": g, "weight": 25.0,
                    "score": 100.0 * passed as f64 / ms.len().max(1) as f64,
                    "counted": ms.len(), "passed": passed, "nodata": 0
                });
                serde_json::from_value::<GroupScore>(json).ok()
            })
            .collect();
        intervals.push(IntervalReport {
            index,
            start: istart,
            end: iend,
            baseline_start: istart,
            baseline_end: iend,
            score,
            verdict,
            reason,
            groups,
            last_data: Some(iend - step),
            decided_at: None,
            metrics,
        });
        if verdict == Verdict::Abort && !judge_all {
            break;
        }
    }
    let last = intervals.last().expect("at least one interval");
    let (verdict, reason) = match last.verdict {
        Verdict::Abort => (
            Verdict::Abort,
            format!(
                "abort at interval {} of {planned}: {}",
                last.index,
                last.reason.trim_start_matches("abort: ")
            ),
        ),
        v if intervals.len() == planned => (
            v,
            format!("{} after the last interval: {}", word_v(v), last.reason),
        ),
        _ => (
            Verdict::Hold,
            format!(
                "hold: only {} of {planned} intervals were judged",
                intervals.len()
            ),
        ),
    };
    let report = AnalysisReport {
        name: spec.name.clone(),
        verdict,
        score: last.score,
        reason,
        decided_at: last.last_data,
        start: START,
        planned_intervals: planned,
        notes: vec!["baseline and canary each had 2 pods; values are per-pod averages".into()],
        intervals,
    };
    Sample { report, spec, data }
}

fn word(c: Classification) -> &'static str {
    match c {
        Classification::Pass => "pass",
        Classification::High => "high",
        Classification::Low => "low",
        Classification::Nodata => "nodata",
        Classification::NodataFail => "nodata_fail",
        Classification::Error => "error",
    }
}

fn word_v(v: Verdict) -> &'static str {
    match v {
        Verdict::Promote => "promote",
        Verdict::Hold => "hold",
        Verdict::Abort => "abort",
    }
}

/// A rough stand-in for the classifier, enough to give the report plausible numbers.
fn judge(data: &Mem, m: &MetricSpec, start: Millis, end: Millis) -> MetricResult {
    let c = data.window(&m.name, Side::Canary, start, end).v.to_vec();
    let b = data.window(&m.name, Side::Baseline, start, end).v.to_vec();
    let none = [Preprocessed::default(); 2];
    if c.is_empty() || b.is_empty() {
        return MetricResult {
            classification: Classification::Nodata,
            critical: m.options.critical,
            method: None,
            n_canary: c.len(),
            n_baseline: b.len(),
            u: None,
            p_value: None,
            estimate: None,
            ci: None,
            confidence: 0.98,
            effect_size: None,
            reason: format!(
                "nodata: the canary has {} values, the baseline {}",
                c.len(),
                b.len()
            ),
            preprocessing: none,
            test: fledge_judges::TestKind::MannWhitney,
            warnings: Vec::new(),
            check: None,
            proportion: None,
            n_eff: None,
            variance_inflation: None,
            sequential: None,
        };
    }
    let est = median(&c) - median(&b);
    let sd = {
        let mb = b.iter().sum::<f64>() / b.len() as f64;
        (b.iter().map(|x| (x - mb).powi(2)).sum::<f64>() / b.len() as f64).sqrt()
    };
    let half = 2.33 * sd * (1.0 / c.len() as f64 + 1.0 / b.len() as f64).sqrt();
    let ci = [est - half, est + half];
    let z = est.abs() / (half / 2.33).max(1e-12);
    let p = (-0.717 * z - 0.416 * z * z).exp().min(1.0);
    let eff: EffectSize = effect_size(&c, &b, est);
    let ratio = eff.mean_ratio.unwrap_or(1.0);
    let up = ci[0] > 0.0 && ratio >= m.options.allowed_increase;
    let down = ci[1] < 0.0 && ratio <= m.options.allowed_decrease;
    let (class, reason) = match m.options.direction {
        Direction::Increase | Direction::Either if up => (
            Classification::High,
            format!(
                "high: shift {est:+.3} [{:.3}, {:.3}] excludes 0 and mean ratio {ratio:.3} ≥ {}",
                ci[0], ci[1], m.options.allowed_increase
            ),
        ),
        Direction::Decrease | Direction::Either if down => (
            Classification::Low,
            format!(
                "low: shift {est:+.3} [{:.3}, {:.3}] excludes 0 and mean ratio {ratio:.3} ≤ {}",
                ci[0], ci[1], m.options.allowed_decrease
            ),
        ),
        _ => (
            Classification::Pass,
            format!("pass: no harmful shift (p = {p:.3}, mean ratio {ratio:.3})"),
        ),
    };
    let n = (c.len() * b.len()) as f64;
    MetricResult {
        classification: class,
        critical: m.options.critical,
        method: Some(if c.len() < 50 && b.len() < 50 {
            Method::Exact
        } else {
            Method::Normal
        }),
        n_canary: c.len(),
        n_baseline: b.len(),
        u: Some((eff.cles * n).round()),
        p_value: Some(p),
        estimate: Some(est),
        ci: Some(ci),
        confidence: 0.98,
        effect_size: Some(eff),
        reason,
        preprocessing: none,
        test: fledge_judges::TestKind::MannWhitney,
        warnings: Vec::new(),
        check: None,
        proportion: None,
        n_eff: None,
        variance_inflation: None,
        sequential: None,
    }
}

/// The usual sample: 10 metrics every 10 s, 10-minute intervals, 6 planned.
fn standard() -> Sample {
    sample(10, 10_000, 10, 0, 6, false)
}

fn write_sample(name: &str, html: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, html).expect("write sample html");
    path
}

#[test]
fn html_shows_verdict_numbers_and_every_metric() {
    let s = standard();
    assert_eq!(
        s.report.verdict,
        Verdict::Abort,
        "the sample should abort: {}",
        s.report.reason
    );
    let html = report::html(&s.report, &s.spec, &s.data);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("ABORT"), "verdict word");
    assert!(html.contains("v-abort"), "verdict colour class");
    assert!(html.contains(&format!("{:.1}", s.report.score)), "score");
    for m in &s.spec.metrics {
        let escaped = m
            .name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(html.contains(&escaped), "metric {} is shown", m.name);
    }
    // The reason is there (escaped: it has no markup characters, so verbatim).
    assert!(
        html.contains(
            &s.report
                .reason
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        )
    );
    assert!(html.contains("<svg"), "inline charts");
    // The thresholds are drawn.
    assert!(html.contains("promote ≥ 75") && html.contains("marginal ≥ 50"));
    // Each interval has a row.
    for i in &s.report.intervals {
        assert!(html.contains(&format!("<title>#{} ", i.index)));
    }
    assert!(html.contains(&s.report.notes[0]));
}

#[test]
fn html_is_self_contained() {
    let s = standard();
    let html = report::html(&s.report, &s.spec, &s.data);
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("http://"), "no http:// reference");
    assert!(!lower.contains("https://"), "no https:// reference");
    assert!(!lower.contains("<script src"), "no external script");
    assert!(!lower.contains("<link"), "no external stylesheet");
    assert!(!lower.contains("url("), "no CSS url()");
    assert!(!lower.contains("<img"), "no images");
}

#[test]
fn html_escapes_text() {
    let mut s = standard();
    s.report.reason = "abort: <script>alert(1)</script> & \"quotes\"".into();
    s.report.notes.push("note with <b>tags</b>".into());
    let html = report::html(&s.report, &s.spec, &s.data);
    assert!(html.contains("a&lt;b&amp;c"), "escaped metric name");
    assert!(!html.contains("a<b&c"), "the raw metric name never appears");
    assert!(!html.contains("<script>"), "no injected markup");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(!html.contains("<b>tags</b>"));
}

#[test]
fn html_handles_missing_data_and_no_intervals() {
    let mut s = standard();
    // A metric the data does not have at all.
    s.spec.metrics.push(MetricSpec {
        name: "not.recorded".into(),
        group: "latency".into(),
        options: MetricOptions::default(),
        test: Default::default(),
    });
    let html = report::html(&s.report, &s.spec, &s.data);
    assert!(
        html.contains("canary (n = 0)"),
        "gc.pause.ms has no canary data"
    );
    assert!(html.contains("no shift estimated (nodata)"));

    let mut empty = standard();
    empty.report.intervals.clear();
    empty.report.verdict = Verdict::Hold;
    empty.report.reason = "hold: no interval was judged: the recording is empty".into();
    let html = report::html(&empty.report, &empty.spec, &empty.data);
    assert!(html.contains("HOLD") && html.contains("No interval was judged"));
    assert!(report::markdown(&empty.report).contains("HOLD"));
    assert!(report::text(&empty.report).contains("no interval was judged"));
}

#[test]
fn html_stays_small_for_a_day_of_fifty_metrics() {
    // 24 hours at one point per 10 s: 8 640 points per side per metric, 144 intervals.
    let s = sample(50, 10_000, 10, 30, 144, true);
    assert_eq!(s.report.intervals.len(), 144);
    let html = report::html(&s.report, &s.spec, &s.data);
    write_sample("report-day.html", &html);
    let md = report::markdown(&s.report);
    let scores = md
        .lines()
        .find(|l| l.starts_with("Interval scores:"))
        .unwrap();
    assert!(scores.len() < 600, "the score line stays short: {scores}");
    assert!(
        scores.contains("120 earlier") && scores.contains("#144 "),
        "{scores}"
    );
    let mb = html.len() as f64 / 1e6;
    assert!(mb < 5.0, "a day of 50 metrics is {mb:.2} MB");
    // Lines are downsampled: no path has more than ~600 points.
    for path in html.split("<path d=\"").skip(1) {
        let d = &path[..path.find('"').unwrap()];
        let points = d.matches(['M', 'L']).count();
        assert!(points <= 620, "a line has {points} points");
    }
}

#[test]
fn markdown_has_the_table_and_stays_short() {
    let s = standard();
    let md = report::markdown(&s.report);
    assert!(
        md.contains("| metric | test | classification | estimate [CI] | mean ratio | p |"),
        "{md}"
    );
    assert!(md.contains("**ABORT**"));
    let lines = md.lines().count();
    assert!(lines < 60, "{lines} lines:\n{md}");
    // Every metric has a row; pipes in names are escaped so the table keeps its columns.
    assert!(md.contains("http.errors\\|rate"));
    for row in md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| metric"))
    {
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 7, "row keeps 6 cells: {row}");
    }
    // The per-interval score line.
    assert!(md.contains("Interval scores: #1 "));
    // No raw HTML from names.
    assert!(!md.contains("a<b"));
}

#[test]
fn text_lists_intervals_failures_and_the_verdict() {
    let s = standard();
    let text = report::text(&s.report);
    for i in &s.report.intervals {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", i.index)) && l.contains("Z"))
            .unwrap_or_else(|| panic!("interval {} has a line:\n{text}", i.index));
        assert!(line.contains(&format!("{:.1}", i.score)), "{line}");
    }
    assert!(text.contains(&s.report.reason), "the reason");
    let last_line = text.lines().last().unwrap();
    assert!(last_line.starts_with("verdict: ABORT"), "{last_line}");
    // The failing critical metric is listed with its reason.
    let last = s.report.intervals.last().unwrap();
    let failing = last.metrics.iter().find(|m| m.result.critical).unwrap();
    assert!(text.contains(&failing.result.reason), "{text}");
    // Aligned: every interval line has the verdict in the same column.
    let cols: Vec<usize> = text
        .lines()
        .filter(|l| l.contains("promote") || l.contains(" hold") || l.ends_with("abort"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("  -"))
        .map(|l| l.rfind(' ').unwrap())
        .collect();
    assert!(cols.windows(2).all(|w| w[0] == w[1]), "aligned:\n{text}");
}

#[test]
fn text_interval_is_one_compact_block() {
    let s = standard();
    let last = s.report.intervals.last().unwrap();
    let block = report::text_interval(last);
    let first = block.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("interval {} ", last.index)),
        "{block}"
    );
    assert!(first.contains(&format!("{:.1}", last.score)) && first.contains("abort"));
    assert!(block.contains(&last.reason));
    assert!(block.contains("http.latency.p99 ms"));
    assert!(block.lines().count() <= 2 + last.metrics.len());
}

/// The standard sample's spec and data, judged by the real engine.
fn engine_run() -> (AnalysisReport, Sample) {
    let s = standard();
    let mut engine = Engine::new(Arc::new(s.spec.clone()), START);
    while engine.judge_next(&s.data) == Progress::Continue {}
    (engine.finish(None), s)
}

#[test]
fn reports_render_a_real_engine_run() {
    let (run, s) = engine_run();
    let html = report::html(&run, &s.spec, &s.data);
    write_sample("report-engine.html", &html);
    if let Ok(p) = std::env::var("FLEDGE_SAMPLE_HTML") {
        std::fs::write(p, &html).expect("write FLEDGE_SAMPLE_HTML");
    }
    let verdict = match run.verdict {
        Verdict::Promote => "PROMOTE",
        Verdict::Hold => "HOLD",
        Verdict::Abort => "ABORT",
    };
    assert!(html.contains(verdict));
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    assert!(html.contains(&esc(&run.reason)));
    let last = run.intervals.last().expect("judged");
    for m in &last.metrics {
        assert!(
            html.contains(&esc(&m.result.reason)),
            "reason of {}",
            m.name
        );
    }
    // The distributions drawn are the samples the classifier judged.
    assert!(
        !html.contains("may not show exactly what was judged"),
        "report preprocessing disagrees with the classifier"
    );
    let md = report::markdown(&run);
    if std::env::var("FLEDGE_PRINT_REPORTS").is_ok() {
        println!(
            "{md}\n----\n{}\n----\n{}",
            report::text(&run),
            report::text_interval(last)
        );
    }
    assert!(
        md.contains(&format!("**{verdict}**")) && md.lines().count() < 60,
        "{md}"
    );
    let text = report::text(&run);
    assert!(text.contains(&run.reason), "{text}");
    for i in &run.intervals {
        assert!(report::text_interval(i).contains(&i.reason));
    }
}

/// Renders the sample headless and checks a real, non-trivial PNG comes out. Skipped, with
/// a note, when no Chromium is installed.
#[test]
fn html_renders_in_a_headless_browser() {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("note: no chromium found; skipping the screenshot check");
        return;
    };
    let (run, s) = engine_run();
    let html = report::html(&run, &s.spec, &s.data);
    let page = write_sample("report-render.html", &html);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let png = dir.join("report-render.png");
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_file(&png);
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--window-size=1400,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}); chromium said: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 30_000,
        "a non-trivial page ({} bytes)",
        bytes.len()
    );
}
