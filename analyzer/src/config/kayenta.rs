//! Import of Kayenta canary configs (the JSON stored by Kayenta and edited in Spinnaker's UI).
//!
//! What carries over, and how, is listed in `docs/config.md` ("Importing from Kayenta"). In
//! short: names, groups and weights, the per-metric `analysisConfigurations.canary` options,
//! `templates`, and Prometheus queries, which become plain PromQL in `query` (built the way
//! Kayenta builds them, `${…}` placeholders kept) with the original query fields kept in
//! `kayenta_query`. Everything else becomes a warning, never a silent loss. Kayenta configs have
//! no thresholds or timing (those live in the Spinnaker stage), so those are filled with
//! defaults and flagged.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use fledge_judges::Direction;

use super::{
    Analysis, Config, ConfigError, DEFAULT_CONFIDENCE, DEFAULT_MIN_SAMPLES, Duration, MetricConfig,
    NanMode, OutlierStrategy, Thresholds,
};

/// A metric's query as it was in Kayenta (`metrics[].query`), kept for provenance. The live
/// source runs [`MetricConfig::query`]; this records what it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KayentaQuery {
    /// Kayenta's query `type`: `prometheus`, `datadog`, `stackdriver`, …
    #[serde(rename = "type")]
    pub query_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_bindings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by_fields: Vec<String>,
    /// An inline filter, or a whole query after a `PromQL:` prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_inline_template: Option<String>,
    /// The name of a template in [`Config::templates`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_filter_template: Option<String>,
}

/// The result of an import: the config, what could not be carried, and the config as YAML
/// (with the warnings as a comment header).
#[derive(Debug, Clone)]
pub struct Imported {
    pub config: Config,
    pub warnings: Vec<String>,
    pub yaml: String,
}

/// Why a Kayenta config could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KayentaImportError {
    #[error("{origin}: not valid JSON")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// The Kayenta config itself is broken (wrong types, missing required fields, a template
    /// that does not exist). One `path: message` per problem, with Kayenta's field names.
    #[error("{}", prefixed(origin, problems))]
    Unusable {
        origin: String,
        problems: Vec<String>,
    },
    /// The translated config breaks one of fledge's rules (duplicate metric names, all-zero
    /// weights, …). Metric indices are the same as in the Kayenta config.
    #[error("{}", after_import(origin, error))]
    Invalid { origin: String, error: ConfigError },
}

