//! `fledge replay` end to end: the committed recordings with known verdicts, the output
//! shapes, and bad input.
//!
//! The recordings come from `scripts/gen-testdata` (seed 1); `testdata/recordings/README.md`
//! describes each one and argues its verdict at length. The comments below give the short
//! reason each expected verdict is right.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn recording(name: &str) -> PathBuf {
    root()
        .join("testdata/recordings")
        .join(format!("{name}.csv"))
}

fn config() -> PathBuf {
    root().join("configs/checkout-replay.yaml")
}

fn fledge(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(args)
        .output()
        .expect("run fledge");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn replay_json(config: &Path, recording: &Path) -> (i32, Value) {
    let run = fledge(&[
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--recording",
        recording.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", run.stdout, run.stderr));
    (run.code, v)
}

/// A directory of its own for one test, removed when dropped.
fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fledge-cli-replay-")
        .tempdir()
        .unwrap()
}

/// The deciding interval and the classification of `metric` in it.
fn deciding(v: &Value, metric: &str) -> (u64, String) {
    let last = v["intervals"]
        .as_array()
        .unwrap()
        .last()
        .expect("an interval was judged");
    let m = last["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == metric)
        .unwrap_or_else(|| panic!("{metric} in the deciding interval"));
    (
        last["index"].as_u64().unwrap(),
        m["classification"].as_str().unwrap().to_string(),
    )
}

#[test]
fn healthy_canary_promotes() {
    // Same distributions, same shared load: every metric passes in all 6 intervals, so the
    // last interval promotes and so does the analysis.
    let (code, v) = replay_json(&config(), &recording("healthy"));
    assert_eq!(v["verdict"], "promote", "{v:#}");
    assert_eq!(code, 0);
    assert_eq!(v["intervals"].as_array().unwrap().len(), 6);
    assert_eq!(v["score"], 100.0);
    for i in v["intervals"].as_array().unwrap() {
        // With `independence: auto` (the default) an early interval may hold instead: in the
        // first 10 minutes the slow shared load makes `cpu` worth fewer than min_samples
        // independent values (see docs/autocorr.md). Never an abort.
        let evidence = i["reason"]
            .as_str()
            .unwrap()
            .starts_with("hold: too little independent evidence");
        assert!(i["verdict"] == "promote" || evidence, "{i:#}");
    }
    // The last interval ends at 01:00, one step after the last point (00:59:50).
    assert_eq!(v["decided_at"], "2026-01-01T00:59:50Z");
}

#[test]
fn p99_up_20_percent_aborts_at_the_first_interval() {
    // p99 is ~19% higher from the start: the 98% Hodges–Lehmann interval lies above 0 and
    // the mean ratio (~1.19) exceeds the allowed 1.05 on a critical metric.
    let (code, v) = replay_json(&config(), &recording("latency-p99-up20"));
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")));
    assert_eq!(deciding(&v, "latency_p99"), (1, "high".into()));
    // p50 barely moves (ratio ~1.01), below its 1.05 tolerance: pass.
    assert_eq!(deciding(&v, "latency_p50").1, "pass");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("latency_p99") && reason.contains("critical"),
        "{reason}"
    );
}

#[test]
fn sparse_errors_times_three_abort() {
    // Error rate x3 with mostly-zero counts: once the window holds enough steps the
    // interval for the shift clears 0 and the critical error_rate is high (interval 3 for
    // seed 1; the README explains why not earlier).
    let (code, v) = replay_json(&config(), &recording("errors-x3-sparse"));
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")));
    let (index, class) = deciding(&v, "error_rate");
    assert_eq!(class, "high");
    assert!(index <= 3, "aborted at interval {index}");
}

#[test]
fn slow_start_aborts_without_warmup_and_promotes_with_it() {
    // Latency x1.4 during the first 10 minutes: interval 1 sees it and aborts at once.
    let (code, v) = replay_json(&config(), &recording("slow-start"));
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")));
    assert_eq!(deciding(&v, "latency_p99"), (1, "high".into()));

    // With a 10-minute warmup the slow minutes are never judged, and the rest is healthy.
    let text = std::fs::read_to_string(config()).unwrap();
    let warm = text.replace(
        "analysis: {lifetime: 60m, interval: 10m, warmup: 0m",
        "analysis: {lifetime: 50m, interval: 10m, warmup: 10m",
    );
    assert_ne!(
        text, warm,
        "the config's analysis line changed; update this test"
    );
    let dir = tmp();
    let path = dir.path().join("warmup.yaml");
    std::fs::write(&path, warm).unwrap();
    let (code, v) = replay_json(&path, &recording("slow-start"));
    assert_eq!((code, v["verdict"].as_str()), (0, Some("promote")), "{v:#}");
    assert_eq!(v["intervals"][0]["start"], "2026-01-01T00:10:00Z");
}

#[test]
fn missing_must_have_data_aborts_with_nodata_fail() {
    // latency_p99 has no canary rows; it is critical and must have data.
    let (code, v) = replay_json(&config(), &recording("missing-canary"));
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")));
    assert_eq!(deciding(&v, "latency_p99"), (1, "nodata_fail".into()));
}

#[test]
fn variance_only_increase_is_caught_by_the_p99_series() {
    // A wider latency distribution with the same median leaves p50 alone but lifts p99 by
    // ~25%: the rank test on the p99 series sees a shift, the p50 series does not.
    let (code, v) = replay_json(&config(), &recording("variance-only"));
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")));
    assert_eq!(deciding(&v, "latency_p99"), (1, "high".into()));
    assert_eq!(deciding(&v, "latency_p50").1, "pass");
}

#[test]
fn json_has_the_documented_shape() {
    let (_, v) = replay_json(&config(), &recording("latency-p99-up20"));
    for key in ["verdict", "score", "reason", "decided_at", "intervals"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let interval = &v["intervals"][0];
    for key in ["index", "start", "end", "score", "verdict", "metrics"] {
        assert!(interval.get(key).is_some(), "interval missing {key}");
    }
    let m = &interval["metrics"][0];
    for key in [
        "name",
        "classification",
        "critical",
        "p_value",
        "estimate",
        "ci",
        "effect_size",
        "n_canary",
        "n_baseline",
        "reason",
        "test",
    ] {
        assert!(m.get(key).is_some(), "metric missing {key}: {m:#}");
    }
    // 10 minutes at a 10 s step: 60 points per side in the first window.
    assert_eq!(m["n_canary"], 60);
    assert_eq!(m["n_baseline"], 60);
    assert_eq!(m["ci"].as_array().unwrap().len(), 2);
}

#[test]
fn report_and_markdown() {
    let dir = tmp();
    let html = dir.path().join("report.html");
    let run = fledge(&[
        "replay",
        "-c",
        config().to_str().unwrap(),
        "-r",
        recording("latency-p99-up20").to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stdout.contains("ABORT"), "{}", run.stdout);
    assert!(run.stdout.contains("| latency\\_p99 |"), "{}", run.stdout);
    assert!(run.stdout.lines().count() < 60);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("latency_p99") && page.contains("<svg"));
    // independence: auto is the default, so each metric shows its effective sample sizes.
    assert!(
        page.contains("effective n (autocorrelation)</th><td>") && page.contains("(variance ×")
    );
    assert!(!page.contains("http://") && !page.contains("https://"));
}

#[test]
fn text_output_lists_intervals_and_the_verdict() {
    let run = fledge(&[
        "replay",
        "-c",
        config().to_str().unwrap(),
        "-r",
        recording("healthy").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("verdict: PROMOTE"), "{}", run.stdout);
    assert!(run.stdout.matches("promote").count() >= 6, "{}", run.stdout);
}

/// Rewrites the healthy recording through `f` (data rows only) into a temp file.
/// A file written in a directory of its own, removed with it when dropped.
struct Written {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Written {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

fn healthy_with(name: &str, f: impl Fn(Vec<String>) -> Vec<String>) -> Written {
    let text = std::fs::read_to_string(recording("healthy")).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    let rows = f(lines.collect());
    let dir = tmp();
    let path = dir.path().join(format!("{name}.csv"));
    std::fs::write(
        &path,
        std::iter::once(header)
            .chain(rows)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    Written { path, _dir: dir }
}

#[test]
fn out_of_order_rows_give_the_same_result() {
    // Points are sorted by time on load, so row order cannot change any number.
    let reversed = healthy_with("reversed", |mut rows| {
        rows.reverse();
        rows
    });
    let (_, a) = replay_json(&config(), &recording("healthy"));
    let (_, b) = replay_json(&config(), &reversed);
    assert_eq!(a, b);
}

#[test]
fn identical_duplicates_are_collapsed_and_conflicting_ones_rejected() {
    let dup = healthy_with("dup", |mut rows| {
        let first = rows[0].clone();
        rows.push(first);
        rows
    });
    let (code, v) = replay_json(&config(), &dup);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("promote")));

    let conflict = healthy_with("conflict", |mut rows| {
        let mut fields: Vec<String> = rows[0].split(',').map(str::to_string).collect();
        fields[3] = "12345".into();
        rows.push(fields.join(","));
        rows
    });
    let run = fledge(&[
        "replay",
        "-c",
        config().to_str().unwrap(),
        "-r",
        conflict.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("conflict.csv:"), "{}", run.stderr);
}

#[test]
fn malformed_line_is_an_error_naming_file_and_line() {
    let bad = healthy_with("malformed", |mut rows| {
        rows.insert(
            9,
            "2026-01-01T00:00:00Z,latency_p99,canary,not-a-number".into(),
        );
        rows
    });
    let run = fledge(&[
        "replay",
        "-c",
        config().to_str().unwrap(),
        "-r",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    // Header is line 1, so data row index 9 is line 11.
    assert!(run.stderr.contains("malformed.csv:11:"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn empty_recording_is_an_error() {
    let dir = tmp();
    let path = dir.path().join("empty.csv");
    std::fs::write(&path, "").unwrap();
    let run = fledge(&[
        "replay",
        "-c",
        config().to_str().unwrap(),
        "-r",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("empty.csv"), "{}", run.stderr);
}

#[test]
fn only_one_cohort_never_promotes() {
    // Without canary data every metric is nodata; the critical must-have latency_p99 is
    // nodata_fail, which aborts.
    let baseline_only = healthy_with("baseline-only", |rows| {
        rows.into_iter()
            .filter(|r| r.contains(",baseline,"))
            .collect()
    });
    let (code, v) = replay_json(&config(), &baseline_only);
    assert_eq!((code, v["verdict"].as_str()), (4, Some("abort")), "{v:#}");
}

#[test]
fn metric_absent_from_the_recording_is_nodata_or_nodata_fail() {
    // Drop cpu entirely: it is not must_have_data, so it is nodata and left out of its
    // group; that group then has nothing judged and scores 0 (weight 10), so the score is
    // 90 -- still a promote at pass 90.
    let no_cpu = healthy_with("no-cpu", |rows| {
        rows.into_iter().filter(|r| !r.contains(",cpu,")).collect()
    });
    let (code, v) = replay_json(&config(), &no_cpu);
    assert_eq!(deciding(&v, "cpu").1, "nodata");
    assert_eq!(v["score"], 90.0, "{v:#}");
    assert_eq!(code, 0);

    // Drop latency_p99: it must have data and is critical, so the analysis aborts.
    let no_p99 = healthy_with("no-p99", |rows| {
        rows.into_iter()
            .filter(|r| !r.contains(",latency_p99,"))
            .collect()
    });
    let (code, v) = replay_json(&config(), &no_p99);
    assert_eq!(deciding(&v, "latency_p99").1, "nodata_fail");
    assert_eq!(code, 4);
}

#[test]
fn data_ending_before_the_lifetime_holds() {
    // Keep the first 35 minutes: intervals 1-3 are judged and promote, 4-6 cannot be, so
    // the analysis holds (never promotes on data it does not have).
    let short = healthy_with("short", |rows| {
        rows.into_iter()
            .filter(|r| r.as_str() < "2026-01-01T00:35")
            .collect()
    });
    let (code, v) = replay_json(&config(), &short);
    assert_eq!((code, v["verdict"].as_str()), (3, Some("hold")), "{v:#}");
    assert_eq!(v["intervals"].as_array().unwrap().len(), 3);
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("3 of 6") && reason.contains("recording ends"),
        "{reason}"
    );
}

#[test]
fn bad_config_is_an_error_naming_the_field() {
    let dir = tmp();
    let path = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(config())
        .unwrap()
        .replace("allowed_increase", "allowed_increse");
    std::fs::write(&path, text).unwrap();
    let run = fledge(&[
        "replay",
        "-c",
        path.to_str().unwrap(),
        "-r",
        recording("healthy").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("bad.yaml:") && run.stderr.contains("allowed_increse"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(fledge(&["replay"]).code, 2);
    assert_eq!(
        fledge(&["replay", "-c", "x.yaml", "-r", "y.csv", "--format", "yaml"]).code,
        2
    );
}
