//! Threshold, relative and proportion checks beside Mann–Whitney: configs, validation, the
//! engine's dispatch, scoring together, and what the reports show.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fledge_analyzer::config::{self, TestName};
use fledge_analyzer::engine::{AnalysisReport, AnalysisSpec, MetricTest};
use fledge_analyzer::recording::{Recording, parse_recording, read_recording};
use fledge_analyzer::{replay, report};
use fledge_judges::{
    Aggregate, Classification, ProportionMethod, TestKind, ThresholdMode, Tolerance, Verdict,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn load(path: &str) -> config::Config {
    config::load(&repo(path)).unwrap_or_else(|e| panic!("{e}"))
}

fn run(cfg: &config::Config, rec: &Recording) -> (AnalysisReport, Arc<AnalysisSpec>) {
    let spec = Arc::new(cfg.to_spec().unwrap());
    (replay::replay(spec.clone(), rec, None, |_| {}), spec)
}

fn zero_to_eight() -> Recording {
    read_recording(&repo("testdata/recordings/errors-zero-to-eight.csv")).unwrap()
}

/// The error message for `yaml`, one problem per line.
#[track_caller]
fn errors(yaml: &str) -> Vec<String> {
    match config::from_yaml_str(yaml, "t.yaml") {
        Ok(cfg) => panic!("expected an error, loaded {cfg:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

const HEAD: &str = "\
name: t
analysis: {lifetime: 60m, interval: 10m}
metrics:
";

// ---------------------------------------------------------------------------------------
// errors-zero-to-eight: the proportion test catches what Mann–Whitney misses

#[test]
fn a_proportion_test_aborts_zero_to_eight_errors() {
    let cfg = load("configs/checkout-checks.yaml");
    let (result, _) = run(&cfg, &zero_to_eight());
    assert_eq!(result.verdict, Verdict::Abort, "{}", result.reason);
    // Cumulative canary errors by interval are 3, 3, 4, 5, 6, 8 against none: Fisher's p is
    // 0.12, 0.12, 0.060, 0.029, 0.014 (R's fisher.test), so interval 5 is the first below
    // 0.02.
    assert_eq!(result.intervals.len(), 5);
    for interval in &result.intervals[..4] {
        assert_eq!(interval.verdict, Verdict::Promote, "{}", interval.reason);
    }
    let last = result.intervals.last().unwrap();
    let m = last
        .metrics
        .iter()
        .find(|m| m.name == "error_ratio")
        .unwrap();
    let r = &m.result;
    assert_eq!(r.classification, Classification::High, "{}", r.reason);
    assert!(r.critical);
    assert_eq!(r.test, TestKind::Proportion);
    let p = r.proportion.as_ref().unwrap();
    assert_eq!(p.method, ProportionMethod::Fisher);
    assert_eq!((p.canary_events, p.canary_trials), (6, 8100));
    assert_eq!((p.baseline_events, p.baseline_trials), (0, 8363));
    assert!(
        (r.p_value.unwrap() - 0.014_172_54).abs() < 1e-8,
        "{:?}",
        r.p_value
    );
    assert!(
        result.reason.contains("error_ratio"),
        "the verdict names the metric: {}",
        result.reason
    );
    // The other checks pass throughout.
    for name in ["latency_p99", "cpu", "error_rate", "latency_p50"] {
        let m = last.metrics.iter().find(|m| m.name == name).unwrap();
        assert_eq!(
            m.result.classification,
            Classification::Pass,
            "{}",
            m.result.reason
        );
    }
}

#[test]
fn plain_mann_whitney_on_the_error_counts_misses_it() {
    // Mann–Whitney on the per-step counts: 353 of the canary's 360 steps and all of the
    // baseline's are 0, so nearly every pairwise difference is 0 and the Hodges–Lehmann shift
    // and its confidence interval are [0, 0]. The interval does not exclude 0: `pass`, in
    // every interval, although the rank test's own p-value is small at the end.
    let yaml =
        format!("{HEAD}  - {{name: errors, group: errors, direction: increase, critical: true}}\n");
    let cfg = config::from_yaml_str(&yaml, "mw.yaml").unwrap();
    let (result, _) = run(&cfg, &zero_to_eight());
    assert_eq!(result.verdict, Verdict::Promote, "{}", result.reason);
    assert_eq!(result.intervals.len(), 6);
    for interval in &result.intervals {
        let r = &interval.metrics[0].result;
        assert_eq!(r.test, TestKind::MannWhitney);
        assert_eq!(r.classification, Classification::Pass, "{}", r.reason);
        assert_eq!(r.ci, Some([0.0, 0.0]), "{}", r.reason);
        assert_eq!(r.estimate, Some(0.0));
    }
    let p = result.intervals[5].metrics[0].result.p_value.unwrap();
    assert!(p < 0.1, "nearly significant, yet [0, 0]: p = {p}");
    // In the mixed config the same Mann–Whitney metric passes beside the aborting proportion.
    let (mixed, _) = run(&load("configs/checkout-checks.yaml"), &zero_to_eight());
    let last = mixed.intervals.last().unwrap();
    let errors = last.metrics.iter().find(|m| m.name == "errors").unwrap();
    assert_eq!(errors.result.classification, Classification::Pass);
    assert_eq!(errors.result.ci, Some([0.0, 0.0]));
}

// ---------------------------------------------------------------------------------------
// The engine: dispatch and scoring together

/// A recording from `(metric, baseline values, canary values)`, one point per 10 s from 0.
fn recording(series: &[(&str, Vec<f64>, Vec<f64>)]) -> Recording {
    let mut csv = String::from("timestamp,metric,cohort,value\n");
    for (name, base, canary) in series {
        for (cohort, values) in [("baseline", base), ("canary", canary)] {
            for (i, v) in values.iter().enumerate() {
                csv.push_str(&format!("{},{name},{cohort},{v}\n", i * 10));
            }
        }
    }
    parse_recording(csv.as_bytes(), "mem.csv").unwrap()
}

const MIXED: &str = "\
name: mixed
groups: {latency: 1, errors: 1}
analysis: {lifetime: 10m, interval: 10m, min_samples: 5}
metrics:
  - {name: p50, group: latency, direction: increase}
  - {name: p99, group: latency, test: threshold, aggregate: p99, max: 400ms, unit: ms}
  - {name: p99_points, group: latency, test: threshold, each_point: true, max: 0.4s, unit: ms, failure_limit: 3}
  - {name: cpu, group: latency, test: relative, max_increase: '+5'}
  - {name: failures, group: errors, test: proportion, numerator: errors, denominator: requests}
";

fn mixed_data(p99_canary: f64, errors_canary: f64) -> Recording {
    let steady = |v: f64| vec![v; 60];
    // p50 goes up clearly (Mann–Whitney high); the canary p99 is steady at `p99_canary`,
    // with 3 points above 400 ms.
    let base_p50: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i % 7)).collect();
    let canary_p50: Vec<f64> = base_p50.iter().map(|v| v + 30.0).collect();
    let mut p99 = steady(p99_canary);
    for v in p99.iter_mut().take(3) {
        *v = 450.0;
    }
    recording(&[
        ("p50", base_p50, canary_p50),
        ("p99", steady(300.0), p99.clone()),
        ("p99_points", steady(300.0), p99),
        ("cpu", steady(50.0), steady(54.0)),
        ("errors", steady(0.0), steady(errors_canary)),
        ("requests", steady(100.0), steady(100.0)),
    ])
}

#[test]
fn checks_and_mann_whitney_score_together() {
    let cfg = config::from_yaml_str(MIXED, "mixed.yaml").unwrap();
    let (result, _) = run(&cfg, &mixed_data(380.0, 0.0));
    let i = &result.intervals[0];
    let by = |n: &str| &i.metrics.iter().find(|m| m.name == n).unwrap().result;
    assert_eq!(by("p50").test, TestKind::MannWhitney);
    assert_eq!(
        by("p50").classification,
        Classification::High,
        "{}",
        by("p50").reason
    );
    // p99 of the window: 3 of 60 points at 450 put the type-7 99th percentile at 450.
    assert_eq!(by("p99").test, TestKind::Threshold);
    assert_eq!(
        by("p99").classification,
        Classification::High,
        "{}",
        by("p99").reason
    );
    assert_eq!(by("p99").reason, "high: canary p99 450 > max 400");
    assert_eq!(by("p99_points").classification, Classification::Pass);
    assert!(by("p99_points").reason.ends_with("within failure_limit 3"));
    assert_eq!(by("cpu").test, TestKind::Relative);
    assert_eq!(
        by("cpu").classification,
        Classification::Pass,
        "{}",
        by("cpu").reason
    );
    assert_eq!(by("failures").test, TestKind::Proportion);
    assert_eq!(by("failures").classification, Classification::Pass);
    // latency: 2 of 4 pass (p50 and p99 fail); errors: 1 of 1. Equal weights: 75.
    let latency = i.groups.iter().find(|g| g.name == "latency").unwrap();
    assert_eq!((latency.passed, latency.counted), (2, 4));
    assert_eq!(i.score, 75.0);
    // No critical metric: 75 is between marginal (70) and pass (90).
    assert_eq!(i.verdict, Verdict::Hold, "{}", i.reason);
}

#[test]
fn proportion_failures_count_like_any_other_metric() {
    let cfg = config::from_yaml_str(MIXED, "mixed.yaml").unwrap();
    // 1 error per 100 requests on the canary against none: 60 of 6000 vs 0 of 6000.
    let (result, _) = run(&cfg, &mixed_data(380.0, 1.0));
    let i = &result.intervals[0];
    let f = &i
        .metrics
        .iter()
        .find(|m| m.name == "failures")
        .unwrap()
        .result;
    assert_eq!(f.classification, Classification::High, "{}", f.reason);
    assert_eq!(
        f.proportion.as_ref().unwrap().method,
        ProportionMethod::ZTest
    );
    let errors = i.groups.iter().find(|g| g.name == "errors").unwrap();
    assert_eq!((errors.passed, errors.counted), (0, 1));
    assert_eq!(i.score, 25.0);
    assert_eq!(i.verdict, Verdict::Abort, "{}", i.reason);
}

#[test]
fn missing_series_are_nodata_or_nodata_fail_for_every_test() {
    let yaml = "\
name: t
analysis: {lifetime: 10m, interval: 10m, min_samples: 5}
metrics:
  - {name: a, group: g, test: threshold, max: 1}
  - {name: b, group: g, test: relative, max_increase: 10%, must_have_data: true, critical: true}
  - {name: c, group: g, test: proportion, numerator: errs, denominator: reqs, must_have_data: true}
  - {name: d, group: g}
";
    let cfg = config::from_yaml_str(yaml, "t.yaml").unwrap();
    let rec = recording(&[("d", vec![1.0; 60], vec![1.0; 60])]);
    let (result, _) = run(&cfg, &rec);
    let i = &result.intervals[0];
    let by = |n: &str| &i.metrics.iter().find(|m| m.name == n).unwrap().result;
    assert_eq!(
        by("a").classification,
        Classification::Nodata,
        "{}",
        by("a").reason
    );
    assert_eq!(by("b").classification, Classification::NodataFail);
    assert_eq!(by("c").classification, Classification::NodataFail);
    assert_eq!(
        by("c").reason,
        "nodata_fail: canary has no `errs` points and no `reqs` points and baseline has no \
         `errs` points and no `reqs` points (must_have_data)"
    );
    assert_eq!(by("c").test, TestKind::Proportion);
    // The critical nodata_fail aborts.
    assert_eq!(i.verdict, Verdict::Abort);
}

#[test]
fn a_proportions_series_define_the_recordings_coverage() {
    // A config with only a proportion metric still finds its data (by its numerator and
    // denominator, not by its own name).
    let yaml = format!(
        "{HEAD}  - {{name: ratio, group: e, test: proportion, numerator: errors, denominator: requests}}\n"
    );
    let cfg = config::from_yaml_str(&yaml, "t.yaml").unwrap();
    let (result, _) = run(&cfg, &zero_to_eight());
    assert_eq!(result.intervals.len(), 5, "{}", result.reason);
    assert_eq!(result.verdict, Verdict::Abort);
    assert!(result.intervals[0].last_data.is_some());
}

// ---------------------------------------------------------------------------------------
// Reports show which test decided

#[test]
fn every_output_shows_the_test() {
    let cfg = load("configs/checkout-checks.yaml");
    let rec = zero_to_eight();
    let (result, spec) = run(&cfg, &rec);

    let json = serde_json::to_value(&result).unwrap();
    let metrics = json["intervals"][4]["metrics"].as_array().unwrap();
    let m = |name: &str| metrics.iter().find(|m| m["name"] == name).unwrap();
    assert_eq!(m("error_ratio")["test"], "proportion");
    assert_eq!(m("error_ratio")["proportion"]["method"], "fisher");
    assert_eq!(m("error_ratio")["proportion"]["canary_events"], 6);
    assert!(m("error_ratio")["proportion"].get("ratio_upper").is_none());
    assert_eq!(m("latency_p99")["test"], "threshold");
    assert_eq!(m("latency_p99")["check"]["max"], 1000.0);
    assert_eq!(m("latency_p99")["check"]["aggregate"], "mean");
    assert_eq!(m("cpu")["test"], "relative");
    assert_eq!(m("errors")["test"], "mann-whitney");
    assert!(m("errors").get("check").is_none() && m("errors").get("proportion").is_none());
    // The JSON reads back.
    let back: AnalysisReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, result);

    let text = report::text(&result);
    let line = text.lines().find(|l| l.contains("error_ratio")).unwrap();
    assert!(
        line.contains("proportion") && line.contains("Fisher's exact test"),
        "{line}"
    );

    let md = report::markdown(&result);
    assert!(
        md.contains("| error\\_ratio | proportion | **high** (critical) | rate ratio ∞ \\[1.145, ∞\\] | – | 0.0142 |"),
        "{md}"
    );
    assert!(
        md.contains("| latency\\_p99 | threshold | pass (critical) | mean 332.5 (max 1000) |"),
        "{md}"
    );
    assert!(
        md.contains("| cpu | relative | pass | mean 56.15 vs 57.64 (max 63.41) |"),
        "{md}"
    );
    assert!(
        md.contains("| error\\_rate | threshold | pass | 1 point out of max 0.05 (limit 2) |"),
        "{md}"
    );
    assert!(
        md.contains("| errors | mann-whitney | pass | 0 \\[0, 0\\] |"),
        "{md}"
    );

    let html = report::html(&result, &spec, &rec);
    assert!(html.contains("<span class=\"tag\">test proportion</span>"));
    assert!(html.contains("Rates in the deciding interval"));
    assert!(html.contains("0.07407% (6 / 8100)"), "the canary's rate");
    assert!(html.contains("Koopman's score interval"));
    // The threshold line on latency_p99's chart, and the relative limit on cpu's.
    assert!(
        html.contains("threshold: canary mean ≤ 1000"),
        "threshold line"
    );
    assert!(
        html.contains("limit: canary mean ≤ "),
        "relative limit line"
    );
    assert!(html.contains("threshold: each point ≤ 0.05"));
    // The proportion's chart draws its numerator.
    assert!(html.contains("Drawn: <code>errors</code> per step"));
    assert!(!html.contains("may not show exactly what was judged"));
}

// ---------------------------------------------------------------------------------------
// Config: how the fields reach the engine

#[test]
fn check_fields_reach_the_engine_spec() {
    let cfg = load("configs/checkout-checks.yaml");
    let spec = cfg.to_spec().unwrap();
    let test = |name: &str| {
        spec.metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .test
            .clone()
    };
    match test("latency_p99") {
        MetricTest::Threshold(t) => {
            assert_eq!((t.min, t.max), (None, Some(1000.0)), "1s in ms");
            assert_eq!(t.mode, ThresholdMode::Aggregate(Aggregate::Mean));
        }
        other => panic!("{other:?}"),
    }
    match test("error_rate") {
        MetricTest::Threshold(t) => {
            assert_eq!(t.mode, ThresholdMode::EachPoint { failure_limit: 2 });
        }
        other => panic!("{other:?}"),
    }
    match test("cpu") {
        MetricTest::Relative(r) => {
            assert_eq!(r.max_increase, Some(Tolerance::Percent(10.0)));
            assert_eq!(r.max_decrease, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        test("error_ratio"),
        MetricTest::Proportion {
            numerator: "errors".into(),
            denominator: "requests".into()
        }
    );
    assert_eq!(test("errors"), MetricTest::MannWhitney);
    assert_eq!(cfg.metric("errors").unwrap().test, TestName::MannWhitney);
}

#[test]
fn amounts_convert_and_tolerances_take_their_magnitude() {
    let yaml = format!(
        "{HEAD}  - {{name: a, group: g, test: relative, unit: s, max_increase: +250ms, max_decrease: -5%}}\n\
         \x20 - {{name: b, group: g, test: threshold, unit: us, min: 2ms, max: 0.5s}}\n"
    );
    let cfg = config::from_yaml_str(&yaml, "t.yaml").unwrap();
    let spec = cfg.to_spec().unwrap();
    match &spec.metrics[0].test {
        MetricTest::Relative(r) => {
            assert_eq!(r.max_increase, Some(Tolerance::Absolute(0.25)));
            assert_eq!(r.max_decrease, Some(Tolerance::Percent(5.0)));
        }
        other => panic!("{other:?}"),
    }
    match &spec.metrics[1].test {
        MetricTest::Threshold(t) => assert_eq!((t.min, t.max), (Some(2000.0), Some(500_000.0))),
        other => panic!("{other:?}"),
    }
    // And it writes back as it was written.
    let out = cfg.to_yaml().unwrap();
    assert!(
        out.contains("max_increase: 250ms") || out.contains("max_increase: \"250ms\""),
        "{out}"
    );
    assert!(out.contains("-5%"), "{out}");
    assert_eq!(config::from_yaml_str(&out, "again").unwrap(), cfg);
}

#[test]
fn a_live_proportion_carries_a_query_per_series() {
    let yaml = "\
name: t
analysis: {lifetime: 60m, interval: 10m}
metrics:
  - name: error_ratio
    group: errors
    test: proportion
    numerator: {name: errors, query: 'sum(increase(http_requests_total{code=~\"5..\",version=\"${version}\"}[10s]))'}
    denominator: {name: requests, query: 'sum(increase(http_requests_total{version=\"${version}\"}[10s]))'}
";
    let cfg = config::from_yaml_str(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let m = cfg.metric("error_ratio").unwrap();
    let series = m.series();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].0, "errors");
    assert!(series[0].1.unwrap().contains("code=~"));
    assert_eq!(series[1].0, "requests");
    // JSON and YAML round trips keep the queries.
    assert_eq!(
        config::from_json_value(cfg.to_json().unwrap()).unwrap(),
        cfg
    );
    assert_eq!(
        config::from_yaml_str(&cfg.to_yaml().unwrap(), "again").unwrap(),
        cfg
    );
    // A metric without a proportion reads itself.
    let cfg = load("configs/checkout-checks.yaml");
    assert_eq!(cfg.metric("cpu").unwrap().series(), vec![("cpu", None)]);
}

#[test]
fn kayenta_import_keeps_producing_mann_whitney_metrics() {
    for name in [
        "prometheus-label-bindings.json",
        "prometheus-promql.json",
        "prometheus-templates.json",
        "mixed-providers.json",
    ] {
        let text = std::fs::read_to_string(repo(&format!("testdata/kayenta/{name}"))).unwrap();
        let imported = config::import_kayenta(&text, name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!imported.config.metrics.is_empty());
        for m in &imported.config.metrics {
            assert_eq!(m.test, TestName::MannWhitney, "{name}: {}", m.name);
        }
        // The default is left out of the YAML, as every default is.
        assert!(!imported.yaml.contains("test:"), "{}", imported.yaml);
        let spec = imported.config.to_spec().unwrap();
        assert!(
            spec.metrics
                .iter()
                .all(|m| m.test == MetricTest::MannWhitney)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Validation: every test type, each problem with its field path and line

#[test]
fn check_fields_without_their_test_are_errors() {
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    min: 1\n    max_increase: 10%\n    numerator: errors\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:6: metrics[0].min: is only used with `test: threshold` (this metric is `test: mann-whitney`)",
            "t.yaml:7: metrics[0].max_increase: is only used with `test: relative` (this metric is `test: mann-whitney`)",
            "t.yaml:8: metrics[0].numerator: is only used with `test: proportion` (this metric is `test: mann-whitney`)",
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: relative\n    max_increase: 5%\n    each_point: true\n    min: 3\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:8: metrics[0].each_point: is only used with `test: threshold` (this metric is `test: relative`)",
            "t.yaml:9: metrics[0].min: is only used with `test: threshold` (this metric is `test: relative`)",
        ]
    );
}

#[test]
fn threshold_rules() {
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: threshold\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:4: metrics[0].max: `test: threshold` needs `max` and/or `min`, the bounds the canary must stay within"
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: threshold\n    min: 5\n    max: 2\n    \
         aggregate: p99\n    each_point: true\n    allowed_increase: 1.1\n    confidence: 0.9\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:7: metrics[0].min: 5 is above max 2",
            "t.yaml:9: metrics[0].aggregate: is not used with `each_point: true` (every point is checked)",
            "t.yaml:11: metrics[0].allowed_increase: is not used by `test: threshold` (no statistical test runs; the limits are `min` and `max`)",
            "t.yaml:12: metrics[0].confidence: is not used by `test: threshold` (no statistical test runs; the limits are `min` and `max`)",
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: threshold\n    max: 400ms\n    failure_limit: 2\n    direction: decrease\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:7: metrics[0].max: `400ms` has a time unit, so the metric needs `unit:`, the unit of its values (e.g. `unit: ms`)",
            "t.yaml:7: metrics[0].max: contradicts `direction: decrease` (only a decrease is harmful)",
            "t.yaml:8: metrics[0].failure_limit: is only used with `each_point: true` (how many points may be out of bounds)",
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: threshold\n    max: 10%\n"
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with("t.yaml:7: metrics[0].max: `10%`: a threshold is a fixed value"),
        "{}",
        e[0]
    );
}

#[test]
fn relative_rules() {
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: relative\n    aggregate: p95\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:4: metrics[0].max_increase: `test: relative` needs `max_increase` and/or `max_decrease` (e.g. `10%` or `+25ms`)"
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: relative\n    max_increase: -10%\n    max_decrease: 5%\n    direction: increase\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:7: metrics[0].max_increase: `-10%` is negative; it is how far above the baseline the canary may go (`+10%`, `+25ms`)",
            "t.yaml:8: metrics[0].max_decrease: contradicts `direction: increase` (only an increase is harmful)",
        ]
    );
    // A malformed amount is a parse error at its line.
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: relative\n    max_increase: 10 percent\n"
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.yaml:7: metrics[0].max_increase: `10 percent` is not an amount"),
        "{}",
        e[0]
    );
}