fn prefixed(origin: &str, problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("{origin}: {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn after_import(origin: &str, error: &ConfigError) -> String {
    let problems = error.problems();
    if problems.is_empty() {
        return format!("{origin}: {error}");
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("after import: {p}"))
        .collect();
    prefixed(origin, &lines)
}

/// The judge fledge's own judge is a port of; other judges are warned about.
const NETFLIX_JUDGE: &str = "NetflixACAJudge-v1.0";
/// Spinnaker's stage default when a pipeline sets no `scoreThresholds`.
const SPINNAKER_THRESHOLDS: Thresholds = Thresholds {
    pass: 75.0,
    marginal: 50.0,
};
/// The group of a metric that has none in Kayenta.
const UNGROUPED: &str = "ungrouped";

/// Converts a Kayenta canary config (JSON text) into a fledge config.
pub fn import_kayenta(json_text: &str, origin: &str) -> Result<Imported, KayentaImportError> {
    let value: Value =
        serde_json::from_str(json_text).map_err(|source| KayentaImportError::Json {
            origin: origin.to_owned(),
            source,
        })?;
    let mut report = Report::default();
    let config = translate(&value, &mut report);
    if !report.errors.is_empty() {
        return Err(KayentaImportError::Unusable {
            origin: origin.to_owned(),
            problems: report.errors,
        });
    }
    let Some(config) = config else {
        // `translate` only gives up after recording an error.
        return Err(KayentaImportError::Unusable {
            origin: origin.to_owned(),
            problems: vec!["not a Kayenta canary config".to_owned()],
        });
    };
    let config = config
        .validated()
        .map_err(|error| KayentaImportError::Invalid {
            origin: origin.to_owned(),
            error,
        })?;
    let body = config
        .to_yaml()
        .map_err(|error| KayentaImportError::Invalid {
            origin: origin.to_owned(),
            error,
        })?;
    let mut yaml = format!("# Imported from {origin} by `fledge config import-kayenta`.\n");
    if !report.warnings.is_empty() {
        yaml.push_str("# Review before use:\n");
        for warning in &report.warnings {
            let _ = writeln!(yaml, "#   - {}", warning.replace('\n', " "));
        }
    }
    yaml.push_str(&body);
    tracing::debug!(
        origin,
        metrics = config.metrics.len(),
        warnings = report.warnings.len(),
        "imported Kayenta canary config"
    );
    Ok(Imported {
        config,
        warnings: report.warnings,
        yaml,
    })
}

#[derive(Default)]
struct Report {
    warnings: Vec<String>,
    errors: Vec<String>,
}

impl Report {
    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn error(&mut self, path: &str, message: &str) {
        self.errors.push(format!("{path}: {message}"));
    }

    /// Warns about every key of `map` not in `handled`.
    fn leftovers(&mut self, map: &Map<String, Value>, handled: &[&str], path: &str) {
        for (key, value) in map {
            if !handled.contains(&key.as_str()) && !value.is_null() {
                self.warn(format!(
                    "{}: not carried (fledge has no equivalent)",
                    join(path, key)
                ));
            }
        }
    }
}

/// `a`, `b`
fn ticked<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Typed access to a JSON object that records type errors; `null` counts as absent.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    path: String,
}

impl<'v> Fields<'v> {
    fn of(value: &'v Value, path: String, report: &mut Report) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Fields { map, path }),
            Value::Null => None,
            _ => {
                report.error(&path, "expected an object");
                None
            }
        }
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str, report: &mut Report) -> Option<&'v str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            _ => {
                report.error(&self.path(key), "expected a string");
                None
            }
        }
    }

    fn bool(&self, key: &str, report: &mut Report) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                report.error(&self.path(key), "expected true or false");
                None
            }
        }
    }

    fn number(&self, key: &str, report: &mut Report) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            _ => {
                report.error(&self.path(key), "expected a number");
                None
            }
        }
    }

    fn strings(&self, key: &str, report: &mut Report) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ => report.error(&format!("{}[{i}]", self.path(key)), "expected a string"),
                    }
                }
                out
            }
            Some(_) => {
                report.error(&self.path(key), "expected a list of strings");
                Vec::new()
            }
        }
    }

    fn object(&self, key: &str, report: &mut Report) -> Option<Fields<'v>> {
        Fields::of(self.get(key)?, self.path(key), report)
    }
}

