//! Direct scraping: reads the baseline and canary instances' `/metrics` pages (Prometheus text
//! format or OpenMetrics, parsed with `prometheus-parse`) once per step, so a small setup needs
//! no Prometheus server.
//!
//! Scraping starts when the source is built and runs on a tokio task until it is dropped.
//! Every step, all instances are scraped at once; a cohort's point for that step is made only
//! when every one of its instances answered. Each metric's `scrape:` says what the point is:
//!
//! - `rate: true`: the per-second increase of the matching counter series since the previous
//!   scrape (a counter that went down was reset and counts from 0; a series that appears
//!   counts from 0), combined over series and instances by `aggregate` (default `sum`);
//! - `quantile: q`: for a histogram, the q-quantile of the observations made since the
//!   previous scrape: the bucket increases of all matching series and instances are added up
//!   and interpolated as `histogram_quantile` does (NaN when nothing was observed); for a
//!   summary, the exposed q-quantile, averaged over the series;
//! - otherwise the matching gauge values, combined by `aggregate`;
//! - `divide_by`: the value divided by another metric read the same way (`NaN` for 0/0).
//!
//! There is no history: the data starts with the first scrape. A failed scrape, or a metric
//! that an instance does not expose, becomes a problem for the windows it falls in, so the
//! metric is judged `error`, never `pass`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use fledge_judges::Side;
use prometheus_parse::{Sample, Value};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::{
    BoxFuture, Credentials, FetchRange, LiveData, MetricSource, SourceError, error_chain, now_ms,
    read_body,
};
use crate::config::{Aggregate, Config, ScrapeQuery};
use crate::engine::{Millis, format_time};
use crate::recording::{MetricSeries, Recording, Series};
use crate::replay::series_window;

const BODY_LIMIT: usize = 32 << 20;

/// Scrapes `/metrics` pages in the background.
#[derive(Debug)]
pub struct ScrapeSource {
    inner: Arc<Inner>,
    task: tokio::task::AbortHandle,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    targets: [Vec<reqwest::Url>; 2],
    step: Millis,
    credentials: Option<Credentials>,
    metrics: Vec<(String, ScrapeQuery)>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    data: Recording,
    /// Per cohort: when a scrape failed, and why.
    failures: [Vec<(Millis, String)>; 2],
    /// Per metric: when it could not be read from a successful scrape, and why.
    missing: BTreeMap<String, Vec<(Millis, String)>>,
}

/// One cohort's scrape at one time: every instance's samples.
struct Round {
    t: Millis,
    targets: Vec<Vec<Sample>>,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Baseline => 0,
        Side::Canary => 1,
    }
}

