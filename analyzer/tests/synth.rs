//! The synthetic-recording generator: reproducibility, format, and that every scenario's
//! injected effect is present, with the right size, in the generated numbers.

use fledge_analyzer::synth::{
    self, DEFAULT_START, Metric, Params, Row, SCENARIO_NAMES, Scenario, generate, to_csv, values,
};
use fledge_judges::Side;

const STEPS: usize = 360; // 60 minutes at 10 s

fn scenario(name: &str) -> Scenario {
    synth::scenario(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

fn rows(name: &str, seed: u64) -> Vec<Row> {
    generate(&scenario(name), &Params::default(), seed)
}

/// 20 minutes instead of 60: enough for the reproducibility checks, and three times faster
/// (these tests run unoptimised).
fn short(name: &str, seed: u64) -> Vec<Row> {
    let params = Params {
        duration_ms: 20 * 60_000,
        ..Params::default()
    };
    generate(&scenario(name), &params, seed)
}

fn mean(v: &[f64]) -> f64 {
    assert!(!v.is_empty());
    v.iter().sum::<f64>() / v.len() as f64
}

fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

/// Mean of canary / mean of baseline for `metric` over the steps `[from, to)`.
fn ratio(rows: &[Row], metric: Metric, from: usize, to: usize) -> f64 {
    let c = values(rows, metric, Side::Canary);
    let b = values(rows, metric, Side::Baseline);
    mean(&c[from..to]) / mean(&b[from..to])
}

/// The pooled ratio of `metric` over `seeds`: Σ canary / Σ baseline.
fn pooled_ratio(name: &str, metric: Metric, seeds: std::ops::Range<u64>) -> f64 {
    let (mut c, mut b) = (0.0, 0.0);
    for seed in seeds {
        let r = rows(name, seed);
        c += sum(&values(&r, metric, Side::Canary));
        b += sum(&values(&r, metric, Side::Baseline));
    }
    c / b
}

fn lag1_autocorrelation(v: &[f64]) -> f64 {
    let m = mean(v);
    let var: f64 = v.iter().map(|x| (x - m).powi(2)).sum();
    let cov: f64 = v.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
    cov / var
}

fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got:.4}, want {want} ± {tolerance}"
    );
}

#[test]
fn every_named_scenario_exists_and_unknown_names_do_not() {
    let all = synth::scenarios();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        SCENARIO_NAMES
    );
    assert!(synth::scenario("no-such-scenario").is_none());
    assert!(all.iter().all(|s| !s.summary.is_empty()));
}

#[test]
fn same_seed_gives_byte_identical_output() {
    for name in SCENARIO_NAMES {
        let a = to_csv(&short(name, 7));
        let b = to_csv(&short(name, 7));
        assert!(a == b, "{name}: two runs with seed 7 differ");
    }
}

#[test]
fn different_seeds_give_different_output() {
    for name in SCENARIO_NAMES {
        assert_ne!(to_csv(&short(name, 1)), to_csv(&short(name, 2)), "{name}");
    }
}

#[test]
fn csv_has_the_recording_format() {
    let csv = to_csv(&rows("healthy", 1));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("timestamp,metric,cohort,value"));
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), STEPS * Metric::ALL.len() * 2);
    assert!(body[0].starts_with("2026-01-01T00:00:00Z,"), "{}", body[0]);
    assert!(body.last().unwrap().starts_with("2026-01-01T00:59:50Z,"));
    for line in &body {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{line}");
        assert!(f[0].ends_with('Z') && f[0].len() == 20, "{line}");
        assert!(Metric::from_name(f[1]).is_some(), "{line}");
        assert!(f[2] == "baseline" || f[2] == "canary", "{line}");
        let v: f64 = f[3].parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(v.is_finite() && v >= 0.0, "{line}");
        assert!(!f[3].contains('e'), "{line}");
    }
}

#[test]
fn csv_values_are_the_rows_rounded() {
    let r = rows("healthy", 3);
    let csv = to_csv(&r);
    for (row, line) in r.iter().zip(csv.lines().skip(1)) {
        let v: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        let tolerance = match row.metric {
            Metric::ErrorRate => 5e-9,
            Metric::Errors | Metric::Requests => 0.0,
            _ => 5e-4,
        };
        assert!(
            (v - row.value).abs() <= tolerance + 1e-12,
            "{line} vs {}",
            row.value
        );
    }
}

#[test]
fn steps_start_and_length_follow_the_params() {
    let params = Params {
        start: DEFAULT_START + 1_500,
        duration_ms: 60_000,
        step_ms: 500,
        ..Params::default()
    };
    let r = generate(&scenario("healthy"), &params, 1);
    let t: Vec<i64> = values_t(&r, Metric::Cpu, Side::Canary);
    assert_eq!(t.len(), 120);
    assert_eq!(t[0], DEFAULT_START + 1_500);
    assert!(t.windows(2).all(|w| w[1] - w[0] == 500));
    let csv = to_csv(&r);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("2026-01-01T00:00:01.500Z,")
    );
    assert!(
        generate(
            &scenario("healthy"),
            &Params {
                duration_ms: 0,
                ..params
            },
            1
        )
        .is_empty()
    );
}

