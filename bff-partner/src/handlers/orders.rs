//! `GET /v1/orders/{id}`: one order placed through the calling partner, with line SKUs and names.

use std::collections::HashMap;

use bff_core::prelude::*;
use shared_schemas::downstream::Product;
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::partner::OrderV1;

/// One order placed through the calling partner (scope `orders:read`); any other order is a 404, exactly
/// like one that does not exist. Line `sku`/`name` are null when products could not be loaded (the
/// `bff-partial` header then names `products`).
#[utoipa::path(get, path = "/v1/orders/{id}", params(Fields<OrderV1>), responses(
    (status = 200, description = "The order", body = OrderV1),
    (status = 404, description = "No such order placed through this partner", body = bff_core::error::Problem),
))]
pub(crate) async fn order(Req { s, ctx, who }: Req, id: DomainId, f: Fields<OrderV1>) -> Reply {
    // Only partner credentials can own orders; any other caller sees none.
    let partner = who.partner_id().ok_or(BffError::NotFound)?;
    let order = ctx.required("order", s.order(&ctx, id.as_str())).await?;
    if order.partner_id.as_deref() != Some(partner) {
        return Err(BffError::NotFound);
    }
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = match ids.is_empty() {
        true => Some(HashMap::new()),
        false => {
            ctx.optional("products", s.products.load::<Product>(&ctx, &ids))
                .await?
        }
    };
    Ok(f.json(&OrderV1::new(order, products.as_ref())))
}