fn translate(value: &Value, report: &mut Report) -> Option<Config> {
    let Some(top) = Fields::of(value, String::new(), report) else {
        report.error(
            "(document)",
            "expected a JSON object (a Kayenta canary config)",
        );
        return None;
    };
    let name = top.str("name", report).map(str::to_owned);
    if top.get("name").is_none() {
        report.error(
            "name",
            "missing (a Kayenta canary config always has a name)",
        );
    }
    let description = top.str("description", report).map(str::to_owned);

    let applications = top.strings("applications", report);
    if !applications.is_empty() {
        report.warn(format!(
            "applications [{}]: not carried (fledge configs are not tied to Spinnaker applications)",
            applications.join(", ")
        ));
    }
    if let Some(judge) = top.object("judge", report) {
        if let Some(judge_name) = judge.str("name", report).filter(|n| *n != NETFLIX_JUDGE) {
            report.warn(format!(
                "judge.name `{judge_name}`: not carried; fledge always uses its own judge (a port of {NETFLIX_JUDGE})"
            ));
        }
        if judge
            .get("judgeConfigurations")
            .is_some_and(|c| c.as_object().is_none_or(|m| !m.is_empty()))
        {
            report.warn("judge.judgeConfigurations: not carried".to_owned());
        }
        report.leftovers(judge.map, &["name", "judgeConfigurations"], "judge");
    }

    let mut templates = BTreeMap::new();
    if let Some(t) = top.object("templates", report) {
        for key in t.map.keys() {
            if let Some(text) = t.str(key, report) {
                templates.insert(key.clone(), text.to_owned());
            }
        }
    }

    let mut metrics = Vec::new();
    match top.get("metrics") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(metric) = translate_metric(item, i, &templates, report) {
                    metrics.push(metric);
                }
            }
        }
        Some(_) => report.error("metrics", "expected a list"),
        None => report.error("metrics", "missing"),
    }

    let classifier = top.object("classifier", report);
    let groups = group_weights(classifier.as_ref(), &metrics, report);
    let thresholds = score_thresholds(classifier.as_ref(), report);
    if let Some(classifier) = &classifier {
        report.leftovers(
            classifier.map,
            &["groupWeights", "scoreThresholds"],
            "classifier",
        );
    }

    let analysis = Analysis {
        lifetime: Duration::from_mins(60),
        interval: Duration::from_mins(10),
        warmup: Duration::ZERO,
        lookback: Duration::ZERO,
        baseline_offset: Duration::ZERO,
        confidence: DEFAULT_CONFIDENCE,
        min_samples: DEFAULT_MIN_SAMPLES,
        independence: super::DEFAULT_INDEPENDENCE,
    };
    report.warn(format!(
        "analysis: a Kayenta canary config has no timing (Spinnaker's stage sets lifetimeDuration, \
         canaryAnalysisIntervalMins, beginCanaryAnalysisAfterMins, lookbackMins, \
         baselineAnalysisOffsetInMins); filled with lifetime {}, interval {}, warmup 0s, \
         lookback 0s, baseline_offset 0s; set them to match the pipeline",
        analysis.lifetime, analysis.interval
    ));

    let mut variables: Vec<&str> = metrics
        .iter()
        .filter_map(|m| m.query.as_deref())
        .flat_map(crate::source::template::variables)
        .collect();
    variables.sort_unstable();
    variables.dedup();
    if !variables.is_empty() {
        let listed = variables
            .iter()
            .map(|v| format!("`${{{v}}}`"))
            .collect::<Vec<_>>()
            .join(", ");
        report.warn(format!(
            "cohorts: the queries use {listed}; Kayenta took their values from the request's \
             scopes; to run them live add a `source:` and give both cohorts these variables, \
             e.g. `cohorts: {{baseline: {{{v}: …}}, canary: {{{v}: …}}}}`",
            v = variables[0]
        ));
    }

    report.leftovers(
        top.map,
        &[
            "name",
            "description",
            "applications",
            "judge",
            "templates",
            "metrics",
            "classifier",
            // Server-managed metadata: meaningless outside Kayenta's storage.
            "id",
            "configVersion",
            "createdTimestamp",
            "updatedTimestamp",
            "createdTimestampIso",
            "updatedTimestampIso",
        ],
        "",
    );

    Some(Config {
        name: name.unwrap_or_default(),
        description,
        thresholds,
        groups,
        analysis,
        metrics,
        templates,
        source: None,
        cohorts: Default::default(),
        rollout: None,
    })
}

