//! Batch lookups used for list enrichment: one call for many ids.

use std::collections::HashMap;

use bff_core::RequestContext;
use bff_core::compose::index_by;
use bff_core::downstream::{Downstream, DownstreamError, encode_query};
use shared_schemas::downstream::{Inventory, InventoryBatch, Product, ProductBatch};

fn ids_query(ids: &[String]) -> String {
    ids.iter()
        .map(|id| encode_query(id))
        .collect::<Vec<_>>()
        .join(",")
}

/// The products with `ids`, by id, from one `GET /products?ids=` call (no call for an empty list).
pub(crate) async fn products(
    catalog: &Downstream,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Product>, DownstreamError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let batch: ProductBatch = catalog
        .get_json(ctx, format!("/products?ids={}", ids_query(ids)))
        .await?;
    Ok(index_by(batch.items, |p| p.id.clone()))
}

/// The stock records of `ids`, by product id, from one `GET /inventory?ids=` call.
pub(crate) async fn stock(
    inventory: &Downstream,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Inventory>, DownstreamError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let batch: InventoryBatch = inventory
        .get_json(ctx, format!("/inventory?ids={}", ids_query(ids)))
        .await?;
    Ok(index_by(batch.items, |i| i.product_id.clone()))
}
