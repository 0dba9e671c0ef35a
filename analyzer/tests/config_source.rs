//! The live parts of a config (`source:`, `cohorts:`, `scrape:`): what loads, what is refused
//! and how each problem is named (file, line, field path).

use std::sync::Arc;

use fledge_analyzer::config::{self, SourceKind};
use fledge_analyzer::recording::parse_recording;
use fledge_analyzer::replay::replay;

fn errors(yaml: &str) -> Vec<String> {
    match config::from_yaml_str(yaml, "c.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

const BRIEF: &str = r#"name: live
analysis: {lifetime: 10m, interval: 1m}
source: {type: prometheus, url: "http://127.0.0.1:9090", step: 10s}
cohorts:
  baseline: {version: v1}
  canary: {version: v2}
metrics:
  - name: latency
    group: latency
    query: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="${version}"}[1m])))'
"#;

#[test]
fn the_documented_prometheus_shape_loads() {
    let cfg = config::from_yaml_str(BRIEF, "c.yaml").unwrap();
    let source = cfg.source.as_ref().unwrap();
    assert_eq!(source.kind, SourceKind::Prometheus);
    assert_eq!(source.step().as_millis(), 10_000);
    // Defaults: settle one step, 10 s timeout, 3 retries, 16 queries at once.
    assert_eq!(source.settle().as_millis(), 10_000);
    assert_eq!(source.timeout().as_millis(), 10_000);
    assert_eq!(source.retries(), 3);
    assert_eq!(source.concurrency(), 16);
    assert_eq!(cfg.cohorts.canary["version"], "v2");
    // It round-trips through YAML and JSON.
    let again = config::from_yaml_str(&cfg.to_yaml().unwrap(), "again").unwrap();
    assert_eq!(again, cfg);
    assert_eq!(
        config::from_json_value(cfg.to_json().unwrap()).unwrap(),
        cfg
    );
}

#[test]
fn an_unknown_variable_names_the_metric_the_field_and_the_line() {
    let yaml = BRIEF.replace("${version}", "${scope}");
    assert_eq!(
        errors(&yaml),
        [
            "c.yaml:10: metrics[0].query: metric `latency`: unknown variable `${scope}`: cohorts.baseline defines `version`",
            "c.yaml:10: metrics[0].query: metric `latency`: unknown variable `${scope}`: cohorts.canary defines `version`",
        ]
    );
}

#[test]
fn without_a_source_placeholders_need_not_resolve() {
    let yaml = BRIEF
        .replace(
            "source: {type: prometheus, url: \"http://127.0.0.1:9090\", step: 10s}\n",
            "",
        )
        .replace("${version}", "${scope}");
    assert_eq!(errors(&yaml), Vec::<String>::new());
}

#[test]
fn a_query_that_cannot_tell_the_cohorts_apart_is_refused() {
    let same = BRIEF.replace("canary: {version: v2}", "canary: {version: v1}");
    let e = errors(&same);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("c.yaml:10: metrics[0].query: metric `latency`: both cohorts give its variables the same values"), "{e:?}");
    let none = BRIEF.replace("version=\"${version}\"", "job=\"api\"");
    let e = errors(&none);
    assert!(
        e[0].contains("the query has no `${…}` placeholder"),
        "{e:?}"
    );
    assert!(
        e[0].contains("Kayenta") || e[0].contains("same query"),
        "{e:?}"
    );
}

#[test]
fn numbers_are_accepted_as_cohort_values_and_quotes_are_not() {
    let yaml = BRIEF.replace("{version: v1}", "{version: 1}");
    let cfg = config::from_yaml_str(&yaml, "c.yaml").unwrap();
    assert_eq!(cfg.cohorts.baseline["version"], "1");
    let yaml = BRIEF.replace("{version: v1}", r#"{version: 'v1"'}"#);
    let e = errors(&yaml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("c.yaml:5: cohorts.baseline.version: value"),
        "{e:?}"
    );
}

#[test]
fn source_fields_are_checked_with_their_lines() {
    let yaml = r#"name: live
analysis: {lifetime: 10m, interval: 1m}
source:
  type: prometheus
  url: "http://user:pw@127.0.0.1:9090"
  step: 2m
  baseline: ["http://127.0.0.1:1/metrics"]
  auth:
    bearer_token: {env: TOKEN, file: /run/token}
cohorts: {baseline: {v: a}, canary: {v: b}}
metrics:
  - {name: m, group: g}
"#;
    assert_eq!(
        errors(yaml),
        [
            "c.yaml:5: source.url: credentials in the URL are not allowed (they would show in logs); use `auth:` with an environment variable or a file",
            "c.yaml:6: source.step: 2m is longer than analysis.interval 1m: windows would hold at most one point",
            "c.yaml:7: source.baseline: is only used with `type: scrape`; Prometheus tells the cohorts apart by the variables under `cohorts:`",
            "c.yaml:9: source.auth.bearer_token: give exactly one of `env: VARIABLE` or `file: PATH` (the secret itself never goes in the config)",
            "c.yaml:12: metrics[0]: metric `m`: a `query` is required with `source.type: prometheus`",
        ]
    );
    let typo = BRIEF.replace("step: 10s", "stepp: 10s");
    let e = errors(&typo);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("c.yaml:3: source.stepp: unknown field `stepp`"),
        "{e:?}"
    );
}