fn translate_metric(
    value: &Value,
    index: usize,
    templates: &BTreeMap<String, String>,
    report: &mut Report,
) -> Option<MetricConfig> {
    let path = format!("metrics[{index}]");
    let Some(m) = Fields::of(value, path.clone(), report) else {
        report.error(&path, "expected an object");
        return None;
    };
    let Some(name) = m.str("name", report).map(str::to_owned) else {
        if m.get("name").is_none() {
            report.error(&m.path("name"), "missing");
        }
        return None;
    };
    let label = format!("{path} `{name}`");

    let groups = m.strings("groups", report);
    let group = match groups.as_slice() {
        [] => {
            report.warn(format!(
                "{label}: no groups; put in group `{UNGROUPED}` (in Kayenta it counted in no group score)"
            ));
            UNGROUPED.to_owned()
        }
        [only] => only.clone(),
        [first, rest @ ..] => {
            report.warn(format!(
                "{label}: groups {} not carried; a fledge metric is in one group, kept `{first}`",
                ticked(rest)
            ));
            first.clone()
        }
    };

    let mut metric = MetricConfig {
        name,
        group,
        ..MetricConfig::default()
    };

    if let Some(configs) = m.object("analysisConfigurations", report) {
        if let Some(canary) = configs.object("canary", report) {
            canary_options(&canary, &label, &mut metric, report);
        }
        report.leftovers(configs.map, &["canary"], &configs.path);
    }
    if m.get("extensions").is_some() {
        report.warn(format!(
            "{label}: `extensions` (the pre-analysisConfigurations format) not carried; \
             its options are not imported"
        ));
    }
    if let Some(scope) = m.str("scopeName", report).filter(|s| *s != "default") {
        report.warn(format!(
            "{label}: scopeName `{scope}` not carried; fledge compares one baseline/canary pair"
        ));
    }
    if let Some(query) = m.object("query", report) {
        translate_query(&query, &label, templates, &mut metric, report);
    } else if m.get("query").is_none() {
        report.warn(format!(
            "{label}: no query; kept without one (replay works, live sources need a `query`)"
        ));
    }
    report.leftovers(
        m.map,
        &[
            "name",
            "groups",
            "analysisConfigurations",
            "extensions",
            "scopeName",
            "query",
        ],
        &path,
    );
    Some(metric)
}

fn canary_options(c: &Fields<'_>, label: &str, metric: &mut MetricConfig, report: &mut Report) {
    if let Some(direction) = c.str("direction", report) {
        metric.direction = match direction {
            "increase" => Direction::Increase,
            "decrease" => Direction::Decrease,
            "either" => Direction::Either,
            other => {
                report.warn(format!(
                    "{label}: direction `{other}` is unknown; Kayenta treats it as `either`, so does the import"
                ));
                Direction::Either
            }
        };
    }
    metric.critical = c.bool("critical", report).unwrap_or(false);
    metric.must_have_data = c.bool("mustHaveData", report).unwrap_or(false);
    if c.bool("muted", report) == Some(true) {
        report.warn(format!(
            "{label}: muted not carried; the metric counts in the score (remove it, or give its group weight 0)"
        ));
    }
    match c.str("nanStrategy", report) {
        Some("replace") => metric.nan_strategy = NanMode::Replace,
        None | Some("remove") | Some("none") => {}
        Some(other) => report.warn(format!(
            "{label}: nanStrategy `{other}` is unknown; Kayenta treats it as `remove`, so does the import"
        )),
    }
    if let Some(outliers) = c.object("outliers", report) {
        match outliers.str("strategy", report) {
            Some("remove") => {
                metric.outliers.strategy = OutlierStrategy::Remove;
                metric.outliers.factor = outliers.number("outlierFactor", report);
            }
            None | Some("keep") | Some("none") => {}
            Some(other) => report.warn(format!(
                "{label}: outliers.strategy `{other}` is unknown; Kayenta keeps outliers, so does the import"
            )),
        }
        report.leftovers(outliers.map, &["strategy", "outlierFactor"], &outliers.path);
    }
    if let Some(effect) = c.object("effectSize", report) {
        effect_size(&effect, label, metric, report);
    }
    report.leftovers(
        c.map,
        &[
            "direction",
            "critical",
            "mustHaveData",
            "muted",
            "nanStrategy",
            "outliers",
            "effectSize",
        ],
        &c.path,
    );
}

