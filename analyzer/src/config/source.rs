//! The live parts of a config: `source:` (where metrics come from), `cohorts:` (the variables
//! each cohort's queries are filled in with) and a metric's `scrape:` (what to read from a
//! `/metrics` page). `docs/config.md` is the reference.
//!
//! None of this matters to replay: a config without `source:` is checked as before, and its
//! queries may keep placeholders that no cohort defines.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::lines::FieldPath;
use super::{Config, Duration};
use crate::source::template;

/// `source:` where a live analysis reads its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `prometheus` (the Prometheus HTTP API, also VictoriaMetrics and Thanos) or `scrape`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// prometheus: the base URL under which `/api/v1/` lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// recording: a recorded CSV (`fledge record`, `fledge synth`) served as a source with
    /// history, for retrospective analyses, tests and load measurements. A local file path:
    /// only whoever may submit configs (the token holder, under `fledge serve`) names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    /// scrape: the baseline instances' `/metrics` URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<String>,
    /// scrape: the canary instances' `/metrics` URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary: Vec<String>,
    /// Time between points: Prometheus's query step, or the scrape period. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Duration>,
    /// Per request. Default 10s (prometheus) or the smaller of the step and 5s (scrape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// prometheus: retries after a timeout, a connection failure, 429 or 5xx. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Real time: wait this long after an interval ends before fetching it (scrape and
    /// ingestion lag). Default one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Duration>,
    /// prometheus: queries in flight at once. Default 16 (Prometheus runs 20 at once by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Credentials, by reference (an environment variable or a file), never inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
}

/// Default of [`SourceConfig::step`].
pub const DEFAULT_STEP: Duration = Duration::from_secs(10);
/// Default of [`SourceConfig::timeout`] for Prometheus.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`SourceConfig::retries`].
pub const DEFAULT_RETRIES: u32 = 3;
/// Default of [`SourceConfig::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 16;

impl SourceConfig {
    pub fn step(&self) -> Duration {
        self.step.unwrap_or(DEFAULT_STEP)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(match self.kind {
            SourceKind::Prometheus => DEFAULT_TIMEOUT,
            SourceKind::Scrape => self.step().min(Duration::from_secs(5)),
            SourceKind::Recording => DEFAULT_TIMEOUT,
        })
    }

    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    pub fn settle(&self) -> Duration {
        self.settle.unwrap_or(self.step())
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Prometheus,
    Scrape,
    /// A recorded CSV read from `path`.
    Recording,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Prometheus => "prometheus",
            SourceKind::Scrape => "scrape",
            SourceKind::Recording => "recording",
        })
    }
}

/// `auth:` one of a bearer token or basic auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: SecretRef,
}

/// Where a secret is read from when the source starts: exactly one of an environment
/// variable's name or a file's path (its content, less a trailing newline). The secret itself
/// never appears in a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// `cohorts:` the variables each cohort's query templates are filled in with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohorts {
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub baseline: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub canary: BTreeMap<String, String>,
}

impl Cohorts {
    pub fn is_empty(&self) -> bool {
        self.baseline.is_empty() && self.canary.is_empty()
    }
}

/// A metric's `scrape:` what to read from the instances' `/metrics` pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeQuery {
    /// The metric as exposed: a counter or gauge sample name (`http_requests_total`), or a
    /// histogram's or summary's base name (`http_request_duration_seconds`).
    pub metric: String,
    /// Only series with exactly these label values.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub labels: BTreeMap<String, String>,
    /// Counters: the per-second increase over each step.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rate: bool,
    /// Histograms: this quantile of the observations made during each step (as
    /// `histogram_quantile` over the step's bucket increases); summaries: this quantile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// How the matching series of all of a cohort's instances combine; default `sum`.
    #[serde(default, skip_serializing_if = "Aggregate::is_sum")]
    pub aggregate: Aggregate,
    /// The value is divided by this one, read the same way (rate or not): ratios such as an
    /// error rate (`rate` of errors over `rate` of all requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divide_by: Option<ScrapeDenominator>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeDenominator {
    pub metric: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Sum,
    Avg,
    Min,
    Max,
}

impl Aggregate {
    fn is_sum(&self) -> bool {
        *self == Aggregate::Sum
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A map of names to scalars (strings, numbers, booleans), kept as strings: `{replica: 1}`
/// means `"1"`.
pub(crate) fn scalar_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to strings or numbers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                out.insert(k, v.0);
            }
            Ok(out)
        }
    }
    d.deserialize_map(MapVisitor)
}

struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

type Problems = Vec<(FieldPath, String)>;

/// The rules for `source:`, `cohorts:` and `scrape:`.
pub(crate) fn validate(config: &Config, problems: &mut Problems) {
    let root = FieldPath::root();
    for (side, vars) in [
        ("baseline", &config.cohorts.baseline),
        ("canary", &config.cohorts.canary),
    ] {
        let path = root.key("cohorts").key(side);
        for (name, value) in vars {
            if template::placeholders(&format!("${{{name}}}")).len() != 1 {
                problems.push((
                    path.key(name),
                    format!(
                        "`{name}` is not a variable name (a letter or `_`, then letters, digits, \
                         `_`, `.` or `-`)"
                    ),
                ));
            }
            if let Some(c) = value
                .chars()
                .find(|c| matches!(c, '"' | '\'' | '`' | '\\') || c.is_control())
            {
                problems.push((
                    path.key(name),
                    format!(
                        "value {value:?} contains {c:?}; it is pasted into queries as it is, so \
                         quotes, backslashes and control characters are not allowed"
                    ),
                ));
            }
        }
    }
    for (i, metric) in config.metrics.iter().enumerate() {
        if let Some(s) = &metric.scrape {
            scrape_query(s, &root.key("metrics").index(i).key("scrape"), problems);
        }
    }
    let Some(source) = &config.source else {
        return;
    };
    let path = root.key("source");
    let a = &config.analysis;
    if source.step().is_zero() {
        problems.push((path.key("step"), "must be longer than 0".to_owned()));
    } else if source.step() > a.interval && !a.interval.is_zero() {
        problems.push((
            path.key("step"),
            format!(
                "{} is longer than analysis.interval {}: windows would hold at most one point",
                source.step(),
                a.interval
            ),
        ));
    }
    if source.timeout().is_zero() {
        problems.push((path.key("timeout"), "must be longer than 0".to_owned()));
    }
    if source.retries() > 10 {
        problems.push((
            path.key("retries"),
            format!("{} is more than 10", source.retries()),
        ));
    }
    if source.concurrency() == 0 {
        problems.push((path.key("concurrency"), "must be at least 1".to_owned()));
    }
    if let Some(auth) = &source.auth {
        self::auth(auth, &path.key("auth"), problems);
    }
    match source.kind {
        SourceKind::Prometheus => prometheus(config, source, &path, problems),
        SourceKind::Scrape => scrape(config, source, &path, problems),
        SourceKind::Recording => {
            if source.path.is_none() {
                problems.push((
                    path.key("path"),
                    "is required with `type: recording` (a recorded CSV)".to_owned(),
                ));
            }
        }
    }
    if source.kind != SourceKind::Recording && source.path.is_some() {
        problems.push((
            path.key("path"),
            format!("is only for `type: recording`, not `type: {}`", source.kind),
        ));
    }
}

fn prometheus(config: &Config, source: &SourceConfig, path: &FieldPath, problems: &mut Problems) {
    match &source.url {
        None => problems.push((
            path.key("url"),
            "is required with `type: prometheus` (e.g. \"http://127.0.0.1:9090\")".to_owned(),
        )),
        Some(url) => match check_url(url) {
            Err(message) => problems.push((path.key("url"), message)),
            Ok(parsed) if parsed.query().is_some() => problems.push((
                path.key("url"),
                format!("{url:?} has a query string; give the base URL under which /api/v1/ lives"),
            )),
            Ok(_) => {}
        },
    }
    for (field, list) in [("baseline", &source.baseline), ("canary", &source.canary)] {
        if !list.is_empty() {
            problems.push((
                path.key(field),
                "is only used with `type: scrape`; Prometheus tells the cohorts apart by the \
                 variables under `cohorts:`"
                    .to_owned(),
            ));
        }
    }
    for (i, metric) in config.metrics.iter().enumerate() {
        let mpath = FieldPath::root().key("metrics").index(i);
        for q in metric.live_queries() {
            let qpath = match q.field {
                "query" => mpath.key("query"),
                field => mpath.key(field).key("query"),
            };
            let Some(query) = q.query.filter(|q| !q.trim().is_empty()) else {
                if q.query.is_none() {
                    let what = match q.field {
                        "query" => "a `query`".to_owned(),
                        field => format!("`{field}: {{name, query}}`"),
                    };
                    problems.push((
                        if q.field == "query" {
                            mpath.clone()
                        } else {
                            mpath.key(q.field)
                        },
                        format!(
                            "metric `{}`: {what} is required with `source.type: prometheus`",
                            metric.name
                        ),
                    ));
                }
                continue;
            };
            cohort_variables(config, &metric.name, query, &qpath, problems);
        }
    }
}

