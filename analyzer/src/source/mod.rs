//! Live metric sources: where `fledge analyze` and `fledge record` get their windows.
//!
//! A [`MetricSource`] fetches, for a [`FetchRange`], every metric of the config for both
//! cohorts and returns [`LiveData`]: the points (a [`Recording`], so it can be written out and
//! replayed later) and, per metric, the problem that kept its data from being had. The engine
//! judges a metric with a problem `error`, never `pass` ([`WindowData::problem`]).
//!
//! Two sources:
//! - [`prometheus::PrometheusSource`]: the Prometheus HTTP API (`/api/v1/query_range`), which
//!   VictoriaMetrics and Thanos also speak. Each metric's query is a template filled in with
//!   each cohort's variables ([`template`]); the queries run concurrently.
//! - [`scrape::ScrapeSource`]: reads the baseline and canary instances' `/metrics` pages once
//!   per step, so a small setup needs no Prometheus server. Real time only: it has no history.
//!
//! # Series and sub-metrics
//! A query may return several series. Series are paired between the cohorts by their labels
//! ([`pair_series`]); each label set becomes a sub-metric named `metric{label="value",…}`,
//! judged in the metric's group with its options ([`expand_spec`]).
//!
//! Sources do I/O and are async (tokio); the engine stays sans-IO: the driver in
//! [`crate::live`] reads the clock, fetches, and hands the engine the data.

pub mod prometheus;
pub mod recorded;
pub mod scrape;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use fledge_judges::Side;

use crate::config::{Config, SecretRef, SourceKind};
use crate::engine::{AnalysisSpec, IntervalPlan, MetricSpec, Millis, WindowData, WindowRef};
use crate::recording::{MetricSeries, Recording, Series};
use crate::replay::series_window;

/// A boxed future, so that [`MetricSource`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The time ranges of one fetch, half-open `[start, end)`, per cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRange {
    pub canary: (Millis, Millis),
    pub baseline: (Millis, Millis),
}

impl FetchRange {
    /// The windows of one planned interval.
    pub fn of(plan: &IntervalPlan) -> FetchRange {
        FetchRange {
            canary: (plan.start, plan.end),
            baseline: (plan.baseline_start, plan.baseline_end),
        }
    }

    pub fn side(&self, side: Side) -> (Millis, Millis) {
        match side {
            Side::Baseline => self.baseline,
            Side::Canary => self.canary,
        }
    }
}

/// Where live metric data comes from.
pub trait MetricSource: Send + Sync {
    /// Names the source in messages, e.g. `prometheus http://127.0.0.1:9090`.
    fn describe(&self) -> String;
    /// Whether past data can be queried (retrospective analysis, `fledge record`).
    fn has_history(&self) -> bool;
    /// Time between points, in milliseconds.
    fn step(&self) -> Millis;
    /// Checks that the source answers, so that a misconfigured run fails at once instead of
    /// an interval later.
    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>>;
    /// Every metric's points for both cohorts over `range`, with a problem per metric whose
    /// data could not be had. Never fails as a whole: failures are per-metric problems.
    fn fetch(&self, range: FetchRange) -> BoxFuture<'_, LiveData>;
}

/// Why a source could not be built or does not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("the config has no `source:` section; add one to analyze or record live")]
    NoSource,
    /// A secret named by `auth:` could not be read. The message never holds the secret.
    #[error("{field}: {message}")]
    Secret { field: String, message: String },
    #[error("{source_name}: {message}")]
    Unavailable {
        source_name: String,
        message: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("metrics[{index}] `{metric}`: {message}")]
    Metric {
        index: usize,
        metric: String,
        message: String,
    },
}

/// What a fetch returned: the points, and why some metrics have none.
#[derive(Debug, Clone, Default)]
pub struct LiveData {
    /// Series by (sub-)metric name.
    pub recording: Recording,
    /// Config metric name → why its data could not be had.
    pub problems: BTreeMap<String, String>,
    /// What the source reported that did not stop it (Prometheus warnings).
    pub notes: Vec<String>,
}

