//! Evaluation set-ups: a seeded service with ten metrics whose noise is autocorrelated,
//! built on the primitives of [`crate::synth`], for measuring false aborts and detection of
//! the engine's verdicts (`scripts/eval-autocorr`, `docs/autocorr.md`).
//!
//! # Model
//!
//! Steps of `params.step_ms` for `params.duration_ms` (default 10 s for 60 minutes). Both
//! cohorts see the same load `L_t` ([`crate::synth::load`]: a sinusoid climbing from 1.0 to
//! about 1.3 over the hour, times a small shared AR(1) wiggle). Every metric of every cohort
//! has its own unit-variance AR(1) latent `x_t` with coefficient `params.rho` (independent
//! between metrics and cohorts), so the within-cohort autocorrelation is set by `rho` and the
//! cross-cohort correlation comes only from the shared load:
//!
//! | metric | kind | value at step t |
//! |---|---|---|
//! | `latency_p50`, `latency_p90`, `latency_p99`, `search_p50`, `search_p99` | lognormal, ms | `median · L_t^0.3 · exp(σ x_t)` |
//! | `errors_5xx`, `errors_timeout`, `errors_db` | Poisson counts | the `Φ(x_t)` quantile of Poisson(`λ · L_t`) |
//! | `cpu`, `cpu_db` | normal, percent | `idle + per_load · L_t + sd · x_t` |
//!
//! The error counts are a Gaussian copula: their marginal at each step is exactly Poisson,
//! and consecutive counts are correlated through `x_t`. Medians, σ, λ and the CPU constants
//! are in [`METRICS`]. A [`Regression`] multiplies one canary metric (a latency's value, an
//! error count's λ) for the whole recording.
//!
//! Every random number comes from [`crate::synth::stream`] with its own stream per cohort
//! and metric, so the same seed gives the same recording whatever the regression (the
//! canary differs only by the effect) and the same baseline for every scenario.

use std::collections::BTreeMap;

use fledge_judges::Side;

use crate::recording::{MetricSeries, Recording, Series};
use crate::synth::{Params, ar1, load, stream};

/// How a metric's value is made from the load and its latent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `median · L^0.3 · exp(sigma · x)`.
    Latency { median: f64, sigma: f64 },
    /// Poisson(`lambda · L`) at quantile `Φ(x)`.
    Errors { lambda: f64 },
    /// `idle + per_load · L + sd · x`.
    Cpu { idle: f64, per_load: f64, sd: f64 },
}

/// One metric of the service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
}

/// The ten metrics, in stream order.
pub const METRICS: [Metric; 10] = [
    Metric {
        name: "latency_p50",
        kind: Kind::Latency {
            median: 120.0,
            sigma: 0.06,
        },
    },
    Metric {
        name: "latency_p90",
        kind: Kind::Latency {
            median: 250.0,
            sigma: 0.09,
        },
    },
    Metric {
        name: "latency_p99",
        kind: Kind::Latency {
            median: 400.0,
            sigma: 0.15,
        },
    },
    Metric {
        name: "search_p50",
        kind: Kind::Latency {
            median: 60.0,
            sigma: 0.08,
        },
    },
    Metric {
        name: "search_p99",
        kind: Kind::Latency {
            median: 300.0,
            sigma: 0.2,
        },
    },
    Metric {
        name: "errors_5xx",
        kind: Kind::Errors { lambda: 2.0 },
    },
    Metric {
        name: "errors_timeout",
        kind: Kind::Errors { lambda: 0.8 },
    },
    Metric {
        name: "errors_db",
        kind: Kind::Errors { lambda: 0.3 },
    },
    Metric {
        name: "cpu",
        kind: Kind::Cpu {
            idle: 10.0,
            per_load: 40.0,
            sd: 2.5,
        },
    },
    Metric {
        name: "cpu_db",
        kind: Kind::Cpu {
            idle: 5.0,
            per_load: 25.0,
            sd: 2.0,
        },
    },
];

/// A change to one canary metric: a latency's values or an error count's rate multiplied by
/// `scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regression {
    pub metric: &'static str,
    pub scale: f64,
}