impl ScrapeSource {
    /// Builds the source from a config whose `source.type` is `scrape` and starts scraping.
    /// Must be called inside a tokio runtime.
    pub fn start(config: &Config) -> Result<ScrapeSource, SourceError> {
        let source = config.source.as_ref().ok_or(SourceError::NoSource)?;
        let parse = |urls: &[String]| -> Result<Vec<reqwest::Url>, SourceError> {
            urls.iter()
                .map(|u| {
                    crate::config::check_url(u).map_err(|message| SourceError::Unavailable {
                        source_name: "scrape".to_owned(),
                        message,
                    })
                })
                .collect()
        };
        let metrics = config
            .metrics
            .iter()
            .enumerate()
            .map(|(index, m)| match &m.scrape {
                Some(q) => Ok((m.name.clone(), q.clone())),
                None => Err(SourceError::Metric {
                    index,
                    metric: m.name.clone(),
                    message: "has no `scrape:`".to_owned(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = source.timeout().to_std();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("fledge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Client(error_chain(&e)))?;
        let inner = Arc::new(Inner {
            client,
            targets: [parse(&source.baseline)?, parse(&source.canary)?],
            step: i64::try_from(source.step().as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            credentials: Credentials::from_config(config)?,
            metrics,
            state: Mutex::new(State::default()),
        });
        let task = tokio::spawn(run(Arc::clone(&inner))).abort_handle();
        Ok(ScrapeSource { inner, task })
    }
}

impl Drop for ScrapeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(StdDuration::from_millis(inner.step as u64));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut prev: [Option<Round>; 2] = [None, None];
    loop {
        ticker.tick().await;
        let t = now_ms();
        let (b, c) = tokio::join!(
            inner.scrape(Side::Baseline, t),
            inner.scrape(Side::Canary, t)
        );
        for (side, result) in [(Side::Baseline, b), (Side::Canary, c)] {
            match result {
                Ok(round) => {
                    inner.record(side, &round, prev[idx(side)].as_ref());
                    prev[idx(side)] = Some(round);
                }
                Err(message) => {
                    tracing::warn!(%side, error = %message, "scrape failed");
                    lock(&inner.state).failures[idx(side)].push((t, message));
                }
            }
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn describe(&self) -> String {
        let list = |v: &[reqwest::Url]| {
            v.iter()
                .map(|u| u.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "scrape (baseline {}; canary {})",
            list(&self.targets[0]),
            list(&self.targets[1])
        )
    }

    /// Scrapes every instance of `side` at once.
    async fn scrape(&self, side: Side, t: Millis) -> Result<Round, String> {
        let mut set = JoinSet::new();
        for (i, url) in self.targets[idx(side)].iter().enumerate() {
            let client = self.client.clone();
            let url = url.clone();
            let credentials = self.credentials.clone();
            set.spawn(async move { (i, scrape_one(&client, &url, credentials.as_ref(), t).await) });
        }
        let mut targets: Vec<Option<Vec<Sample>>> = vec![None; self.targets[idx(side)].len()];
        let mut errors = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, Ok(samples))) => targets[i] = Some(samples),
                Ok((i, Err(e))) => {
                    errors.push(format!("{}: {e}", self.targets[idx(side)][i]));
                }
                Err(e) => errors.push(format!("scrape task failed: {e}")),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(Round {
            t,
            targets: targets.into_iter().map(Option::unwrap_or_default).collect(),
        })
    }

    /// Turns one round into a point per metric.
    fn record(&self, side: Side, round: &Round, prev: Option<&Round>) {
        let mut state = lock(&self.state);
        for (name, q) in &self.metrics {
            match point(q, round, prev, &self.targets[idx(side)]) {
                Ok(Some(v)) => {
                    let m = state.data.metrics.entry(name.clone()).or_default();
                    let s = match side {
                        Side::Baseline => &mut m.baseline,
                        Side::Canary => &mut m.canary,
                    };
                    s.push(round.t, v);
                }
                Ok(None) => {}
                Err(message) => {
                    state
                        .missing
                        .entry(name.clone())
                        .or_default()
                        .push((round.t, format!("{side}: {message}")));
                }
            }
        }
    }
}

async fn scrape_one(
    client: &reqwest::Client,
    url: &reqwest::Url,
    credentials: Option<&Credentials>,
    t: Millis,
) -> Result<Vec<Sample>, String> {
    let mut request = client.get(url.clone()).header(
        reqwest::header::ACCEPT,
        "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5,*/*;q=0.1",
    );
    if let Some(c) = credentials {
        request = c.apply(request);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("timed out: {}", error_chain(&e))
        } else {
            error_chain(&e)
        }
    })?;
    let status = response.status();
    let body = read_body(response, BODY_LIMIT).await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let text = String::from_utf8(body).map_err(|_| "the page is not UTF-8 text".to_owned())?;
    let at = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
    prometheus_parse::Scrape::parse_at(text.lines().map(|l| Ok(l.to_owned())), at)
        .map(|s| s.samples)
        .map_err(|e| format!("cannot parse the page: {e}"))
}

/// Whether `s` is a series of `metric` with the wanted label values.
fn matches(s: &Sample, metric: &str, labels: &BTreeMap<String, String>) -> bool {
    s.metric == metric
        && labels
            .iter()
            .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
}

/// A series' identity across scrapes: instance and labels.
fn series_key(target: usize, s: &Sample) -> (usize, String) {
    let mut labels: Vec<(&String, &String)> = s.labels.iter().collect();
    labels.sort();
    (target, format!("{labels:?}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Counter(_) => "a counter",
        Value::Gauge(_) => "a gauge",
        Value::Untyped(_) => "an untyped metric",
        Value::Histogram(_) => "a histogram",
        Value::Summary(_) => "a summary",
    }
}

fn scalar(v: &Value) -> Option<f64> {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(*x),
        _ => None,
    }
}

/// The point of one metric in one round; `Ok(None)` when there is none yet (a rate needs two
/// scrapes) or no series matched a gauge.
fn point(
    q: &ScrapeQuery,
    round: &Round,
    prev: Option<&Round>,
    urls: &[reqwest::Url],
) -> Result<Option<f64>, String> {
    if let Some(quantile) = q.quantile {
        return quantile_point(q, quantile, round, prev, urls);
    }
    let num = scalar_point(&q.metric, &q.labels, q.rate, q.aggregate, round, prev, urls)?;
    let Some(d) = &q.divide_by else {
        return Ok(num);
    };
    let den = scalar_point(&d.metric, &d.labels, q.rate, q.aggregate, round, prev, urls)?;
    Ok(match (num, den) {
        (Some(n), Some(d)) => Some(if d == 0.0 { f64::NAN } else { n / d }),
        _ => None,
    })
}

/// Why `metric` has no usable series: not exposed at all, or not as the wanted kind.
fn not_exposed(metric: &str, round: &Round, urls: &[reqwest::Url], wanted: &str) -> String {
    let found = round
        .targets
        .iter()
        .flatten()
        .find(|s| s.metric == metric)
        .map(|s| kind(&s.value));
    match found {
        Some(k) => format!("`{metric}` is {k}, not {wanted}"),
        None => {
            let list: Vec<&str> = urls.iter().map(reqwest::Url::as_str).collect();
            format!(
                "`{metric}` is not exposed by {} (for a histogram give its base name with \
                 `quantile`; for its count use `{metric}_count` with `rate: true`)",
                list.join(", ")
            )
        }
    }
}

fn scalar_point(
    metric: &str,
    labels: &BTreeMap<String, String>,
    rate: bool,
    aggregate: Aggregate,
    round: &Round,
    prev: Option<&Round>,
    urls: &[reqwest::Url],
) -> Result<Option<f64>, String> {
    let exposed = round
        .targets
        .iter()
        .flatten()
        .any(|s| s.metric == metric && scalar(&s.value).is_some());
    if !exposed {
        let wanted = if rate { "a counter" } else { "a gauge" };
        return Err(not_exposed(metric, round, urls, wanted));
    }
    let current = |r: &Round| -> HashMap<(usize, String), f64> {
        r.targets
            .iter()
            .enumerate()
            .flat_map(|(i, samples)| {
                samples
                    .iter()
                    .filter(|s| matches(s, metric, labels))
                    .filter_map(move |s| Some((series_key(i, s), scalar(&s.value)?)))
            })
            .collect()
    };
    let now = current(round);
    let values: Vec<f64> = if rate {
        let Some(prev) = prev else {
            return Ok(None);
        };
        let dt = (round.t - prev.t) as f64 / 1000.0;
        if dt <= 0.0 {
            return Ok(None);
        }
        let before = current(prev);
        now.iter()
            .map(|(key, &v)| {
                let increase = match before.get(key) {
                    Some(&b) if v >= b => v - b,
                    // Reset, or a series that appeared: it counted from 0.
                    _ => v,
                };
                increase / dt
            })
            .collect()
    } else {
        now.values().copied().collect()
    };
    if values.is_empty() {
        // A counter no instance has incremented yet is 0; an absent gauge is no point.
        return Ok((rate && aggregate == Aggregate::Sum).then_some(0.0));
    }
    Ok(Some(match aggregate {
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }))
}

fn quantile_point(
    q: &ScrapeQuery,
    quantile: f64,
    round: &Round,
    prev: Option<&Round>,
    urls: &[reqwest::Url],
) -> Result<Option<f64>, String> {
    let all = || {
        round
            .targets
            .iter()
            .flatten()
            .filter(|s| s.metric == q.metric)
    };
    let is_histogram = all().any(|s| matches!(s.value, Value::Histogram(_)));
    let is_summary = all().any(|s| matches!(s.value, Value::Summary(_)));
    if is_summary && !is_histogram {
        let values: Vec<f64> = all()
            .filter(|s| matches(s, &q.metric, &q.labels))
            .filter_map(|s| match &s.value {
                Value::Summary(qs) => qs
                    .iter()
                    .find(|c| (c.quantile - quantile).abs() < 1e-9)
                    .map(|c| c.count),
                _ => None,
            })
            .collect();
        if values.is_empty() {
            return Err(format!(
                "summary `{}` has no matching series with quantile {quantile}",
                q.metric
            ));
        }
        return Ok(Some(values.iter().sum::<f64>() / values.len() as f64));
    }
    if !is_histogram {
        return Err(not_exposed(
            &q.metric,
            round,
            urls,
            "a histogram or summary",
        ));
    }
    let Some(prev) = prev else {
        return Ok(None);
    };
    let buckets = |r: &Round| -> HashMap<(usize, String), Vec<(f64, f64)>> {
        r.targets
            .iter()
            .enumerate()
            .flat_map(|(i, samples)| {
                samples
                    .iter()
                    .filter(|s| matches(s, &q.metric, &q.labels))
                    .filter_map(move |s| match &s.value {
                        Value::Histogram(h) => Some((
                            series_key(i, s),
                            h.iter().map(|c| (c.less_than, c.count)).collect(),
                        )),
                        _ => None,
                    })
            })
            .collect()
    };
    let (now, before) = (buckets(round), buckets(prev));
    // Increase per upper bound, over every series and instance.
    let mut increase: Vec<(f64, f64)> = Vec::new();
    for (key, cur) in &now {
        let old: HashMap<u64, f64> = before
            .get(key)
            .map(|b| b.iter().map(|&(le, c)| (le.to_bits(), c)).collect())
            .unwrap_or_default();
        let reset = cur
            .iter()
            .any(|&(le, c)| old.get(&le.to_bits()).is_some_and(|&o| c < o));
        for &(le, c) in cur {
            let d = if reset {
                c
            } else {
                c - old.get(&le.to_bits()).copied().unwrap_or(0.0)
            };
            match increase.iter_mut().find(|(l, _)| *l == le) {
                Some(slot) => slot.1 += d,
                None => increase.push((le, d)),
            }
        }
    }
    Ok(Some(histogram_quantile(quantile, &mut increase)))
}

/// `histogram_quantile` over cumulative buckets `(upper bound, count)`, as Prometheus computes
/// it: linear interpolation inside the bucket holding the rank; the lowest bucket starts at 0
/// (when its bound is positive); a rank in the `+Inf` bucket gives the highest finite bound.
/// NaN when there are no observations or no `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(last_le, total)) = buckets.last() else {
        return f64::NAN;
    };
    if last_le != f64::INFINITY || total <= 0.0 || buckets.len() < 2 || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Counts are cumulative; keep them monotonic as Prometheus does.
    let mut running = 0.0f64;
    for b in buckets.iter_mut() {
        running = running.max(b.1);
        b.1 = running;
    }
    let rank = q * total;
    let i = buckets
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(buckets.len() - 1);
    if i == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if i == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (start, prev_count) = if i == 0 {
        (0.0, 0.0)
    } else {
        (buckets[i - 1].0, buckets[i - 1].1)
    };
    let (end, count) = (buckets[i].0, buckets[i].1 - prev_count);
    if count <= 0.0 {
        return end;
    }
    start + (end - start) * ((rank - prev_count) / count)
}

impl MetricSource for ScrapeSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn has_history(&self) -> bool {
        false
    }

    fn step(&self) -> Millis {
        self.inner.step
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            let t = now_ms();
            let (b, c) = tokio::join!(
                self.inner.scrape(Side::Baseline, t),
                self.inner.scrape(Side::Canary, t)
            );
            let errors: Vec<String> = [b.err(), c.err()].into_iter().flatten().collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(SourceError::Unavailable {
                    source_name: "scrape".to_owned(),
                    message: errors.join("; "),
                })
            }
        })
    }

    fn fetch(&self, range: FetchRange) -> BoxFuture<'_, LiveData> {
        Box::pin(async move {
            let state = lock(&self.inner.state);
            let mut data = LiveData::default();
            let within = |t: Millis, side: Side| {
                let (a, b) = range.side(side);
                a <= t && t < b
            };
            let mut failed = Vec::new();
            for side in [Side::Baseline, Side::Canary] {
                let fails: Vec<&(Millis, String)> = state.failures[idx(side)]
                    .iter()
                    .filter(|(t, _)| within(*t, side))
                    .collect();
                if let Some((t, message)) = fails.last() {
                    failed.push(format!(
                        "{} of the {side} scrapes in the window failed, the last at {}: {message}",
                        fails.len(),
                        format_time(*t)
                    ));
                }
            }
            for (name, _) in &self.inner.metrics {
                if !failed.is_empty() {
                    data.problems.insert(name.clone(), failed.join("; "));
                    continue;
                }
                let missing = state.missing.get(name).and_then(|list| {
                    list.iter().rev().find(|(t, m)| {
                        within(*t, Side::Baseline) && m.starts_with("baseline")
                            || within(*t, Side::Canary) && m.starts_with("canary")
                    })
                });
                if let Some((_, message)) = missing {
                    data.problems.insert(name.clone(), message.clone());
                    continue;
                }
                let owned = |s: &Series, side: Side| {
                    let (a, b) = range.side(side);
                    let w = series_window(s, a, b);
                    Series {
                        t: w.t.to_vec(),
                        v: w.v.to_vec(),
                    }
                };
                let m = state.data.metrics.get(name).cloned().unwrap_or_default();
                data.recording.metrics.insert(
                    name.clone(),
                    MetricSeries {
                        baseline: owned(&m.baseline, Side::Baseline),
                        canary: owned(&m.canary, Side::Canary),
                    },
                );
            }
            data
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let mut b = vec![(0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (f64::INFINITY, 40.0)];
        // rank 20 of 40 falls halfway into (0.1, 0.2].
        assert!((histogram_quantile(0.5, &mut b) - 0.15).abs() < 1e-12);
        // rank 4: 40% into (0, 0.1].
        assert!((histogram_quantile(0.1, &mut b) - 0.04).abs() < 1e-12);
        assert!((histogram_quantile(1.0, &mut b) - 0.5).abs() < 1e-12);
        // Observations beyond the last finite bound: that bound.
        let mut b = vec![(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &mut b), 0.1);
        // Nothing observed, or no +Inf bucket: NaN.
        assert!(histogram_quantile(0.5, &mut [(0.1, 0.0), (f64::INFINITY, 0.0)]).is_nan());
        assert!(histogram_quantile(0.5, &mut [(0.1, 3.0), (0.2, 5.0)]).is_nan());
        // Unsorted input is sorted.
        let mut b = vec![(f64::INFINITY, 40.0), (0.2, 30.0), (0.1, 10.0), (0.5, 40.0)];
        assert!((histogram_quantile(0.5, &mut b) - 0.15).abs() < 1e-12);
    }

    fn round(t: Millis, page: &str) -> Round {
        let at = DateTime::<Utc>::from_timestamp_millis(t).unwrap();
        let samples =
            prometheus_parse::Scrape::parse_at(page.lines().map(|l| Ok(l.to_owned())), at)
                .unwrap()
                .samples;
        Round {
            t,
            targets: vec![samples],
        }
    }

    fn query(yaml: &str) -> ScrapeQuery {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
    }

    const PAGE1: &str = "# TYPE http_requests counter\n\
        http_requests_total{code=\"200\",version=\"v1\"} 100\n\
        http_requests_total{code=\"500\",version=\"v1\"} 1\n\
        # TYPE lat histogram\n\
        lat_bucket{le=\"0.1\"} 10\nlat_bucket{le=\"0.2\"} 20\nlat_bucket{le=\"+Inf\"} 20\n\
        lat_sum 3\nlat_count 20\n\
        # TYPE temp gauge\ntemp{zone=\"a\"} 20\ntemp{zone=\"b\"} 30\n\
        # EOF\n";
    const PAGE2: &str = "# TYPE http_requests counter\n\
        http_requests_total{code=\"200\",version=\"v1\"} 118\n\
        http_requests_total{code=\"500\",version=\"v1\"} 3\n\
        # TYPE lat histogram\n\
        lat_bucket{le=\"0.1\"} 10\nlat_bucket{le=\"0.2\"} 30\nlat_bucket{le=\"+Inf\"} 40\n\
        lat_sum 9\nlat_count 40\n\
        # TYPE temp gauge\ntemp{zone=\"a\"} 22\ntemp{zone=\"b\"} 30\n";

    #[test]
    fn counters_become_rates_and_ratios() {
        let (r1, r2) = (round(0, PAGE1), round(2000, PAGE2));
        let urls = [reqwest::Url::parse("http://127.0.0.1:1/metrics").unwrap()];
        let all = query(r#"{"metric":"http_requests_total","rate":true}"#);
        assert_eq!(point(&all, &r1, None, &urls), Ok(None));
        assert_eq!(point(&all, &r2, Some(&r1), &urls), Ok(Some(10.0)));
        let errors = query(
            r#"{"metric":"http_requests_total","rate":true,"labels":{"code":"500"},
                "divide_by":{"metric":"http_requests_total"}}"#,
        );
        assert_eq!(point(&errors, &r2, Some(&r1), &urls), Ok(Some(0.1)));
        // No series with these labels yet: a counter nobody incremented is 0.
        let none = query(r#"{"metric":"http_requests_total","rate":true,"labels":{"code":"503"}}"#);
        assert_eq!(point(&none, &r2, Some(&r1), &urls), Ok(Some(0.0)));
        // A counter reset counts from 0: 100 + 1 in 2 s.
        let r3 = round(4000, PAGE1);
        assert_eq!(point(&all, &r3, Some(&r2), &urls), Ok(Some(50.5)));
    }

    #[test]
    fn histograms_give_the_quantile_of_each_steps_observations() {
        let (r1, r2) = (round(0, PAGE1), round(2000, PAGE2));
        let urls = [reqwest::Url::parse("http://127.0.0.1:1/metrics").unwrap()];
        let p50 = query(r#"{"metric":"lat","quantile":0.5}"#);
        // The step observed 0 in (0, 0.1], 10 in (0.1, 0.2], 10 above: rank 10 of 20 is the
        // top of (0.1, 0.2].
        assert_eq!(point(&p50, &r2, Some(&r1), &urls), Ok(Some(0.2)));
        let p25 = query(r#"{"metric":"lat","quantile":0.25}"#);
        let v = point(&p25, &r2, Some(&r1), &urls).unwrap().unwrap();
        assert!((v - 0.15).abs() < 1e-12, "{v}");
        // The histogram's count is an ordinary counter.
        let count = query(r#"{"metric":"lat_count","rate":true}"#);
        assert_eq!(point(&count, &r2, Some(&r1), &urls), Ok(Some(10.0)));
        // Nothing new observed: NaN (the metric's NaN strategy decides).
        let same = point(&p50, &r2, Some(&r2), &urls).unwrap().unwrap();
        assert!(same.is_nan());
    }

    #[test]
    fn gauges_aggregate_and_mistakes_are_named() {
        let r = round(0, PAGE1);
        let urls = [reqwest::Url::parse("http://127.0.0.1:1/metrics").unwrap()];
        assert_eq!(
            point(&query(r#"{"metric":"temp"}"#), &r, None, &urls),
            Ok(Some(50.0))
        );
        assert_eq!(
            point(
                &query(r#"{"metric":"temp","aggregate":"max"}"#),
                &r,
                None,
                &urls
            ),
            Ok(Some(30.0))
        );
        assert_eq!(
            point(
                &query(r#"{"metric":"temp","labels":{"zone":"c"}}"#),
                &r,
                None,
                &urls
            ),
            Ok(None)
        );
        let e = point(&query(r#"{"metric":"nope","rate":true}"#), &r, None, &urls).unwrap_err();
        assert!(
            e.contains("`nope` is not exposed by http://127.0.0.1:1/metrics"),
            "{e}"
        );
        let e = point(
            &query(r#"{"metric":"temp","quantile":0.5}"#),
            &r,
            None,
            &urls,
        )
        .unwrap_err();
        assert_eq!(e, "`temp` is a gauge, not a histogram or summary");
        let e = point(&query(r#"{"metric":"lat","rate":true}"#), &r, None, &urls).unwrap_err();
        assert_eq!(e, "`lat` is a histogram, not a counter");
    }
}
