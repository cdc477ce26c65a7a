//! The `ids` list of the batch endpoint (path ids are `shared_schemas::gateway::DomainId`).

use bff_core::BffError;
use bff_core::compose::unique_ids;

/// Most ids accepted in one `GET /v1/products?ids=` request (counted before deduplication).
pub const MAX_BATCH_IDS: usize = 50;

use shared_schemas::services::is_valid_id;

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
