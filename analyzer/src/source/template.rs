//! Query templates: `${name}` placeholders filled in with a cohort's variables, Kayenta's syntax.
//!
//! A placeholder is `${` + a name + `}`, where the name starts with an ASCII letter or `_` and
//! goes on with ASCII letters, digits, `_`, `.` or `-`. Anything else is left as it is, so
//! PromQL's own uses of `$` (`label_replace(…, "$1", …)`, `"${1}"`) pass through untouched.
//! There is no escape: Kayenta has none either.

use std::collections::BTreeMap;
use std::ops::Range;

/// One `${name}` in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub name: &'a str,
    /// Byte range of the whole `${name}` in the template.
    pub span: Range<usize>,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Every placeholder of `template`, in order (a name used twice appears twice).
pub fn placeholders(template: &str) -> Vec<Placeholder<'_>> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'{' && is_name_start(bytes[i + 2]) {
            let start = i + 2;
            let mut j = start;
            while j < bytes.len() && is_name_char(bytes[j]) {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'}' {
                out.push(Placeholder {
                    name: &template[start..j],
                    span: i..j + 1,
                });
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The distinct placeholder names of `template`, sorted.
pub fn variables(template: &str) -> Vec<&str> {
    let mut names: Vec<&str> = placeholders(template).into_iter().map(|p| p.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// A placeholder whose variable the cohort does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable `${{{name}}}` (defined: {})", defined_list(.defined))]
pub struct UnknownVariable {
    pub name: String,
    pub defined: Vec<String>,
}

fn defined_list(defined: &[String]) -> String {
    if defined.is_empty() {
        "none".to_owned()
    } else {
        defined
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fills every placeholder of `template` with its value from `vars`.
pub fn expand(template: &str, vars: &BTreeMap<String, String>) -> Result<String, UnknownVariable> {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for p in placeholders(template) {
        let Some(value) = vars.get(p.name) else {
            return Err(UnknownVariable {
                name: p.name.to_owned(),
                defined: vars.keys().cloned().collect(),
            });
        };
        out.push_str(&template[last..p.span.start]);
        out.push_str(value);
        last = p.span.end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_every_placeholder() {
        let q = r#"sum(rate(x{version="${version}", zone=~"${location}.{1}"}[1m])) / ${version}"#;
        let out = expand(q, &vars(&[("version", "v2"), ("location", "eu")])).unwrap();
        assert_eq!(
            out,
            r#"sum(rate(x{version="v2", zone=~"eu.{1}"}[1m])) / v2"#
        );
        assert_eq!(variables(q), ["location", "version"]);
    }

    #[test]
    fn unknown_variable_names_it_and_what_is_defined() {
        let e = expand("up{a=\"${scope}\"}", &vars(&[("version", "v1")])).unwrap_err();
        assert_eq!(e.name, "scope");
        assert_eq!(
            e.to_string(),
            "unknown variable `${scope}` (defined: `version`)"
        );
        let e = expand("${x}", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.to_string(), "unknown variable `${x}` (defined: none)");
    }

    #[test]
    fn promql_dollars_are_left_alone() {
        for q in [
            r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#,
            r#"label_replace(up, "host", "${1}", "instance", "(.*):.*")"#,
            "a $ b ${ c } ${} ${unclosed",
            "$",
            "",
            "${",
        ] {
            assert!(placeholders(q).is_empty(), "{q}");
            assert_eq!(expand(q, &BTreeMap::new()).unwrap(), q);
        }
    }

    #[test]
    fn names_may_hold_dots_and_dashes_and_spans_are_exact() {
        let q = "a${x.y-z}b${_u}";
        let p = placeholders(q);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name, &q[p[0].span.clone()]), ("x.y-z", "${x.y-z}"));
        assert_eq!((p[1].name, &q[p[1].span.clone()]), ("_u", "${_u}"));
        let out = expand(q, &vars(&[("x.y-z", "1"), ("_u", "2")])).unwrap();
        assert_eq!(out, "a1b2");
    }

    #[test]
    fn values_are_inserted_verbatim_once() {
        // A value that looks like a placeholder is not expanded again.
        let out = expand("${a}", &vars(&[("a", "${b}"), ("b", "no")])).unwrap();
        assert_eq!(out, "${b}");
    }
}