fn effect_size(e: &Fields<'_>, label: &str, metric: &mut MetricConfig, report: &mut Report) {
    let measure = e.str("measure", report).unwrap_or("meanRatio");
    let increase = e.number("allowedIncrease", report);
    let decrease = e.number("allowedDecrease", report);
    if measure == "meanRatio" {
        if let Some(v) = increase {
            if v >= 1.0 {
                metric.allowed_increase = v;
            } else {
                report.warn(format!(
                    "{label}: effectSize.allowedIncrease {v} is below 1 and has no effect in Kayenta; using 1.0"
                ));
            }
        }
        if let Some(v) = decrease {
            if v > 0.0 && v <= 1.0 {
                metric.allowed_decrease = v;
            } else {
                report.warn(format!(
                    "{label}: effectSize.allowedDecrease {v} is outside (0, 1] and has no effect in Kayenta; using 1.0"
                ));
            }
        }
    } else {
        report.warn(format!(
            "{label}: effectSize.measure `{measure}` not carried (fledge uses the mean ratio); \
             allowedIncrease/allowedDecrease dropped, defaults 1.0 used"
        ));
    }
    for key in ["criticalIncrease", "criticalDecrease"] {
        if let Some(v) = e.number(key, report) {
            report.warn(format!(
                "{label}: effectSize.{key} {v} not carried (fledge has no critical effect size; use `critical: true`)"
            ));
        }
    }
    report.leftovers(
        e.map,
        &[
            "measure",
            "allowedIncrease",
            "allowedDecrease",
            "criticalIncrease",
            "criticalDecrease",
        ],
        &e.path,
    );
}

fn translate_query(
    q: &Fields<'_>,
    label: &str,
    templates: &BTreeMap<String, String>,
    metric: &mut MetricConfig,
    report: &mut Report,
) {
    let Some(query_type) = q.str("type", report) else {
        report.error(
            &q.path("type"),
            "missing (Kayenta needs it to pick the metrics service)",
        );
        return;
    };
    let kq = KayentaQuery {
        query_type: query_type.to_owned(),
        metric_name: q.str("metricName", report).map(str::to_owned),
        resource_type: q.str("resourceType", report).map(str::to_owned),
        label_bindings: q.strings("labelBindings", report),
        group_by_fields: q.strings("groupByFields", report),
        custom_inline_template: q
            .str("customInlineTemplate", report)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        custom_filter_template: q
            .str("customFilterTemplate", report)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    };
    let missing = kq
        .custom_filter_template
        .as_ref()
        .filter(|t| !templates.contains_key(*t));
    if let Some(template) = missing {
        report.error(
            &q.path("customFilterTemplate"),
            &format!("template `{template}` is not in templates"),
        );
    }
    if q.get("customFilter").is_some() {
        report.warn(format!(
            "{label}: query.customFilter (deprecated, rejected by Kayenta) not carried"
        ));
    }
    let carried: &[&str] = &[
        "type",
        "metricName",
        "resourceType",
        "labelBindings",
        "groupByFields",
        "customInlineTemplate",
        "customFilterTemplate",
        "customFilter",
    ];
    if query_type == "prometheus" {
        metric.query = prometheus_query(&kq, label, templates, report);
        report.leftovers(q.map, carried, &q.path);
    } else {
        let extra: Vec<&str> = q
            .map
            .iter()
            .filter(|(k, v)| !carried.contains(&k.as_str()) && !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" (fields {} dropped)", extra.join(", "))
        };
        report.warn(format!(
            "{label}: query type `{query_type}` is not supported; kept without a query{extra} \
             (replay works, a live source needs a PromQL `query`)"
        ));
    }
    metric.kayenta_query = Some(kq);
}