impl LiveData {
    /// Whether every one of `spec`'s metrics has a problem: the source gave nothing usable.
    pub fn all_failed(&self, spec: &AnalysisSpec) -> bool {
        !spec.metrics.is_empty()
            && spec
                .metrics
                .iter()
                .all(|m| self.problems.contains_key(&m.name))
    }

    /// The first problem, as `metric: message`.
    pub fn first_problem(&self) -> Option<String> {
        self.problems
            .iter()
            .next()
            .map(|(m, p)| format!("metric `{m}`: {p}"))
    }
}

impl WindowData for LiveData {
    fn window(&self, metric: &str, side: Side, start: Millis, end: Millis) -> WindowRef<'_> {
        match self.recording.metrics.get(metric) {
            Some(m) => series_window(
                match side {
                    Side::Baseline => &m.baseline,
                    Side::Canary => &m.canary,
                },
                start,
                end,
            ),
            None => WindowRef::default(),
        }
    }

    fn problem(&self, metric: &str) -> Option<String> {
        if let Some(p) = self.problems.get(metric) {
            return Some(p.clone());
        }
        // A sub-metric `name{…}` shares its metric's problem.
        let parent = metric.strip_suffix('}').and_then(|m| m.split_once('{'))?.0;
        self.problems.get(parent).cloned()
    }
}

/// Builds the source the config's `source:` describes. A scrape source starts scraping at
/// once, so this must run inside a tokio runtime.
pub fn build(config: &Config) -> Result<Box<dyn MetricSource>, SourceError> {
    let source = config.source.as_ref().ok_or(SourceError::NoSource)?;
    Ok(match source.kind {
        SourceKind::Prometheus => Box::new(prometheus::PrometheusSource::new(config)?),
        SourceKind::Scrape => Box::new(scrape::ScrapeSource::start(config)?),
        SourceKind::Recording => Box::new(recorded::RecordingSource::open(config)?),
    })
}

/// A secret read from where a [`SecretRef`] points. Its `Debug` hides it, and it has no
/// `Display` or `Serialize`.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret; `field` (e.g. `source.auth.bearer_token`) names it in errors.
    pub(crate) fn read(secret: &SecretRef, field: &str) -> Result<Secret, SourceError> {
        let err = |message: String| SourceError::Secret {
            field: field.to_owned(),
            message,
        };
        let value = match (&secret.env, &secret.file) {
            (Some(name), _) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    err(format!("environment variable `{name}` is not set"))
                }
                std::env::VarError::NotUnicode(_) => {
                    err(format!("environment variable `{name}` is not valid UTF-8"))
                }
            })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            (None, None) => return Err(err("names neither `env` nor `file`".to_owned())),
        };
        if value.is_empty() {
            return Err(err("the secret is empty".to_owned()));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(err(
                "the secret contains control characters (a line break inside a file?)".to_owned(),
            ));
        }
        Ok(Secret(value))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Credentials sent with every request.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

impl Credentials {
    pub(crate) fn from_config(config: &Config) -> Result<Option<Credentials>, SourceError> {
        let Some(auth) = config.source.as_ref().and_then(|s| s.auth.as_ref()) else {
            return Ok(None);
        };
        if let Some(token) = &auth.bearer_token {
            return Ok(Some(Credentials::Bearer(Secret::read(
                token,
                "source.auth.bearer_token",
            )?)));
        }
        if let Some(basic) = &auth.basic {
            return Ok(Some(Credentials::Basic {
                username: basic.username.clone(),
                password: Secret::read(&basic.password, "source.auth.basic.password")?,
            }));
        }
        Ok(None)
    }

    /// Adds the credentials to a request; reqwest marks the header sensitive.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        }
    }
}

/// One series a query returned: its labels and points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabeledSeries {
    pub labels: BTreeMap<String, String>,
    pub series: Series,
}

