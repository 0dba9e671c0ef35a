//! The Prometheus HTTP API as a metric source: `POST /api/v1/query_range`.
//!
//! VictoriaMetrics (`/select/0/prometheus` on a cluster) and Thanos Query speak the same API;
//! give their base URL as `source.url`.
//!
//! - Each metric's query is filled in with each cohort's variables; all the queries of a fetch
//!   run concurrently (at most `source.concurrency` at once).
//! - Query times are multiples of the step (`start` rounded up, `end` rounded down), so two
//!   fetches over overlapping times get the same points, and a recording replays exactly.
//!   Ranges longer than Prometheus's 11,000 points per series are split.
//! - Every request has a timeout; timeouts, connection failures, 429 and 5xx are retried with
//!   exponential backoff (200 ms doubling, at most 5 s, or the server's `Retry-After` up to
//!   10 s). Other failures (400, 422, a body that is not the API's JSON) are not retried.
//! - Credentials (`source.auth`) go in the `Authorization` header, which reqwest marks
//!   sensitive; they are never logged or part of a message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use fledge_judges::Side;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{
    BoxFuture, Credentials, FetchRange, LabeledSeries, LiveData, MetricSource, SourceError,
    error_chain, pair_series, read_body, template,
};
use crate::config::Config;
use crate::engine::Millis;
use crate::recording::Series;

/// Prometheus refuses ranges of more than 11,000 points per series.
const MAX_POINTS: i64 = 10_000;
/// Responses larger than this are refused.
const BODY_LIMIT: usize = 256 << 20;

/// One metric's query, filled in for each cohort.
#[derive(Debug, Clone)]
struct Query {
    /// The series it fills: a metric, or a proportion's numerator or denominator.
    name: String,
    /// The config metrics that read the series; a failure is their problem.
    owners: Vec<String>,
    /// A proportion's series must be one series per cohort (no sub-metrics).
    single: bool,
    baseline: String,
    canary: String,
}

impl Query {
    fn side(&self, side: Side) -> &str {
        match side {
            Side::Baseline => &self.baseline,
            Side::Canary => &self.canary,
        }
    }
}

/// A Prometheus-compatible server.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    base: String,
    query_range: reqwest::Url,
    query: reqwest::Url,
    step: Millis,
    retries: u32,
    concurrency: usize,
    credentials: Option<Credentials>,
    queries: Vec<Query>,
}

/// Why one query failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub message: String,
    pub retryable: bool,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<StdDuration>,
}

