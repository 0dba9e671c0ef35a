//! Seeded synthetic recordings: a small simulation of a service that a baseline and a canary
//! cohort both serve, with effects injected into one cohort.
//!
//! The output is the recording format (`timestamp,metric,cohort,value` CSV, see
//! [`write_csv`]). The committed test recordings under `testdata/recordings/` come from here
//! (`scripts/gen-testdata`), and evaluations (false-abort rates, sequential tests) call
//! [`generate`] directly with hundreds of seeds.
//!
//! # Model
//! Time runs in steps of `step_ms` (default 10 s) from `start` for `duration_ms` (default
//! 60 minutes). With `s = step_ms / 1000` and `τ` the time since the start:
//!
//! - **Load** (shared by both cohorts): a compressed daily sinusoid
//!   `shape(τ) = 1 + load_amplitude · sin(2π (τ / load_period + load_phase))`
//!   (defaults 0.3, 4 h, 0: a 60-minute recording climbs from 1.0 to 1.3), times a shared
//!   random wiggle `exp(w_τ)`, where `w` is an AR(1) series with coefficient
//!   `load_wiggle_rho` and stationary standard deviation `load_wiggle_sd` (0.95, 0.05). Both
//!   cohorts see the *same* load, as they would behind one load balancer.
//! - **Requests** per step and cohort: `Poisson(load · base_rps · s · traffic_scale)` (default
//!   30 rps, so about 300–400 requests per 10 s step). [`Scenario::requests_total`] rescales
//!   `base_rps` so the expected total per cohort over the recording is a given number.
//! - **Latency**: each request takes `median · exp(σ z)` ms, `z ~ N(0, 1)` (lognormal), with
//!   `median = latency_median_ms · load^latency_load_exponent · exp(latency_jitter_sd · x_τ) ·
//!   latency_scale` (120 ms, 0.3, 0.05) and `σ = latency_sigma · sigma_scale` (0.5); with
//!   probability `slow_fraction` a request is also multiplied by `slow_factor` (a slow path).
//!   `latency_p50` and `latency_p99` are the empirical quantiles (linear interpolation,
//!   R's type 7) of the step's simulated requests, so a change of spread moves p99 but not
//!   p50. A step without requests has no latency rows.
//! - **Errors**: `errors ~ Poisson(requests · error_rate · error_rate_scale ·
//!   exp(error_jitter_sd · x_τ − error_jitter_sd²/2))` (0.0012, 0.2: about 0.36–0.47 errors
//!   per step at the default traffic), capped at `requests`; or, for a cohort listed in
//!   [`Scenario::fixed_errors`], exactly that many errors over the whole recording, each put
//!   in a step drawn with probability proportional to its requests. Emitted as `errors`,
//!   `requests` and `error_rate = errors / requests` (no `error_rate` row without requests).
//! - **CPU** (percent): `cpu_idle + cpu_per_load · cpu_scale · requests / (base_rps · s) +
//!   cpu_noise_sd · x_τ`, clamped to `[0, 100]` (10, 40, 2: about 50–62 %).
//!
//! Each `x_τ` above is a unit-variance AR(1) latent, one per cohort and per metric family
//! (latency, errors, cpu): `x_0 ~ N(0, 1)`, `x_τ = ρ x_{τ−1} + √(1 − ρ²) ε_τ` with `ρ = rho`.
//! The marginal distribution of every metric does not depend on `rho`; only the
//! within-cohort autocorrelation does. The default `rho = 0` gives independent steps; the
//! committed recordings use it.
//!
//! # Effects
//! A [`Scenario`] is a list of [`Effect`]s, each applied to one cohort during
//! `[from_ms, until_ms)` after the start. Multipliers of overlapping effects multiply; slow
//! fractions combine as independent slow paths (`1 − Π(1 − f)`), with the largest factor.
//! [`Scenario::omit`] drops a metric of a cohort from the output (missing data).
//!
//! # Randomness and reproducibility
//! Every random quantity comes from a `ChaCha8Rng::seed_from_u64(seed)` with its own stream
//! number (`set_stream`) per cohort and purpose (load wiggle, requests, latencies, errors,
//! error placement, each latent). So the same seed gives the same numbers whatever the
//! scenario: two scenarios with the same seed and traffic share the baseline exactly, and
//! their canaries differ only by the injected effect. ChaCha8 and `seed_from_u64` are
//! portable; the output is byte-identical for the same seed, parameters and `Cargo.lock`
//! (the distribution samplers come from `rand_distr`, and `exp`/`ln` are the platform's, so
//! a different platform could in principle round a last digit differently).
//!
//! # Speed
//! One 60-minute recording at the default 10 s step simulates about 250 000 requests and takes
//! a few milliseconds in a release build.

