//! The service's Prometheus metrics (prometheus-client, one explicit registry). Every name
//! starts with `fledge_`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Handles on every metric, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// Runs that reached a status, by kind and status.
    pub transitions: Family<Labels, Counter>,
    /// Runs being driven now, by kind.
    pub active: Family<Labels, Gauge>,
    /// Interval verdicts and final verdicts, by kind (`interval`, `final`) and verdict.
    pub verdicts: Family<Labels, Counter>,
    /// Seconds to judge one interval.
    pub judge_seconds: Histogram,
    /// Seconds to fetch one interval's windows.
    pub fetch_seconds: Histogram,
    /// Errors from traffic routers (rollouts), by router.
    pub router_errors: Family<Labels, Counter>,
    /// HTTP requests, by method, route and status code.
    pub http_requests: Family<Labels, Counter>,
    /// Seconds to answer an HTTP request, by method and route.
    pub http_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Rollouts in the store, by status (set when `/metrics` is read).
    pub rollouts: Family<Labels, Gauge>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fledge");
        let transitions = Family::<Labels, Counter>::default();
        registry.register(
            "runs_status_transitions",
            "Runs that reached a status, by kind and status",
            transitions.clone(),
        );
        let active = Family::<Labels, Gauge>::default();
        registry.register(
            "runs_active",
            "Runs being driven now, by kind",
            active.clone(),
        );
        let verdicts = Family::<Labels, Counter>::default();
        registry.register(
            "verdicts",
            "Verdicts, per interval and final, by verdict",
            verdicts.clone(),
        );
        let judge_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "judge_seconds",
            "Time to judge one interval",
            judge_seconds.clone(),
        );
        let fetch_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "fetch_seconds",
            "Time to fetch one interval's windows",
            fetch_seconds.clone(),
        );
        let router_errors = Family::<Labels, Counter>::default();
        registry.register(
            "router_errors",
            "Errors from traffic routers, by router type",
            router_errors.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests, by method, route and status",
            http_requests.clone(),
        );
        let http_seconds: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_buckets);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            http_seconds.clone(),
        );
        let rollouts = Family::<Labels, Gauge>::default();
        registry.register(
            "rollouts",
            "Rollouts in the store, by status",
            rollouts.clone(),
        );
        Metrics {
            registry,
            http_seconds,
            rollouts,
            transitions,
            active,
            verdicts,
            judge_seconds,
            fetch_seconds,
            router_errors,
            http_requests,
        }
    }
}

/// A label set from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