fn values_t(rows: &[Row], metric: Metric, cohort: Side) -> Vec<i64> {
    rows.iter()
        .filter(|r| r.metric == metric && r.cohort == cohort)
        .map(|r| r.t)
        .collect()
}

#[test]
fn healthy_cohorts_match_and_share_a_visible_load_shape() {
    let r = rows("healthy", 1);
    for m in [
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::Requests,
        Metric::Cpu,
    ] {
        assert_near(m.name(), ratio(&r, m, 0, STEPS), 1.0, 0.03);
    }
    let req = values(&r, Metric::Requests, Side::Baseline);
    let first = mean(&req[..60]);
    let last = mean(&req[STEPS - 60..]);
    assert!(
        (280.0..340.0).contains(&first),
        "first 10 minutes: {first} requests per step"
    );
    assert!(
        last / first > 1.15,
        "the load should climb visibly: {first} -> {last}"
    );
    let p50 = mean(&values(&r, Metric::LatencyP50, Side::Baseline));
    assert!((110.0..140.0).contains(&p50), "p50 {p50}");
    // Over many seeds the error rates agree too.
    assert_near(
        "errors",
        pooled_ratio("healthy", Metric::Errors, 1..5),
        1.0,
        0.2,
    );
}

#[test]
fn scenarios_share_the_baseline_for_a_seed() {
    let healthy = rows("healthy", 5);
    for name in [
        "latency-p99-up20",
        "errors-x3-sparse",
        "slow-start",
        "variance-only",
    ] {
        let other = rows(name, 5);
        for m in Metric::ALL {
            assert_eq!(
                values(&healthy, m, Side::Baseline),
                values(&other, m, Side::Baseline),
                "{name} {m}"
            );
        }
    }
}

#[test]
fn latency_p99_up20_raises_p99_by_a_fifth_and_leaves_p50() {
    let r = rows("latency-p99-up20", 1);
    assert_near(
        "p99 ratio, seed 1",
        ratio(&r, Metric::LatencyP99, 0, STEPS),
        1.2,
        0.03,
    );
    assert_near(
        "p50 ratio, seed 1",
        ratio(&r, Metric::LatencyP50, 0, STEPS),
        1.013,
        0.015,
    );
    assert_near(
        "p99 pooled",
        pooled_ratio("latency-p99-up20", Metric::LatencyP99, 1..5),
        1.2,
        0.02,
    );
    assert_near(
        "p50 pooled",
        pooled_ratio("latency-p99-up20", Metric::LatencyP50, 1..5),
        1.013,
        0.008,
    );
    for m in [Metric::ErrorRate, Metric::Requests, Metric::Cpu] {
        assert_near(m.name(), ratio(&r, m, 0, STEPS), 1.0, 0.15);
    }
}

#[test]
fn errors_x3_sparse_triples_sparse_error_counts() {
    let r = rows("errors-x3-sparse", 1);
    let b = values(&r, Metric::Errors, Side::Baseline);
    let c = values(&r, Metric::Errors, Side::Canary);
    let zeros = |v: &[f64]| v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
    assert!(
        zeros(&b) > 0.55,
        "baseline steps without errors: {}",
        zeros(&b)
    );
    assert!(
        zeros(&c) > 0.2,
        "canary steps without errors: {}",
        zeros(&c)
    );
    let per_step = mean(&b);
    assert!(
        (0.2..=0.5).contains(&per_step),
        "baseline errors per step {per_step}"
    );
    assert_near("seed 1 error total ratio", sum(&c) / sum(&b), 3.0, 0.5);
    assert_near(
        "pooled error ratio",
        pooled_ratio("errors-x3-sparse", Metric::Errors, 1..5),
        3.0,
        0.45,
    );
    // error_rate is errors / requests, step by step.
    let rate = values(&r, Metric::ErrorRate, Side::Canary);
    let req = values(&r, Metric::Requests, Side::Canary);
    for i in 0..STEPS {
        assert!((rate[i] - c[i] / req[i]).abs() < 1e-12);
    }
    assert_near(
        "latency p99",
        ratio(&r, Metric::LatencyP99, 0, STEPS),
        1.0,
        0.03,
    );
}