use std::io::{self, Write};

use fledge_judges::Side;
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const DEFAULT_START: Millis = 1_767_225_600_000;

/// The metrics a synthetic recording contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Median request latency in the step, ms.
    LatencyP50,
    /// 99th percentile request latency in the step, ms.
    LatencyP99,
    /// `errors / requests` in the step.
    ErrorRate,
    /// Failed requests in the step (count).
    Errors,
    /// Requests in the step (count).
    Requests,
    /// CPU utilisation, percent.
    Cpu,
}

impl Metric {
    /// Every metric, in output order.
    pub const ALL: [Metric; 6] = [
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::ErrorRate,
        Metric::Errors,
        Metric::Requests,
        Metric::Cpu,
    ];

    /// The name in the recording.
    pub fn name(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP99 => "latency_p99",
            Metric::ErrorRate => "error_rate",
            Metric::Errors => "errors",
            Metric::Requests => "requests",
            Metric::Cpu => "cpu",
        }
    }

    /// The metric with this recording name.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Decimal places written to CSV.
    fn decimals(self) -> usize {
        match self {
            Metric::LatencyP50 | Metric::LatencyP99 | Metric::Cpu => 3,
            Metric::ErrorRate => 8,
            Metric::Errors | Metric::Requests => 0,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One point of a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Milliseconds since the Unix epoch.
    pub t: Millis,
    pub metric: Metric,
    pub cohort: Side,
    pub value: f64,
}

/// The model's parameters. See the module docs for what each one does.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// First timestamp, ms since the epoch.
    pub start: Millis,
    /// Length of the recording; steps at `start + i·step_ms` for `i·step_ms < duration_ms`.
    pub duration_ms: i64,
    pub step_ms: i64,
    /// Requests per second at load 1.
    pub base_rps: f64,
    pub load_amplitude: f64,
    pub load_period_ms: i64,
    /// Where in its cycle the load sinusoid starts, as a fraction of the period.
    pub load_phase: f64,
    pub load_wiggle_sd: f64,
    pub load_wiggle_rho: f64,
    pub latency_median_ms: f64,
    /// Lognormal σ of per-request latency.
    pub latency_sigma: f64,
    pub latency_load_exponent: f64,
    /// Per-step jitter of the latency median (σ of its log).
    pub latency_jitter_sd: f64,
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Per-step jitter of the error rate (σ of its log).
    pub error_jitter_sd: f64,
    pub cpu_idle: f64,
    pub cpu_per_load: f64,
    pub cpu_noise_sd: f64,
    /// AR(1) coefficient of the within-cohort latents, in `(-1, 1)`.
    pub rho: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            start: DEFAULT_START,
            duration_ms: 60 * 60_000,
            step_ms: 10_000,
            base_rps: 30.0,
            load_amplitude: 0.3,
            load_period_ms: 4 * 60 * 60_000,
            load_phase: 0.0,
            load_wiggle_sd: 0.05,
            load_wiggle_rho: 0.95,
            latency_median_ms: 120.0,
            latency_sigma: 0.5,
            latency_load_exponent: 0.3,
            latency_jitter_sd: 0.05,
            error_rate: 0.0012,
            error_jitter_sd: 0.2,
            cpu_idle: 10.0,
            cpu_per_load: 40.0,
            cpu_noise_sd: 2.0,
            rho: 0.0,
        }
    }
}

