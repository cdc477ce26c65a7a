//! `GET /api/orders/{id}`: one of the caller's orders with product details (scope `orders:read`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use bff_core::compose::unique_ids;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::Order;
use shared_schemas::views::web::OrderDetailView;

use super::catalog;
use crate::App;
use crate::ids::numeric_id;

/// One of the caller's orders, lines enriched with product summaries from one batch call.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order; `bff-partial: products` when product details are missing", body = OrderDetailView),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem),
        (status = 403, description = "The token lacks `orders:read`", body = bff_core::error::Problem),
        (status = 404, description = "No such order for this user", body = bff_core::error::Problem),
    ),
    security(("bearer" = ["orders:read"]))
)]
pub(crate) async fn order(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<OrderDetailView>, BffError> {
    let caller = ctx.require_scopes(&["orders:read"])?.subject.clone();
    let id = numeric_id(&id)?;
    let order: Order = ctx
        .required("order", app.orders.get_json(&ctx, format!("/orders/{id}")))
        .await?;
    if order.user_id != caller {
        // Not the caller's: indistinguishable from an order that does not exist.
        return Err(BffError::NotFound);
    }
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = ctx
        .optional("products", catalog::products(&app.products, &ctx, &ids))
        .await?;
    Ok(Json(OrderDetailView::new(order, products.as_ref())))
}