impl QueryError {
    fn fatal(message: String) -> Self {
        QueryError {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}

impl PrometheusSource {
    /// Builds the source from a config whose `source.type` is `prometheus`: fills in every
    /// query for both cohorts and reads the credentials.
    pub fn new(config: &Config) -> Result<PrometheusSource, SourceError> {
        let source = config.source.as_ref().ok_or(SourceError::NoSource)?;
        let url = source.url.as_deref().unwrap_or_default();
        let base = crate::config::check_url(url).map_err(|message| SourceError::Unavailable {
            source_name: format!("prometheus {url}"),
            message,
        })?;
        let mut queries: Vec<Query> = Vec::new();
        for (index, m) in config.metrics.iter().enumerate() {
            let err = |message: String| SourceError::Metric {
                index,
                metric: m.name.clone(),
                message,
            };
            let single = m.numerator.is_some() || m.denominator.is_some();
            for lq in m.live_queries() {
                let q = lq
                    .query
                    .ok_or_else(|| err(format!("{} has no query", lq.field)))?;
                let fill = |vars, side: &str| {
                    template::expand(q, vars)
                        .map_err(|e| err(format!("{} ({side}): {e}", lq.field)))
                };
                let query = Query {
                    name: lq.series.to_owned(),
                    owners: vec![m.name.clone()],
                    single,
                    baseline: fill(&config.cohorts.baseline, "baseline")?,
                    canary: fill(&config.cohorts.canary, "canary")?,
                };
                // A series read by several metrics (a shared denominator) is fetched once.
                match queries.iter_mut().find(|q| q.name == query.name) {
                    Some(same)
                        if same.baseline == query.baseline && same.canary == query.canary =>
                    {
                        same.owners.push(m.name.clone());
                        same.single |= single;
                    }
                    Some(_) => {
                        return Err(err(format!(
                            "series `{}` is given two different queries",
                            query.name
                        )));
                    }
                    None => queries.push(query),
                }
            }
        }
        let timeout = source.timeout().to_std();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(StdDuration::from_secs(5)))
            .user_agent(concat!("fledge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Client(error_chain(&e)))?;
        let join = |path: &str| {
            let mut base = base.clone();
            if !base.path().ends_with('/') {
                let p = format!("{}/", base.path());
                base.set_path(&p);
            }
            base.join(path)
                .map_err(|e| SourceError::Client(format!("cannot build the {path} URL: {e}")))
        };
        Ok(PrometheusSource {
            inner: Arc::new(Inner {
                client,
                base: url.trim_end_matches('/').to_owned(),
                query_range: join("api/v1/query_range")?,
                query: join("api/v1/query")?,
                step: i64::try_from(source.step().as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1),
                retries: source.retries(),
                concurrency: source.concurrency().max(1),
                credentials: super::Credentials::from_config(config)?,
                queries,
            }),
        })
    }

    /// The filled-in query of `metric` for `side`.
    pub fn query(&self, metric: &str, side: Side) -> Option<&str> {
        self.inner
            .queries
            .iter()
            .find(|q| q.name == metric)
            .map(|q| q.side(side))
    }

    /// Runs one range query over `[start, end)` (aligned to the step), with retries.
    pub async fn query_range(
        &self,
        query: &str,
        start: Millis,
        end: Millis,
    ) -> Result<QueryResult, String> {
        self.inner.query_range(query, start, end).await
    }
}

/// What one query returned: its series, and the server's warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub series: Vec<LabeledSeries>,
    pub warnings: Vec<String>,
}

impl Inner {
    fn describe(&self) -> String {
        format!("prometheus {}", self.base)
    }

    async fn query_range(
        &self,
        query: &str,
        start: Millis,
        end: Millis,
    ) -> Result<QueryResult, String> {
        let step = self.step;
        // Points at multiples of the step inside [start, end).
        let first =
            start.div_euclid(step) * step + if start.rem_euclid(step) == 0 { 0 } else { step };
        let last = (end - 1).div_euclid(step) * step;
        let mut out = QueryResult::default();
        if first > last {
            return Ok(out);
        }
        let mut by_labels: BTreeMap<BTreeMap<String, String>, Series> = BTreeMap::new();
        let mut chunk_start = first;
        while chunk_start <= last {
            let chunk_end = last.min(chunk_start + (MAX_POINTS - 1) * step);
            let form = vec![
                ("query", query.to_owned()),
                ("start", seconds(chunk_start)),
                ("end", seconds(chunk_end)),
                ("step", seconds(step)),
            ];
            let result = self
                .post_with_retries(&self.query_range, &form, true)
                .await?;
            out.warnings.extend(result.warnings);
            for s in result.series {
                let acc = by_labels.entry(s.labels).or_default();
                super::merge_series(acc, &s.series);
            }
            chunk_start = chunk_end + step;
        }
        out.series = by_labels
            .into_iter()
            .map(|(labels, series)| LabeledSeries { labels, series })
            .collect();
        Ok(out)
    }

    async fn post_with_retries(
        &self,
        url: &reqwest::Url,
        form: &[(&str, String)],
        matrix: bool,
    ) -> Result<QueryResult, String> {
        let attempts = self.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.post_once(url, form, matrix).await {
                Ok(r) => return Ok(r),
                Err(e) if e.retryable && attempt < attempts => {
                    let backoff = e.retry_after.map_or_else(
                        || StdDuration::from_millis(200 << (attempt - 1).min(5)),
                        |d| d.min(StdDuration::from_secs(10)),
                    );
                    let backoff = backoff.min(StdDuration::from_secs(10));
                    tracing::warn!(
                        source = %self.describe(),
                        attempt,
                        of = attempts,
                        retry_in_ms = backoff.as_millis() as u64,
                        error = %e.message,
                        "query failed, retrying"
                    );
                    tokio::time::sleep(backoff).await;
                }
                Err(e) if attempt > 1 => {
                    return Err(format!("{} (after {attempt} attempts)", e.message));
                }
                Err(e) => return Err(e.message),
            }
        }
    }

    async fn post_once(
        &self,
        url: &reqwest::Url,
        form: &[(&str, String)],
        matrix: bool,
    ) -> Result<QueryResult, QueryError> {
        // The form body is the query string the URL type encodes (no extra dependency).
        let mut encoded = self.query.clone();
        encoded
            .query_pairs_mut()
            .clear()
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())));
        let body = encoded.query().unwrap_or_default().to_owned();
        let mut request = self
            .client
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some(c) = &self.credentials {
            request = c.apply(request);
        }
        let response = request.send().await.map_err(|e| QueryError {
            retryable: e.is_timeout() || e.is_connect() || e.is_request(),
            message: if e.is_timeout() {
                format!("timed out: {}", error_chain(&e))
            } else {
                error_chain(&e)
            },
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(StdDuration::from_secs);
        let body = read_body(response, BODY_LIMIT)
            .await
            .map_err(|message| QueryError {
                message,
                retryable: true,
                retry_after: None,
            })?;
        if status.is_success() {
            let parsed = if matrix {
                parse_response(&body)
            } else {
                parse_envelope(&body).map(|_| QueryResult::default())
            };
            return parsed.map_err(QueryError::fatal);
        }
        let detail = match parse_envelope(&body) {
            Err(api) if api.starts_with("the server answered `error`") => api,
            _ => snippet(&body),
        };
        let message = format!("HTTP {status}: {detail}");
        Err(QueryError {
            retryable: status.as_u16() == 429 || status.is_server_error(),
            message,
            retry_after,
        })
    }
}

