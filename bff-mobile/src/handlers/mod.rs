//! The composed endpoints of the mobile gateway, one module per screen, and what they share: id validation
//! and the catalog batch lookup.

pub(crate) mod home;
pub(crate) mod order;
pub(crate) mod product;

use std::collections::HashMap;

use bff_core::compose::index_by;
use bff_core::downstream::{Downstream, DownstreamError};
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{Product, ProductBatch};
use shared_schemas::services::MAX_BATCH_IDS;

/// Ok when `id` can name a resource of the domain (`shared_schemas::services::is_valid_id`), else 404.
pub(crate) fn validate_id(id: &str) -> Result<(), BffError> {
    if shared_schemas::services::is_valid_id(id) {
        Ok(())
    } else {
        Err(BffError::NotFound)
    }
}

/// The products of `ids` (distinct), by id, from batch calls of the catalog (one call for up to 100 ids, the
/// normal case). No call at all for no ids. Unknown ids are simply absent.
pub(crate) async fn products_by_id(
    catalog: &Downstream,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Product>, DownstreamError> {
    let batches: Vec<ProductBatch> = catalog
        .get_batch(ctx, "/products?ids=", ids, MAX_BATCH_IDS)
        .await?;
    Ok(index_by(
        batches.into_iter().flat_map(|b| b.items).collect(),
        |p| p.id.clone(),
    ))
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
}
