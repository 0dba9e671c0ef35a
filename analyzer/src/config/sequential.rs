//! `test: sequential` and its fields: `kind` (`counts`, `distribution`, `mean`),
//! `traffic_share` and `prior_strength` (counts), `quantiles` (distribution), `tune_n`
//! (mean) and `batch` (distribution, mean). `docs/sequential.md` explains the tests;
//! `docs/config.md` is the reference.

use fledge_judges::{SequentialKind, SequentialOptions};

use super::lines::FieldPath;
use super::{MetricConfig, OutlierStrategy, TestName};

type Problems = Vec<(FieldPath, String)>;

/// The judge's options for a `test: sequential` metric (defaults filled in). The family
/// size is the engine's to set.
pub(crate) fn options(metric: &MetricConfig) -> SequentialOptions {
    let mut o = SequentialOptions::new(metric.kind.unwrap_or(SequentialKind::Distribution));
    if let Some(s) = metric.traffic_share {
        o.traffic_share = s;
    }
    if let Some(k) = metric.prior_strength {
        o.prior_strength = k;
    }
    if let Some(q) = &metric.quantiles {
        o.quantiles = q.clone();
    }
    if let Some(t) = metric.tune_n {
        o.tune_n = t;
    }
    if let Some(b) = metric.batch {
        o.batch = b;
    }
    o
}

/// The rules of `kind` and the sequential fields, for one metric at `path`.
pub(crate) fn validate(metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    use SequentialKind::*;
    let fields: [(&str, bool, &[SequentialKind]); 6] = [
        ("kind", metric.kind.is_some(), &[Counts, Distribution, Mean]),
        ("traffic_share", metric.traffic_share.is_some(), &[Counts]),
        ("prior_strength", metric.prior_strength.is_some(), &[Counts]),
        ("quantiles", metric.quantiles.is_some(), &[Distribution]),
        ("tune_n", metric.tune_n.is_some(), &[Mean]),
        ("batch", metric.batch.is_some(), &[Distribution, Mean]),
    ];
    if metric.test != TestName::Sequential {
        for (field, present, _) in fields {
            if present {
                problems.push((
                    path.key(field),
                    format!(
                        "is only used with `test: sequential` (this metric is `test: {}`)",
                        metric.test.as_str()
                    ),
                ));
            }
        }
        return;
    }
    let Some(kind) = metric.kind else {
        problems.push((
            path.key("kind"),
            "`test: sequential` needs `kind`: `counts` (event counts per step, e.g. errors), \
             `distribution` (any values, e.g. latency) or `mean`"
                .to_owned(),
        ));
        return;
    };
    for (field, present, kinds) in fields {
        if present && !kinds.contains(&kind) {
            let names: Vec<String> = kinds.iter().map(|k| format!("`kind: {k}`")).collect();
            problems.push((
                path.key(field),
                format!(
                    "is only used with {} (this metric is `kind: {kind}`)",
                    names.join(" or ")
                ),
            ));
        }
    }
    if let Some(s) = metric.traffic_share {
        if !(s > 0.0 && s < 1.0) {
            problems.push((
                path.key("traffic_share"),
                format!(
                    "{s} must lie strictly between 0 and 1: the canary's share of the traffic \
                     (0.5 for equal cohorts)"
                ),
            ));
        }
    }
    if let Some(k) = metric.prior_strength {
        if !(k.is_finite() && k > 0.0) {
            problems.push((
                path.key("prior_strength"),
                format!("{k} must be a number > 0 (default 100)"),
            ));
        }
    }
    if let Some(t) = metric.tune_n {
        if !(t.is_finite() && t > 0.0) {
            problems.push((
                path.key("tune_n"),
                format!("{t} must be a number > 0 (default 100)"),
            ));
        }
    }
    if let Some(q) = &metric.quantiles {
        if q.is_empty() {
            problems.push((
                path.key("quantiles"),
                "must list at least one quantile (or be left out)".to_owned(),
            ));
        }
        for (i, p) in q.iter().enumerate() {
            if !(*p > 0.0 && *p < 1.0) {
                problems.push((
                    path.key("quantiles").index(i),
                    format!("{p} must lie strictly between 0 and 1 (0.99 is p99)"),
                ));
            }
        }
    }
    if metric.batch == Some(0) {
        problems.push((path.key("batch"), "must be at least 1".to_owned()));
    }
    if metric.outliers.strategy == OutlierStrategy::Remove {
        problems.push((
            path.key("outliers"),
            "outlier removal does not apply to sequential tests (it needs the whole window)"
                .to_owned(),
        ));
    }
}