impl MetricSource for PrometheusSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn has_history(&self) -> bool {
        true
    }

    fn step(&self) -> Millis {
        self.inner.step
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            let form = [("query", "vector(1)".to_owned())];
            self.inner
                .post_with_retries(&self.inner.query, &form, false)
                .await
                .map(|_| ())
                .map_err(|message| SourceError::Unavailable {
                    source_name: self.describe(),
                    message,
                })
        })
    }

    fn fetch(&self, range: FetchRange) -> BoxFuture<'_, LiveData> {
        Box::pin(async move {
            let inner = &self.inner;
            let limit = Arc::new(Semaphore::new(inner.concurrency));
            let mut tasks = JoinSet::new();
            for (index, q) in inner.queries.iter().enumerate() {
                for side in [Side::Baseline, Side::Canary] {
                    let (start, end) = range.side(side);
                    let query = q.side(side).to_owned();
                    let this = Arc::clone(inner);
                    let limit = Arc::clone(&limit);
                    tasks.spawn(async move {
                        let _permit = limit.acquire_owned().await;
                        let result = this.query_range(&query, start, end).await;
                        (index, side, result)
                    });
                }
            }
            let mut results: Vec<[Option<Result<QueryResult, String>>; 2]> =
                vec![[None, None]; inner.queries.len()];
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((index, side, result)) => {
                        results[index][side_index(side)] = Some(result);
                    }
                    Err(e) => tracing::error!(error = %e, "a query task failed"),
                }
            }
            let mut data = LiveData::default();
            let mut problems: BTreeMap<String, String> = BTreeMap::new();
            // The first problem of a metric is kept (a proportion reads two series).
            let mut problem = |q: &Query, message: String| {
                for owner in &q.owners {
                    problems
                        .entry(owner.clone())
                        .or_insert_with(|| message.clone());
                }
            };
            let mut fetched: Vec<(&Query, QueryResult, QueryResult)> = Vec::new();
            for (q, [baseline, canary]) in inner.queries.iter().zip(results) {
                let describe = |side: Side, e: String| {
                    format!("{}: {side} query failed: {e}", inner.describe())
                };
                match (baseline, canary) {
                    (Some(Ok(b)), Some(Ok(c))) => fetched.push((q, b, c)),
                    (Some(Err(e)), _) => problem(q, describe(Side::Baseline, e)),
                    (_, Some(Err(e))) => problem(q, describe(Side::Canary, e)),
                    _ => problem(
                        q,
                        format!("{}: the query task did not finish", inner.describe()),
                    ),
                }
            }
            for (q, b, c) in fetched {
                for (side, w) in [(Side::Baseline, &b.warnings), (Side::Canary, &c.warnings)] {
                    for warning in w {
                        tracing::warn!(metric = %q.name, %side, warning = %warning, "prometheus warning");
                        data.notes.push(format!(
                            "metric `{}` ({side}): prometheus warning: {warning}",
                            q.name
                        ));
                    }
                }
                match pair_series(&q.name, b.series, c.series) {
                    Ok(pairs) if q.single && pairs.len() > 1 => problem(
                        q,
                        format!(
                            "the query of series `{}` returns {} label sets; a proportion \
                             reads one series per cohort: aggregate it (e.g. `sum(…)`)",
                            q.name,
                            pairs.len()
                        ),
                    ),
                    Ok(pairs) => {
                        for (name, series) in pairs {
                            data.recording.metrics.insert(name, series);
                        }
                    }
                    Err(e) => problem(q, e),
                }
            }
            data.problems = problems;
            tracing::debug!(
                source = %inner.describe(),
                metrics = inner.queries.len(),
                series = data.recording.metrics.len(),
                problems = data.problems.len(),
                "fetched"
            );
            data
        })
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Baseline => 0,
        Side::Canary => 1,
    }
}

