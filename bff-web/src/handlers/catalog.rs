//! Batch lookups used for list enrichment: one call for many ids.

use std::collections::HashMap;

use bff_core::RequestContext;
use bff_core::compose::index_by;
use bff_core::downstream::{Downstream, DownstreamError};
use shared_schemas::downstream::{Inventory, InventoryBatch, Product, ProductBatch};
use shared_schemas::services::MAX_BATCH_IDS;

/// The products with `ids`, by id, from one `GET /products?ids=` call (no call for an empty list).
pub(crate) async fn products(
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

/// The stock records of `ids`, by product id, from one `GET /inventory?ids=` call.
pub(crate) async fn stock(
    inventory: &Downstream,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Inventory>, DownstreamError> {
    let batches: Vec<InventoryBatch> = inventory
        .get_batch(ctx, "/inventory?ids=", ids, MAX_BATCH_IDS)
        .await?;
    Ok(index_by(
        batches.into_iter().flat_map(|b| b.items).collect(),
        |i| i.product_id.clone(),
    ))
}