/// Every `${var}` of `query` must be defined by both cohorts, and the cohorts must differ.
fn cohort_variables(
    config: &Config,
    metric: &str,
    query: &str,
    qpath: &FieldPath,
    problems: &mut Problems,
) {
    let vars = template::variables(query);
    let mut resolved = true;
    for (side, defined) in [
        ("baseline", &config.cohorts.baseline),
        ("canary", &config.cohorts.canary),
    ] {
        for name in &vars {
            if !defined.contains_key(*name) {
                resolved = false;
                let known = if defined.is_empty() {
                    "defines no variables".to_owned()
                } else {
                    format!(
                        "defines {}",
                        defined
                            .keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                problems.push((
                    qpath.clone(),
                    format!(
                        "metric `{metric}`: unknown variable `${{{name}}}`: cohorts.{side} {known}"
                    ),
                ));
            }
        }
    }
    if !resolved {
        return;
    }
    let same = vars
        .iter()
        .all(|v| config.cohorts.baseline.get(*v) == config.cohorts.canary.get(*v));
    if same {
        problems.push((
            qpath.clone(),
            format!(
                "metric `{metric}`: {}, so baseline and canary would run the same query and \
                 always compare equal; select the cohort with a variable such as `${{version}}` \
                 defined differently under cohorts.baseline and cohorts.canary",
                if vars.is_empty() {
                    "the query has no `${…}` placeholder"
                } else {
                    "both cohorts give its variables the same values"
                }
            ),
        ));
    }
}

/// One query a live source runs for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveQuery<'a> {
    /// The series it fills: the metric itself, or a proportion's numerator or denominator.
    pub series: &'a str,
    /// Where the query is written: `query`, `numerator` or `denominator`.
    pub field: &'static str,
    pub query: Option<&'a str>,
}

impl super::MetricConfig {
    /// The queries a Prometheus source runs for this metric: its `query`, or a proportion's
    /// `numerator` and `denominator` queries.
    pub fn live_queries(&self) -> Vec<LiveQuery<'_>> {
        if self.numerator.is_some() || self.denominator.is_some() {
            [
                ("numerator", &self.numerator),
                ("denominator", &self.denominator),
            ]
            .into_iter()
            .filter_map(|(field, s)| {
                s.as_ref().map(|s| LiveQuery {
                    series: &s.name,
                    field,
                    query: s.query.as_deref(),
                })
            })
            .collect()
        } else {
            vec![LiveQuery {
                series: &self.name,
                field: "query",
                query: self.query.as_deref(),
            }]
        }
    }
}

fn scrape(config: &Config, source: &SourceConfig, path: &FieldPath, problems: &mut Problems) {
    if source.url.is_some() {
        problems.push((
            path.key("url"),
            "is only used with `type: prometheus`; list the instances' /metrics URLs under \
             `baseline:` and `canary:`"
                .to_owned(),
        ));
    }
    for (field, list) in [("baseline", &source.baseline), ("canary", &source.canary)] {
        if list.is_empty() {
            problems.push((
                path.key(field),
                format!(
                    "at least one {field} /metrics URL is required with `type: scrape` (e.g. \
                     [\"http://127.0.0.1:9101/metrics\"])"
                ),
            ));
        }
        for (i, url) in list.iter().enumerate() {
            if let Err(message) = check_url(url) {
                problems.push((path.key(field).index(i), message));
            }
        }
    }
    if source.retries.is_some() {
        problems.push((
            path.key("retries"),
            "is only used with `type: prometheus`; a failed scrape is missing data".to_owned(),
        ));
    }
    if source.concurrency.is_some() {
        problems.push((
            path.key("concurrency"),
            "is only used with `type: prometheus`; every instance is scraped at once".to_owned(),
        ));
    }
    let a = &config.analysis;
    if a.baseline_offset > a.warmup {
        problems.push((
            FieldPath::root().key("analysis").key("baseline_offset"),
            format!(
                "{} reaches back before the analysis starts (warmup {}): a scrape source has \
                 no history, it only sees what it scrapes from the start",
                a.baseline_offset, a.warmup
            ),
        ));
    }
    for (i, metric) in config.metrics.iter().enumerate() {
        if metric.numerator.is_some() || metric.denominator.is_some() {
            problems.push((
                FieldPath::root().key("metrics").index(i),
                format!(
                    "metric `{}`: a proportion is not read from a scrape source; use `scrape: \
                     {{metric: …, rate: true, divide_by: {{metric: …}}}}` with the default test",
                    metric.name
                ),
            ));
            continue;
        }
        if metric.scrape.is_none() {
            problems.push((
                FieldPath::root().key("metrics").index(i),
                format!(
                    "metric `{}`: a `scrape:` (e.g. {{metric: http_requests_total, rate: true}}) \
                     is required with `source.type: scrape`",
                    metric.name
                ),
            ));
        }
    }
}