const SCRAPE: &str = r#"name: scrape
analysis: {lifetime: 1m, interval: 10s}
source:
  type: scrape
  baseline: ["http://127.0.0.1:9101/metrics"]
  canary: ["http://127.0.0.1:9102/metrics"]
  step: 1s
metrics:
  - name: latency_p99
    group: latency
    scrape: {metric: http_request_duration_seconds, quantile: 0.99}
  - name: error_rate
    group: errors
    scrape: {metric: http_requests_total, rate: true, labels: {code: 500}, divide_by: {metric: http_requests_total}}
"#;

#[test]
fn the_scrape_shape_loads_and_its_rules_name_their_fields() {
    let cfg = config::from_yaml_str(SCRAPE, "c.yaml").unwrap();
    let s = cfg.metrics[1].scrape.as_ref().unwrap();
    assert!(s.rate);
    assert_eq!(s.labels["code"], "500");
    // The scrape timeout defaults to the step when that is under 5 s.
    assert_eq!(cfg.source.as_ref().unwrap().timeout().as_millis(), 1000);

    let bad = SCRAPE
        .replace("quantile: 0.99}", "quantile: 1.5, rate: true}")
        .replace("  canary: [\"http://127.0.0.1:9102/metrics\"]\n", "")
        .replace("interval: 10s}", "interval: 10s, baseline_offset: 5s}");
    assert_eq!(
        errors(&bad),
        [
            "c.yaml:2: analysis.baseline_offset: 5s reaches back before the analysis starts (warmup 0s): a scrape source has no history, it only sees what it scrapes from the start",
            "c.yaml:3: source.canary: at least one canary /metrics URL is required with `type: scrape` (e.g. [\"http://127.0.0.1:9101/metrics\"])",
            "c.yaml:10: metrics[0].scrape.quantile: 1.5 is outside 0..=1",
            "c.yaml:10: metrics[0].scrape.rate: cannot be combined with `quantile` (a quantile already reads the observations of each step)",
        ]
    );
    let missing = SCRAPE.replace(
        "    scrape: {metric: http_request_duration_seconds, quantile: 0.99}\n",
        "",
    );
    let e = errors(&missing);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("c.yaml:9: metrics[0]: metric `latency_p99`: a `scrape:`"),
        "{e:?}"
    );
}

#[test]
fn the_example_live_configs_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, kind) in [
        ("configs/demo.yaml", SourceKind::Prometheus),
        ("configs/demo-scrape.yaml", SourceKind::Scrape),
    ] {
        let cfg = config::load(&root.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.source.as_ref().map(|s| s.kind), Some(kind), "{file}");
    }
}

#[test]
fn replay_judges_recorded_sub_metrics_in_their_metrics_group() {
    let cfg = config::from_yaml_str(
        "name: r\nanalysis: {lifetime: 1m, interval: 1m, min_samples: 3}\nmetrics:\n  - {name: lat, group: g, direction: increase}\n",
        "r.yaml",
    )
    .unwrap();
    let mut csv = String::from("timestamp,metric,cohort,value\n");
    for i in 0..30 {
        let t = 1_700_000_000 + i * 2;
        let wiggle = (i % 5) as f64 * 0.01;
        for (route, canary) in [("/a", 1.0), ("/b", 3.0)] {
            csv.push_str(&format!(
                "{t},\"lat{{route=\"\"{route}\"\"}}\",baseline,{}\n",
                1.0 + wiggle
            ));
            csv.push_str(&format!(
                "{t},\"lat{{route=\"\"{route}\"\"}}\",canary,{}\n",
                canary + wiggle
            ));
        }
    }
    let rec = parse_recording(csv.as_bytes(), "r.csv").unwrap();
    let names: Vec<&str> = rec.metric_names().collect();
    assert_eq!(names, [r#"lat{route="/a"}"#, r#"lat{route="/b"}"#]);
    let report = replay(Arc::new(cfg.to_spec().unwrap()), &rec, None, |_| {});
    let last = report.intervals.last().expect("one interval judged");
    let judged: Vec<(&str, &str, &str)> = last
        .metrics
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.group.as_str(),
                m.result.classification.as_str(),
            )
        })
        .collect();
    assert_eq!(
        judged,
        [
            (r#"lat{route="/a"}"#, "g", "pass"),
            (r#"lat{route="/b"}"#, "g", "high")
        ]
    );
}
