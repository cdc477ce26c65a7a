//! `POST /api/orders` (checkout): the caller's cart becomes an order — one command to the orders service —
//! answered as the order page (lines enriched with product summaries, optional part `products`). The cached
//! cart and recent orders are invalidated (read-your-writes).

use bff_core::prelude::*;
use shared_schemas::downstream::{Checkout, Order};
use shared_schemas::gateway::{Call, Req, send};
use shared_schemas::views::web::OrderDetailView;

use super::home::RECENT_ORDERS;
use crate::commands::PlaceOrder;

/// Orders the caller's cart.
#[utoipa::path(post, path = "/api/orders", request_body = PlaceOrder, params(Command<PlaceOrder>), responses(
    (status = 201, description = "The new order; `Location` names it; `bff-partial: products` when product details are missing", body = OrderDetailView),
    (status = 409, description = "`cart_empty`, `out_of_stock` or `order_limit`", body = bff_core::error::Problem),
))]
pub(crate) async fn place(Req { s, ctx, who }: Req, cmd: Command<PlaceOrder>) -> Response {
    let payment_method = cmd.body.payment_method.clone();
    let body = Checkout { payment_method };
    let user = who.user();
    let recent = format!("/users/{user}/orders?limit={RECENT_ORDERS}");
    let stale = [format!("/users/{user}/cart"), recent];
    cmd.run(KeyRule::Optional, |key| async {
        let result = async {
            let call =
                Call::post("order", format!("/users/{user}/orders"), &body).invalidates(stale);
            let order: Order = send(&ctx, &s.orders, key, call).await?;
            let lines = order.items.iter().map(|i| i.product_id.as_str());
            let products = super::line_products(&s.products, &ctx, lines).await?;
            Ok(OrderDetailView::new(order, products.as_ref()))
        };
        created(result.await, |view| format!("/api/orders/{}", view.id))
    })
    .await
}
