//! Canary config loading, validation and Kayenta import, through the public API.

use std::path::{Path, PathBuf};

use fledge_analyzer::config::{
    self, Config, ConfigError, Duration, KayentaImportError, NanMode, OutlierStrategy,
};
use fledge_judges::{Direction, NanStrategy};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The error message for `yaml`, one problem per line.
#[track_caller]
fn errors(yaml: &str) -> Vec<String> {
    match config::from_yaml_str(yaml, "t.yaml") {
        Ok(cfg) => panic!("expected an error, loaded {cfg:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

#[track_caller]
fn assert_one_error(yaml: &str, expected_prefix: &str) {
    let errors = errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(expected_prefix),
        "expected `{expected_prefix}…`, got `{}`",
        errors[0]
    );
}

const GOOD: &str = "\
name: checkout
thresholds: {pass: 90, marginal: 70}
groups: {latency: 60, errors: 40}
analysis: {lifetime: 60m, interval: 10m, warmup: 0m, lookback: 0m, baseline_offset: 0m}
metrics:
  - name: latency_p99
    group: latency
    direction: increase
    allowed_increase: 1.05
    critical: true
    must_have_data: true
    query: 'histogram_quantile(0.99, rate(x[1m]))'
  - name: error_rate
    group: errors
    direction: increase
";

fn example_configs() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "{paths:?}");
    paths
}

#[test]
fn every_example_config_loads_and_round_trips() {
    for path in example_configs() {
        let cfg = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let yaml = cfg.to_yaml().unwrap();
        let again =
            config::from_yaml_str(&yaml, "round-trip").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(again, cfg, "YAML round trip of {}", path.display());
        let json = cfg.to_json().unwrap();
        assert_eq!(
            config::from_json_value(json).unwrap(),
            cfg,
            "JSON round trip of {}",
            path.display()
        );
    }
}

#[test]
fn the_documented_shape_loads_with_defaults() {
    let cfg = config::from_yaml_str(GOOD, "good.yaml").unwrap();
    assert_eq!(cfg.name, "checkout");
    assert_eq!(cfg.analysis.lifetime, Duration::from_mins(60));
    assert_eq!(cfg.analysis.interval, Duration::from_mins(10));
    assert_eq!(cfg.analysis.confidence, 0.98);
    assert_eq!(cfg.analysis.min_samples, 10);
    let weights = cfg.group_weights();
    assert!((weights["latency"] - 0.6).abs() < 1e-12);
    assert!((weights["errors"] - 0.4).abs() < 1e-12);

    let p99 = cfg.metric("latency_p99").unwrap().options(&cfg);
    assert_eq!(p99.direction, Direction::Increase);
    assert_eq!(p99.allowed_increase, 1.05);
    assert_eq!(p99.allowed_decrease, 1.0);
    assert!(p99.critical && p99.must_have_data);
    assert_eq!(p99.min_samples, 10);
    assert_eq!(p99.confidence, 0.98);
    assert_eq!(p99.nan_strategy, NanStrategy::Remove);
    assert_eq!(p99.outlier_factor, None);

    let errors = &cfg.metrics[1];
    assert_eq!(errors.query, None);
    assert!(!errors.critical);
}

#[test]
fn per_metric_overrides_reach_the_judge_options() {
    let cfg = config::load(&repo("configs/payments.yaml")).unwrap();
    let p95 = cfg.metric("latency_p95").unwrap();
    assert_eq!(p95.outliers.strategy, OutlierStrategy::Remove);
    assert_eq!(p95.options(&cfg).outlier_factor, Some(3.0));
    let error_rate = cfg.metric("error_rate").unwrap();
    assert_eq!(error_rate.nan_strategy, NanMode::Replace);
    assert_eq!(
        error_rate.options(&cfg).nan_strategy,
        NanStrategy::Replace(0.0)
    );
    let throughput = cfg.metric("throughput").unwrap().options(&cfg);
    assert_eq!(throughput.min_samples, 20);
    assert_eq!(throughput.confidence, 0.95);
    assert_eq!(throughput.direction, Direction::Decrease);
    assert_eq!(throughput.allowed_decrease, 0.9);
    assert_eq!(cfg.analysis.lookback, Duration::from_mins(30));
    assert_eq!(cfg.analysis.warmup, Duration::from_mins(5));
    assert_eq!(cfg.metric("cpu").unwrap().direction, Direction::Either);
}