impl Params {
    /// Number of steps.
    pub fn steps(&self) -> usize {
        if self.step_ms <= 0 || self.duration_ms <= 0 {
            return 0;
        }
        ((self.duration_ms + self.step_ms - 1) / self.step_ms) as usize
    }

    /// The deterministic load shape at `offset_ms` after the start (without the wiggle).
    pub fn load_shape(&self, offset_ms: i64) -> f64 {
        let cycles = if self.load_period_ms > 0 {
            offset_ms as f64 / self.load_period_ms as f64
        } else {
            0.0
        };
        1.0 + self.load_amplitude * (std::f64::consts::TAU * (cycles + self.load_phase)).sin()
    }
}

/// A change to one cohort during a time span.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub cohort: Side,
    /// Start of the effect, ms after the recording start (inclusive).
    pub from_ms: i64,
    /// End of the effect, ms after the recording start (exclusive).
    pub until_ms: i64,
    /// Multiplies every request's latency.
    pub latency_scale: f64,
    /// Multiplies the lognormal σ (spread) of latency; the median stays.
    pub sigma_scale: f64,
    /// Fraction of requests that take a slow path.
    pub slow_fraction: f64,
    /// Latency multiplier of the slow path.
    pub slow_factor: f64,
    pub error_rate_scale: f64,
    pub cpu_scale: f64,
    pub traffic_scale: f64,
}

impl Effect {
    /// An effect on `cohort` for the whole recording that changes nothing yet.
    pub fn neutral(cohort: Side) -> Effect {
        Effect {
            cohort,
            from_ms: 0,
            until_ms: i64::MAX,
            latency_scale: 1.0,
            sigma_scale: 1.0,
            slow_fraction: 0.0,
            slow_factor: 1.0,
            error_rate_scale: 1.0,
            cpu_scale: 1.0,
            traffic_scale: 1.0,
        }
    }

    fn active(&self, offset_ms: i64) -> bool {
        self.from_ms <= offset_ms && offset_ms < self.until_ms
    }
}

/// A named set of effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// One line: what the canary does.
    pub summary: String,
    pub effects: Vec<Effect>,
    /// Expected requests per cohort over the whole recording; rescales `base_rps`.
    pub requests_total: Option<f64>,
    /// Cohorts whose errors are a fixed total instead of Poisson draws.
    pub fixed_errors: Vec<(Side, u64)>,
    /// Metrics left out of the output for a cohort.
    pub omit: Vec<(Metric, Side)>,
}

impl Scenario {
    /// A scenario without effects: both cohorts identical in distribution.
    pub fn healthy(name: &str, summary: &str) -> Scenario {
        Scenario {
            name: name.to_string(),
            summary: summary.to_string(),
            effects: Vec::new(),
            requests_total: None,
            fixed_errors: Vec::new(),
            omit: Vec::new(),
        }
    }

    /// Adds an effect.
    pub fn with(mut self, effect: Effect) -> Scenario {
        self.effects.push(effect);
        self
    }
}

/// The names of the built-in scenarios, in [`scenarios`] order.
pub const SCENARIO_NAMES: [&str; 7] = [
    "healthy",
    "latency-p99-up20",
    "errors-x3-sparse",
    "slow-start",
    "missing-canary",
    "variance-only",
    "errors-zero-to-eight",
];

/// The built-in scenarios (the committed test recordings).
pub fn scenarios() -> Vec<Scenario> {
    SCENARIO_NAMES.iter().filter_map(|n| scenario(n)).collect()
}

