//! The composed endpoints of the mobile gateway, one module per screen, and what they share: id validation
//! and the catalog batch lookup.

pub(crate) mod home;
pub(crate) mod order;
pub(crate) mod product;

use std::collections::HashMap;

use bff_core::compose::index_by;
use bff_core::downstream::{Downstream, DownstreamError, encode_query};
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{Product, ProductBatch};

/// Most ids the catalog accepts in one `GET /products?ids=` call.
const CATALOG_BATCH_MAX: usize = 100;

/// Ok when `id` looks like an id of the domain (1..=32 ASCII digits); anything else cannot exist: 404.
pub(crate) fn validate_id(id: &str) -> Result<(), BffError> {
    if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(BffError::NotFound)
    }
}

/// The catalog batch path for `ids` (each id query-encoded, joined by commas).
pub(crate) fn batch_path(ids: &[String]) -> String {
    let list: Vec<String> = ids.iter().map(|id| encode_query(id)).collect();
    format!("/products?ids={}", list.join(","))
}

/// The products of `ids` (distinct), by id, from batch calls of the catalog: one call for up to 100 ids
/// (the normal case), several in parallel beyond. No call at all for no ids. Unknown ids are simply absent.
pub(crate) async fn products_by_id(
    catalog: &Downstream,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Product>, DownstreamError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let calls = ids.chunks(CATALOG_BATCH_MAX).map(|chunk| async move {
        catalog
            .get_json::<ProductBatch>(ctx, &batch_path(chunk))
            .await
    });
    let batches = futures::future::try_join_all(calls).await?;
    let items = batches.into_iter().flat_map(|b| b.items).collect();
    Ok(index_by(items, |p: &Product| p.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only short digit strings are ids.
    #[test]
    fn id_validation() {
        assert!(validate_id("1").is_ok());
        assert!(validate_id(&"9".repeat(32)).is_ok());
        for bad in ["", "abc", "1a", "../1", "1 ", "-1", "１", &"9".repeat(33)] {
            assert_eq!(validate_id(bad), Err(BffError::NotFound), "{bad:?}");
        }
    }

    /// Batch paths list the ids comma-separated, each encoded.
    #[test]
    fn batch_paths() {
        assert_eq!(batch_path(&["1".into(), "22".into()]), "/products?ids=1,22");
        assert_eq!(batch_path(&["a&b".into()]), "/products?ids=a%26b");
    }
}