#[test]
fn omitted_groups_weigh_every_used_group_equally() {
    let cfg = config::load(&repo("configs/minimal.yaml")).unwrap();
    assert_eq!(cfg.groups.len(), 2);
    assert_eq!(cfg.groups["latency"], 1.0);
    assert_eq!(cfg.groups["errors"], 1.0);
    assert_eq!(cfg.thresholds.pass, 90.0);
    assert_eq!(cfg.thresholds.marginal, 70.0);
}

#[test]
fn the_config_converts_to_an_engine_spec() {
    let cfg = config::from_yaml_str(GOOD, "good.yaml").unwrap();
    let spec = cfg.to_spec().unwrap();
    assert_eq!(spec.lifetime, 3_600_000);
    assert_eq!(spec.interval, 600_000);
    assert_eq!(spec.metrics.len(), 2);
    assert_eq!(spec.metrics[0].options, cfg.metrics[0].options(&cfg));
}

#[test]
fn unknown_top_level_field_names_path_and_line() {
    let yaml = GOOD.replace("thresholds:", "treshold: 1\nthresholds:");
    assert_one_error(
        &yaml,
        "t.yaml:2: treshold: unknown field `treshold`, expected one of",
    );
}

#[test]
fn unknown_nested_field_names_path_and_line() {
    let yaml = GOOD.replace("    allowed_increase: 1.05", "    allowed_increse: 1.05");
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "t.yaml:9: metrics[0].allowed_increse: unknown field `allowed_increse`, expected one of"
        ),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("allowed_increase"), "{}", errors[0]);

    let yaml = GOOD.replace("warmup: 0m", "warmpu: 0m");
    assert_one_error(&yaml, "t.yaml:4: analysis.warmpu: unknown field `warmpu`");

    let yaml = GOOD.replace(
        "    direction: increase\n    allowed",
        "    direction: increase\n    outliers: {strategy: remove, factr: 2}\n    allowed",
    );
    assert_one_error(
        &yaml,
        "t.yaml:9: metrics[0].outliers.factr: unknown field `factr`",
    );
}

#[test]
fn type_and_enum_errors_name_path_and_line() {
    let yaml = GOOD.replace(
        "direction: increase\n    allowed",
        "direction: up\n    allowed",
    );
    assert_one_error(
        &yaml,
        "t.yaml:8: metrics[0].direction: unknown variant `up`",
    );
    let yaml = GOOD.replace("    group: errors\n", "");
    assert_one_error(&yaml, "t.yaml:13: metrics[1]: missing field `group`");
    let yaml = GOOD.replace("critical: true", "critical: [1]");
    let e = errors(&yaml);
    assert!(
        e[0].starts_with("t.yaml:10: metrics[0].critical: "),
        "{e:?}"
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let yaml = GOOD.replace(
        "    group: errors\n",
        "    group: errors\n    group: latency\n",
    );
    assert_one_error(
        &yaml,
        "t.yaml:15: metrics[1]: duplicate mapping key `group`",
    );
}

#[test]
fn bad_durations_name_path_and_line() {
    let yaml = GOOD.replace("interval: 10m", "interval: 10 minutes");
    assert_one_error(
        &yaml,
        "t.yaml:4: analysis.interval: invalid duration `10 minutes`",
    );
    let yaml = GOOD.replace("lifetime: 60m", "lifetime: 60");
    assert_one_error(
        &yaml,
        "t.yaml:4: analysis.lifetime: invalid duration `60`: a unit is required",
    );
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let yaml = GOOD.replace(
        "groups: {latency: 60, errors: 40}",
        "groups: {latency: 60, errors: 40",
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("t.yaml:"), "{e:?}");
    let line: u32 = e[0]["t.yaml:".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=5).contains(&line), "{e:?}");
}

#[test]
fn negative_weight() {
    let yaml = GOOD.replace("latency: 60", "latency: -1");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:3: groups.latency: weight -1 is negative"]
    );
}