/// The built-in scenario called `name`.
pub fn scenario(name: &str) -> Option<Scenario> {
    let canary = || Effect::neutral(Side::Canary);
    let s = match name {
        "healthy" => Scenario::healthy(name, "canary identical in distribution to the baseline"),
        "latency-p99-up20" => Scenario::healthy(
            name,
            "2.15% of canary requests take a 3x slow path: p99 +20%, p50 +1.3%",
        )
        .with(Effect {
            slow_fraction: 0.0215,
            slow_factor: 3.0,
            ..canary()
        }),
        "errors-x3-sparse" => Scenario::healthy(
            name,
            "canary error rate x3 (0.12% -> 0.36%): ~0.4 vs ~1.2 errors per step",
        )
        .with(Effect {
            error_rate_scale: 3.0,
            ..canary()
        }),
        "slow-start" => Scenario::healthy(
            name,
            "canary latency x1.4 during the first 10 minutes (cold caches), then identical",
        )
        .with(Effect {
            until_ms: 10 * 60_000,
            latency_scale: 1.4,
            ..canary()
        }),
        "missing-canary" => Scenario {
            omit: vec![(Metric::LatencyP99, Side::Canary)],
            ..Scenario::healthy(name, "healthy, but the canary has no latency_p99 rows")
        },
        "variance-only" => Scenario::healthy(
            name,
            "canary latency spread x1.2 (lognormal sigma 0.5 -> 0.6), same median: p99 +26%",
        )
        .with(Effect {
            sigma_scale: 1.2,
            ..canary()
        }),
        "errors-zero-to-eight" => Scenario {
            requests_total: Some(10_000.0),
            fixed_errors: vec![(Side::Baseline, 0), (Side::Canary, 8)],
            ..Scenario::healthy(
                name,
                "~10,000 requests per cohort; errors: baseline exactly 0, canary exactly 8",
            )
        },
        _ => return None,
    };
    Some(s)
}

/// Stream numbers: one independent ChaCha8 stream per cohort and purpose.
#[derive(Clone, Copy)]
enum Purpose {
    Requests = 0,
    Latency = 1,
    Errors = 2,
    ErrorPlacement = 3,
    LatentLatency = 4,
    LatentErrors = 5,
    LatentCpu = 6,
}

/// The stream of the shared load's wiggle (see [`load`]).
pub const LOAD_STREAM: u64 = 0;

/// The ChaCha8 stream `id` of `seed` (other generators built on this model use ids above 64).
pub fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

fn cohort_stream(seed: u64, cohort: Side, purpose: Purpose) -> ChaCha8Rng {
    let c = match cohort {
        Side::Baseline => 0,
        Side::Canary => 1,
    };
    stream(seed, 1 + c * 16 + purpose as u64)
}

/// A stationary AR(1) series with unit variance (or `sd` times it).
pub fn ar1(rng: &mut ChaCha8Rng, n: usize, rho: f64, sd: f64) -> Vec<f64> {
    let rho = rho.clamp(-0.999_999, 0.999_999);
    let innovation = (1.0 - rho * rho).sqrt();
    let mut out = Vec::with_capacity(n);
    let mut x: f64 = StandardNormal.sample(rng);
    for i in 0..n {
        if i > 0 {
            let e: f64 = StandardNormal.sample(rng);
            x = rho * x + innovation * e;
        }
        out.push(sd * x);
    }
    out
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 || lambda.is_infinite() {
        return 0;
    }
    match Poisson::new(lambda) {
        Ok(d) => {
            let k: f64 = d.sample(rng);
            k as u64
        }
        Err(_) => 0,
    }
}

/// Type-7 (linear interpolation) quantiles of `exp(v)` for the values `v` of `logs`, for
/// ascending probabilities `ps`. Reorders `logs`; `None` when it is empty. Linear time: only
/// the order statistics needed are selected.
fn quantiles<const N: usize>(logs: &mut [f64], ps: [f64; N]) -> Option<[f64; N]> {
    if logs.is_empty() {
        return None;
    }
    let last = logs.len() - 1;
    let mut out = [0.0; N];
    // Everything before `done` is already at its sorted position or below the next selection.
    let mut done = 0;
    for (q, p) in out.iter_mut().zip(ps) {
        let h = last as f64 * p.clamp(0.0, 1.0);
        let k = (h.floor() as usize).clamp(done, last);
        let (_, &mut lo, right) = logs[done..].select_nth_unstable_by(k - done, f64::total_cmp);
        let hi = right.iter().copied().min_by(f64::total_cmp).unwrap_or(lo);
        let (lo, hi) = (lo.exp(), hi.exp());
        *q = lo + (h - k as f64) * (hi - lo);
        done = k;
    }
    Some(out)
}

