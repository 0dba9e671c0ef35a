//! The sequential evaluation: false aborts on healthy canaries under continuous monitoring,
//! and detection rate and time to abort on regressions, for the anytime-valid sequential
//! judges against the fixed-horizon Mann–Whitney judge re-run at every interval (Kayenta's
//! way), over seeded recordings from `fledge_analyzer::synth` and the committed recordings
//! in `testdata/recordings/`.
//!
//! Run it in release mode (`scripts/eval-sequential` does):
//!
//! ```sh
//! cargo run --release -p fledge-analyzer --example eval_sequential -- [--seeds N] [--healthy-seeds N] [--prior-strength K]
//! ```
//!
//! Prints the Markdown tables of `docs/sequential.md`. Deterministic: the same arguments give
//! the same tables.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fledge_analyzer::config;
use fledge_analyzer::engine::AnalysisSpec;
use fledge_analyzer::recording::{Recording, read_recording};
use fledge_analyzer::replay::replay;
use fledge_analyzer::synth::{self, Effect, Params, Row, Scenario};
use fledge_judges::{Side, Verdict};

/// One judge: a name for the table and the config it runs.
struct Judge {
    name: &'static str,
    yaml: String,
}

/// The metrics every judge watches, with the same harm rule: a critical increase of
/// `latency_p50`, `latency_p99` or the errors, at the analysis' 98 % (α = 0.02).
fn judges(prior_strength: f64) -> Vec<Judge> {
    let fixed = |interval: &str, independence: &str| {
        format!(
            "name: fixed
groups: {{latency: 1, errors: 1}}
analysis: {{lifetime: 60m, interval: {interval}, confidence: 0.98, independence: {independence}}}
metrics:
  - {{name: latency_p50, group: latency, direction: increase, critical: true}}
  - {{name: latency_p99, group: latency, direction: increase, critical: true}}
  - {{name: error_rate, group: errors, direction: increase, critical: true}}
"
        )
    };
    let sequential = |latency: &str| {
        format!(
            "name: sequential
groups: {{latency: 1, errors: 1}}
analysis: {{lifetime: 60m, interval: 10m, confidence: 0.98}}
metrics:
  - {{name: latency_p50, group: latency, test: sequential, {latency}, direction: increase, critical: true}}
  - {{name: latency_p99, group: latency, test: sequential, {latency}, direction: increase, critical: true}}
  - {{name: errors, group: errors, test: sequential, kind: counts, prior_strength: {prior_strength}, direction: increase, critical: true}}
"
        )
    };
    vec![
        Judge {
            name: "MW every 10 min (Kayenta)",
            yaml: fixed("10m", "assume"),
        },
        Judge {
            name: "MW every 10 min, `auto`",
            yaml: fixed("10m", "auto"),
        },
        Judge {
            name: "MW once at 60 min",
            yaml: fixed("60m", "assume"),
        },
        Judge {
            name: "sequential, distribution",
            yaml: sequential("kind: distribution"),
        },
        Judge {
            name: "sequential, mean",
            yaml: sequential("kind: mean"),
        },
        Judge {
            name: "sequential, mean, batch 6",
            yaml: sequential("kind: mean, batch: 6"),
        },
    ]
}

struct Case {
    name: &'static str,
    healthy: bool,
    rho: f64,
    effect: Option<Effect>,
}

fn cases() -> Vec<Case> {
    let canary = || Effect::neutral(Side::Canary);
    let latency = |scale: f64| Effect {
        latency_scale: scale,
        ..canary()
    };
    let errors = |scale: f64| Effect {
        error_rate_scale: scale,
        ..canary()
    };
    vec![
        Case {
            name: "healthy",
            healthy: true,
            rho: 0.0,
            effect: None,
        },
        Case {
            name: "healthy, AR(1) ρ = 0.6",
            healthy: true,
            rho: 0.6,
            effect: None,
        },
        Case {
            name: "latency +10%",
            healthy: false,
            rho: 0.0,
            effect: Some(latency(1.10)),
        },
        Case {
            name: "latency +25%",
            healthy: false,
            rho: 0.0,
            effect: Some(latency(1.25)),
        },
        Case {
            name: "errors ×2",
            healthy: false,
            rho: 0.0,
            effect: Some(errors(2.0)),
        },
        Case {
            name: "errors ×4",
            healthy: false,
            rho: 0.0,
            effect: Some(errors(4.0)),
        },
    ]
}

