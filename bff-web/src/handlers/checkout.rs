//! `POST /api/orders` (checkout): the caller's cart becomes an order — one command to the orders service —
//! answered as the order page (lines enriched with product summaries, optional part `products`). The cached
//! cart and recent orders are invalidated (read-your-writes).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bff_core::body::JsonBody;
use bff_core::compose::unique_ids;
use bff_core::downstream::command::created;
use bff_core::idempotency::KeyRule;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{Checkout, Order};
use shared_schemas::views::web::OrderDetailView;

use super::catalog;
use super::command::{caller, send};
use super::home::RECENT_ORDERS;
use crate::App;
use crate::commands::PlaceOrder;

/// Orders the caller's cart.
#[utoipa::path(
    post,
    path = "/api/orders",
    request_body(content = PlaceOrder, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Recommended: a retry with the same key never orders twice")),
    responses(
        (status = 201, description = "The new order; `Location` names it; `bff-partial: products` when product details are missing", body = OrderDetailView),
        (status = 400, description = "Malformed JSON (`malformed_body`) or Idempotency-Key (`idempotency_key_invalid`)", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cart_empty`, `out_of_stock`, `order_limit`, or `idempotency_key_in_flight`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body` (fields by JSON Pointer in `errors`) or `idempotency_key_reused`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (writes have their own, tighter limit)", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn place(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(command): JsonBody<PlaceOrder>,
) -> Response {
    let user = match caller(&ctx) {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let idempotency = app.idempotency.clone();
    idempotency
        .run(
            &ctx,
            &headers,
            KeyRule::Optional,
            "POST /api/orders",
            &command,
            |key| async {
                let body = Checkout {
                    payment_method: command.payment_method.clone(),
                };
                let result = async {
                    let order: Order = send(
                        &ctx,
                        &app.orders,
                        "order",
                        Method::POST,
                        &format!("/users/{user}/orders"),
                        Some(&body),
                        key,
                    )
                    .await?;
                    app.orders
                        .invalidate(
                            &ctx,
                            &[
                                format!("/users/{user}/cart"),
                                format!("/users/{user}/orders?limit={RECENT_ORDERS}"),
                            ],
                        )
                        .await;
                    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
                    let products = ctx
                        .optional("products", catalog::products(&app.products, &ctx, &ids))
                        .await?;
                    Ok::<_, BffError>(OrderDetailView::new(order, products.as_ref()))
                };
                created(result.await, |view| format!("/api/orders/{}", view.id))
            },
        )
        .await
}