/// Combined multipliers of the effects active on one cohort at one step.
struct Active {
    latency_scale: f64,
    sigma_scale: f64,
    slow_fraction: f64,
    slow_factor: f64,
    error_rate_scale: f64,
    cpu_scale: f64,
    traffic_scale: f64,
}

fn active(scenario: &Scenario, cohort: Side, offset_ms: i64) -> Active {
    let mut a = Active {
        latency_scale: 1.0,
        sigma_scale: 1.0,
        slow_fraction: 0.0,
        slow_factor: 1.0,
        error_rate_scale: 1.0,
        cpu_scale: 1.0,
        traffic_scale: 1.0,
    };
    let mut fast = 1.0;
    for e in scenario
        .effects
        .iter()
        .filter(|e| e.cohort == cohort && e.active(offset_ms))
    {
        a.latency_scale *= e.latency_scale;
        a.sigma_scale *= e.sigma_scale;
        if e.slow_fraction > 0.0 {
            fast *= 1.0 - e.slow_fraction.clamp(0.0, 1.0);
            a.slow_factor = a.slow_factor.max(e.slow_factor);
        }
        a.error_rate_scale *= e.error_rate_scale;
        a.cpu_scale *= e.cpu_scale;
        a.traffic_scale *= e.traffic_scale;
    }
    a.slow_fraction = 1.0 - fast;
    a
}

/// One cohort's simulated series, one entry per step (`None`: no value at that step).
struct CohortSeries {
    p50: Vec<Option<f64>>,
    p99: Vec<Option<f64>>,
    requests: Vec<u64>,
    errors: Vec<u64>,
    cpu: Vec<f64>,
}

fn simulate_cohort(
    scenario: &Scenario,
    params: &Params,
    seed: u64,
    cohort: Side,
    load: &[f64],
    base_rps: f64,
) -> CohortSeries {
    let n = load.len();
    let step_s = params.step_ms as f64 / 1000.0;
    let mut rng_req = cohort_stream(seed, cohort, Purpose::Requests);
    let mut rng_lat = cohort_stream(seed, cohort, Purpose::Latency);
    let mut rng_err = cohort_stream(seed, cohort, Purpose::Errors);
    let x_lat = ar1(
        &mut cohort_stream(seed, cohort, Purpose::LatentLatency),
        n,
        params.rho,
        1.0,
    );
    let x_err = ar1(
        &mut cohort_stream(seed, cohort, Purpose::LatentErrors),
        n,
        params.rho,
        1.0,
    );
    let x_cpu = ar1(
        &mut cohort_stream(seed, cohort, Purpose::LatentCpu),
        n,
        params.rho,
        1.0,
    );
    let fixed = scenario
        .fixed_errors
        .iter()
        .find(|(c, _)| *c == cohort)
        .map(|&(_, k)| k);

    let mut out = CohortSeries {
        p50: Vec::with_capacity(n),
        p99: Vec::with_capacity(n),
        requests: Vec::with_capacity(n),
        errors: Vec::with_capacity(n),
        cpu: Vec::with_capacity(n),
    };
    let mut buf: Vec<f64> = Vec::new();
    let ejit = params.error_jitter_sd;
    for i in 0..n {
        let offset = i as i64 * params.step_ms;
        let a = active(scenario, cohort, offset);
        let requests = poisson(&mut rng_req, load[i] * base_rps * step_s * a.traffic_scale);

        // Latencies: always two draws per request, so the streams stay aligned whatever the
        // effects are. `buf` holds log(latency / median); only the four order statistics the
        // two quantiles need are exponentiated.
        let median = params.latency_median_ms
            * load[i].powf(params.latency_load_exponent)
            * (params.latency_jitter_sd * x_lat[i]).exp()
            * a.latency_scale;
        let sigma = params.latency_sigma * a.sigma_scale;
        let slow_log = a.slow_factor.ln();
        buf.clear();
        for _ in 0..requests {
            let z: f64 = StandardNormal.sample(&mut rng_lat);
            let u: f64 = rng_lat.random();
            buf.push(if u < a.slow_fraction {
                sigma * z + slow_log
            } else {
                sigma * z
            });
        }
        match quantiles(&mut buf, [0.5, 0.99]) {
            Some([p50, p99]) => {
                out.p50.push(Some(median * p50));
                out.p99.push(Some(median * p99));
            }
            None => {
                out.p50.push(None);
                out.p99.push(None);
            }
        }

        let errors = if fixed.is_some() {
            0
        } else {
            let rate = params.error_rate
                * a.error_rate_scale
                * (ejit * x_err[i] - ejit * ejit / 2.0).exp();
            poisson(&mut rng_err, requests as f64 * rate).min(requests)
        };
        out.errors.push(errors);
        out.requests.push(requests);

        let per_load = if base_rps > 0.0 {
            requests as f64 / (base_rps * step_s)
        } else {
            0.0
        };
        let cpu = params.cpu_idle
            + params.cpu_per_load * a.cpu_scale * per_load
            + params.cpu_noise_sd * x_cpu[i];
        out.cpu.push(cpu.clamp(0.0, 100.0));
    }

    if let Some(k) = fixed {
        place_errors(
            &mut out,
            k,
            &mut cohort_stream(seed, cohort, Purpose::ErrorPlacement),
        );
    }
    out
}