/// The rows of a synthetic recording as a `Recording` (rows come in time order).
fn to_recording(rows: &[Row]) -> Recording {
    let mut rec = Recording::default();
    for r in rows {
        let m = rec.metrics.entry(r.metric.name().to_string()).or_default();
        match r.cohort {
            Side::Baseline => m.baseline.push(r.t, r.value),
            Side::Canary => m.canary.push(r.t, r.value),
        }
    }
    rec
}

/// The verdict and when it was decided, in minutes after the start (the time stamp of the
/// deciding data point).
fn outcome(spec: &Arc<AnalysisSpec>, rec: &Recording, start: i64) -> (Verdict, f64) {
    let report = replay(spec.clone(), rec, Some(start), |_| {});
    let minute = (report.decided_at.unwrap_or(start) - start) as f64 / 60_000.0;
    (report.verdict, minute)
}

/// The judge of the early-promotion table: every metric sequential, with tolerances, so
/// that a healthy canary can settle.
fn tolerant(prior_strength: f64) -> Judge {
    Judge {
        name: "tolerant",
        yaml: format!(
            "name: tolerant
groups: {{latency: 1, errors: 1}}
analysis: {{lifetime: 60m, interval: 10m, confidence: 0.98}}
metrics:
  - {{name: latency_p50, group: latency, test: sequential, kind: mean, batch: 6, direction: increase, allowed_increase: 1.1, critical: true}}
  - {{name: latency_p99, group: latency, test: sequential, kind: mean, batch: 6, direction: increase, allowed_increase: 1.1, critical: true}}
  - {{name: errors, group: errors, test: sequential, kind: counts, prior_strength: {prior_strength}, direction: increase, allowed_increase: 1.5, critical: true}}
"
        ),
    }
}

