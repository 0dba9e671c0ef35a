//! The autocorrelation evaluation: false aborts on healthy canaries and detection of
//! regressions, with `independence: auto`, `assume` and `paired`, over seeded recordings of the
//! ten-metric service in `fledge_analyzer::eval` at several AR(1) coefficients.
//!
//! Run it in release mode (`scripts/eval-autocorr` does):
//!
//! ```sh
//! cargo run --release -p fledge-analyzer --example eval_autocorr -- [--seeds N] [--confidence C]
//! ```
//!
//! Prints Markdown tables (the ones in `docs/autocorr.md`). Deterministic: the same
//! arguments give the same tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fledge_analyzer::config;
use fledge_analyzer::engine::AnalysisSpec;
use fledge_analyzer::eval::{self, Regression};
use fledge_analyzer::replay::replay;
use fledge_analyzer::synth::Params;
use fledge_judges::{Independence, Verdict};

const RHOS: [f64; 4] = [0.0, 0.5, 0.7, 0.9];
const MODES: [Independence; 3] = [
    Independence::Auto,
    Independence::Assume,
    Independence::Paired,
];

struct Scenario {
    name: &'static str,
    regression: Option<Regression>,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "healthy",
        regression: None,
    },
    Scenario {
        name: "latency_p90 ×1.1",
        regression: Some(Regression {
            metric: "latency_p90",
            scale: 1.1,
        }),
    },
    Scenario {
        name: "latency_p90 ×1.3",
        regression: Some(Regression {
            metric: "latency_p90",
            scale: 1.3,
        }),
    },
    Scenario {
        name: "errors_5xx ×2",
        regression: Some(Regression {
            metric: "errors_5xx",
            scale: 2.0,
        }),
    },
    Scenario {
        name: "errors_5xx ×3",
        regression: Some(Regression {
            metric: "errors_5xx",
            scale: 3.0,
        }),
    },
];

/// What one replay ended with.
#[derive(Clone, Copy, Default)]
struct Outcome {
    verdict: Option<Verdict>,
    /// Interval of the abort.
    interval: usize,
    /// Whether the metric with the regression was among the failing ones at the abort.
    right_metric: bool,
}

fn main() {
    let mut seeds = 200u64;
    let mut confidence: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()).expect("--seeds N"),
            "--confidence" => {
                confidence = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--confidence C"),
                )
            }
            other => panic!("unknown argument {other}; use --seeds N, --confidence C"),
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/eval-autocorr.yaml");
    let mut cfg = config::load(std::path::Path::new(path)).expect("configs/eval-autocorr.yaml");
    if let Some(c) = confidence {
        cfg.analysis.confidence = c;
    }
    let specs: Vec<Arc<AnalysisSpec>> = MODES
        .iter()
        .map(|&mode| {
            let mut c = cfg.clone();
            c.analysis.independence = mode;
            Arc::new(c.to_spec().expect("valid config"))
        })
        .collect();

    let started = std::time::Instant::now();
    // results[rho][scenario][mode][seed]
    let jobs: Vec<(usize, usize)> = (0..RHOS.len())
        .flat_map(|r| (0..SCENARIOS.len()).map(move |s| (r, s)))
        .collect();
    let mut results =
        vec![
            vec![vec![vec![Outcome::default(); seeds as usize]; MODES.len()]; SCENARIOS.len()];
            RHOS.len()
        ];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for &(r, s) in &jobs {
        let params = Params {
            rho: RHOS[r],
            ..Params::default()
        };
        let next = AtomicUsize::new(0);
        let scenario = &SCENARIOS[s];
        let done: Vec<Vec<(usize, [Outcome; MODES.len()])>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    sc.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= seeds as usize {
                                break out;
                            }
                            let rec = eval::generate(&params, 1 + i as u64, scenario.regression);
                            let mut pair = [Outcome::default(); MODES.len()];
                            for (m, spec) in specs.iter().enumerate() {
                                let report = replay(spec.clone(), &rec, None, |_| {});
                                let last = report.intervals.last();
                                pair[m] = Outcome {
                                    verdict: Some(report.verdict),
                                    interval: last.map_or(0, |l| l.index),
                                    right_metric: match (scenario.regression, last) {
                                        (Some(reg), Some(l)) => l.metrics.iter().any(|mr| {
                                            mr.name == reg.metric
                                                && fledge_analyzer::engine::is_failure(
                                                    mr.result.classification,
                                                )
                                        }),
                                        _ => false,
                                    },
                                };
                            }
                            out.push((i, pair));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("worker"))
                .collect()
        });
        for (i, pair) in done.into_iter().flatten() {
            for m in 0..MODES.len() {
                results[r][s][m][i] = pair[m];
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "Seeds 1–{seeds} per cell; config configs/eval-autocorr.yaml (confidence {}); {} replays in {elapsed:.0} s on {threads} threads.\n",
        cfg.analysis.confidence,
        seeds as usize * RHOS.len() * SCENARIOS.len() * MODES.len()
    );
    let pct = |k: usize| 100.0 * k as f64 / seeds as f64;
    let count = |r: usize, s: usize, m: usize, v: Verdict| {
        results[r][s][m]
            .iter()
            .filter(|o| o.verdict == Some(v))
            .count()
    };
    println!("### Healthy canaries: false aborts (and holds)\n");
    println!(
        "| ρ | auto: abort | auto: hold | assume: abort | assume: hold | paired: abort | paired: hold |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (r, rho) in RHOS.iter().enumerate() {
        let cells: Vec<String> = (0..MODES.len())
            .flat_map(|m| {
                [
                    format!("{:.1}%", pct(count(r, 0, m, Verdict::Abort))),
                    format!("{:.1}%", pct(count(r, 0, m, Verdict::Hold))),
                ]
            })
            .collect();
        println!("| {rho} | {} |", cells.join(" | "));
    }
    println!(
        "\n### Regressions: detected (abort), median interval of the abort, missed (promote)\n"
    );
    println!(
        "| regression | ρ | auto: detected | interval | promoted | assume: detected | interval | promoted | paired: detected | interval | promoted |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (s, scenario) in SCENARIOS.iter().enumerate().skip(1) {
        for (r, rho) in RHOS.iter().enumerate() {
            let cells: Vec<String> = (0..MODES.len())
                .flat_map(|m| {
                    let mut intervals: Vec<usize> = results[r][s][m]
                        .iter()
                        .filter(|o| o.verdict == Some(Verdict::Abort))
                        .map(|o| o.interval)
                        .collect();
                    intervals.sort_unstable();
                    let right = results[r][s][m]
                        .iter()
                        .filter(|o| o.verdict == Some(Verdict::Abort) && o.right_metric)
                        .count();
                    let median = if intervals.is_empty() {
                        "–".to_string()
                    } else {
                        intervals[(intervals.len() - 1) / 2].to_string()
                    };
                    [
                        format!("{:.1}% ({:.1}%)", pct(intervals.len()), pct(right)),
                        median,
                        format!("{:.1}%", pct(count(r, s, m, Verdict::Promote))),
                    ]
                })
                .collect();
            println!("| {} | {rho} | {} |", scenario.name, cells.join(" | "));
        }
    }
    println!(
        "\nDetected: share of seeds that aborted; in parentheses, those whose aborting interval had the regressed metric failing. The rest held or (promoted) missed it."
    );
}