/// Milliseconds as the API's decimal seconds.
fn seconds(ms: Millis) -> String {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:03}")
    }
}

/// The start of a body, on one line, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.is_empty() {
        "(empty body)".to_owned()
    } else if body.len() > 200 {
        format!("{one_line}…")
    } else {
        one_line.to_owned()
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(serde_json::Value, serde_json::Value)>,
    #[serde(default)]
    histograms: Option<serde_json::Value>,
}

/// Parses a `query_range` response body: the matrix's series, or why there are none. Values
/// are strings in the API (`"0.25"`, `"NaN"`, `"+Inf"`, `"-Inf"`); timestamps are decimal
/// seconds and become milliseconds.
pub fn parse_response(body: &[u8]) -> Result<QueryResult, String> {
    let (data, warnings) = parse_envelope(body)?;
    if data.result_type != "matrix" {
        return Err(format!(
            "the result is a {}, not a matrix (query_range always answers a matrix; is the URL \
             a Prometheus-compatible API?)",
            data.result_type
        ));
    }
    let raw: Vec<MatrixSeries> =
        serde_json::from_value(data.result).map_err(|e| format!("the matrix is malformed: {e}"))?;
    let mut series = Vec::with_capacity(raw.len());
    for s in raw {
        if s.values.is_empty() && s.histograms.is_some() {
            return Err(format!(
                "series {} holds native histograms, which are not supported; wrap the query in \
                 histogram_quantile(…) or another function that returns numbers",
                labels_text(&s.metric)
            ));
        }
        let mut out = Series::default();
        for (t, v) in &s.values {
            let t = t.as_f64().filter(|t| t.is_finite()).ok_or_else(|| {
                format!(
                    "timestamp {t} in {} is not a number",
                    labels_text(&s.metric)
                )
            })?;
            let v = match v.as_str() {
                Some(text) => parse_value(text),
                None => None,
            }
            .ok_or_else(|| {
                format!(
                    "value {v} at {t} in {} is not a number",
                    labels_text(&s.metric)
                )
            })?;
            out.push((t * 1000.0).round() as Millis, v);
        }
        // The API sends points in time order; keep the invariant even if a proxy does not.
        if !out.t.windows(2).all(|w| w[0] < w[1]) {
            let mut pairs: Vec<(Millis, f64)> =
                out.t.iter().copied().zip(out.v.iter().copied()).collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            out = Series {
                t: pairs.iter().map(|p| p.0).collect(),
                v: pairs.iter().map(|p| p.1).collect(),
            };
        }
        series.push(LabeledSeries {
            labels: s.metric,
            series: out,
        });
    }
    Ok(QueryResult { series, warnings })
}