/// Replays every seed of `case` with every spec, on all cores: `[seed][spec]`.
fn run(
    case: &Case,
    n: u64,
    specs: &[Arc<AnalysisSpec>],
    threads: usize,
) -> Vec<Vec<(Verdict, f64)>> {
    let params = Params {
        rho: case.rho,
        ..Params::default()
    };
    let scenario = match &case.effect {
        None => Scenario::healthy(case.name, ""),
        Some(e) => Scenario::healthy(case.name, "").with(e.clone()),
    };
    let next = AtomicUsize::new(0);
    let mut results: Vec<(u64, Vec<(Verdict, f64)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if i >= n {
                            break;
                        }
                        let seed = i + 1;
                        let rec = to_recording(&synth::generate(&scenario, &params, seed));
                        let row = specs
                            .iter()
                            .map(|spec| outcome(spec, &rec, params.start))
                            .collect();
                        out.push((seed, row));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    results.sort_by_key(|r| r.0);
    results.into_iter().map(|r| r.1).collect()
}

/// "k (r %), median m min" of the outcomes with `verdict` (and `early`: before 59 min).
fn cell(outcomes: &[(Verdict, f64)], verdict: Verdict, early: bool) -> String {
    let n = outcomes.len();
    let mut times: Vec<f64> = outcomes
        .iter()
        .filter(|(v, m)| *v == verdict && (!early || *m < 59.0))
        .map(|(_, m)| *m)
        .collect();
    let k = times.len();
    let rate = 100.0 * k as f64 / n.max(1) as f64;
    match median(&mut times) {
        Some(m) => format!("{k} ({rate:.1} %), {m:.1} min"),
        None => "0 (0.0 %)".to_string(),
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

fn main() {
    let mut seeds = 200u64;
    let mut healthy_seeds = 400u64;
    let mut prior_strength = 100.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--seeds" => seeds = value() as u64,
            "--healthy-seeds" => healthy_seeds = value() as u64,
            "--prior-strength" => prior_strength = value(),
            other => panic!(
                "unknown argument {other}; use --seeds N, --healthy-seeds N, --prior-strength K"
            ),
        }
    }
    let judges = judges(prior_strength);
    let specs: Vec<Arc<AnalysisSpec>> = judges
        .iter()
        .map(|j| {
            let cfg = config::from_yaml_str(&j.yaml, j.name).unwrap_or_else(|e| panic!("{e}"));
            Arc::new(cfg.to_spec().unwrap())
        })
        .collect();
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!(
        "### Synthetic recordings\n\n60 minutes at 10 s steps (`fledge_analyzer::synth`, default \
         parameters), seeds 1..=N, α = 0.02 for every judge. Each cell: analyses that aborted, \
         and the median time to the abort (minutes after the start; the time stamp of the \
         deciding data point).\n"
    );
    let mut header = "| scenario | seeds |".to_string();
    let mut rule = "|---|---|".to_string();
    for j in &judges {
        header.push_str(&format!(" {} |", j.name));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    for case in cases() {
        let n = if case.healthy { healthy_seeds } else { seeds };
        let outcomes = run(&case, n, &specs, threads);
        let mut line = format!("| {} | {n} |", case.name);
        for j in 0..judges.len() {
            let column: Vec<(Verdict, f64)> = outcomes.iter().map(|r| r[j]).collect();
            line.push_str(&format!(" {} |", cell(&column, Verdict::Abort, false)));
        }
        println!("{line}");
    }

    let tolerant = tolerant(prior_strength);
    let tolerant_spec = vec![Arc::new(
        config::from_yaml_str(&tolerant.yaml, tolerant.name)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_spec()
            .unwrap(),
    )];
    println!(
        "\n### Early promotion\n\nEvery metric sequential, with tolerances: `latency_p50` and \
         `latency_p99` `kind: mean, batch: 6, allowed_increase: 1.1`, `errors` `kind: counts, \
         allowed_increase: 1.5`. A metric settles when its confidence sequence rules out more \
         than the allowed increase; the analysis promotes when all three have.\n"
    );
    println!(
        "| scenario | seeds | promoted before 60 min | promoted at 60 min | aborted |\n|---|---|---|---|---|"
    );
    for case in cases() {
        let n = if case.healthy { healthy_seeds } else { seeds };
        let outcomes: Vec<(Verdict, f64)> = run(&case, n, &tolerant_spec, threads)
            .into_iter()
            .map(|r| r[0])
            .collect();
        let on_time = outcomes
            .iter()
            .filter(|(v, m)| *v == Verdict::Promote && *m >= 59.0)
            .count();
        println!(
            "| {} | {n} | {} | {on_time} | {} |",
            case.name,
            cell(&outcomes, Verdict::Promote, true),
            cell(&outcomes, Verdict::Abort, false)
        );
    }

    println!(
        "\n### Committed recordings (`testdata/recordings/`, seed 1)\n\nEach cell: the verdict \
         and, for an abort, the minute of the deciding data point.\n"
    );
    println!("{header}\n{rule}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/recordings");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for f in files {
        let rec = read_recording(&f).unwrap();
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let mut line = format!("| {name} | 1 |");
        for spec in &specs {
            let report = replay(spec.clone(), &rec, None, |_| {});
            let cell = match (report.verdict, report.decided_at) {
                (Verdict::Abort, Some(t)) => {
                    let start = report.start;
                    format!(" abort, {:.1} min |", (t - start) as f64 / 60_000.0)
                }
                (v, _) => format!(" {v} |"),
            };
            line.push_str(&cell);
        }
        println!("{line}");
    }
    eprintln!(
        "eval-sequential: {:.1} s on {threads} threads",
        started.elapsed().as_secs_f64()
    );
}