/// Puts `k` errors into steps drawn with probability proportional to their requests (never
/// more errors than requests in a step).
fn place_errors(series: &mut CohortSeries, k: u64, rng: &mut ChaCha8Rng) {
    let mut cumulative: Vec<u64> = Vec::with_capacity(series.requests.len());
    let mut total = 0u64;
    for &r in &series.requests {
        total += r;
        cumulative.push(total);
    }
    let k = k.min(total);
    let mut placed = 0;
    while placed < k {
        let pick = rng.random_range(0..total);
        let i = cumulative.partition_point(|&c| c <= pick);
        if series.errors[i] < series.requests[i] {
            series.errors[i] += 1;
            placed += 1;
        }
    }
}

/// The shared load of every step: the sinusoid times the AR(1) wiggle (module docs), from
/// stream [`LOAD_STREAM`] of `seed`.
pub fn load(params: &Params, seed: u64) -> Vec<f64> {
    let n = params.steps();
    let wiggle = ar1(
        &mut stream(seed, LOAD_STREAM),
        n,
        params.load_wiggle_rho,
        params.load_wiggle_sd,
    );
    (0..n)
        .map(|i| params.load_shape(i as i64 * params.step_ms) * wiggle[i].exp())
        .collect()
}

/// Generates the recording of `scenario` under `params` from `seed`, time-major: for each
/// step, each metric in [`Metric::ALL`] order, baseline then canary.
pub fn generate(scenario: &Scenario, params: &Params, seed: u64) -> Vec<Row> {
    let n = params.steps();
    let step_s = params.step_ms as f64 / 1000.0;
    let load = load(params, seed);
    let base_rps = match scenario.requests_total {
        Some(total) => {
            let expected: f64 = (0..n)
                .map(|i| params.load_shape(i as i64 * params.step_ms))
                .sum();
            if expected > 0.0 && step_s > 0.0 {
                total / (expected * step_s)
            } else {
                0.0
            }
        }
        None => params.base_rps,
    };
    let cohorts = [Side::Baseline, Side::Canary]
        .map(|c| simulate_cohort(scenario, params, seed, c, &load, base_rps));

    let keep = |m: Metric, c: Side| !scenario.omit.contains(&(m, c));
    let mut rows = Vec::with_capacity(n * Metric::ALL.len() * 2);
    for i in 0..n {
        let t = params.start + i as i64 * params.step_ms;
        for metric in Metric::ALL {
            for (c, side) in [Side::Baseline, Side::Canary].into_iter().enumerate() {
                if !keep(metric, side) {
                    continue;
                }
                let s = &cohorts[c];
                let value = match metric {
                    Metric::LatencyP50 => s.p50[i],
                    Metric::LatencyP99 => s.p99[i],
                    Metric::ErrorRate => {
                        (s.requests[i] > 0).then(|| s.errors[i] as f64 / s.requests[i] as f64)
                    }
                    Metric::Errors => Some(s.errors[i] as f64),
                    Metric::Requests => Some(s.requests[i] as f64),
                    Metric::Cpu => Some(s.cpu[i]),
                };
                if let Some(value) = value {
                    rows.push(Row {
                        t,
                        metric,
                        cohort: side,
                        value,
                    });
                }
            }
        }
    }
    rows
}

