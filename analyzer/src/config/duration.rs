//! Human-written durations: `500ms`, `30s`, `10m`, `1h30m`, `2d`, `0`.

use std::fmt;
use std::str::FromStr;

/// A non-negative span of time with millisecond resolution, written as a compact string.
///
/// Parsing accepts one or more `<integer><unit>` parts with units `d`, `h`, `m`, `s` and `ms`,
/// largest unit first and each unit at most once (`1h30m`, `2m500ms`), or a bare `0`.
/// Serialising writes the same compact form back (`5400000` ms is `1h30m`, zero is `0s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000)
    }

    pub const fn from_mins(m: u64) -> Self {
        Duration(m * 60_000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    /// As a `chrono::TimeDelta`; saturates at `i64::MAX` milliseconds (about 292 million years).
    pub fn to_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::milliseconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

/// Why a duration string did not parse; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {reason}")]
pub struct ParseDurationError {
    text: String,
    reason: &'static str,
}

const SHAPE: &str = "expected an integer and a unit (ms, s, m, h, d), e.g. `30s`, `10m`, `1h30m`";

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseDurationError {
            text: text.to_owned(),
            reason,
        };
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        if text.starts_with('-') {
            return Err(fail("durations cannot be negative"));
        }
        if text.is_empty() {
            return Err(fail(SHAPE));
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the smallest unit allowed next: enforces largest-first, once each.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(fail(SHAPE));
            }
            let (number, tail) = rest.split_at(digits);
            let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(letters);
            if unit.is_empty() {
                return Err(fail(if total == 0 && tail.is_empty() {
                    "a unit is required (ms, s, m, h, d), e.g. `30s`"
                } else {
                    SHAPE
                }));
            }
            let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(fail("unknown unit; use ms, s, m, h or d"));
            };
            if position < next_unit {
                return Err(fail(
                    "units must go from largest to smallest, each once, e.g. `1h30m`",
                ));
            }
            next_unit = position + 1;
            let value: u64 = number.parse().map_err(|_| fail("number too large"))?;
            total = value
                .checked_mul(UNITS[position].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| fail("number too large"))?;
            rest = tail;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (name, ms) in UNITS {
            let count = rest / ms;
            if count > 0 {
                write!(f, "{count}{name}")?;
                rest -= count * ms;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl DurationVisitor {
    fn number<E: serde::de::Error>(n: u64) -> Result<Duration, E> {
        if n == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(E::custom(format!(
                "invalid duration `{n}`: a unit is required (ms, s, m, h, d), e.g. `{n}s` or `{n}m`"
            )))
        }
    }
}

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `30s`, `10m` or `1h30m`")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
        Self::number(n)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
        if n < 0 {
            Err(E::custom(format!(
                "invalid duration `{n}`: durations cannot be negative"
            )))
        } else {
            Self::number(n.unsigned_abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ms(text: &str) -> u64 {
        text.parse::<Duration>().unwrap().as_millis()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(ms("30s"), 30_000);
        assert_eq!(ms("10m"), 600_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("2m500ms"), 120_500);
        assert_eq!(ms("1d2h"), 93_600_000);
        assert_eq!(ms("0m"), 0);
        assert_eq!(ms("0"), 0);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "1.5h",
            "-5m",
            "30m1h",
            "1m1m",
            "1h 30m",
            " 1h",
            "10mm",
            "99999999999999999999s",
            "300000000000d",
        ] {
            let err = bad.parse::<Duration>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid duration `{bad}`")),
                "{bad}: {err}"
            );
        }
        assert!(
            "-5m"
                .parse::<Duration>()
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        assert!(
            "10".parse::<Duration>()
                .unwrap_err()
                .to_string()
                .contains("unit is required")
        );
    }

    #[test]
    fn displays_compactly_and_round_trips() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (30_000, "30s"),
            (90_000, "1m30s"),
            (5_400_000, "1h30m"),
            (86_400_000, "1d"),
            (90_061_001, "1d1h1m1s1ms"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn serde_accepts_strings_and_bare_zero() {
        let d: Duration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(d, Duration::from_mins(90));
        let zero: Duration = serde_json::from_str("0").unwrap();
        assert_eq!(zero, Duration::ZERO);
        let err = serde_json::from_str::<Duration>("60")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a unit is required"), "{err}");
        assert_eq!(
            serde_json::to_string(&Duration::from_secs(30)).unwrap(),
            "\"30s\""
        );
        assert_eq!(Duration::from_secs(90).to_std().as_secs(), 90);
        assert_eq!(Duration::from_secs(90).to_chrono().num_seconds(), 90);
    }
}