#[test]
fn slow_start_is_slow_for_ten_minutes_only() {
    let r = rows("slow-start", 1);
    for m in [Metric::LatencyP50, Metric::LatencyP99] {
        assert_near(
            &format!("{m} first 10 minutes"),
            ratio(&r, m, 0, 60),
            1.4,
            0.06,
        );
        assert_near(
            &format!("{m} afterwards"),
            ratio(&r, m, 60, STEPS),
            1.0,
            0.03,
        );
    }
    let healthy = rows("healthy", 1);
    assert_eq!(
        values(&healthy, Metric::LatencyP99, Side::Canary)[60..],
        values(&r, Metric::LatencyP99, Side::Canary)[60..],
        "after the first 10 minutes the canary is the healthy one"
    );
}

#[test]
fn missing_canary_has_no_canary_p99_and_everything_else() {
    let r = rows("missing-canary", 1);
    assert!(values(&r, Metric::LatencyP99, Side::Canary).is_empty());
    assert_eq!(values(&r, Metric::LatencyP99, Side::Baseline).len(), STEPS);
    for m in Metric::ALL.into_iter().filter(|&m| m != Metric::LatencyP99) {
        for side in [Side::Baseline, Side::Canary] {
            assert_eq!(values(&r, m, side).len(), STEPS, "{m} {side}");
        }
    }
    assert!(!to_csv(&r).contains("latency_p99,canary"));
}

#[test]
fn variance_only_moves_p99_not_p50() {
    let r = rows("variance-only", 1);
    // σ 0.5 -> 0.6 at the same median: p99 × exp(2.326 · 0.1) ≈ 1.26.
    let want = (2.326_f64 * 0.1).exp();
    assert_near(
        "p99 ratio",
        ratio(&r, Metric::LatencyP99, 0, STEPS),
        want,
        0.03,
    );
    assert_near(
        "p50 ratio",
        ratio(&r, Metric::LatencyP50, 0, STEPS),
        1.0,
        0.02,
    );
    assert_near(
        "p99 pooled",
        pooled_ratio("variance-only", Metric::LatencyP99, 1..5),
        want,
        0.02,
    );
    assert_near(
        "p50 pooled",
        pooled_ratio("variance-only", Metric::LatencyP50, 1..5),
        1.0,
        0.008,
    );
}

#[test]
fn errors_zero_to_eight_has_exactly_zero_and_eight_errors_in_ten_thousand() {
    for seed in 1..4 {
        let r = rows("errors-zero-to-eight", seed);
        assert_eq!(sum(&values(&r, Metric::Errors, Side::Baseline)), 0.0);
        assert_eq!(sum(&values(&r, Metric::Errors, Side::Canary)), 8.0);
        assert!(
            values(&r, Metric::ErrorRate, Side::Baseline)
                .iter()
                .all(|&x| x == 0.0)
        );
        for side in [Side::Baseline, Side::Canary] {
            let total = sum(&values(&r, Metric::Requests, side));
            assert_near(
                &format!("seed {seed} {side} requests"),
                total,
                10_000.0,
                300.0,
            );
        }
        let c = values(&r, Metric::Errors, Side::Canary);
        assert!(
            c.iter().filter(|&&x| x > 0.0).count() >= 5,
            "errors spread over steps: {c:?}"
        );
    }
}

#[test]
fn rho_autocorrelates_each_cohort_without_changing_its_spread() {
    // The canary − baseline difference removes the shared load, leaving the cohort latents.
    let diff = |rho: f64| {
        let params = Params {
            rho,
            ..Params::default()
        };
        let r = generate(&scenario("healthy"), &params, 11);
        let c = values(&r, Metric::LatencyP50, Side::Canary);
        let b = values(&r, Metric::LatencyP50, Side::Baseline);
        c.iter()
            .zip(&b)
            .map(|(c, b)| c.ln() - b.ln())
            .collect::<Vec<f64>>()
    };
    let independent = diff(0.0);
    let correlated = diff(0.9);
    assert!(lag1_autocorrelation(&independent).abs() < 0.15);
    assert!(
        lag1_autocorrelation(&correlated) > 0.4,
        "{}",
        lag1_autocorrelation(&correlated)
    );
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let ratio = sd(&correlated) / sd(&independent);
    assert!((0.6..1.4).contains(&ratio), "spread ratio {ratio}");
}

/// The committed recordings are what `scripts/gen-testdata` makes: regenerate them with it
/// when this fails after an intended change to the generator.
#[test]
fn committed_recordings_match_the_generator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/recordings");
    for (name, seed) in COMMITTED {
        let path = dir.join(format!("{name}.csv"));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            committed == to_csv(&rows(name, seed)),
            "{} is stale",
            path.display()
        );
    }
}

/// Scenario and seed of every committed recording (as in scripts/gen-testdata).
const COMMITTED: [(&str, u64); 7] = [
    ("healthy", 1),
    ("latency-p99-up20", 1),
    ("errors-x3-sparse", 1),
    ("slow-start", 1),
    ("missing-canary", 1),
    ("variance-only", 1),
    ("errors-zero-to-eight", 1),
];
