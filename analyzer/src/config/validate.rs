//! Semantic rules that serde cannot express. Every rule adds a problem and carries on, so one run
//! reports everything that is wrong.

use std::collections::{BTreeMap, BTreeSet};

use super::lines::FieldPath;
use super::{Config, MetricConfig, NanMode, OutlierStrategy};

type Problems = Vec<(FieldPath, String)>;

pub(crate) fn validate(config: &Config) -> Problems {
    let mut problems = Problems::new();
    let root = FieldPath::root();

    if config.name.trim().is_empty() {
        problems.push((root.key("name"), "must not be empty".to_owned()));
    }
    thresholds(config, &mut problems);
    analysis(config, &mut problems);
    groups(config, &mut problems);

    let metrics_path = root.key("metrics");
    if config.metrics.is_empty() {
        problems.push((
            metrics_path.clone(),
            "at least one metric is required".to_owned(),
        ));
    }
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, metric) in config.metrics.iter().enumerate() {
        let path = metrics_path.index(i);
        if !metric.name.trim().is_empty() {
            if let Some(first) = first_index.get(metric.name.as_str()) {
                problems.push((
                    path.key("name"),
                    format!(
                        "duplicate metric name `{}` (also metrics[{first}])",
                        metric.name
                    ),
                ));
            } else {
                first_index.insert(&metric.name, i);
            }
        }
        self::metric(config, metric, &path, &mut problems);
    }
    super::source::validate(config, &mut problems);
    if let Some(rollout) = &config.rollout {
        use crate::rollout::spec::PathPart;
        for (parts, message) in rollout.problems(config.analysis.interval) {
            let mut path = root.key("rollout");
            for part in parts {
                path = match part {
                    PathPart::Key(k) => path.key(&k),
                    PathPart::Index(i) => path.index(i),
                };
            }
            problems.push((path, message));
        }
    }
    problems
}

fn thresholds(config: &Config, problems: &mut Problems) {
    let path = FieldPath::root().key("thresholds");
    let t = config.thresholds;
    let mut in_range = true;
    for (field, value) in [("pass", t.pass), ("marginal", t.marginal)] {
        if !(0.0..=100.0).contains(&value) {
            in_range = false;
            problems.push((
                path.key(field),
                format!("{value} is outside 0..=100 (scores are out of 100)"),
            ));
        }
    }
    if in_range && t.marginal > t.pass {
        problems.push((
            path.key("marginal"),
            format!("marginal {} is above pass {}", t.marginal, t.pass),
        ));
    }
}

fn analysis(config: &Config, problems: &mut Problems) {
    let path = FieldPath::root().key("analysis");
    let a = &config.analysis;
    if a.lifetime.is_zero() && config.rollout.is_none() {
        problems.push((path.key("lifetime"), "must be longer than 0".to_owned()));
    }
    if a.interval.is_zero() {
        problems.push((path.key("interval"), "must be longer than 0".to_owned()));
    } else if a.interval > a.lifetime && !a.lifetime.is_zero() {
        problems.push((
            path.key("interval"),
            format!("{} is longer than lifetime {}", a.interval, a.lifetime),
        ));
    }
    if !a.lifetime.is_zero() && a.warmup >= a.lifetime {
        problems.push((
            path.key("warmup"),
            format!(
                "{} leaves nothing of lifetime {} to analyse",
                a.warmup, a.lifetime
            ),
        ));
    }
    confidence(a.confidence, path.key("confidence"), problems);
    if a.min_samples == 0 {
        problems.push((path.key("min_samples"), "must be at least 1".to_owned()));
    }
}

fn confidence(value: f64, path: FieldPath, problems: &mut Problems) {
    if !(value > 0.0 && value < 1.0) {
        problems.push((
            path,
            format!("{value} is not strictly between 0 and 1 (e.g. 0.98)"),
        ));
    }
}

