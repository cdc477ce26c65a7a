//! Route handlers: each composes downstream calls through the request context and shapes a web view.

pub(crate) mod cart;
pub(crate) mod checkout;
pub(crate) mod home;
pub(crate) mod order_events;
pub(crate) mod orders;
pub(crate) mod products;
pub(crate) mod reviews;

use bff_core::prelude::*;
use shared_schemas::downstream::Product;
use std::collections::HashMap;

/// The products named by the lines of a cart or an order (one batch lookup, optional part `products`).
pub(crate) async fn line_products<'a>(
    products: &Batcher,
    ctx: &RequestContext,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Option<HashMap<String, Product>>, BffError> {
    let ids = unique_ids(ids);
    ctx.optional("products", products.load(ctx, &ids)).await
}