/// Builds the PromQL Kayenta would send, leaving `${…}` placeholders for the live source.
fn prometheus_query(
    kq: &KayentaQuery,
    label: &str,
    templates: &BTreeMap<String, String>,
    report: &mut Report,
) -> Option<String> {
    // Kayenta: the inline template wins over the named one; either may hold a whole query.
    let custom = kq.custom_inline_template.as_deref().or_else(|| {
        kq.custom_filter_template
            .as_ref()
            .and_then(|t| templates.get(t))
            .map(String::as_str)
    });
    if let Some(promql) = custom.and_then(|c| c.strip_prefix("PromQL:")) {
        let promql = promql.trim();
        if !promql.contains("${") {
            report.warn(format!(
                "{label}: the PromQL has no `${{…}}` placeholder, so baseline and canary run the \
                 same query (Kayenta issue #553); add a scope selector"
            ));
        }
        return Some(promql.to_owned());
    }
    let Some(metric_name) = kq.metric_name.as_deref().filter(|n| !n.is_empty()) else {
        report.warn(format!(
            "{label}: Prometheus query without metricName or `PromQL:` template; kept without a query"
        ));
        return None;
    };
    let mut filters: Vec<String> = Vec::new();
    match custom.filter(|c| !c.is_empty()) {
        Some(custom) => {
            filters.extend(custom.split(',').map(str::to_owned));
            filters.extend(kq.label_bindings.iter().cloned());
        }
        None => {
            filters.extend(kq.label_bindings.iter().cloned());
            match kq.resource_type.as_deref() {
                Some("gce_instance") => {
                    report.warn(format!(
                        "{label}: resourceType gce_instance: scope filter rebuilt as \
                         `instance=~\"${{scope}}-.{{4}}\"`; Kayenta's scope label is set per account, check it"
                    ));
                    filters.push("instance=~\"${scope}-.{4}\"".to_owned());
                    filters
                        .push("zone=~\".+/projects/${project}/zones/${location}-.{1}\"".to_owned());
                }
                Some("aws_ec2_instance") => {
                    filters.push("asg_groupName=\"${scope}\"".to_owned());
                    filters.push("zone=~\"${location}.{1}\"".to_owned());
                }
                other => report.warn(format!(
                    "{label}: no custom filter and resourceType {}: the query has no scope filter \
                     (Kayenta would take the resourceType from the request's scope or reject it); \
                     add a selector with `${{scope}}`",
                    other.map_or("unset".to_owned(), |t| format!("`{t}`"))
                )),
            }
        }
    }
    let mut query = format!("avg({metric_name}");
    if !filters.is_empty() {
        let _ = write!(query, "{{{}}}", filters.join(","));
    }
    query.push(')');
    if !kq.group_by_fields.is_empty() {
        let _ = write!(query, " by ({})", kq.group_by_fields.join(","));
    }
    Some(query)
}

fn group_weights(
    classifier: Option<&Fields<'_>>,
    metrics: &[MetricConfig],
    report: &mut Report,
) -> BTreeMap<String, f64> {
    let mut configured: BTreeMap<String, f64> = BTreeMap::new();
    let weights = classifier.and_then(|c| c.object("groupWeights", report));
    if let Some(weights) = &weights {
        for key in weights.map.keys() {
            if let Some(w) = weights.number(key, report) {
                configured.insert(key.clone(), w);
            }
        }
    }
    let mut used: Vec<&str> = metrics.iter().map(|m| m.group.as_str()).collect();
    used.sort_unstable();
    used.dedup();

    let mut groups = BTreeMap::new();
    for (group, weight) in &configured {
        if used.contains(&group.as_str()) {
            groups.insert(group.clone(), *weight);
        } else {
            report.warn(format!(
                "classifier.groupWeights.{group}: no metric is in this group, weight {weight} dropped \
                 (Kayenta silently loses it)"
            ));
        }
    }
    let unweighted: Vec<&str> = used
        .iter()
        .copied()
        .filter(|g| !configured.contains_key(*g))
        .collect();
    if !unweighted.is_empty() {
        // Kayenta: groups without a configured weight share what is left of 100.
        let total: f64 = configured.values().sum();
        let share = ((100.0 - total) / unweighted.len() as f64).max(0.0);
        if configured.is_empty() {
            report.warn(format!(
                "classifier.groupWeights: none given; each group gets {share} (Kayenta's split of 100)"
            ));
        } else {
            report.warn(format!(
                "classifier.groupWeights: groups {} have no weight; given {share} each \
                 (Kayenta's share of what is left of 100)",
                ticked(&unweighted)
            ));
        }
        for group in unweighted {
            groups.insert(group.to_owned(), share);
        }
    }
    let sum: f64 = groups.values().sum();
    if !groups.is_empty() && (sum - 100.0).abs() > 1e-9 {
        report.warn(format!(
            "groups: weights sum to {sum}; Kayenta uses them as given, fledge normalises them, \
             so scores differ from Kayenta's"
        ));
    }
    groups
}