#[test]
fn all_zero_weights() {
    let yaml = GOOD.replace("{latency: 60, errors: 40}", "{latency: 0, errors: 0}");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:3: groups: all weights are 0; at least one group must count"]
    );
}

#[test]
fn non_finite_weight() {
    let yaml = GOOD.replace("latency: 60", "latency: .inf");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:3: groups.latency: weight inf is not a finite number"]
    );
}

#[test]
fn metric_group_missing_from_groups_and_group_without_metrics() {
    let yaml = GOOD.replace("    group: errors", "    group: error");
    assert_eq!(
        errors(&yaml),
        [
            "t.yaml:3: groups.errors: group `errors` has no metrics, so its weight would be lost",
            "t.yaml:14: metrics[1].group: metric `error_rate`: group `error` is not in groups (known: `errors`, `latency`)",
        ]
    );
}

#[test]
fn duplicate_metric_name() {
    let yaml = GOOD.replace("name: error_rate", "name: latency_p99");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:13: metrics[1].name: duplicate metric name `latency_p99` (also metrics[0])"]
    );
}

#[test]
fn marginal_above_pass() {
    let yaml = GOOD.replace("{pass: 90, marginal: 70}", "{pass: 60, marginal: 70}");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:2: thresholds.marginal: marginal 70 is above pass 60"]
    );
    let yaml = GOOD.replace("{pass: 90, marginal: 70}", "{pass: 190, marginal: 70}");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:2: thresholds.pass: 190 is outside 0..=100 (scores are out of 100)"]
    );
}

#[test]
fn all_problems_are_reported_together() {
    let yaml = "\
name: ''
thresholds:
  pass: 60
  marginal: 70
groups:
  latency: -1
  errors: 40
analysis:
  lifetime: 10m
  interval: 20m
  confidence: 1.5
metrics:
  - name: a
    group: latency
    allowed_increase: 0.9
    allowed_decrease: 0
    nan_value: 3
    outliers: {factor: 2}
  - name: a
    group: nowhere
    min_samples: 0
";
    let e = errors(yaml);
    let expected = [
        "t.yaml:1: name: must not be empty",
        "t.yaml:4: thresholds.marginal: marginal 70 is above pass 60",
        "t.yaml:6: groups.latency: weight -1 is negative",
        "t.yaml:7: groups.errors: group `errors` has no metrics, so its weight would be lost",
        "t.yaml:10: analysis.interval: 20m is longer than lifetime 10m",
        "t.yaml:11: analysis.confidence: 1.5 is not strictly between 0 and 1 (e.g. 0.98)",
        "t.yaml:15: metrics[0].allowed_increase: 0.9 must be a number >= 1",
        "t.yaml:16: metrics[0].allowed_decrease: 0 must be in (0, 1]",
        "t.yaml:17: metrics[0].nan_value: is only used with `nan_strategy: replace`",
        "t.yaml:18: metrics[0].outliers.factor: is only used with `strategy: remove`",
        "t.yaml:19: metrics[1].name: duplicate metric name `a` (also metrics[0])",
        "t.yaml:20: metrics[1].group: metric `a`: group `nowhere` is not in groups (known: `errors`, `latency`)",
        "t.yaml:21: metrics[1].min_samples: must be at least 1",
    ];
    assert_eq!(e.len(), expected.len(), "{e:#?}");
    for (got, want) in e.iter().zip(expected) {
        assert!(got.starts_with(want), "expected `{want}…`, got `{got}`");
    }
}

#[test]
fn analysis_timing_rules() {
    let yaml = GOOD.replace("interval: 10m", "interval: 0s");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:4: analysis.interval: must be longer than 0"]
    );
    let yaml = GOOD.replace("warmup: 0m", "warmup: 1h");
    assert_eq!(
        errors(&yaml),
        ["t.yaml:4: analysis.warmup: 1h leaves nothing of lifetime 1h to analyse"]
    );
    let yaml = GOOD.replace("analysis: {lifetime: 60m, ", "analysis: {");
    // Without a rollout section a lifetime is required (a rollout derives its own).
    assert_one_error(&yaml, "t.yaml:4: analysis.lifetime: must be longer than 0");
}