/// Pairs the series of the two cohorts of `metric` by their labels.
///
/// - At most one series per cohort (an aggregated query): one pair, named `metric`, whatever
///   the labels.
/// - Otherwise both cohorts must return the same label keys (`__name__` aside); when they
///   differ, the error says which keys each side has only. Labels that tell the cohorts apart
///   (one value throughout the baseline, another throughout the canary, such as `version` or
///   a lone `instance`) are left out; the rest pair the series, and each label set is a
///   sub-metric `metric{k="v",…}`. A label set on one side only is paired with an empty
///   series (the judge's no-data path).
pub fn pair_series(
    metric: &str,
    baseline: Vec<LabeledSeries>,
    canary: Vec<LabeledSeries>,
) -> Result<Vec<(String, MetricSeries)>, String> {
    let strip = |v: Vec<LabeledSeries>| -> Vec<LabeledSeries> {
        v.into_iter()
            .map(|mut s| {
                s.labels.remove("__name__");
                s
            })
            .collect()
    };
    let (mut baseline, mut canary) = (strip(baseline), strip(canary));
    if baseline.len() <= 1 && canary.len() <= 1 {
        let pair = MetricSeries {
            baseline: baseline.pop().map(|s| s.series).unwrap_or_default(),
            canary: canary.pop().map(|s| s.series).unwrap_or_default(),
        };
        return Ok(vec![(metric.to_owned(), pair)]);
    }
    let keys = |v: &[LabeledSeries]| -> BTreeSet<String> {
        v.iter().flat_map(|s| s.labels.keys().cloned()).collect()
    };
    let (bkeys, ckeys) = (keys(&baseline), keys(&canary));
    if !baseline.is_empty() && !canary.is_empty() && bkeys != ckeys {
        let list = |k: &BTreeSet<String>| {
            if k.is_empty() {
                "no labels".to_owned()
            } else {
                k.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let only_b: BTreeSet<String> = bkeys.difference(&ckeys).cloned().collect();
        let only_c: BTreeSet<String> = ckeys.difference(&bkeys).cloned().collect();
        return Err(format!(
            "the cohorts' series have different label keys: baseline {{{}}}, canary {{{}}} \
             (only in baseline: {}; only in canary: {}); series are paired by their labels, so \
             both queries must return the same keys: aggregate the others away (e.g. \
             `sum by (route) (…)`) or make both cohorts' selectors alike",
            list(&bkeys),
            list(&ckeys),
            list(&only_b),
            list(&only_c)
        ));
    }
    // Labels constant within each cohort but different between them identify the cohort.
    let constant = |v: &[LabeledSeries], key: &str| -> Option<String> {
        let mut values = v
            .iter()
            .map(|s| s.labels.get(key).cloned().unwrap_or_default());
        let first = values.next()?;
        values.all(|x| x == first).then_some(first)
    };
    let cohort_keys: BTreeSet<String> = bkeys
        .intersection(&ckeys)
        .filter(|k| match (constant(&baseline, k), constant(&canary, k)) {
            (Some(b), Some(c)) => b != c,
            _ => false,
        })
        .cloned()
        .collect();
    let all_keys: BTreeSet<String> = bkeys
        .union(&ckeys)
        .filter(|k| !cohort_keys.contains(*k))
        .cloned()
        .collect();
    let key_of = |s: &LabeledSeries| -> Vec<(String, String)> {
        all_keys
            .iter()
            .map(|k| (k.clone(), s.labels.get(k).cloned().unwrap_or_default()))
            .collect()
    };
    let mut pairs: BTreeMap<Vec<(String, String)>, MetricSeries> = BTreeMap::new();
    for (side, list) in [(Side::Baseline, baseline), (Side::Canary, canary)] {
        for s in list {
            let entry = pairs.entry(key_of(&s)).or_default();
            let slot = match side {
                Side::Baseline => &mut entry.baseline,
                Side::Canary => &mut entry.canary,
            };
            if !slot.is_empty() {
                return Err(format!(
                    "two {side} series have the same labels {} once the labels that tell the \
                     cohorts apart ({}) are left out",
                    label_text(&key_of(&s)),
                    cohort_keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            *slot = s.series;
        }
    }
    Ok(pairs
        .into_iter()
        .map(|(key, series)| {
            let name = if key.is_empty() {
                metric.to_owned()
            } else {
                format!("{metric}{}", label_text(&key))
            };
            (name, series)
        })
        .collect())
}

/// `{k="v",…}` with `\` and `"` escaped as PromQL writes them.
fn label_text(labels: &[(String, String)]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The metrics to judge when the data has sub-metrics: each config metric is replaced by its
/// sub-metrics `name{…}` found among `names` (same group and options), or kept as it is when
/// there are none. Names that are themselves config metrics are never taken as sub-metrics.
pub fn expand_spec<'a>(
    spec: &AnalysisSpec,
    names: impl IntoIterator<Item = &'a str>,
) -> AnalysisSpec {
    let own: BTreeSet<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut subs: BTreeMap<&str, Vec<&'a str>> = BTreeMap::new();
    for name in names {
        if own.contains(name) || !name.ends_with('}') {
            continue;
        }
        if let Some((parent, _)) = name.split_once('{')
            && own.contains(parent)
        {
            subs.entry(parent).or_default().push(name);
        }
    }
    if subs.is_empty() {
        return spec.clone();
    }
    let mut out = spec.clone();
    out.metrics = spec
        .metrics
        .iter()
        .flat_map(|m| match subs.get(m.name.as_str()) {
            Some(names) => names
                .iter()
                .map(|n| MetricSpec {
                    name: (*n).to_owned(),
                    ..m.clone()
                })
                .collect::<Vec<_>>(),
            None => vec![m.clone()],
        })
        .collect();
    out
}

/// Merges `new` into `acc`, both sorted by time; at equal times `new` wins.
pub fn merge_series(acc: &mut Series, new: &Series) {
    if new.is_empty() {
        return;
    }
    if acc.t.last().is_none_or(|&l| l < new.t[0]) {
        acc.t.extend_from_slice(&new.t);
        acc.v.extend_from_slice(&new.v);
        return;
    }
    let mut out = Series::default();
    let (mut i, mut j) = (0, 0);
    while i < acc.len() || j < new.len() {
        let take_new = j < new.len() && (i >= acc.len() || new.t[j] <= acc.t[i]);
        if take_new {
            if i < acc.len() && acc.t[i] == new.t[j] {
                i += 1;
            }
            out.push(new.t[j], new.v[j]);
            j += 1;
        } else {
            out.push(acc.t[i], acc.v[i]);
            i += 1;
        }
    }
    *acc = out;
}

/// Merges every series of `new` into `acc`.
pub fn merge_recording(acc: &mut Recording, new: &Recording) {
    for (name, m) in &new.metrics {
        let slot = acc.metrics.entry(name.clone()).or_default();
        merge_series(&mut slot.baseline, &m.baseline);
        merge_series(&mut slot.canary, &m.canary);
    }
}

/// Milliseconds since the Unix epoch, now. Only drivers and sources call it, never the engine.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads a response body up to `limit` bytes.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(format!("the response is larger than {} MiB", limit >> 20));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(format!(
                    "error reading the response body: {}",
                    error_chain(&e)
                ));
            }
        }
    }
}

