//! JSON Merge Patch (RFC 7396) between two renderings of a view: what a client applies to the view it has
//! to get the next one. Objects are compared member by member; anything else (arrays included) is replaced
//! whole; a member that disappeared becomes `null`.

use serde_json::{Map, Value};

/// The merge patch turning `old` into `new` (`{}` when they are equal objects).
pub(crate) fn diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        patch.insert(key.clone(), diff(before, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Applies `patch` to `target` as RFC 7396 says.
    fn apply(target: &mut Value, patch: &Value) {
        let Value::Object(members) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(object) = target else {
            return;
        };
        for (key, value) in members {
            if value.is_null() {
                object.remove(key);
            } else {
                apply(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    /// Only what changed is sent, nested objects member by member, arrays whole; applying it gives the new view.
    #[test]
    fn patch_holds_what_changed() {
        let old = json!({"profile": {"name": "Ada", "tier": "gold"}, "recs": null, "orders": [{"id": 1}],
                         "gone": 1});
        let new = json!({"profile": {"name": "Ada", "tier": "silver"}, "recs": [{"id": "p1"}],
                         "orders": [{"id": 1, "name": "Lamp"}]});
        let patch = diff(&old, &new);
        assert_eq!(
            patch,
            json!({"profile": {"tier": "silver"}, "recs": [{"id": "p1"}],
                   "orders": [{"id": 1, "name": "Lamp"}], "gone": null})
        );
        let mut applied = old.clone();
        apply(&mut applied, &patch);
        assert_eq!(applied, new);
        assert_eq!(diff(&new, &new), json!({}));
    }
}
