//! Field paths and a path → line index for YAML documents.
//!
//! Semantic validation runs on the deserialised [`super::Config`], which has no positions. To
//! point at a line, the same YAML text is read a second time into a position tree (every key and
//! sequence item wrapped in [`serde_saphyr::Spanned`]), so the lines come from the same parser
//! that produced the config, anchors and merge keys included. The index is only built when there
//! is something to report.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the config, displayed like `metrics[1].allowed_increase`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        FieldPath(segments)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Lines (1-based) of every key and sequence item in a YAML document, by path.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    lines: HashMap<Vec<Segment>, u64>,
}

impl LineIndex {
    /// Indexes `text`; an unreadable document gives an empty index (no lines, not an error).
    pub(crate) fn build(text: &str) -> Self {
        let mut index = LineIndex::default();
        let mut options = serde_saphyr::Options::default();
        // The shape tree reads every scalar untyped; `.inf` in a weight must still index.
        options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
        options.with_snippet = false;
        if let Ok(root) = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options) {
            index.insert(Vec::new(), root.referenced.line());
            index.walk(&mut Vec::new(), &root.value);
        }
        index
    }

    fn insert(&mut self, path: Vec<Segment>, line: u64) {
        if line > 0 {
            // The first occurrence wins; duplicate keys are rejected by the parser anyway.
            self.lines.entry(path).or_insert(line);
        }
    }

    fn walk(&mut self, path: &mut Vec<Segment>, node: &Node) {
        match node {
            Node::Map(entries) => {
                for (key, value) in entries {
                    path.push(Segment::Key(key.value.0.clone()));
                    // A key's own line reads best (`  latency: -1`), even when its value starts
                    // on a later line.
                    self.insert(path.clone(), key.referenced.line());
                    self.walk(path, &value.value);
                    path.pop();
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    self.insert(path.clone(), item.referenced.line());
                    self.walk(path, &item.value);
                    path.pop();
                }
            }
            Node::Scalar => {}
        }
    }

    /// The line of `path`, or of its nearest ancestor present in the document (a defaulted field
    /// is reported at its parent).
    pub(crate) fn line(&self, path: &FieldPath) -> Option<u64> {
        (0..=path.0.len())
            .rev()
            .find_map(|len| self.lines.get(&path.0[..len]).copied())
    }
}

/// A YAML node reduced to its shape.
enum Node {
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// A mapping key of any scalar type, as text.
struct Key(String);

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key("null".to_owned()))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
name: x
groups: {latency: -1, errors: 2}
base: &base
  critical: true
metrics:
  - name: a
    query: >
      sum(rate(x[1m]))
  -
    name: b
    <<: *base
  - {name: c, tags: [1, 2]}
";

    fn path(text: &str) -> FieldPath {
        let mut p = FieldPath::root();
        for part in text.split('.') {
            match part.split_once('[') {
                Some((key, index)) => {
                    p = p.key(key);
                    p = p.index(index.trim_end_matches(']').parse().unwrap());
                }
                None => p = p.key(part),
            }
        }
        p
    }

    #[test]
    fn indexes_keys_items_flow_and_merged_values() {
        let index = LineIndex::build(DOC);
        let line = |p: &str| index.line(&path(p));
        assert_eq!(line("name"), Some(2));
        assert_eq!(line("groups.latency"), Some(3));
        assert_eq!(line("groups.errors"), Some(3));
        assert_eq!(line("metrics"), Some(6));
        assert_eq!(line("metrics[0]"), Some(7));
        assert_eq!(line("metrics[0].query"), Some(8));
        assert_eq!(line("metrics[1].name"), Some(11));
        assert_eq!(line("metrics[1].critical"), Some(12));
        assert_eq!(line("metrics[2].tags[1]"), Some(13));
        // Absent fields fall back to the nearest ancestor.
        assert_eq!(line("metrics[0].min_samples"), Some(7));
        assert_eq!(line("analysis.warmup"), Some(2));
    }

    #[test]
    fn displays_paths_like_serde_path_to_error() {
        assert_eq!(
            path("metrics[1].allowed_increase").to_string(),
            "metrics[1].allowed_increase"
        );
        assert_eq!(
            FieldPath::root().key("groups").key("a b").to_string(),
            "groups.a b"
        );
    }

    #[test]
    fn unreadable_documents_give_no_lines() {
        let index = LineIndex::build("metrics: [");
        assert_eq!(index.line(&path("metrics")), None);
    }
}