#[test]
fn json_loads_the_same_config_as_yaml() {
    let json = serde_json::json!({
        "name": "checkout",
        "thresholds": {"pass": 90, "marginal": 70},
        "groups": {"latency": 60, "errors": 40},
        "analysis": {"lifetime": "60m", "interval": "10m", "warmup": "0m", "lookback": 0, "baseline_offset": "0s"},
        "metrics": [
            {
                "name": "latency_p99",
                "group": "latency",
                "direction": "increase",
                "allowed_increase": 1.05,
                "critical": true,
                "must_have_data": true,
                "query": "histogram_quantile(0.99, rate(x[1m]))"
            },
            {"name": "error_rate", "group": "errors", "direction": "increase"}
        ]
    });
    let from_json = config::from_json_value(json).unwrap();
    let from_yaml = config::from_yaml_str(GOOD, "good.yaml").unwrap();
    assert_eq!(from_json, from_yaml);
}

#[test]
fn json_errors_name_the_path() {
    let mut json = config::from_yaml_str(GOOD, "good.yaml")
        .unwrap()
        .to_json()
        .unwrap();
    json["metrics"][1]["allowed_increse"] = 1.1.into();
    let e = config::from_json_value(json.clone())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("metrics[1].allowed_increse: unknown field `allowed_increse`"),
        "{e}"
    );

    json["metrics"][1]
        .as_object_mut()
        .unwrap()
        .remove("allowed_increse");
    json["groups"]["latency"] = (-2).into();
    json["metrics"][0]["name"] = "error_rate".into();
    let e = config::from_json_value(json).unwrap_err();
    let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "groups.latency: weight -2 is negative",
            "metrics[1].name: duplicate metric name `error_rate` (also metrics[0])",
        ]
    );
    assert_eq!(e.problems().len(), 2);
    assert_eq!(e.problems()[0].line, None);
}

#[test]
fn serialises_compactly() {
    let cfg = config::from_yaml_str(GOOD, "good.yaml").unwrap();
    let json = cfg.to_json().unwrap();
    assert_eq!(json["analysis"]["lifetime"], "1h");
    assert_eq!(json["analysis"]["interval"], "10m");
    assert_eq!(json["analysis"]["warmup"], "0s");
    // Defaults left out per metric.
    let m1 = json["metrics"][1].as_object().unwrap();
    let keys: Vec<&str> = m1.keys().map(String::as_str).collect();
    assert_eq!(keys, ["direction", "group", "name"]);
}

