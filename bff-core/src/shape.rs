//! Config-driven response shaping: keep only allow-listed fields (dotted paths, applied through arrays).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A compiled set of dotted field paths, e.g. `["id", "price.amount_cents", "images.url"]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Compiles dotted paths; empty segments are ignored.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut root = Self::default();
        for path in paths {
            let mut node = &mut root;
            for segment in path.split('.').filter(|s| !s.is_empty()) {
                node = node.children.entry(segment.to_owned()).or_default();
            }
        }
        root
    }

    /// Whether no field is listed (then [`FieldSet::pick`] keeps everything).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Keeps only the listed fields of `value`; a listed object field with no sub-paths is kept whole;
    /// arrays are shaped element by element.
    pub fn pick(&self, value: Value) -> Value {
        if self.is_empty() {
            return value;
        }
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, v) in map {
                    if let Some(child) = self.children.get(&key) {
                        out.insert(key, child.pick(v));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.pick(v)).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Nested paths and arrays are shaped; unlisted fields disappear.
    #[test]
    fn picks_nested_and_array_fields() {
        let fields = FieldSet::new(["id", "price.amount_cents", "images.url"]);
        let v = json!({"id": "1", "internal": {"cost": 3}, "price": {"amount_cents": 5, "currency": "EUR"},
                       "images": [{"url": "a", "width": 1}, {"url": "b", "width": 2}]});
        assert_eq!(
            fields.pick(v),
            json!({"id": "1", "price": {"amount_cents": 5}, "images": [{"url": "a"}, {"url": "b"}]})
        );
    }

    /// An empty set keeps the whole value.
    #[test]
    fn empty_keeps_everything() {
        assert_eq!(FieldSet::new([]).pick(json!({"a": 1})), json!({"a": 1}));
    }
}
