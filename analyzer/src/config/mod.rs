//! The canary config: what to compare, how to judge it and how to score it.
//!
//! A config is written in YAML (a file, [`load`] / [`from_yaml_str`]) or sent as JSON (the REST
//! API, [`from_json_value`]); both go through the same serde types and the same validation.
//! `docs/config.md` is the reference for every field.
//!
//! Loading is strict: every struct has `#[serde(deny_unknown_fields)]` (and no `flatten`, which
//! would silently disable it), and after deserialisation [`Config::validated`] checks the
//! semantic rules and reports *all* problems at once. Every problem names the field path and,
//! for YAML, the line:
//!
//! ```text
//! configs/bad.yaml:7: metrics[1].allowed_increse: unknown field `allowed_increse`, expected one of …
//! configs/bad.yaml:4: groups.latency: weight -1 is negative
//! ```
//!
//! Types are plain structs with public fields so that later fields (`source:`, `cohorts:`,
//! `rollout:`, per-metric `test:` …) are one `#[serde(default)]` field each.

mod checks;
mod duration;
pub mod kayenta;
mod lines;
mod sequential;
mod source;
mod validate;

pub(crate) use source::scalar_map;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::MessageFormatter;

use fledge_judges::{
    Direction, GroupWeights, Independence, JudgeError, MetricOptions, NanStrategy,
};

pub use fledge_judges::SequentialKind;

use crate::engine::{AnalysisSpec, MetricSpec};

pub use checks::{Amount, AmountKind, SeriesRef, TestName, Unit};
pub use duration::{Duration, ParseDurationError};
pub use kayenta::{Imported, KayentaImportError, KayentaQuery, import_kayenta};
/// A parsed URL (as [`check_url`] returns).
pub use reqwest::Url;
pub use source::{
    Aggregate, Auth, BasicAuth, Cohorts, LiveQuery, ScrapeDenominator, ScrapeQuery, SecretRef,
    SourceConfig, SourceKind, check_url,
};

use lines::{FieldPath, LineIndex};

/// A canary config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identifies the config in reports; non-empty.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Score thresholds; default `{pass: 90, marginal: 70}`.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Group → weight. Weights are relative (normalised when scoring, see
    /// [`Config::group_weights`]). When omitted (or empty), every group used by a metric gets
    /// weight 1; after loading this map is always filled in.
    #[serde(default)]
    pub groups: BTreeMap<String, f64>,
    /// Timing of the analysis and defaults for the statistics.
    pub analysis: Analysis,
    /// At least one metric; names are unique.
    pub metrics: Vec<MetricConfig>,
    /// Named query fragments, carried over from a Kayenta config's `templates`; referenced by
    /// [`KayentaQuery::custom_filter_template`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// Where a live analysis (`fledge analyze`, `fledge record`) reads the metrics; replay
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
    /// The variables each cohort's query templates are filled in with (`${version}`).
    #[serde(default, skip_serializing_if = "Cohorts::is_empty")]
    pub cohorts: Cohorts,
    /// How a `fledge rollout` moves traffic: the router and the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutConfig>,
}

/// Score thresholds, in points out of 100: a score `>= pass` passes, `>= marginal` is marginal,
/// anything lower fails. `0 <= marginal <= pass <= 100`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            pass: 90.0,
            marginal: 70.0,
        }
    }
}

/// When and over which windows the analysis runs, with Spinnaker's semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Total length of the analysis (Spinnaker's `lifetimeDuration`); > 0. May be left out
    /// when the config has a `rollout:` (whose `analysis:` steps give their own lengths).
    #[serde(default)]
    pub lifetime: Duration,
    /// Time between judgements (`canaryAnalysisIntervalMins`); > 0 and <= `lifetime`.
    pub interval: Duration,
    /// Wait before the first window starts (`beginCanaryAnalysisAfterMins`); < `lifetime`.
    #[serde(default)]
    pub warmup: Duration,
    /// Window length (`lookbackMins`): 0 (the default) is a window growing from the start,
    /// positive is a sliding window of this length ending at each judgement.
    #[serde(default)]
    pub lookback: Duration,
    /// Baseline windows are shifted back by this much (`baselineAnalysisOffsetInMins`).
    #[serde(default)]
    pub baseline_offset: Duration,
    /// Confidence level of each metric's test, in (0, 1); default 0.98 (Kayenta's).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Fewest values per side needed to judge a metric (fewer is `nodata`); >= 1, default 10.
    /// With `independence: auto` or `paired` it also bounds the effective sample size.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// How the points of a time series are treated (`auto`, `assume`, `paired`); the default
    /// for every Mann–Whitney metric. Default `auto`: estimate the autocorrelation in each
    /// window and widen the test by it (see `docs/autocorr.md`).
    #[serde(default = "default_independence", skip_serializing_if = "is_auto")]
    pub independence: Independence,
}