#[test]
fn missing_file_is_a_read_error() {
    let err = config::load(Path::new("/nonexistent/canary.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert_eq!(err.to_string(), "cannot read /nonexistent/canary.yaml");
}

#[test]
fn load_prefixes_the_file_name() {
    let dir = std::env::temp_dir().join(format!("fledge-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, GOOD.replace("latency: 60", "latency: -1")).unwrap();
    let err = config::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        err,
        format!(
            "{}:3: groups.latency: weight -1 is negative",
            path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Kayenta import

fn import(name: &str) -> config::Imported {
    let path = repo(&format!("testdata/kayenta/{name}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let imported = config::import_kayenta(&text, name).unwrap_or_else(|e| panic!("{e}"));
    // The YAML is the config, and loads back to it.
    let again = config::from_yaml_str(&imported.yaml, "imported.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert_eq!(again, imported.config);
    for warning in &imported.warnings {
        assert!(imported.yaml.contains(warning.as_str()), "{warning}");
    }
    imported
}

#[track_caller]
fn assert_warned(imported: &config::Imported, fragments: &[&str]) {
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| fragments.iter().all(|f| w.contains(f))),
        "no warning with {fragments:?} in {:#?}",
        imported.warnings
    );
}

#[test]
fn kayenta_prometheus_label_bindings_and_group_by() {
    let imported = import("prometheus-label-bindings.json");
    let cfg = &imported.config;
    assert_eq!(cfg.name, "orders-api-canary");
    assert_eq!(cfg.groups.len(), 2);
    assert_eq!(cfg.groups["Latency"], 70.0);
    assert_eq!(cfg.groups["Errors"], 30.0);

    let p99 = cfg.metric("request_latency_p99").unwrap();
    assert_eq!(p99.group, "Latency");
    assert_eq!(p99.direction, Direction::Increase);
    assert!(p99.critical && p99.must_have_data);
    assert_eq!(p99.allowed_increase, 1.2);
    assert_eq!(p99.outliers.strategy, OutlierStrategy::Remove);
    assert_eq!(p99.outliers.factor, Some(2.5));
    assert_eq!(
        p99.query.as_deref(),
        Some(
            r#"avg(http_server_requests_seconds{quantile="0.99",uri!="/health",asg_groupName="${scope}",zone=~"${location}.{1}"}) by (instance)"#
        )
    );
    let kq = p99.kayenta_query.as_ref().unwrap();
    assert_eq!(kq.query_type, "prometheus");
    assert_eq!(
        kq.metric_name.as_deref(),
        Some("http_server_requests_seconds")
    );
    assert_eq!(kq.resource_type.as_deref(), Some("aws_ec2_instance"));
    assert_eq!(kq.label_bindings, ["quantile=\"0.99\"", "uri!=\"/health\""]);
    assert_eq!(kq.group_by_fields, ["instance"]);

    let errors = cfg.metric("error_ratio").unwrap();
    assert_eq!(errors.nan_strategy, NanMode::Replace);
    assert_eq!(errors.allowed_increase, 1.5);
    assert_eq!(
        errors.query.as_deref(),
        Some(
            r#"avg(http_server_errors_ratio{app='orders',track='${scope}',status=~"5.."}) by (instance,status)"#
        )
    );
    assert_eq!(
        errors
            .kayenta_query
            .as_ref()
            .unwrap()
            .custom_inline_template
            .as_deref(),
        Some("app='orders',track='${scope}'")
    );

    assert_warned(&imported, &["applications [orders]", "not carried"]);
    assert_warned(&imported, &["thresholds", "75", "50"]);
    assert_warned(&imported, &["analysis", "lifetime 1h", "interval 10m"]);
    assert_warned(
        &imported,
        &["cohorts", "`${location}`, `${scope}`", "add a `source:`"],
    );
    // Nothing else is lost: server metadata, the standard judge, `scopeName: default`.
    assert_eq!(imported.warnings.len(), 4, "{:#?}", imported.warnings);
    assert_eq!(cfg.thresholds.pass, 75.0);
    assert_eq!(cfg.thresholds.marginal, 50.0);
}

#[test]
fn kayenta_promql_inline_templates() {
    let imported = import("prometheus-promql.json");
    let cfg = &imported.config;
    let p95 = cfg.metric("p95 latency").unwrap();
    assert_eq!(
        p95.query.as_deref(),
        Some(
            r#"histogram_quantile(0.95, sum by (le) (rate(search_request_duration_seconds_bucket{kubernetes_namespace="search",pod=~"${scope}-.*"}[2m])))"#
        )
    );
    assert!(
        p95.kayenta_query
            .as_ref()
            .unwrap()
            .custom_inline_template
            .as_deref()
            .unwrap()
            .starts_with("PromQL:")
    );
    assert_eq!(p95.group, "latency");
    assert_eq!(p95.allowed_increase, 1.1);
    let success = cfg.metric("success rate").unwrap();
    assert_eq!(success.direction, Direction::Decrease);
    assert_eq!(success.allowed_decrease, 0.98);
    assert!(success.must_have_data);
    assert_eq!(cfg.groups["latency"], 60.0);
    assert_eq!(cfg.groups["errors"], 40.0);
    assert!(!cfg.groups.contains_key("user-facing"));

    assert_warned(&imported, &["p95 latency", "user-facing", "kept `latency`"]);
    assert_warned(
        &imported,
        &["p95 latency", "criticalIncrease 2", "not carried"],
    );
    assert_warned(&imported, &["gc pause", "muted"]);
    assert_warned(&imported, &["gc pause", "#553"]);
    assert_warned(&imported, &["applications [search, search-admin]"]);
}

#[test]
fn kayenta_templates_and_custom_filter_template() {
    let imported = import("prometheus-templates.json");
    let cfg = &imported.config;
    assert_eq!(cfg.templates.len(), 3);
    assert_eq!(
        cfg.templates["standard-template"],
        "namespace='${namespace}', scope='${scope}'"
    );

    let cpu = cfg.metric("CPU usage for service").unwrap();
    assert!(cpu.critical);
    assert_eq!(
        cpu.kayenta_query
            .as_ref()
            .unwrap()
            .custom_filter_template
            .as_deref(),
        Some("standard-template")
    );
    assert_eq!(
        cpu.query.as_deref(),
        Some("avg(integration_test_cpu{namespace='${namespace}', scope='${scope}'})")
    );
    let memory = cfg.metric("Memory usage for service").unwrap();
    assert_eq!(memory.outliers.strategy, OutlierStrategy::Keep);
    assert_eq!(memory.outliers.factor, None);
    assert_eq!(
        memory.query.as_deref(),
        Some("avg(integration_test_memory{namespace='${namespace}', scope='${scope}'}) by (pod)")
    );
    let requests = cfg.metric("Request rate").unwrap();
    assert_eq!(
        requests.query.as_deref(),
        Some(
            "sum(rate(integration_test_requests_total{namespace='${namespace}',scope='${scope}'}[1m]))"
        )
    );

    // scoreThresholds carried (with a warning); the metric-less group's weight dropped; the
    // unweighted group gets what is left of 100, as in Kayenta.
    assert_eq!(cfg.thresholds.pass, 75.0);
    assert_eq!(cfg.thresholds.marginal, 50.0);
    assert_warned(&imported, &["classifier.scoreThresholds", "ignores"]);
    assert_eq!(cfg.groups["pod-group"], 80.0);
    assert!(!cfg.groups.contains_key("legacy-group"));
    assert_warned(&imported, &["legacy-group", "dropped"]);
    // Kayenta counts the lost weight too: 100 - (80 + 20) is left for `traffic`.
    assert_eq!(cfg.groups["traffic"], 0.0);
    assert_warned(&imported, &["traffic", "no weight", "given 0 each"]);
}

#[test]
fn kayenta_non_prometheus_queries_warn() {
    let imported = import("mixed-providers.json");
    let cfg = &imported.config;
    let dd = cfg.metric("datadog_latency").unwrap();
    assert_eq!(dd.query, None);
    let kq = dd.kayenta_query.as_ref().unwrap();
    assert_eq!(kq.query_type, "datadog");
    assert_eq!(
        kq.metric_name.as_deref(),
        Some("trace.http.request.duration")
    );
    assert!(dd.critical);
    // CLES thresholds are not mean ratios: not carried.
    assert_eq!(dd.allowed_increase, 1.0);
    assert_eq!(dd.allowed_decrease, 1.0);
    let atlas = cfg.metric("atlas_errors").unwrap();
    assert_eq!(atlas.query, None);
    assert_eq!(atlas.nan_strategy, NanMode::Replace);
    let prom = cfg.metric("prometheus_saturation").unwrap();
    assert_eq!(prom.group, "ungrouped");
    assert_eq!(prom.direction, Direction::Either);
    assert_eq!(
        prom.query.as_deref(),
        Some(r#"avg(edge_inflight_requests{job="edge"})"#)
    );
    assert_eq!(cfg.groups["ungrouped"], 0.0);

    assert_warned(
        &imported,
        &["datadog_latency", "query type `datadog` is not supported"],
    );
    assert_warned(
        &imported,
        &["atlas_errors", "query type `atlas`", "fields q dropped"],
    );
    assert_warned(&imported, &["datadog_latency", "cles", "not carried"]);
    assert_warned(&imported, &["datadog_latency", "scopeName `us-east`"]);
    assert_warned(&imported, &["judge.name `RemoteJudge-v1.0`"]);
    assert_warned(&imported, &["judge.judgeConfigurations"]);
    assert_warned(&imported, &["prometheus_saturation", "no groups"]);
    assert_warned(
        &imported,
        &["prometheus_saturation", "direction `sideways`"],
    );
    assert_warned(&imported, &["prometheus_saturation", "no scope filter"]);
}

#[test]
fn kayenta_import_errors() {
    let err = config::import_kayenta("{", "x.json").unwrap_err();
    assert!(matches!(err, KayentaImportError::Json { .. }), "{err:?}");

    let err = config::import_kayenta(
        r#"{"name": "n", "metrics": [{"name": "m", "groups": ["g"],
            "query": {"type": "prometheus", "metricName": "x", "customFilterTemplate": "nope"},
            "analysisConfigurations": {"canary": {"critical": "yes"}}}]}"#,
        "x.json",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "x.json: metrics[0].analysisConfigurations.canary.critical: expected true or false",
            "x.json: metrics[0].query.customFilterTemplate: template `nope` is not in templates",
        ]
    );

    let err = config::import_kayenta(
        r#"{"name": "n", "metrics": [
            {"name": "m", "groups": ["g"], "query": {"type": "prometheus", "metricName": "x", "resourceType": "aws_ec2_instance"}},
            {"name": "m", "groups": ["g"], "query": {"type": "prometheus", "metricName": "y", "resourceType": "aws_ec2_instance"}}]}"#,
        "x.json",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "x.json: after import: metrics[1].name: duplicate metric name `m` (also metrics[0])"
    );
}

#[test]
fn config_from_struct_literal_is_checked_by_validated() {
    let mut cfg: Config = config::from_yaml_str(GOOD, "good.yaml").unwrap();
    cfg.groups.insert("latency".into(), -3.0);
    let err = cfg.validated().unwrap_err();
    assert_eq!(err.to_string(), "groups.latency: weight -3 is negative");
}

const ROLLOUT: &str = "\
name: shop
groups: {g: 1}
analysis: {interval: 10s}
metrics: [{name: m, group: g}]
rollout:
  router: {type: webhook, url: \"http://127.0.0.1:1/w\"}
  steps: [{set_weight: 50}]
  hooks:
    - name: gate
      type: confirm-promotion
      url: http://127.0.0.1:1/gate
      metadata: {ticket: CHG-1, attempt: 2}
    - {name: stop, type: rollback, url: \"https://example.invalid/rollback\", timeout: 3s, retries: 0}
";

#[test]
fn rollout_hooks_load_with_defaults_and_either_spelling() {
    use fledge_analyzer::rollout::HookType;
    let cfg = config::from_yaml_str(ROLLOUT, "t.yaml").unwrap();
    let r = cfg.rollout.as_ref().unwrap();
    assert_eq!(r.hook_interval, Duration::from_secs(5));
    let gate = &r.hooks[0];
    assert_eq!(gate.kind, HookType::ConfirmPromotion, "the dashed spelling");
    assert_eq!((gate.timeout, gate.retries), (Duration::from_secs(10), 2));
    assert_eq!(gate.metadata["attempt"], "2", "numbers are kept as strings");
    assert_eq!(
        (r.hooks[1].kind, r.hooks[1].timeout, r.hooks[1].retries),
        (HookType::Rollback, Duration::from_secs(3), 0)
    );
    // Written back in the underscore spelling, and read again the same.
    let yaml = cfg.to_yaml().unwrap();
    assert!(yaml.contains("confirm_promotion"), "{yaml}");
    assert_eq!(config::from_yaml_str(&yaml, "again").unwrap(), cfg);
}

#[test]
fn rollout_hook_mistakes_name_the_field_and_line() {
    for (from, to, expected) in [
        (
            "      metadata:",
            "      retires: 3\n      metadata:",
            "t.yaml:12: rollout.hooks[0].retires: unknown field `retires`, expected one of",
        ),
        (
            "type: rollback",
            "type: rolback",
            "t.yaml:13: rollout.hooks[1].type: unknown variant `rolback`",
        ),
    ] {
        assert_one_error(&ROLLOUT.replace(from, to), expected);
    }
    let yaml = ROLLOUT
        .replace("name: stop", "name: gate")
        .replace("\"https://example.invalid/rollback\"", "ftp://x")
        .replace("retries: 0", "retries: 11")
        .replace("timeout: 3s", "timeout: 0");
    let e = errors(&yaml);
    assert_eq!(
        e,
        [
            "t.yaml:13: rollout.hooks[1].name: hook `gate` is named twice",
            "t.yaml:13: rollout.hooks[1].url: \"ftp://x\" is not an http(s) URL",
            "t.yaml:13: rollout.hooks[1].timeout: must be longer than 0",
            "t.yaml:13: rollout.hooks[1].retries: 11 is more than 10",
        ]
    );
}
