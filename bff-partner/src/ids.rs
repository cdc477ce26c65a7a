//! Validation of the ids a partner sends: path ids and the `ids` list of the batch endpoint.

use bff_core::BffError;
use bff_core::compose::unique_ids;

/// Most ids accepted in one `GET /v1/products?ids=` request (counted before deduplication).
pub const MAX_BATCH_IDS: usize = 50;

pub use shared_schemas::services::is_valid_id;

/// A path id, or 404 `not_found` when it is malformed (a malformed id names no resource).
pub(crate) fn path_id(id: String) -> Result<String, BffError> {
    if is_valid_id(&id) {
        Ok(id)
    } else {
        Err(BffError::NotFound)
    }
}

fn bad_request(detail: &str) -> BffError {
    BffError::BadRequest {
        detail: detail.into(),
    }
}

/// Parses the `ids` query parameter (`a,b,c`): 1..=[`MAX_BATCH_IDS`] comma-separated well-formed ids,
/// returned deduplicated in first-seen order; 400 `bad_request` when absent, empty, malformed or too long.
pub fn parse_id_list(raw: Option<&str>) -> Result<Vec<String>, BffError> {
    let raw = raw.ok_or_else(|| bad_request("the `ids` query parameter is required"))?;
    if raw.is_empty() {
        return Err(bad_request("`ids` must list at least one id"));
    }
    let ids: Vec<&str> = raw.split(',').take(MAX_BATCH_IDS + 1).collect();
    if ids.len() > MAX_BATCH_IDS {
        return Err(bad_request("`ids` may list at most 50 ids"));
    }
    if !ids.iter().all(|id| is_valid_id(id)) {
        return Err(bad_request(
            "`ids` must be comma-separated ids of 1 to 32 digits",
        ));
    }
    Ok(unique_ids(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Vec<String>, BffError>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    /// Path ids are 1..=32 ASCII digits; anything else is a 404.
    #[test]
    fn path_ids() {
        assert!(is_valid_id("1"));
        assert!(is_valid_id(&"9".repeat(32)));
        for bad in [
            "",
            "abc",
            "12a",
            "-1",
            "1.5",
            " 1",
            "../1",
            "%31",
            "１",
            &"9".repeat(33),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
            assert_eq!(path_id(bad.to_string()), Err(BffError::NotFound));
        }
        assert_eq!(path_id("42".into()), Ok("42".into()));
    }

    /// The list is deduplicated in order and bounded; malformed lists are 400.
    #[test]
    fn id_lists() {
        assert_eq!(
            parse_id_list(Some("3,1,3,2")),
            Ok(vec!["3".into(), "1".into(), "2".into()])
        );
        let fifty = vec!["7"; 50].join(",");
        assert_eq!(parse_id_list(Some(&fifty)), Ok(vec!["7".into()]));
        let fifty_one = (1..=51)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(code(parse_id_list(Some(&fifty_one))), "bad_request");
        for bad in [
            None,
            Some(""),
            Some(","),
            Some("1,,2"),
            Some("1,"),
            Some("1, 2"),
            Some("1,x"),
        ] {
            assert_eq!(code(parse_id_list(bad)), "bad_request", "{bad:?}");
        }
    }
}
