//! `fledge judge` end to end: the binary, its output and its exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/judge")
        .join(name)
        .display()
        .to_string()
}

fn fledge(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("judge")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fledge");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn json_lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A file of its own in the test temp dir.
fn temp_file(name: &str, content: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_judge");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn assert_close(v: &Value, want: f64, rel: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() <= rel * want.abs(), "{got} vs {want}");
}

#[test]
fn small_pair_has_the_hand_checked_exact_result() {
    // U: pairs with canary > baseline = 3 + 4 + 2 + 4 + 4 = 17. Exact p: 2·P(U ≤ 3) =
    // 2·7/126. Estimate: median of the 20 differences = 7. 98% CI: qwilcox(0.01, 5, 4) = 1,
    // so [d(1), d(20)] = [-4, 18] (R's wilcox.test agrees).
    let run = fledge(
        &[
            "--canary",
            &data("canary_small.txt"),
            "--baseline",
            &data("baseline_small.txt"),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1);
    let j = json(&run);
    assert_eq!(j["method"], "exact");
    assert_eq!(j["n_canary"], 5);
    assert_eq!(j["n_baseline"], 4);
    assert_eq!(j["u"], 17.0);
    assert_close(&j["p_value"], 0.1111111111111111, 1e-15);
    assert_eq!(j["estimate"], 7.0);
    assert_eq!(j["ci"], serde_json::json!([-4.0, 18.0]));
    assert_eq!(j["confidence"], 0.98);
    assert_eq!(j["classification"], "pass");
    assert!(j["reason"].as_str().unwrap().starts_with("pass: "), "{j}");
    assert_close(&j["effect_size"]["cles"], 0.85, 1e-15);
    for key in ["critical", "preprocessing"] {
        assert!(j.get(key).is_some(), "{key} missing: {j}");
    }
    assert!(j.get("metric").is_none(), "no metric name for a pair: {j}");
}

#[test]
fn large_shift_is_high_with_exact_numbers_and_exits_4() {
    // canary = baseline + 100 over 1..=10: every difference is 100 + (i − j), U = 100,
    // exact p = 2 / C(20, 10).
    let run = fledge(
        &[
            "--baseline",
            &data("baseline10.txt"),
            "--canary",
            &data("canary_shift.txt"),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let j = json(&run);
    assert_eq!(j["classification"], "high");
    assert_eq!(j["method"], "exact");
    assert_eq!(j["u"], 100.0);
    assert_close(&j["p_value"], 2.0 / 184_756.0, 1e-12);
    assert_eq!(j["estimate"], 100.0);
    let ci = j["ci"].as_array().unwrap();
    assert!(
        ci[0].as_f64().unwrap() > 0.0 && ci[1].as_f64().unwrap() >= 100.0,
        "{j}"
    );
    assert_close(&j["effect_size"]["mean_ratio"], 105.5 / 5.5, 1e-12);
    assert!(j["reason"].as_str().unwrap().starts_with("high: "), "{j}");
}

#[test]
fn identical_samples_pass_and_exit_0() {
    let b = data("baseline10.txt");
    let run = fledge(
        &["--baseline", &b, "--canary", &b, "--format", "json"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = json(&run);
    assert_eq!(j["classification"], "pass");
    assert_eq!(
        j["method"], "normal",
        "ties across samples force the normal method"
    );
    assert_eq!(j["estimate"], 0.0);
    assert_eq!(j["u"], 50.0);
    assert_eq!(j["p_value"], 1.0);
}

#[test]
fn options_change_the_decision() {
    let (b, c) = (data("baseline10.txt"), data("canary_shift.txt"));
    // Only a decrease is harmful: an increase passes.
    let run = fledge(
        &["--baseline", &b, "--canary", &c, "--direction", "decrease"],
        None,
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The mean ratio 19.2 is under an allowed increase of 25.
    let run = fledge(
        &["--baseline", &b, "--canary", &c, "--allowed-increase", "25"],
        None,
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The reverse shift is low.
    let run = fledge(
        &["--baseline", &c, "--canary", &b, "--format", "json"],
        None,
    );
    assert_eq!(run.code, 4);
    assert_eq!(json(&run)["classification"], "low");
    assert_eq!(json(&run)["estimate"], -100.0);
    // The interval follows --confidence.
    let run = fledge(
        &[
            "--baseline",
            &b,
            "--canary",
            &c,
            "--confidence",
            "0.9",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(json(&run)["confidence"], 0.9);
}

#[test]
fn text_format_is_an_aligned_summary_with_the_reason() {
    let run = fledge(
        &[
            "--baseline",
            &data("baseline10.txt"),
            "--canary",
            &data("canary_shift.txt"),
        ],
        None,
    );
    assert_eq!(run.code, 4);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["result", "high"]
    );
    assert!(
        lines[1].starts_with("reason ") && lines[1].contains("high: canary − baseline shift +100"),
        "{}",
        run.stdout
    );
    // Values start in one column.
    let col = lines[0].find("high").unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l.len() > col && l.as_bytes()[col - 1] == b' '),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nU "), "{}", run.stdout);
    assert!(run.stdout.contains("98% CI"), "{}", run.stdout);
    assert!(
        lines.last().unwrap().ends_with("abort (exit 4)"),
        "{}",
        run.stdout
    );
}

#[test]
fn stdin_dash_reads_one_side() {
    let canary = std::fs::read_to_string(data("canary_small.txt")).unwrap();
    let run = fledge(
        &[
            "--canary",
            "-",
            "--baseline",
            &data("baseline_small.txt"),
            "--format",
            "json",
        ],
        Some(&canary),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json(&run)["u"], 17.0);
    let run = fledge(
        &[
            "--canary",
            &data("canary_small.txt"),
            "--baseline",
            "-",
            "--format",
            "json",
        ],
        Some("20\n11\n17\n12"),
    );
    assert_eq!(json(&run)["u"], 17.0);
}

#[test]
fn both_sides_from_stdin_is_an_error() {
    let run = fledge(&["--canary", "-", "--baseline", "-"], Some("1\n2\n"));
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: only one of --baseline and --canary can be `-` (stdin)"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let commented = temp_file(
        "commented.txt",
        "# a header comment\n\n  20  # first\n11\r\n\n# 99 is commented out\n17 #\n12\n\n",
    );
    let a = fledge(
        &[
            "--canary",
            &data("canary_small.txt"),
            "--baseline",
            &commented,
            "--format",
            "json",
        ],
        None,
    );
    let b = fledge(
        &[
            "--canary",
            &data("canary_small.txt"),
            "--baseline",
            &data("baseline_small.txt"),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(json(&a), json(&b));
    assert_eq!(json(&a)["n_baseline"], 4);
}

#[test]
fn non_numeric_value_names_file_and_line() {
    let bad = temp_file("bad_value.txt", "1\n# ok\n2.5\nabc\n4\n");
    let run = fledge(
        &["--canary", &bad, "--baseline", &data("baseline_small.txt")],
        None,
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!("error: {bad}:4: non-numeric value `abc`")
    );
    assert!(run.stdout.is_empty());
    let run = fledge(
        &["--canary", &data("canary_small.txt"), "--baseline", "-"],
        Some("1\n2 3\n"),
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: <stdin>:2: non-numeric value `2 3`"
    );
}

#[test]
fn empty_or_missing_files_exit_1() {
    for (name, content) in [
        ("empty.txt", ""),
        ("only_comments.txt", "# nothing\n\n   \n"),
    ] {
        let path = temp_file(name, content);
        let run = fledge(
            &["--canary", &path, "--baseline", &data("baseline_small.txt")],
            None,
        );
        assert_eq!(run.code, 1, "{name}");
        assert_eq!(run.stderr.trim(), format!("error: {path}: no values"));
    }
    let run = fledge(
        &[
            "--canary",
            "/nonexistent/canary.txt",
            "--baseline",
            &data("baseline_small.txt"),
        ],
        None,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("error: /nonexistent/canary.txt: cannot read"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn recording_json_lines_one_per_metric_in_order() {
    let run = fledge(
        &["--recording", &data("two_metrics.csv"), "--format", "json"],
        None,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let rows = json_lines(&run);
    assert_eq!(rows.len(), 2);
    for line in run.stdout.lines() {
        assert!(line.starts_with("{\"metric\":"), "metric first: {line}");
    }
    assert_eq!(rows[0]["metric"], "error_rate");
    assert_eq!(rows[0]["classification"], "pass");
    assert_eq!(rows[0]["estimate"], 0.0);
    assert_eq!(rows[1]["metric"], "latency_ms");
    assert_eq!(rows[1]["classification"], "high");
    // Canary = baseline + 50 exactly (98..=107 against 148..=157): U = 100, exact p.
    assert_eq!(rows[1]["estimate"], 50.0);
    assert_eq!(rows[1]["u"], 100.0);
    assert_eq!(rows[1]["method"], "exact");
    assert_close(&rows[1]["p_value"], 2.0 / 184_756.0, 1e-12);
    assert_eq!(
        (rows[1]["n_canary"].as_u64(), rows[1]["n_baseline"].as_u64()),
        (Some(10), Some(10))
    );
}

#[test]
fn recording_from_stdin() {
    let csv = std::fs::read_to_string(data("two_metrics.csv")).unwrap();
    let run = fledge(&["--recording", "-", "--format", "json"], Some(&csv));
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(json_lines(&run)[1]["estimate"], 50.0);
    let run = fledge(
        &["--recording", "-"],
        Some("timestamp,metric,cohort,value\n1,m,canary\n"),
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: <stdin>:2: expected 4 fields (timestamp,metric,cohort,value), found 3"
    );
}

#[test]
fn recording_text_table_and_summary() {
    let run = fledge(&["--recording", &data("two_metrics.csv")], None);
    assert_eq!(run.code, 4);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("metric ")
            && lines[0].contains("p_value")
            && lines[0].ends_with("reason"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("error_rate ") && lines[1].contains(" pass "),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with("latency_ms ") && lines[2].contains("high: "),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines.last().unwrap(),
        &"2 metrics: 1 pass, 1 high → abort (exit 4)"
    );
}

#[test]
fn recording_with_a_metric_missing_a_cohort_holds() {
    let run = fledge(
        &["--recording", &data("nodata.csv"), "--format", "json"],
        None,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let rows = json_lines(&run);
    assert_eq!(rows[0]["classification"], "pass");
    assert_eq!(rows[1]["metric"], "queue_depth");
    assert_eq!(rows[1]["classification"], "nodata");
    assert!(
        run.stderr
            .contains("metric `queue_depth` has no canary rows"),
        "{}",
        run.stderr
    );
    // With --must-have-data the missing side fails.
    let run = fledge(
        &[
            "--recording",
            &data("nodata.csv"),
            "--must-have-data",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 4);
    assert_eq!(json_lines(&run)[1]["classification"], "nodata_fail");
}

#[test]
fn recording_errors_name_file_line_and_problem() {
    let path = data("bad_fields.csv");
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!("error: {path}:4: expected 4 fields (timestamp,metric,cohort,value), found 3")
    );
    assert!(run.stdout.is_empty());

    let path = data("unknown_cohort.csv");
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!("error: {path}:3: unknown cohort `control` (allowed: baseline, canary)")
    );

    let path = temp_file(
        "bad_value.csv",
        "timestamp,metric,cohort,value\n2026-11-23T18:00:00Z,m,canary,1\n2026-11-23T18:00:10Z,m,canary,fast\n",
    );
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!("error: {path}:3: non-numeric value `fast`")
    );

    let path = temp_file(
        "bad_time.csv",
        "timestamp,metric,cohort,value\n2026-11-23 6pm,m,canary,1\n",
    );
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("error: {path}:2: bad timestamp `2026-11-23 6pm`")),
        "{}",
        run.stderr
    );

    let path = temp_file("empty.csv", "");
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("error: {path}:1: no header")),
        "{}",
        run.stderr
    );

    let path = temp_file("header_only.csv", "timestamp,metric,cohort,value\n");
    let run = fledge(&["--recording", &path], None);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!("error: {path}:1: no data rows after the header")
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["--baseline", "a.txt"],
        &["--canary", "a.txt"],
        &[
            "--baseline",
            "a.txt",
            "--canary",
            "b.txt",
            "--recording",
            "r.csv",
        ],
        &["--recording", "r.csv", "--confidence", "1.5"],
        &["--recording", "r.csv", "--confidence", "0"],
        &["--recording", "r.csv", "--allowed-increase", "-1"],
        &["--recording", "r.csv", "--allowed-decrease", "0"],
        &["--recording", "r.csv", "--direction", "up"],
        &["--recording", "r.csv", "--format", "xml"],
        &["--recording", "r.csv", "--bogus"],
    ] {
        let run = fledge(args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("Usage:") || run.stderr.contains("invalid value"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}
