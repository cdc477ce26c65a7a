//! `GET /api/orders/{id}`: one of the caller's orders, lean, its lines named by one catalog batch call.

use bff_core::prelude::*;
use shared_schemas::downstream::Order;
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::mobile::OrderView;

/// An order screen (scope `orders:read`).
///
/// The order must belong to the caller: another user's order is a 404, exactly like an unknown one, so its
/// existence is never revealed. Product names and thumbnails come from one catalog batch call, an optional
/// part: when it fails they are `null` and the response carries `bff-partial: products`.
#[utoipa::path(get, path = "/api/orders/{id}", params(Fields<OrderView>), responses(
    (status = 200, description = "The order screen; strong `ETag`", body = OrderView),
    (status = 404, description = "No such order of the caller", body = bff_core::error::Problem),
))]
pub(crate) async fn order(Req { s, ctx, who }: Req, id: DomainId, f: Fields<OrderView>) -> Reply {
    let order: Order = ctx.required("order", s.order(&ctx, id.as_str())).await?;
    if order.user_id != who.subject() {
        return Err(BffError::NotFound);
    }
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = ctx
        .optional("products", s.products.load(&ctx, &ids))
        .await?;
    Ok(f.json(&OrderView::new(order, products.as_ref())))
}