/// Parses the API's envelope: the `data` of a `success`, or the server's error.
fn parse_envelope(body: &[u8]) -> Result<(Data, Vec<String>), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the response body is empty".to_owned());
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_eof() {
            "the response is cut short (truncated JSON)"
        } else {
            "the response is not the Prometheus API's JSON"
        };
        format!("{what}: {e}; it begins: {}", snippet(body))
    })?;
    match envelope.status.as_deref() {
        Some("success") => {}
        Some("error") => {
            return Err(format!(
                "the server answered `error` ({}): {}",
                envelope.error_type.as_deref().unwrap_or("no errorType"),
                envelope.error.as_deref().unwrap_or("no message")
            ));
        }
        other => {
            return Err(format!(
                "the response's status is {:?}, not \"success\" or \"error\"",
                other.unwrap_or("missing")
            ));
        }
    }
    let data: Data = serde_json::from_value(
        envelope
            .data
            .ok_or_else(|| "the response has no `data`".to_owned())?,
    )
    .map_err(|e| format!("the response's `data` is malformed: {e}"))?;
    Ok((data, envelope.warnings))
}

/// A sample value as the API writes it.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok(),
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_matrix_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"x","route":"/a"},"values":[[1700000000,"1.5"],[1700000010.5,"NaN"],[1700000020,"+Inf"],[1700000030,"-Inf"]]},
            {"metric":{},"values":[]}
        ]},"warnings":["partial response"]}"#;
        let r = parse_response(body).unwrap();
        assert_eq!(r.series.len(), 2);
        let s = &r.series[0];
        assert_eq!(s.labels["route"], "/a");
        assert_eq!(
            s.series.t,
            [
                1_700_000_000_000,
                1_700_000_010_500,
                1_700_000_020_000,
                1_700_000_030_000
            ]
        );
        assert_eq!(s.series.v[0], 1.5);
        assert!(s.series.v[1].is_nan());
        assert_eq!(s.series.v[2], f64::INFINITY);
        assert_eq!(s.series.v[3], f64::NEG_INFINITY);
        assert!(r.series[1].series.is_empty());
        assert_eq!(r.warnings, ["partial response"]);
    }

    #[test]
    fn error_responses_carry_the_servers_message() {
        let e = parse_response(
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "the server answered `error` (bad_data): 1:5: parse error: unexpected"
        );
    }

    #[test]
    fn truncated_and_garbage_bodies_are_errors() {
        let full = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
        for cut in [1, 10, 40, full.len() - 1] {
            let e = parse_response(&full[..cut]).unwrap_err();
            assert!(e.contains("truncated"), "{cut}: {e}");
        }
        let e = parse_response(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(e.contains("not the Prometheus API's JSON"), "{e}");
        assert!(e.contains("<html>502"), "{e}");
        assert_eq!(
            parse_response(b"  ").unwrap_err(),
            "the response body is empty"
        );
        let e =
            parse_response(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#)
                .unwrap_err();
        assert!(e.contains("not a matrix"), "{e}");
        let e = parse_response(br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"abc"]]}]}}"#)
            .unwrap_err();
        assert!(e.contains("\"abc\"") && e.contains("not a number"), "{e}");
        let e = parse_response(br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,2]]}]}}"#)
            .unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = parse_response(br#"{"data":{}}"#).unwrap_err();
        assert!(e.contains("status"), "{e}");
        let e = parse_response(br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[1,{}]]}]}}"#)
            .unwrap_err();
        assert!(e.contains("native histograms"), "{e}");
    }

    #[test]
    fn unsorted_points_are_sorted() {
        let r = parse_response(br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[3,"3"],[1,"1"],[2,"2"]]}]}}"#).unwrap();
        assert_eq!(r.series[0].series.t, [1000, 2000, 3000]);
        assert_eq!(r.series[0].series.v, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn seconds_are_written_exactly() {
        assert_eq!(seconds(1_700_000_000_000), "1700000000");
        assert_eq!(seconds(1_700_000_000_250), "1700000000.250");
        assert_eq!(seconds(500), "0.500");
    }
}