fn score_thresholds(classifier: Option<&Fields<'_>>, report: &mut Report) -> Thresholds {
    let given = classifier.and_then(|c| c.object("scoreThresholds", report));
    if let Some(t) = given {
        let pass = t.number("pass", report);
        let marginal = t.number("marginal", report);
        report.leftovers(t.map, &["pass", "marginal"], &t.path);
        if let (Some(pass), Some(marginal)) = (pass, marginal) {
            report.warn(format!(
                "thresholds: taken from classifier.scoreThresholds (pass {pass}, marginal {marginal}), \
                 which Kayenta's judge ignores; the pipeline's scoreThresholds are what counted, check them"
            ));
            return Thresholds { pass, marginal };
        }
    }
    report.warn(format!(
        "thresholds: a Kayenta canary config has none (the pipeline stage sets scoreThresholds); \
         filled with Spinnaker's default pass {}, marginal {}; set them to match the pipeline",
        SPINNAKER_THRESHOLDS.pass, SPINNAKER_THRESHOLDS.marginal
    ));
    SPINNAKER_THRESHOLDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(json: &str, templates: &[(&str, &str)]) -> (Option<String>, Vec<String>) {
        let value: Value = serde_json::from_str(json).unwrap();
        let templates = templates
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut report = Report::default();
        let q = Fields::of(&value, "query".into(), &mut report).unwrap();
        let mut metric = MetricConfig {
            name: "m".into(),
            group: "g".into(),
            ..MetricConfig::default()
        };
        translate_query(&q, "m", &templates, &mut metric, &mut report);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        (metric.query, report.warnings)
    }

    #[test]
    fn builds_promql_like_kayenta() {
        let (q, w) = query(
            r#"{"type":"prometheus","metricName":"up","labelBindings":["job=\"api\""],"groupByFields":["pod","zone"],"customInlineTemplate":"ns='${namespace}'"}"#,
            &[],
        );
        assert_eq!(
            q.as_deref(),
            Some(r#"avg(up{ns='${namespace}',job="api"}) by (pod,zone)"#)
        );
        assert!(w.is_empty(), "{w:?}");

        let (q, _) = query(
            r#"{"type":"prometheus","metricName":"up","resourceType":"aws_ec2_instance"}"#,
            &[],
        );
        assert_eq!(
            q.as_deref(),
            Some(r#"avg(up{asg_groupName="${scope}",zone=~"${location}.{1}"})"#)
        );

        let (q, _) = query(
            r#"{"type":"prometheus","metricName":"x","customFilterTemplate":"t"}"#,
            &[("t", "PromQL: sum(rate(x{pod=~\"${scope}.*\"}[1m]))")],
        );
        assert_eq!(q.as_deref(), Some(r#"sum(rate(x{pod=~"${scope}.*"}[1m]))"#));
    }

    #[test]
    fn warns_when_the_scope_cannot_reach_the_query() {
        let (q, w) = query(r#"{"type":"prometheus","metricName":"up"}"#, &[]);
        assert_eq!(q.as_deref(), Some("avg(up)"));
        assert!(w[0].contains("no scope filter"), "{w:?}");
        let (_, w) = query(
            r#"{"type":"prometheus","customInlineTemplate":"PromQL:sum(up)"}"#,
            &[],
        );
        assert!(w[0].contains("#553"), "{w:?}");
    }
}