/// Default of [`Analysis::confidence`].
pub const DEFAULT_CONFIDENCE: f64 = 0.98;
/// Default of [`Analysis::min_samples`]: below about 5 values per side the two-sided 98% test
/// cannot reach significance at all, so 10 keeps a verdict from resting on a handful of points.
pub const DEFAULT_MIN_SAMPLES: usize = 10;
/// Default of [`Outliers::factor`] (Kayenta's `outlierFactor`).
pub const DEFAULT_OUTLIER_FACTOR: f64 = 3.0;

fn default_confidence() -> f64 {
    DEFAULT_CONFIDENCE
}

fn default_min_samples() -> usize {
    DEFAULT_MIN_SAMPLES
}

/// Default of [`Analysis::independence`]: configs judge time series, which are rarely
/// independent.
pub const DEFAULT_INDEPENDENCE: Independence = Independence::Auto;

fn default_independence() -> Independence {
    DEFAULT_INDEPENDENCE
}

fn is_auto(i: &Independence) -> bool {
    *i == Independence::Auto
}

/// One metric to compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Unique, non-empty; matches a recording's metric column.
    pub name: String,
    /// A key of [`Config::groups`].
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which test judges the metric; default `mann-whitney`.
    #[serde(default, skip_serializing_if = "TestName::is_mann_whitney")]
    pub test: TestName,
    /// Which way a change is harmful; default `either`.
    #[serde(default)]
    pub direction: Direction,
    /// Canary/baseline mean ratio at or above which a significant increase fails; >= 1, default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub allowed_increase: f64,
    /// Canary/baseline mean ratio at or below which a significant decrease fails; in (0, 1],
    /// default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub allowed_decrease: f64,
    /// A failing critical metric fails the whole canary.
    #[serde(default, skip_serializing_if = "is_false")]
    pub critical: bool,
    /// No data fails the metric instead of leaving it out of the score.
    #[serde(default, skip_serializing_if = "is_false")]
    pub must_have_data: bool,
    /// Overrides [`Analysis::min_samples`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<usize>,
    /// Overrides [`Analysis::confidence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Overrides [`Analysis::independence`] (Mann–Whitney metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub independence: Option<Independence>,
    /// What to do with NaN and ±Inf values; default `remove`.
    #[serde(default, skip_serializing_if = "NanMode::is_remove")]
    pub nan_strategy: NanMode,
    /// The replacement for `nan_strategy: replace`; default 0. Only allowed with `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nan_value: Option<f64>,
    /// IQR outlier removal; default keep.
    #[serde(default, skip_serializing_if = "Outliers::is_keep_default")]
    pub outliers: Outliers,
    /// The time unit of the metric's values (`ms`, `s`, …), which amounts such as `400ms` are
    /// converted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    /// threshold, relative: the aggregate of the window compared; default `mean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<fledge_judges::Aggregate>,
    /// threshold: the lowest passing canary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Amount>,
    /// threshold: the highest passing canary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Amount>,
    /// threshold: check every point instead of an aggregate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub each_point: bool,
    /// threshold with `each_point`: how many points may be out of bounds; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<usize>,
    /// relative: how far above the baseline's aggregate the canary's may be (`10%`, `+25ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<Amount>,
    /// relative: how far below the baseline's aggregate the canary's may be (`5%`, `-0.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decrease: Option<Amount>,
    /// proportion: the series of events (errors); a name, or `{name, query}` for a live source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerator: Option<SeriesRef>,
    /// proportion: the series of trials (requests); a name, or `{name, query}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<SeriesRef>,
    /// The query a live source runs (PromQL for Prometheus); replay ignores it. `${scope}`-style
    /// placeholders are filled in with each cohort's variables (`cohorts:`) when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Where the metric came from when imported from Kayenta (provenance; `query` is what runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kayenta_query: Option<KayentaQuery>,
    /// What a `type: scrape` source reads from the instances' `/metrics` pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeQuery>,
    /// sequential: which test, `counts`, `distribution` or `mean` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SequentialKind>,
    /// sequential counts: the canary's share of the traffic, in (0, 1); default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_share: Option<f64>,
    /// sequential counts: strength k of the Beta prior; > 0, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_strength: Option<f64>,
    /// sequential distribution: quantiles whose bands are reported and must rule out harm
    /// for the metric to settle; each in (0, 1); default `[0.5, 0.9, 0.99]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Vec<f64>>,
    /// sequential mean: the number of observations the boundary is tuned for; > 0,
    /// default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune_n: Option<f64>,
    /// sequential distribution and mean: use every k-th point (distribution) or means of k
    /// pairs (mean), for autocorrelated series; >= 1, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