#[test]
fn proportion_rules() {
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: proportion\n    denominator: requests\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:4: metrics[0].numerator: `test: proportion` needs `numerator`: the series of the events, e.g. `errors`"
        ]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: proportion\n    numerator: requests\n    denominator: requests\n    \
         query: up\n    min_samples: 5\n    outliers: {{strategy: remove}}\n"
    ));
    assert_eq!(
        e,
        [
            "t.yaml:8: metrics[0].denominator: is the same series as the numerator (`requests`)",
            "t.yaml:9: metrics[0].query: a proportion reads two series: give their queries as `numerator: {name, query}` and `denominator: {name, query}`",
            "t.yaml:10: metrics[0].min_samples: is not used by `test: proportion` (the counts are summed over the window; a side without any trials is nodata)",
            "t.yaml:11: metrics[0].outliers: outlier removal does not apply to counts",
        ]
    );
    // The nested form is strict too.
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: proportion\n    numerator: {{name: e, qeury: x}}\n    denominator: r\n"
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.yaml:7: metrics[0].numerator.qeury: unknown field `qeury`"),
        "{}",
        e[0]
    );
}

#[test]
fn unknown_tests_and_aggregates_name_the_choices() {
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: t-test\n"
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.yaml:6: metrics[0].test: unknown variant `t-test`"),
        "{}",
        e[0]
    );
    assert!(
        e[0].contains("mann-whitney") && e[0].contains("proportion"),
        "{}",
        e[0]
    );
    let e = errors(&format!(
        "{HEAD}  - name: a\n    group: g\n    test: threshold\n    max: 1\n    aggregate: p50\n"
    ));
    assert!(
        e[0].starts_with("t.yaml:8: metrics[0].aggregate: unknown variant `p50`"),
        "{}",
        e[0]
    );
}
