//! A metric's `test:` and the fields of the tests beside Mann–Whitney: `threshold` (`min`,
//! `max`, `aggregate`, `each_point`, `failure_limit`), `relative` (`aggregate`,
//! `max_increase`, `max_decrease`), `proportion` (`numerator`, `denominator`), and the
//! metric's `unit:`, which amounts with a time unit (`400ms`, `+25ms`) are converted to.
//! `docs/config.md` is the reference.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use fledge_judges::{Direction, RelativeOptions, ThresholdMode, ThresholdOptions, Tolerance};

use super::lines::FieldPath;
use super::{MetricConfig, OutlierStrategy};
use crate::engine::MetricTest;

type Problems = Vec<(FieldPath, String)>;

/// `test:` which test judges a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestName {
    /// Mann–Whitney with the Hodges–Lehmann shift (canary against baseline).
    #[default]
    MannWhitney,
    /// The canary alone against `min`/`max`.
    Threshold,
    /// Canary against baseline on an aggregate, within `max_increase`/`max_decrease`.
    Relative,
    /// Two rates from counts: `numerator` / `denominator`.
    Proportion,
    /// An anytime-valid sequential test of the `kind` given (see `super::sequential`).
    Sequential,
}

impl TestName {
    pub fn as_str(self) -> &'static str {
        match self {
            TestName::MannWhitney => "mann-whitney",
            TestName::Threshold => "threshold",
            TestName::Relative => "relative",
            TestName::Proportion => "proportion",
            TestName::Sequential => "sequential",
        }
    }

    pub(crate) fn is_mann_whitney(&self) -> bool {
        *self == TestName::MannWhitney
    }
}

/// `unit:` the time unit of a metric's values, so that amounts such as `400ms` or `+0.5s`
/// can be converted to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "ns")]
    Nanoseconds,
    #[serde(rename = "us")]
    Microseconds,
    #[serde(rename = "ms")]
    Milliseconds,
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "m")]
    Minutes,
    #[serde(rename = "h")]
    Hours,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Nanoseconds => "ns",
            Unit::Microseconds => "us",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Minutes => "m",
            Unit::Hours => "h",
        }
    }

    /// Nanoseconds in one of this unit (exact in an f64).
    fn nanos(self) -> f64 {
        match self {
            Unit::Nanoseconds => 1.0,
            Unit::Microseconds => 1e3,
            Unit::Milliseconds => 1e6,
            Unit::Seconds => 1e9,
            Unit::Minutes => 60e9,
            Unit::Hours => 3600e9,
        }
    }

    /// `value` of unit `from` in this unit: one multiplication by an exact factor and one
    /// correctly rounded division, so `2ms` is exactly 2000 us and `25ms` is 0.025 s.
    fn convert(self, value: f64, from: Unit) -> f64 {
        if from == self {
            value
        } else {
            value * from.nanos() / self.nanos()
        }
    }

    fn parse_suffix(text: &str) -> Option<(&str, Unit)> {
        // Longest suffixes first: `ms` before `s`, `m` after `ms`.
        const SUFFIXES: [(&str, Unit); 7] = [
            ("ns", Unit::Nanoseconds),
            ("us", Unit::Microseconds),
            ("µs", Unit::Microseconds),
            ("ms", Unit::Milliseconds),
            ("s", Unit::Seconds),
            ("m", Unit::Minutes),
            ("h", Unit::Hours),
        ];
        SUFFIXES
            .iter()
            .find_map(|(s, u)| text.strip_suffix(s).map(|rest| (rest, *u)))
    }
}

/// A number as written in a config: plain (`400`, `0.5`), a percentage (`10%`) or an amount
/// of time (`400ms`, `+0.5s`), converted to the metric's `unit:` when used. The sign is kept
/// (`-5%` is −5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    pub value: f64,
    pub kind: AmountKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountKind {
    Plain,
    Percent,
    Time(Unit),
}

