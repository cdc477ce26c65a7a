//! `GET /api/orders/{id}`: one of the caller's orders with product details (scope `orders:read`); the order
//! from `GET /orders/{id}`, or `GetOrder` when `[downstreams.orders] protocol = "grpc"`.

use bff_core::prelude::*;
use shared_schemas::downstream::Order;
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::web::OrderDetailView;

/// One of the caller's orders, lines enriched with product summaries from one batch call; another user's
/// order is a 404, like one that does not exist.
#[utoipa::path(get, path = "/api/orders/{id}", responses(
    (status = 200, description = "The order; `bff-partial: products` when product details are missing", body = OrderDetailView),
    (status = 404, description = "No such order of this user", body = bff_core::error::Problem),
))]
pub(crate) async fn order(Req { s, ctx, who }: Req, id: DomainId) -> Reply<Json<OrderDetailView>> {
    let order: Order = ctx.required("order", s.order(&ctx, id.as_str())).await?;
    if order.user_id != who.subject() {
        return Err(BffError::NotFound);
    }
    let lines = order.items.iter().map(|i| i.product_id.as_str());
    let products = super::line_products(&s.products, &ctx, lines).await?;
    Ok(Json(OrderDetailView::new(order, products.as_ref())))
}