/// The values of one metric and cohort, in time order.
pub fn values(rows: &[Row], metric: Metric, cohort: Side) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.metric == metric && r.cohort == cohort)
        .map(|r| r.value)
        .collect()
}

/// Formats a timestamp as RFC 3339 with `Z` (fractional seconds only when not whole).
pub fn format_timestamp(t: Millis) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t) {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => t.to_string(),
    }
}

/// Writes `rows` as a recording: the header `timestamp,metric,cohort,value`, then one line
/// per row. Latencies and CPU have 3 decimals, `error_rate` 8, counts none.
pub fn write_csv<W: Write>(rows: &[Row], w: W) -> io::Result<()> {
    let mut w = io::BufWriter::new(w);
    w.write_all(b"timestamp,metric,cohort,value\n")?;
    let mut last: Option<(Millis, String)> = None;
    for r in rows {
        if last.as_ref().is_none_or(|(t, _)| *t != r.t) {
            last = Some((r.t, format_timestamp(r.t)));
        }
        let ts = &last.as_ref().expect("set above").1;
        writeln!(
            w,
            "{ts},{},{},{:.*}",
            r.metric.name(),
            r.cohort,
            r.metric.decimals(),
            r.value
        )?;
    }
    w.flush()
}

/// [`write_csv`] into a `String`.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = Vec::new();
    write_csv(rows, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the CSV is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Type-7 quantile of sorted values, the slow way.
    fn sorted_quantile(sorted: &[f64], p: f64) -> f64 {
        let h = (sorted.len() - 1) as f64 * p;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
    }

    #[test]
    fn quantiles_match_sorting() {
        let mut rng = stream(42, 0);
        for n in [1usize, 2, 3, 7, 100, 101, 350] {
            let logs: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
            let mut sorted: Vec<f64> = logs.iter().map(|v| v.exp()).collect();
            sorted.sort_by(f64::total_cmp);
            let ps = [0.0, 0.5, 0.9, 0.99, 1.0];
            let got = quantiles(&mut logs.clone(), ps).unwrap();
            for (g, p) in got.iter().zip(ps) {
                let want = sorted_quantile(&sorted, p);
                assert!(
                    (g - want).abs() <= 1e-12 * want.abs(),
                    "n {n} p {p}: {g} vs {want}"
                );
            }
        }
        assert!(quantiles(&mut [], [0.5]).is_none());
    }

    #[test]
    fn ar1_has_unit_variance_and_the_asked_correlation() {
        let x = ar1(&mut stream(3, 9), 20_000, 0.8, 1.0);
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64;
        let lag1 =
            x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum::<f64>() / (x.len() as f64 * var);
        assert!((var - 1.0).abs() < 0.1, "variance {var}");
        assert!((lag1 - 0.8).abs() < 0.03, "lag-1 correlation {lag1}");
    }

    #[test]
    fn fixed_errors_never_exceed_requests() {
        let mut s = CohortSeries {
            p50: vec![],
            p99: vec![],
            requests: vec![0, 1, 0, 2],
            errors: vec![0; 4],
            cpu: vec![],
        };
        place_errors(&mut s, 10, &mut stream(1, 5));
        assert_eq!(s.errors, vec![0, 1, 0, 2]);
    }
}
