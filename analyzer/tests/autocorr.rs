//! `independence: auto | assume | paired` end to end: the config field, its validation, and
//! what it does to a replay of autocorrelated data.

use std::sync::Arc;

use fledge_analyzer::config::{self, Config};
use fledge_analyzer::recording::{self, Recording};
use fledge_analyzer::replay::replay;
use fledge_analyzer::synth::{self, Params};
use fledge_judges::{Classification, Independence, Verdict};

const YAML: &str = "\
name: checkout
groups: {latency: 1}
analysis: {lifetime: 60m, interval: 10m}
metrics:
  - name: latency_p99
    group: latency
    direction: increase
  - name: latency_p50
    group: latency
    direction: increase
    independence: paired
";

#[track_caller]
fn errors(yaml: &str) -> Vec<String> {
    match config::from_yaml_str(yaml, "t.yaml") {
        Ok(cfg) => panic!("expected an error, loaded {cfg:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn load(yaml: &str) -> Config {
    config::from_yaml_str(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn independence_defaults_to_auto_and_is_overridden_per_metric() {
    let cfg = load(YAML);
    assert_eq!(cfg.analysis.independence, Independence::Auto);
    let spec = cfg.to_spec().unwrap();
    assert_eq!(spec.metrics[0].options.independence, Independence::Auto);
    assert_eq!(spec.metrics[1].options.independence, Independence::Paired);
    // The analysis-wide default.
    let cfg = load(&YAML.replace(
        "analysis: {lifetime: 60m, interval: 10m}",
        "analysis: {lifetime: 60m, interval: 10m, independence: assume}",
    ));
    let spec = cfg.to_spec().unwrap();
    assert_eq!(spec.metrics[0].options.independence, Independence::Assume);
    assert_eq!(spec.metrics[1].options.independence, Independence::Paired);
    // The default is not written back; an explicit other value is.
    let yaml = load(YAML).to_yaml().unwrap();
    assert!(!yaml.contains("independence: auto"), "{yaml}");
    assert!(yaml.contains("independence: paired"), "{yaml}");
}

#[test]
fn a_bad_independence_names_the_path_and_line() {
    let e = errors(&YAML.replace("independence: paired", "independence: sometimes"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:11: metrics[1].independence: unknown variant `sometimes`"),
        "{e:?}"
    );
    let e = errors(&YAML.replace(
        "analysis: {lifetime: 60m, interval: 10m}",
        "analysis: {lifetime: 60m, interval: 10m, independence: yes}",
    ));
    assert!(
        e[0].starts_with("t.yaml:3: analysis.independence: unknown variant `yes`"),
        "{e:?}"
    );
}

#[test]
fn independence_is_only_for_mann_whitney_metrics() {
    let yaml = "\
name: t
analysis: {lifetime: 60m, interval: 10m}
metrics:
  - name: latency_p99
    group: latency
    test: threshold
    max: 500
    independence: auto
";
    let e = errors(yaml);
    assert_eq!(
        e,
        vec![
            "t.yaml:8: metrics[0].independence: is only used with `test: mann-whitney` (this \
             metric is `test: threshold`)"
        ]
    );
}

/// A synthetic recording, parsed as `fledge replay` would read it.
fn synthetic(scenario: &str, rho: f64, seed: u64) -> Recording {
    let params = Params {
        rho,
        ..Params::default()
    };
    let rows = synth::generate(&synth::scenario(scenario).unwrap(), &params, seed);
    recording::parse_recording(synth::to_csv(&rows).as_bytes(), "synth").unwrap()
}

fn checkout(independence: Independence) -> Arc<fledge_analyzer::engine::AnalysisSpec> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/checkout-replay.yaml"
    );
    let mut cfg = config::load(std::path::Path::new(path)).unwrap();
    cfg.analysis.independence = independence;
    Arc::new(cfg.to_spec().unwrap())
}

#[test]
fn autocorrelated_healthy_data_promotes_under_auto_and_aborts_under_assume() {
    // A healthy canary (same distributions, same load) whose per-step latency jitter is an
    // AR(1) with ρ = 0.9 in both cohorts (synth's `rho`), seed 3. In the first 10 minutes the
    // canary's jitter happens to sit above the baseline's for a while: 60 points that plain
    // Mann–Whitney takes as 60 independent values give p99 a "significant" +23 ms shift
    // (98% CI [+4.2, +41.6], mean ratio 1.06 ≥ 1.05), and the critical p99 aborts the
    // analysis at interval 1. Those 60 points are worth far fewer independent ones; `auto`
    // widens the variance by the estimated long-run factor (n_eff ≈ 33 per side), the
    // interval contains 0, and the analysis promotes after the last interval.
    let rec = synthetic("healthy", 0.9, 3);

    let assume = replay(checkout(Independence::Assume), &rec, None, |_| {});
    assert_eq!(assume.verdict, Verdict::Abort, "{}", assume.reason);
    assert_eq!(assume.intervals.len(), 1);
    assert!(
        assume
            .reason
            .starts_with("abort at interval 1 of 6: critical metric latency_p99 is high"),
        "{}",
        assume.reason
    );

    let auto = replay(checkout(Independence::Auto), &rec, None, |_| {});
    assert_eq!(auto.verdict, Verdict::Promote, "{}", auto.reason);
    assert_eq!(auto.intervals.len(), 6);
    let first = &auto.intervals[0];
    let p99 = first
        .metrics
        .iter()
        .find(|m| m.name == "latency_p99")
        .unwrap();
    assert_eq!(p99.result.classification, Classification::Pass);
    let [nc, nb] = p99.result.n_eff.unwrap();
    assert!(nc < 60.0 && nb < 60.0, "{:?}", p99.result.n_eff);
    assert!(p99.result.variance_inflation.unwrap() > 1.0);
    // Every auto result reports n_eff; no assume result does.
    for i in &auto.intervals {
        for m in &i.metrics {
            assert!(m.result.n_eff.is_some(), "{}: {}", m.name, m.result.reason);
        }
    }
    assert!(
        assume.intervals[0]
            .metrics
            .iter()
            .all(|m| m.result.n_eff.is_none())
    );
}

#[test]
fn the_committed_recordings_keep_their_verdicts_under_auto() {
    // testdata/recordings/README.md: the verdicts (and intervals) under the default config.
    let recordings = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/recordings/");
    for (name, verdict, interval) in [
        ("healthy", Verdict::Promote, 6),
        ("latency-p99-up20", Verdict::Abort, 1),
        ("errors-x3-sparse", Verdict::Abort, 3),
        ("slow-start", Verdict::Abort, 1),
        ("missing-canary", Verdict::Abort, 1),
        ("variance-only", Verdict::Abort, 1),
        ("errors-zero-to-eight", Verdict::Promote, 6),
    ] {
        let rec =
            recording::read_recording(std::path::Path::new(&format!("{recordings}{name}.csv")))
                .unwrap();
        let report = replay(checkout(Independence::Auto), &rec, None, |_| {});
        assert_eq!(
            (report.verdict, report.intervals.len()),
            (verdict, interval),
            "{name}: {}",
            report.reason
        );
    }
}