fn groups(config: &Config, problems: &mut Problems) {
    let path = FieldPath::root().key("groups");
    if config.groups.is_empty() {
        // Omitted: every group used by a metric gets the same weight.
        for (i, metric) in config.metrics.iter().enumerate() {
            if metric.group.trim().is_empty() {
                problems.push((
                    FieldPath::root().key("metrics").index(i).key("group"),
                    "must not be empty".to_owned(),
                ));
            }
        }
        return;
    }
    let mut all_valid = true;
    for (group, &weight) in &config.groups {
        let problem = if !weight.is_finite() {
            Some(format!("weight {weight} is not a finite number"))
        } else if weight < 0.0 {
            Some(format!("weight {weight} is negative"))
        } else {
            None
        };
        if let Some(message) = problem {
            all_valid = false;
            problems.push((path.key(group), message));
        }
    }
    if all_valid && config.groups.values().all(|&w| w == 0.0) {
        problems.push((
            path.clone(),
            "all weights are 0; at least one group must count".to_owned(),
        ));
    }

    let used: BTreeSet<&str> = config.metrics.iter().map(|m| m.group.as_str()).collect();
    for group in config.groups.keys() {
        if !used.contains(group.as_str()) {
            problems.push((
                path.key(group),
                format!("group `{group}` has no metrics, so its weight would be lost"),
            ));
        }
    }
    let known = config
        .groups
        .keys()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for (i, metric) in config.metrics.iter().enumerate() {
        if !config.groups.contains_key(&metric.group) {
            problems.push((
                FieldPath::root().key("metrics").index(i).key("group"),
                format!(
                    "metric `{}`: group `{}` is not in groups (known: {known})",
                    metric.name, metric.group
                ),
            ));
        }
    }
}

fn metric(config: &Config, metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    if metric.name.trim().is_empty() {
        problems.push((path.key("name"), "must not be empty".to_owned()));
    }
    let ai = metric.allowed_increase;
    if !(ai.is_finite() && ai >= 1.0) {
        problems.push((
            path.key("allowed_increase"),
            format!(
                "{ai} must be a number >= 1: the canary/baseline mean ratio at which a \
                 significant increase fails (1.1 tolerates +10%)"
            ),
        ));
    }
    let ad = metric.allowed_decrease;
    if !(ad.is_finite() && ad > 0.0 && ad <= 1.0) {
        problems.push((
            path.key("allowed_decrease"),
            format!(
                "{ad} must be in (0, 1]: the canary/baseline mean ratio at which a \
                 significant decrease fails (0.9 tolerates -10%)"
            ),
        ));
    }
    if metric.min_samples == Some(0) {
        problems.push((path.key("min_samples"), "must be at least 1".to_owned()));
    }
    if let Some(c) = metric.confidence {
        confidence(c, path.key("confidence"), problems);
    }
    if metric.independence.is_some() && !metric.test.is_mann_whitney() {
        problems.push((
            path.key("independence"),
            format!(
                "is only used with `test: mann-whitney` (this metric is `test: {}`)",
                metric.test.as_str()
            ),
        ));
    }
    if let Some(value) = metric.nan_value {
        if metric.nan_strategy != NanMode::Replace {
            problems.push((
                path.key("nan_value"),
                "is only used with `nan_strategy: replace`".to_owned(),
            ));
        } else if !value.is_finite() {
            problems.push((
                path.key("nan_value"),
                format!("{value} is not a finite number"),
            ));
        }
    }
    if let Some(factor) = metric.outliers.factor {
        if metric.outliers.strategy != OutlierStrategy::Remove {
            problems.push((
                path.key("outliers").key("factor"),
                "is only used with `strategy: remove`".to_owned(),
            ));
        } else if !(factor.is_finite() && factor > 0.0) {
            problems.push((
                path.key("outliers").key("factor"),
                format!("{factor} must be a number > 0"),
            ));
        }
    }
    if metric.query.as_deref().is_some_and(|q| q.trim().is_empty()) {
        problems.push((
            path.key("query"),
            "is empty; leave it out instead".to_owned(),
        ));
    }
    let template = metric
        .kayenta_query
        .as_ref()
        .and_then(|kq| kq.custom_filter_template.as_ref());
    if let Some(template) = template.filter(|t| !config.templates.contains_key(*t)) {
        problems.push((
            path.key("kayenta_query").key("custom_filter_template"),
            format!("template `{template}` is not in templates"),
        ));
    }
    super::checks::validate(metric, path, problems);
}