fn scrape_query(s: &ScrapeQuery, path: &FieldPath, problems: &mut Problems) {
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    if !name_ok(&s.metric) {
        problems.push((
            path.key("metric"),
            format!("{:?} is not a Prometheus metric name", s.metric),
        ));
    }
    if let Some(q) = s.quantile {
        if !(0.0..=1.0).contains(&q) {
            problems.push((path.key("quantile"), format!("{q} is outside 0..=1")));
        }
        if s.rate {
            problems.push((
                path.key("rate"),
                "cannot be combined with `quantile` (a quantile already reads the observations \
                 of each step)"
                    .to_owned(),
            ));
        }
        if s.divide_by.is_some() {
            problems.push((
                path.key("divide_by"),
                "cannot be combined with `quantile`".to_owned(),
            ));
        }
        if s.aggregate != Aggregate::Sum {
            problems.push((
                path.key("aggregate"),
                "cannot be combined with `quantile` (histogram buckets of all instances are \
                 merged before the quantile is taken)"
                    .to_owned(),
            ));
        }
    }
    if let Some(d) = &s.divide_by
        && !name_ok(&d.metric)
    {
        problems.push((
            path.key("divide_by").key("metric"),
            format!("{:?} is not a Prometheus metric name", d.metric),
        ));
    }
}

fn auth(auth: &Auth, path: &FieldPath, problems: &mut Problems) {
    match (&auth.bearer_token, &auth.basic) {
        (Some(_), Some(_)) => problems.push((
            path.clone(),
            "give either `bearer_token` or `basic`, not both".to_owned(),
        )),
        (None, None) => problems.push((
            path.clone(),
            "give `bearer_token: {env: NAME}` or `basic: {username: U, password: {file: PATH}}`"
                .to_owned(),
        )),
        _ => {}
    }
    if let Some(secret) = &auth.bearer_token {
        secret_ref(secret, &path.key("bearer_token"), problems);
    }
    if let Some(basic) = &auth.basic {
        if basic.username.is_empty() || basic.username.contains(':') {
            problems.push((
                path.key("basic").key("username"),
                "must be non-empty and without `:`".to_owned(),
            ));
        }
        secret_ref(
            &basic.password,
            &path.key("basic").key("password"),
            problems,
        );
    }
}

fn secret_ref(secret: &SecretRef, path: &FieldPath, problems: &mut Problems) {
    match (&secret.env, &secret.file) {
        (Some(_), Some(_)) | (None, None) => problems.push((
            path.clone(),
            "give exactly one of `env: VARIABLE` or `file: PATH` (the secret itself never goes \
             in the config)"
                .to_owned(),
        )),
        (Some(name), None) if name.is_empty() || name.contains('=') || name.contains('\0') => {
            problems.push((
                path.key("env"),
                format!("{name:?} is not an environment variable name"),
            ))
        }
        _ => {}
    }
}

/// An `http` or `https` URL with a host and no credentials, query or fragment.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs are supported"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "credentials in the URL are not allowed (they would show in logs); use `auth:` with \
             an environment variable or a file"
                .to_owned(),
        );
    }
    if parsed.fragment().is_some() {
        return Err(format!("{url:?} has a #fragment"));
    }
    Ok(parsed)
}