/// An error and its sources on one line (reqwest's own message is terse).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(labels: &[(&str, &str)], v: &[f64]) -> LabeledSeries {
        LabeledSeries {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            series: Series {
                t: (0..v.len() as i64).map(|i| i * 1000).collect(),
                v: v.to_vec(),
            },
        }
    }

    #[test]
    fn one_series_per_side_pairs_as_the_metric_whatever_the_labels() {
        let pairs = pair_series(
            "lat",
            vec![ls(&[("version", "v1"), ("job", "a")], &[1.0])],
            vec![ls(&[("version", "v2")], &[2.0])],
        )
        .unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0, "lat");
        assert_eq!(pairs[0].1.baseline.v, [1.0]);
        assert_eq!(pairs[0].1.canary.v, [2.0]);
        // Nothing at all on one side: still one pair, with an empty side.
        let pairs = pair_series("lat", vec![], vec![ls(&[], &[2.0])]).unwrap();
        assert_eq!(pairs.len(), 1);
        assert!(pairs[0].1.baseline.is_empty());
    }

    #[test]
    fn series_pair_by_labels_leaving_out_the_cohort_labels() {
        let b = vec![
            ls(
                &[("__name__", "x"), ("route", "/a"), ("version", "v1")],
                &[1.0],
            ),
            ls(&[("route", "/b"), ("version", "v1")], &[2.0]),
            ls(&[("route", "/old"), ("version", "v1")], &[3.0]),
        ];
        let c = vec![
            ls(&[("route", "/b"), ("version", "v2")], &[20.0]),
            ls(&[("route", "/a"), ("version", "v2")], &[10.0]),
            ls(&[("route", "/new\"q"), ("version", "v2")], &[30.0]),
        ];
        let pairs = pair_series("lat", b, c).unwrap();
        let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                r#"lat{route="/a"}"#,
                r#"lat{route="/b"}"#,
                r#"lat{route="/new\"q"}"#,
                r#"lat{route="/old"}"#
            ]
        );
        assert_eq!(pairs[0].1.baseline.v, [1.0]);
        assert_eq!(pairs[0].1.canary.v, [10.0]);
        assert_eq!(pairs[1].1.canary.v, [20.0]);
        // Present on one side only: the other side is empty (judged nodata).
        assert!(pairs[2].1.baseline.is_empty() && pairs[2].1.canary.v == [30.0]);
        assert!(pairs[3].1.canary.is_empty() && pairs[3].1.baseline.v == [3.0]);
    }

    #[test]
    fn a_label_varying_within_a_cohort_is_kept() {
        // Two canary instances: `instance` is not a cohort label, so it pairs (and here
        // cannot match the baseline's).
        let b = vec![
            ls(&[("instance", "b1"), ("route", "/a")], &[1.0]),
            ls(&[("instance", "b1"), ("route", "/b")], &[1.0]),
        ];
        let c = vec![
            ls(&[("instance", "c1"), ("route", "/a")], &[1.0]),
            ls(&[("instance", "c2"), ("route", "/a")], &[1.0]),
        ];
        let pairs = pair_series("m", b, c).unwrap();
        let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                r#"m{instance="b1",route="/a"}"#,
                r#"m{instance="b1",route="/b"}"#,
                r#"m{instance="c1",route="/a"}"#,
                r#"m{instance="c2",route="/a"}"#
            ]
        );
    }

    #[test]
    fn differing_label_keys_are_a_clear_error() {
        let b = vec![
            ls(&[("route", "/a"), ("pod", "p1")], &[1.0]),
            ls(&[("route", "/b"), ("pod", "p1")], &[1.0]),
        ];
        let c = vec![
            ls(&[("route", "/a"), ("instance", "i")], &[1.0]),
            ls(&[("route", "/b"), ("instance", "i")], &[1.0]),
        ];
        let e = pair_series("m", b, c).unwrap_err();
        assert!(
            e.contains("different label keys: baseline {pod, route}, canary {instance, route}"),
            "{e}"
        );
        assert!(
            e.contains("only in baseline: pod; only in canary: instance"),
            "{e}"
        );
        assert!(e.contains("sum by"), "{e}");
    }

    fn spec(names: &[&str]) -> AnalysisSpec {
        AnalysisSpec {
            name: "t".into(),
            lifetime: 1,
            interval: 1,
            warmup: 0,
            lookback: 0,
            baseline_offset: 0,
            thresholds: fledge_judges::Thresholds::new(90.0, 70.0).unwrap(),
            weights: fledge_judges::GroupWeights::new(vec![("g".into(), 1.0)]).unwrap(),
            metrics: names
                .iter()
                .map(|n| MetricSpec {
                    name: n.to_string(),
                    group: "g".into(),
                    options: Default::default(),
                    test: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn sub_metrics_replace_their_metric_in_its_place() {
        let s = spec(&["lat", "err"]);
        let out = expand_spec(
            &s,
            [
                "err",
                r#"lat{route="/a"}"#,
                r#"lat{route="/b"}"#,
                r#"other{x="1"}"#,
                "lat{broken",
            ],
        );
        let names: Vec<&str> = out.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [r#"lat{route="/a"}"#, r#"lat{route="/b"}"#, "err"]);
        assert!(out.metrics.iter().all(|m| m.group == "g"));
        // No sub-metrics: unchanged.
        assert_eq!(expand_spec(&s, ["lat", "err"]), s);
    }

    #[test]
    fn problems_reach_sub_metrics() {
        let mut d = LiveData::default();
        d.problems.insert("lat".into(), "down".into());
        assert_eq!(d.problem("lat").as_deref(), Some("down"));
        assert_eq!(d.problem(r#"lat{route="/a"}"#).as_deref(), Some("down"));
        assert_eq!(d.problem("err"), None);
        assert!(d.all_failed(&spec(&["lat"])));
        assert!(!d.all_failed(&spec(&["lat", "err"])));
    }

    #[test]
    fn a_problem_is_judged_error_never_pass_whatever_the_windows_hold() {
        let mut data = LiveData::default();
        let good = Series {
            t: (0..20).map(|i| i * 1000).collect(),
            v: (0..20).map(|i| 1.0 + (i % 3) as f64).collect(),
        };
        for name in ["lat", "err"] {
            data.recording.metrics.insert(
                name.into(),
                MetricSeries {
                    baseline: good.clone(),
                    canary: good.clone(),
                },
            );
        }
        let plan = IntervalPlan {
            index: 1,
            start: 0,
            end: 20_000,
            baseline_start: 0,
            baseline_end: 20_000,
        };
        let s = spec(&["lat", "err"]);
        let healthy = crate::engine::judge_interval(&s, &plan, &data);
        assert_eq!(healthy.verdict, fledge_judges::Verdict::Promote);
        data.problems
            .insert("err".into(), "prometheus: HTTP 503: busy".into());
        let report = crate::engine::judge_interval(&s, &plan, &data);
        let err = report.metrics.iter().find(|m| m.name == "err").unwrap();
        assert_eq!(
            err.result.classification,
            fledge_judges::Classification::Error
        );
        assert_eq!(err.result.reason, "error: prometheus: HTTP 503: busy");
        assert_ne!(report.verdict, fledge_judges::Verdict::Promote);
    }

    #[test]
    fn merging_keeps_order_and_prefers_new_points() {
        let mut a = Series {
            t: vec![1, 3, 5],
            v: vec![1.0, 3.0, 5.0],
        };
        merge_series(
            &mut a,
            &Series {
                t: vec![2, 3, 6],
                v: vec![20.0, 30.0, 60.0],
            },
        );
        assert_eq!(a.t, [1, 2, 3, 5, 6]);
        assert_eq!(a.v, [1.0, 20.0, 30.0, 5.0, 60.0]);
        merge_series(
            &mut a,
            &Series {
                t: vec![7],
                v: vec![7.0],
            },
        );
        assert_eq!(a.t, [1, 2, 3, 5, 6, 7]);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let c = Credentials::Basic {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn secrets_are_read_from_env_or_file() {
        let dir = std::env::temp_dir().join(format!("fledge-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let r = SecretRef {
            env: None,
            file: Some(file.clone()),
        };
        assert_eq!(Secret::read(&r, "f").unwrap().expose(), "s3cret");
        let missing = SecretRef {
            env: Some("FLEDGE_TEST_SURELY_UNSET_VARIABLE".into()),
            file: None,
        };
        let e = Secret::read(&missing, "source.auth.bearer_token").unwrap_err();
        assert_eq!(
            e.to_string(),
            "source.auth.bearer_token: environment variable `FLEDGE_TEST_SURELY_UNSET_VARIABLE` is not set"
        );
        std::fs::write(&file, "").unwrap();
        assert!(
            Secret::read(&r, "f")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