/// First stream id of this generator (synth's own use ids below 64).
const STREAM_BASE: u64 = 64;

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * fledge_judges::mann_whitney::erfc(-x / std::f64::consts::SQRT_2)
}

/// The smallest k with `P(Poisson(lambda) ≤ k) ≥ u`.
fn poisson_quantile(lambda: f64, u: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0.0;
    }
    let mut p = (-lambda).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while cdf < u && k < 10_000 {
        k += 1;
        p *= lambda / f64::from(k);
        cdf += p;
    }
    f64::from(k)
}

/// The recording of the service under `params` (its `rho` is the latents' AR(1)
/// coefficient) from `seed`, with `regression` applied to the canary.
pub fn generate(params: &Params, seed: u64, regression: Option<Regression>) -> Recording {
    let n = params.steps();
    let load = load(params, seed);
    let times: Vec<i64> = (0..n as i64)
        .map(|i| params.start + i * params.step_ms)
        .collect();
    let mut metrics = BTreeMap::new();
    for (k, metric) in METRICS.iter().enumerate() {
        let mut series = MetricSeries::default();
        for (c, side) in [Side::Baseline, Side::Canary].into_iter().enumerate() {
            let id = STREAM_BASE + (c * METRICS.len() + k) as u64;
            let x = ar1(&mut stream(seed, id), n, params.rho, 1.0);
            let scale = match regression {
                Some(r) if side == Side::Canary && r.metric == metric.name => r.scale,
                _ => 1.0,
            };
            let out = match side {
                Side::Baseline => &mut series.baseline,
                Side::Canary => &mut series.canary,
            };
            *out = Series {
                t: times.clone(),
                v: (0..n)
                    .map(|i| value(metric.kind, load[i], x[i], scale))
                    .collect(),
            };
        }
        metrics.insert(metric.name.to_string(), series);
    }
    Recording {
        metrics,
        notes: Vec::new(),
    }
}

fn value(kind: Kind, load: f64, x: f64, scale: f64) -> f64 {
    match kind {
        Kind::Latency { median, sigma } => scale * median * load.powf(0.3) * (sigma * x).exp(),
        Kind::Errors { lambda } => poisson_quantile(scale * lambda * load, phi(x)),
        Kind::Cpu { idle, per_load, sd } => idle + per_load * load + sd * x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_quantiles() {
        // P(0) = e^{-1} = 0.3679, P(≤1) = 0.7358, P(≤2) = 0.9197.
        assert_eq!(poisson_quantile(1.0, 0.3), 0.0);
        assert_eq!(poisson_quantile(1.0, 0.5), 1.0);
        assert_eq!(poisson_quantile(1.0, 0.9), 2.0);
        assert_eq!(poisson_quantile(0.0, 0.9), 0.0);
        assert!((phi(0.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn the_service_is_deterministic_and_has_the_asked_autocorrelation() {
        let params = Params {
            rho: 0.7,
            ..Params::default()
        };
        let a = generate(&params, 5, None);
        assert_eq!(a, generate(&params, 5, None));
        assert_eq!(a.metrics.len(), 10);
        let p50 = &a.metrics["latency_p50"];
        assert_eq!(p50.canary.len(), 360);
        // Log latency is the latent plus a slow load term: lag-1 autocorrelation near 0.7.
        let logs: Vec<f64> = p50.baseline.v.iter().map(|v| v.ln()).collect();
        let m = logs.iter().sum::<f64>() / logs.len() as f64;
        let var: f64 = logs.iter().map(|v| (v - m).powi(2)).sum();
        let lag1: f64 = logs.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
        assert!((lag1 / var - 0.7).abs() < 0.12, "{}", lag1 / var);
        // A regression changes only its canary metric.
        let r = generate(
            &params,
            5,
            Some(Regression {
                metric: "errors_5xx",
                scale: 3.0,
            }),
        );
        assert_eq!(r.metrics["latency_p50"], a.metrics["latency_p50"]);
        assert_eq!(
            r.metrics["errors_5xx"].baseline,
            a.metrics["errors_5xx"].baseline
        );
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let ratio = sum(&r.metrics["errors_5xx"].canary.v) / sum(&a.metrics["errors_5xx"].canary.v);
        assert!(ratio > 2.5 && ratio < 3.5, "{ratio}");
    }
}
