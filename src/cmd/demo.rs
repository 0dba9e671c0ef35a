//! `fledge demo` (hidden): a small HTTP service with a configurable latency and error rate,
//! instrumented like a real one, to try fledge on one machine and to test it end to end.
//!
//! - `GET /` answers after a latency drawn from a log-normal distribution whose median is
//!   `--latency-ms` (spread σ = 0.25: the p99 is about 1.8 × the median) and fails with 500
//!   with probability `--error-rate`.
//! - `GET /metrics` exposes (OpenMetrics text) `http_request_duration_seconds` (histogram)
//!   and `http_requests_total{code}`, both labelled `version`.
//! - `--synthetic-rps N` also records N simulated requests per second internally, so there is
//!   data without a load generator.
//! - `GET /admin/config` shows the effects; `POST /admin/config` with JSON such as
//!   `{"latency_ms": 200, "error_rate": 0.05, "synthetic_rps": 50}` changes them at run time
//!   (any subset), e.g. to inject a regression mid-run.
//!
//! It listens only where `--listen` says (default 127.0.0.1:8080) and stops on Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::analyze::runtime;

/// Spread (σ of the log) of the latency distribution.
const SIGMA: f64 = 0.25;
/// Histogram bucket bounds, in seconds: dense where the demo's latencies fall.
const BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The `version` label of every series.
    #[arg(long, default_value = "v1")]
    version: String,
    /// Median latency of a request, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    latency_ms: f64,
    /// Probability that a request fails with 500, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Simulated requests per second, recorded without serving them.
    #[arg(long, default_value_t = 0.0)]
    synthetic_rps: f64,
    /// Seed of the random draws (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// What can be changed at run time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Effects {
    latency_ms: f64,
    error_rate: f64,
    synthetic_rps: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EffectsPatch {
    latency_ms: Option<f64>,
    error_rate: Option<f64>,
    synthetic_rps: Option<f64>,
}

impl Effects {
    fn check(&self) -> Result<(), String> {
        if !(self.latency_ms.is_finite() && self.latency_ms >= 0.0 && self.latency_ms <= 60_000.0) {
            return Err(format!(
                "latency_ms {} must be in [0, 60000]",
                self.latency_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate {} must be in [0, 1]", self.error_rate));
        }
        if !(self.synthetic_rps.is_finite() && (0.0..=100_000.0).contains(&self.synthetic_rps)) {
            return Err(format!(
                "synthetic_rps {} must be in [0, 100000]",
                self.synthetic_rps
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    version: String,
    code: String,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

struct Demo {
    version: String,
    effects: RwLock<Effects>,
    rng: Mutex<ChaCha8Rng>,
    registry: Registry,
    latency: Family<VersionLabels, Histogram, fn() -> Histogram>,
    requests: Family<CodeLabels, Counter>,
}

impl Demo {
    fn effects(&self) -> Effects {
        *self.effects.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws one request: its latency in seconds and whether it fails.
    fn draw(&self) -> (f64, bool) {
        let e = self.effects();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let z: f64 = StandardNormal.sample(&mut *rng);
        let latency = e.latency_ms / 1000.0 * (SIGMA * z).exp();
        let failed = rng.random::<f64>() < e.error_rate;
        (latency, failed)
    }

    fn observe(&self, latency: f64, failed: bool) {
        self.latency
            .get_or_create(&VersionLabels {
                version: self.version.clone(),
            })
            .observe(latency);
        self.requests
            .get_or_create(&CodeLabels {
                version: self.version.clone(),
                code: if failed { "500" } else { "200" }.to_owned(),
            })
            .inc();
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let effects = Effects {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        synthetic_rps: args.synthetic_rps,
    };
    if let Err(e) = effects.check() {
        bail!("{e}");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id())
    });
    let mut registry = Registry::default();
    let latency = Family::<VersionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
        histogram as fn() -> Histogram,
    );
    let requests = Family::<CodeLabels, Counter>::default();
    registry.register(
        "http_request_duration_seconds",
        "Time to answer a request",
        latency.clone(),
    );
    registry.register(
        "http_requests",
        "Requests answered, by status code",
        requests.clone(),
    );
    // Every series exists from the start, so rates and ratios have both sides at once.
    for code in ["200", "500"] {
        let _ = requests.get_or_create(&CodeLabels {
            version: args.version.clone(),
            code: code.to_owned(),
        });
    }
    let _ = latency.get_or_create(&VersionLabels {
        version: args.version.clone(),
    });
    let demo = Arc::new(Demo {
        version: args.version.clone(),
        effects: RwLock::new(effects),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        registry,
        latency,
        requests,
    });
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        tokio::spawn(synthetic(Arc::clone(&demo)));
        let app = Router::new()
            .route("/", get(serve))
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/admin/config", get(show_config).post(set_config))
            .with_state(Arc::clone(&demo));
        eprintln!(
            "fledge demo {} listening on http://{local}/ (metrics on /metrics)",
            demo.version
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(super::interrupted())
            .await
            .context("the demo server failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Response header on every answer of `/`: `1` on an injected error, `0` otherwise.
pub const INJECTED_HEADER: &str = "x-fledge-demo-injected";

async fn serve(State(demo): State<Arc<Demo>>) -> impl IntoResponse {
    let (latency, failed) = demo.draw();
    tokio::time::sleep(Duration::from_secs_f64(latency.min(60.0))).await;
    demo.observe(latency, failed);
    if failed {
        // The marker tells a load generator this 500 is the demo's, not a proxy's.
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(INJECTED_HEADER, "1")],
            format!("{}: injected error\n", demo.version),
        )
    } else {
        (
            StatusCode::OK,
            [(INJECTED_HEADER, "0")],
            format!("{}: ok\n", demo.version),
        )
    }
}

async fn metrics(State(demo): State<Arc<Demo>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &demo.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {e}\n"),
        ),
    }
}

async fn show_config(State(demo): State<Arc<Demo>>) -> Json<Effects> {
    Json(demo.effects())
}

async fn set_config(
    State(demo): State<Arc<Demo>>,
    Json(patch): Json<EffectsPatch>,
) -> Result<Json<Effects>, (StatusCode, String)> {
    let mut e = demo.effects();
    e.latency_ms = patch.latency_ms.unwrap_or(e.latency_ms);
    e.error_rate = patch.error_rate.unwrap_or(e.error_rate);
    e.synthetic_rps = patch.synthetic_rps.unwrap_or(e.synthetic_rps);
    e.check().map_err(|m| (StatusCode::BAD_REQUEST, m + "\n"))?;
    *demo.effects.write().unwrap_or_else(|p| p.into_inner()) = e;
    eprintln!(
        "fledge demo {}: latency_ms {}, error_rate {}, synthetic_rps {}",
        demo.version, e.latency_ms, e.error_rate, e.synthetic_rps
    );
    Ok(Json(e))
}

/// Records `synthetic_rps` simulated requests per second, in 10 ms ticks.
async fn synthetic(demo: Arc<Demo>) {
    let tick = Duration::from_millis(10);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut owed = 0.0f64;
    loop {
        ticker.tick().await;
        let now = tokio::time::Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        owed += demo.effects().synthetic_rps * dt;
        // Never catch up more than a second's worth after a stall.
        owed = owed.min(demo.effects().synthetic_rps.max(1.0));
        while owed >= 1.0 {
            owed -= 1.0;
            let (latency, failed) = demo.draw();
            demo.observe(latency, failed);
        }
    }
}