impl Amount {
    /// Parses `10%`, `+25ms`, `-0.5`, `400`.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let t = text.trim();
        let (number, kind) = if let Some(rest) = t.strip_suffix('%') {
            (rest, AmountKind::Percent)
        } else if let Some((rest, unit)) = Unit::parse_suffix(t) {
            (rest, AmountKind::Time(unit))
        } else {
            (t, AmountKind::Plain)
        };
        let number = number.trim_end();
        let starts_like_a_number = number
            .trim_start_matches(['+', '-'])
            .starts_with(|c: char| c.is_ascii_digit() || c == '.');
        match number.parse::<f64>() {
            Ok(v) if v.is_finite() && starts_like_a_number => Ok(Amount { value: v, kind }),
            _ => Err(format!(
                "`{text}` is not an amount: write a number (`0.5`), a percentage (`10%`) or a \
                 number with a time unit (`+25ms`; units ns, us, ms, s, m, h)"
            )),
        }
    }

    /// The amount in the metric's unit; `None` for a time amount without a unit.
    fn in_unit(self, unit: Option<Unit>) -> Option<f64> {
        match self.kind {
            AmountKind::Plain | AmountKind::Percent => Some(self.value),
            AmountKind::Time(from) => unit.map(|u| u.convert(self.value, from)),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AmountKind::Plain => write!(f, "{}", self.value),
            AmountKind::Percent => write!(f, "{}%", self.value),
            AmountKind::Time(u) => write!(f, "{}{}", self.value, u.as_str()),
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.kind {
            AmountKind::Plain => s.serialize_f64(self.value),
            _ => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a percentage (`10%`) or an amount of time (`+25ms`)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                if v.is_finite() {
                    Ok(Amount {
                        value: v,
                        kind: AmountKind::Plain,
                    })
                } else {
                    Err(E::custom(format!("{v} is not a finite number")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `numerator:` / `denominator:` of a proportion: the series' name in the data (a recording's
/// metric column), and for a live source the query that fetches its per-step counts. Written
/// as a plain name (`errors`) or as `{name: errors, query: '…'}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRef {
    pub name: String,
    pub query: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SeriesRefMap {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
}

impl Serialize for SeriesRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.query {
            None => s.serialize_str(&self.name),
            Some(q) => SeriesRefMap {
                name: self.name.clone(),
                query: Some(q.clone()),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SeriesRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeriesRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a series name, or `{name, query}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeriesRef, E> {
                Ok(SeriesRef {
                    name: v.to_owned(),
                    query: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SeriesRef, A::Error> {
                let m = SeriesRefMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SeriesRef {
                    name: m.name,
                    query: m.query,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl MetricConfig {
    /// The series this metric reads, with the query that fetches each (for a live source):
    /// the metric itself for Mann–Whitney, threshold and relative; the numerator and the
    /// denominator for a proportion.
    pub fn series(&self) -> Vec<(&str, Option<&str>)> {
        match (self.test, &self.numerator, &self.denominator) {
            (TestName::Proportion, Some(n), Some(d)) => vec![
                (n.name.as_str(), n.query.as_deref()),
                (d.name.as_str(), d.query.as_deref()),
            ],
            _ => vec![(self.name.as_str(), self.query.as_deref())],
        }
    }

    /// How the engine judges this metric. The config is valid (amounts with a time unit have
    /// a `unit:`); a value that cannot be converted is left out.
    pub fn metric_test(&self) -> MetricTest {
        let amount = |a: Option<Amount>| a.and_then(|a| a.in_unit(self.unit));
        let tolerance = |a: Option<Amount>| {
            a.and_then(|a| match a.kind {
                AmountKind::Percent => Some(Tolerance::Percent(a.value.abs())),
                _ => a.in_unit(self.unit).map(|v| Tolerance::Absolute(v.abs())),
            })
        };
        match self.test {
            TestName::MannWhitney => MetricTest::MannWhitney,
            TestName::Threshold => MetricTest::Threshold(ThresholdOptions {
                min: amount(self.min),
                max: amount(self.max),
                mode: if self.each_point {
                    ThresholdMode::EachPoint {
                        failure_limit: self.failure_limit.unwrap_or(0),
                    }
                } else {
                    ThresholdMode::Aggregate(self.aggregate.unwrap_or_default())
                },
            }),
            TestName::Relative => MetricTest::Relative(RelativeOptions {
                aggregate: self.aggregate.unwrap_or_default(),
                max_increase: tolerance(self.max_increase),
                max_decrease: tolerance(self.max_decrease),
            }),
            TestName::Proportion => MetricTest::Proportion {
                numerator: self
                    .numerator
                    .as_ref()
                    .map_or_else(String::new, |s| s.name.clone()),
                denominator: self
                    .denominator
                    .as_ref()
                    .map_or_else(String::new, |s| s.name.clone()),
            },
            TestName::Sequential => MetricTest::Sequential(super::sequential::options(self)),
        }
    }
}

/// The rules of `test:` and its fields, for one metric at `path`.
pub(crate) fn validate(metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    let test = metric.test;
    let mut only = |field: &str, present: bool, used_by: &[TestName]| {
        if present && !used_by.contains(&test) {
            let tests: Vec<String> = used_by
                .iter()
                .map(|t| format!("`test: {}`", t.as_str()))
                .collect();
            problems.push((
                path.key(field),
                format!(
                    "is only used with {} (this metric is `test: {}`)",
                    tests.join(" or "),
                    test.as_str()
                ),
            ));
        }
    };
    use TestName::*;
    only("min", metric.min.is_some(), &[Threshold]);
    only("max", metric.max.is_some(), &[Threshold]);
    only("each_point", metric.each_point, &[Threshold]);
    only(
        "failure_limit",
        metric.failure_limit.is_some(),
        &[Threshold],
    );
    only(
        "aggregate",
        metric.aggregate.is_some(),
        &[Threshold, Relative],
    );
    only("max_increase", metric.max_increase.is_some(), &[Relative]);
    only("max_decrease", metric.max_decrease.is_some(), &[Relative]);
    only("numerator", metric.numerator.is_some(), &[Proportion]);
    only("denominator", metric.denominator.is_some(), &[Proportion]);

    // Amounts: a time unit needs the metric's `unit:`.
    for (field, amount) in [
        ("min", metric.min),
        ("max", metric.max),
        ("max_increase", metric.max_increase),
        ("max_decrease", metric.max_decrease),
    ] {
        let timed = amount.filter(|a| matches!(a.kind, AmountKind::Time(_)));
        if let (Some(a), None) = (timed, metric.unit) {
            problems.push((
                path.key(field),
                format!(
                    "`{a}` has a time unit, so the metric needs `unit:`, the unit of its values \
                     (e.g. `unit: ms`)"
                ),
            ));
        }
    }

    // Options the new tests do not use.
    if test != MannWhitney && test != Proportion && test != Sequential {
        let why = "no statistical test runs";
        for (field, set) in [
            ("allowed_increase", metric.allowed_increase != 1.0),
            ("allowed_decrease", metric.allowed_decrease != 1.0),
            ("confidence", metric.confidence.is_some()),
        ] {
            if set {
                problems.push((
                    path.key(field),
                    format!(
                        "is not used by `test: {}` ({why}; the limits are {})",
                        test.as_str(),
                        if test == Threshold {
                            "`min` and `max`"
                        } else {
                            "`max_increase` and `max_decrease`"
                        }
                    ),
                ));
            }
        }
    }

    match test {
        MannWhitney => {}
        Threshold => threshold(metric, path, problems),
        Relative => relative(metric, path, problems),
        Proportion => proportion(metric, path, problems),
        Sequential => {}
    }
    super::sequential::validate(metric, path, problems);
}

fn threshold(metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    if metric.min.is_none() && metric.max.is_none() {
        problems.push((
            path.key("max"),
            "`test: threshold` needs `max` and/or `min`, the bounds the canary must stay within"
                .to_owned(),
        ));
    }
    for (field, a) in [("min", metric.min), ("max", metric.max)] {
        if let Some(a) = a.filter(|a| a.kind == AmountKind::Percent) {
            problems.push((
                path.key(field),
                format!(
                    "`{a}`: a threshold is a fixed value; a percentage needs a baseline to be \
                     a percentage of (`test: relative` with `max_increase`/`max_decrease`)"
                ),
            ));
        }
    }
    let value = |a: Option<Amount>| a.and_then(|a| a.in_unit(metric.unit));
    let inverted =
        matches!((value(metric.min), value(metric.max)), (Some(lo), Some(hi)) if lo > hi);
    if inverted {
        problems.push((
            path.key("min"),
            format!(
                "{} is above max {}",
                metric.min.map_or(String::new(), |a| a.to_string()),
                metric.max.map_or(String::new(), |a| a.to_string())
            ),
        ));
    }
    if metric.each_point && metric.aggregate.is_some() {
        problems.push((
            path.key("aggregate"),
            "is not used with `each_point: true` (every point is checked)".to_owned(),
        ));
    }
    if metric.failure_limit.is_some() && !metric.each_point {
        problems.push((
            path.key("failure_limit"),
            "is only used with `each_point: true` (how many points may be out of bounds)"
                .to_owned(),
        ));
    }
    match metric.direction {
        Direction::Increase if metric.min.is_some() => problems.push((
            path.key("min"),
            "contradicts `direction: increase` (only an increase is harmful)".to_owned(),
        )),
        Direction::Decrease if metric.max.is_some() => problems.push((
            path.key("max"),
            "contradicts `direction: decrease` (only a decrease is harmful)".to_owned(),
        )),
        _ => {}
    }
}

fn relative(metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    if metric.max_increase.is_none() && metric.max_decrease.is_none() {
        problems.push((
            path.key("max_increase"),
            "`test: relative` needs `max_increase` and/or `max_decrease` (e.g. `10%` or `+25ms`)"
                .to_owned(),
        ));
    }
    if let Some(a) = metric.max_increase.filter(|a| a.value < 0.0) {
        problems.push((
            path.key("max_increase"),
            format!(
                "`{a}` is negative; it is how far above the baseline the canary may go \
                 (`+10%`, `+25ms`)"
            ),
        ));
    }
    match metric.direction {
        Direction::Increase if metric.max_decrease.is_some() => problems.push((
            path.key("max_decrease"),
            "contradicts `direction: increase` (only an increase is harmful)".to_owned(),
        )),
        Direction::Decrease if metric.max_increase.is_some() => problems.push((
            path.key("max_increase"),
            "contradicts `direction: decrease` (only a decrease is harmful)".to_owned(),
        )),
        _ => {}
    }
}

fn proportion(metric: &MetricConfig, path: &FieldPath, problems: &mut Problems) {
    for (field, series, what) in [
        ("numerator", &metric.numerator, "the events, e.g. `errors`"),
        (
            "denominator",
            &metric.denominator,
            "the trials, e.g. `requests`",
        ),
    ] {
        match series {
            None => problems.push((
                path.key(field),
                format!("`test: proportion` needs `{field}`: the series of {what}"),
            )),
            Some(s) => {
                if s.name.trim().is_empty() {
                    problems.push((
                        path.key(field),
                        "the series name must not be empty".to_owned(),
                    ));
                }
                if s.query.as_deref().is_some_and(|q| q.trim().is_empty()) {
                    problems.push((
                        path.key(field).key("query"),
                        "is empty; leave it out instead".to_owned(),
                    ));
                }
            }
        }
    }
    if let (Some(n), Some(d)) = (&metric.numerator, &metric.denominator) {
        if n.name == d.name && !n.name.trim().is_empty() {
            problems.push((
                path.key("denominator"),
                format!("is the same series as the numerator (`{}`)", n.name),
            ));
        }
    }
    if metric.query.is_some() {
        problems.push((
            path.key("query"),
            "a proportion reads two series: give their queries as `numerator: {name, query}` \
             and `denominator: {name, query}`"
                .to_owned(),
        ));
    }
    if metric.outliers.strategy == OutlierStrategy::Remove {
        problems.push((
            path.key("outliers"),
            "outlier removal does not apply to counts".to_owned(),
        ));
    }
    if metric.min_samples.is_some() {
        problems.push((
            path.key("min_samples"),
            "is not used by `test: proportion` (the counts are summed over the window; a side \
             without any trials is nodata)"
                .to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_and_print_back() {
        let cases = [
            ("10%", 10.0, AmountKind::Percent),
            ("+10%", 10.0, AmountKind::Percent),
            ("-5 %", -5.0, AmountKind::Percent),
            ("+25ms", 25.0, AmountKind::Time(Unit::Milliseconds)),
            ("0.5s", 0.5, AmountKind::Time(Unit::Seconds)),
            ("2m", 2.0, AmountKind::Time(Unit::Minutes)),
            ("3µs", 3.0, AmountKind::Time(Unit::Microseconds)),
            ("+0.5", 0.5, AmountKind::Plain),
            ("400", 400.0, AmountKind::Plain),
            ("1e3", 1000.0, AmountKind::Plain),
        ];
        for (text, value, kind) in cases {
            let a = Amount::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a, Amount { value, kind }, "{text}");
            assert_eq!(Amount::parse(&a.to_string()).unwrap(), a, "{text} → {a}");
        }
        for bad in [
            "",
            "%",
            "ten%",
            "10 percent",
            "inf",
            "NaN",
            "1.2.3ms",
            "ms",
            "+-1",
        ] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_amounts_convert_to_the_metric_unit() {
        let a = Amount::parse("+25ms").unwrap();
        assert_eq!(a.in_unit(Some(Unit::Milliseconds)), Some(25.0));
        assert_eq!(a.in_unit(Some(Unit::Seconds)), Some(0.025));
        assert_eq!(a.in_unit(None), None);
        assert_eq!(
            Amount::parse("1h").unwrap().in_unit(Some(Unit::Minutes)),
            Some(60.0)
        );
        assert_eq!(Amount::parse("7").unwrap().in_unit(None), Some(7.0));
    }
}