/// A metric with every optional field at its default (and an empty name and group), for
/// building configs in code: `MetricConfig { name, group, ..MetricConfig::default() }`.
impl Default for MetricConfig {
    fn default() -> Self {
        MetricConfig {
            name: String::new(),
            group: String::new(),
            description: None,
            test: TestName::default(),
            direction: Direction::default(),
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            critical: false,
            must_have_data: false,
            min_samples: None,
            confidence: None,
            independence: None,
            nan_strategy: NanMode::default(),
            nan_value: None,
            outliers: Outliers::default(),
            unit: None,
            aggregate: None,
            min: None,
            max: None,
            each_point: false,
            failure_limit: None,
            max_increase: None,
            max_decrease: None,
            numerator: None,
            denominator: None,
            query: None,
            kayenta_query: None,
            scrape: None,
            kind: None,
            traffic_share: None,
            prior_strength: None,
            quantiles: None,
            tune_n: None,
            batch: None,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `nan_strategy`: what to do with NaN and ±Inf values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanMode {
    /// Drop them (Kayenta's default).
    #[default]
    Remove,
    /// Replace each with `nan_value` (default 0).
    Replace,
}

impl NanMode {
    fn is_remove(&self) -> bool {
        *self == NanMode::Remove
    }
}

/// `outliers: {strategy, factor}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outliers {
    #[serde(default)]
    pub strategy: OutlierStrategy,
    /// IQR factor for `remove`: values beyond `factor` × IQR outside the quartiles are dropped;
    /// > 0, default 3. Only allowed with `remove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
}

impl Outliers {
    fn is_keep_default(&self) -> bool {
        *self == Outliers::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierStrategy {
    #[default]
    Keep,
    Remove,
}

impl Config {
    /// Checks the semantic rules and fills in defaults that depend on other fields (`groups`).
    /// All problems are reported together; problems carry field paths but no lines.
    pub fn validated(self) -> Result<Config, ConfigError> {
        self.finish().map_err(|problems| ConfigError::Invalid {
            origin: None,
            problems: problems
                .into_iter()
                .map(|(path, message)| Problem::new(&path, None, message))
                .collect(),
        })
    }

    fn finish(mut self) -> Result<Config, Vec<(FieldPath, String)>> {
        let problems = validate::validate(&self);
        if !problems.is_empty() {
            return Err(problems);
        }
        if self.groups.is_empty() {
            for metric in &self.metrics {
                self.groups.insert(metric.group.clone(), 1.0);
            }
        }
        Ok(self)
    }

    /// Group weights normalised to sum to 1.
    pub fn group_weights(&self) -> BTreeMap<&str, f64> {
        let total: f64 = self.groups.values().sum();
        self.groups
            .iter()
            .map(|(group, weight)| {
                let share = if total > 0.0 { weight / total } else { 0.0 };
                (group.as_str(), share)
            })
            .collect()
    }

    /// What the engine needs, with every metric's judge options resolved. The config is
    /// already valid, so an error here means it was changed after loading.
    pub fn to_spec(&self) -> Result<AnalysisSpec, JudgeError> {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let a = &self.analysis;
        Ok(AnalysisSpec {
            name: self.name.clone(),
            lifetime: millis(a.lifetime),
            interval: millis(a.interval),
            warmup: millis(a.warmup),
            lookback: millis(a.lookback),
            baseline_offset: millis(a.baseline_offset),
            thresholds: fledge_judges::Thresholds::new(
                self.thresholds.pass,
                self.thresholds.marginal,
            )?,
            weights: GroupWeights::new(
                self.groups
                    .iter()
                    .map(|(group, weight)| (group.clone(), *weight))
                    .collect(),
            )?,
            metrics: self
                .metrics
                .iter()
                .map(|m| MetricSpec {
                    name: m.name.clone(),
                    group: m.group.clone(),
                    options: m.options(self),
                    test: m.metric_test(),
                })
                .collect(),
        })
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&MetricConfig> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The config as YAML, in the same schema it is loaded from.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_saphyr::to_string(self).map_err(|e| ConfigError::Serialize {
            format: "YAML",
            message: e.to_string(),
        })
    }

    /// The config as a JSON value, in the same schema it is loaded from.
    pub fn to_json(&self) -> Result<serde_json::Value, ConfigError> {
        serde_json::to_value(self).map_err(|e| ConfigError::Serialize {
            format: "JSON",
            message: e.to_string(),
        })
    }
}

impl MetricConfig {
    /// The judge's options for this metric, with the config's defaults applied.
    pub fn options(&self, config: &Config) -> MetricOptions {
        MetricOptions {
            direction: self.direction,
            allowed_increase: self.allowed_increase,
            allowed_decrease: self.allowed_decrease,
            critical: self.critical,
            must_have_data: self.must_have_data,
            min_samples: self.min_samples.unwrap_or(config.analysis.min_samples),
            confidence: self.confidence.unwrap_or(config.analysis.confidence),
            independence: self.independence.unwrap_or(config.analysis.independence),
            nan_strategy: match self.nan_strategy {
                NanMode::Remove => NanStrategy::Remove,
                NanMode::Replace => NanStrategy::Replace(self.nan_value.unwrap_or(0.0)),
            },
            outlier_factor: match self.outliers.strategy {
                OutlierStrategy::Keep => None,
                OutlierStrategy::Remove => {
                    Some(self.outliers.factor.unwrap_or(DEFAULT_OUTLIER_FACTOR))
                }
            },
            ..MetricOptions::default()
        }
    }
}

/// One problem with a config: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path such as `metrics[1].allowed_increase`; empty for the document as a whole.
    pub path: String,
    /// 1-based line in the YAML text, when known.
    pub line: Option<u64>,
    pub message: String,
}

impl Problem {
    fn new(path: &FieldPath, line: Option<u64>, message: String) -> Self {
        Problem {
            path: path.to_string(),
            line,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text did not deserialise (one problem) or the config broke semantic rules (all of
    /// them). Displayed one problem per line as `origin:line: path: message`.
    #[error("{}", render_problems(origin.as_deref(), problems))]
    Invalid {
        /// The file name or other origin given to the loader; `None` for JSON values.
        origin: Option<String>,
        problems: Vec<Problem>,
    },
    #[error("cannot write the config as {format}: {message}")]
    Serialize {
        format: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// The individual problems (empty for read and serialisation errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(origin: Option<&str>, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match (origin, problem.line) {
            (Some(origin), Some(line)) => out.push_str(&format!("{origin}:{line}: ")),
            (Some(origin), None) => out.push_str(&format!("{origin}: ")),
            (None, Some(line)) => out.push_str(&format!("line {line}: ")),
            (None, None) => {}
        }
        out.push_str(&problem.to_string());
    }
    out
}

/// Loads and validates a YAML (or JSON, which is YAML) config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_yaml_str(&text, &path.display().to_string())
}

/// Parses and validates YAML text; `origin` (usually the file name) prefixes every problem.
pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: Some(origin.to_owned()),
        problems,
    };
    let raw = parse_yaml(text).map_err(|problem| invalid(vec![problem]))?;
    match raw.finish() {
        Ok(config) => {
            tracing::debug!(
                origin,
                metrics = config.metrics.len(),
                groups = config.groups.len(),
                "loaded canary config"
            );
            Ok(config)
        }
        Err(problems) => {
            let index = LineIndex::build(text);
            let mut problems: Vec<Problem> = problems
                .into_iter()
                .map(|(path, message)| {
                    let line = index.line(&path);
                    Problem::new(&path, line, message)
                })
                .collect();
            // In reading order; problems on one line keep the order of the rules.
            problems.sort_by_key(|p| p.line.unwrap_or(0));
            Err(invalid(problems))
        }
    }
}

/// Deserialises and validates a config sent as JSON. Problems name field paths (no lines).
pub fn from_json_value(value: serde_json::Value) -> Result<Config, ConfigError> {
    let raw: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = field_path(e.path());
        ConfigError::Invalid {
            origin: None,
            problems: vec![Problem::new(
                &path,
                None,
                clean(&e.into_inner().to_string()),
            )],
        }
    })?;
    raw.validated()
}

fn parse_yaml(text: &str) -> Result<Config, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut path = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(field_path(e.path()));
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let e = e.without_snippet();
        let message = clean(&serde_saphyr::UserMessageFormatter.format_message(e));
        let path = path.unwrap_or_default();
        let line = match e {
            // The parser reports a missing field where the mapping ends; its start reads better.
            serde_saphyr::Error::SerdeMissingField { .. } => LineIndex::build(text).line(&path),
            _ => None,
        }
        .or_else(|| e.location().map(|l| l.line()).filter(|&l| l > 0));
        Problem::new(&path, line, message)
    })
}

/// Converts a `serde_path_to_error` path, stopping at the first segment it could not name.
fn field_path(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    let mut out = FieldPath::root();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => out.index(*index),
            Segment::Map { key } | Segment::Enum { variant: key } => out.key(key),
            Segment::Unknown => break,
        };
    }
    out
}

/// Keeps a message on one line (error text can quote user input).
fn clean(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
