//! Item lookups used for list enrichment: products and stock by id, through the cross-request batchers
//! (one `GET /products?ids=` / `GET /inventory?ids=` call for the ids of concurrent requests; known ids
//! from the cache without a call).

use std::collections::HashMap;

use bff_core::RequestContext;
use bff_core::cache::{BatchSpec, Batcher};
use bff_core::downstream::DownstreamError;
use shared_schemas::downstream::{Inventory, Product};
use shared_schemas::services::MAX_BATCH_IDS;

/// The catalog's batch endpoint.
pub(crate) const PRODUCT_BATCH: BatchSpec = BatchSpec {
    prefix: "/products?ids=",
    items_field: "items",
    id_field: "id",
    max_ids: MAX_BATCH_IDS,
};

/// The inventory's batch endpoint.
pub(crate) const STOCK_BATCH: BatchSpec = BatchSpec {
    prefix: "/inventory?ids=",
    items_field: "items",
    id_field: "product_id",
    max_ids: MAX_BATCH_IDS,
};

/// The products with `ids`, by id (no call for an empty list).
pub(crate) async fn products(
    products: &Batcher,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Product>, DownstreamError> {
    products.load(ctx, ids).await
}

/// The stock records of `ids`, by product id.
pub(crate) async fn stock(
    stock: &Batcher,
    ctx: &RequestContext,
    ids: &[String],
) -> Result<HashMap<String, Inventory>, DownstreamError> {
    stock.load(ctx, ids).await
}
