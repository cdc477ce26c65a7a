//! The caller's cart: `GET /api/cart`, `POST /api/cart/items` (add units), `DELETE /api/cart/items/{product_id}`
//! (remove the line). Each change is one command to the orders service; the answer is the cart enriched with
//! product summaries (optional part `products`). A change invalidates the cached cart (read-your-writes).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bff_core::body::JsonBody;
use bff_core::compose::unique_ids;
use bff_core::idempotency::KeyRule;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{AddCartItem, Cart};
use shared_schemas::views::web::CartView;

use super::catalog;
use super::command::{caller, send};
use crate::App;
use crate::commands::AddToCart;
use crate::ids::numeric_id;

/// The cart with its product summaries (one batch lookup, optional part `products`).
async fn view(app: &App, ctx: &RequestContext, cart: Cart) -> Result<CartView, BffError> {
    let ids = unique_ids(cart.items.iter().map(|l| l.product_id.as_str()));
    let products = ctx
        .optional("products", catalog::products(&app.products, ctx, &ids))
        .await?;
    Ok(CartView::new(cart, products.as_ref()))
}

/// The cached reads a cart change makes stale.
fn stale(user: &str) -> Vec<String> {
    vec![format!("/users/{user}/cart")]
}

/// The caller's cart.
#[utoipa::path(
    get,
    path = "/api/cart",
    responses(
        (status = 200, description = "The cart; `bff-partial: products` when product details are missing", body = CartView),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The orders service answered badly", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unreachable", body = bff_core::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
) -> Result<Json<CartView>, BffError> {
    let user = caller(&ctx)?;
    let cart: Cart = ctx
        .required(
            "cart",
            app.orders.get_json(&ctx, format!("/users/{user}/cart")),
        )
        .await?;
    Ok(Json(view(&app, &ctx, cart).await?))
}

/// Adds units of a product to the caller's cart. An `Idempotency-Key` is honoured (a retry is answered
/// from the first attempt, marked `idempotent-replayed: true`).
#[utoipa::path(
    post,
    path = "/api/cart/items",
    request_body(content = AddToCart, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional: a retry with the same key is answered once")),
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 400, description = "Malformed JSON (`malformed_body`) or Idempotency-Key (`idempotency_key_invalid`)", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out_of_stock`, or `idempotency_key_in_flight`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than `body.max_bytes`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body` (fields by JSON Pointer in `errors`), `unknown_product`, `quantity_limit`, `cart_full`, `idempotency_key_reused`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (writes have their own, tighter limit)", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn add(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(command): JsonBody<AddToCart>,
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
            "POST /api/cart/items",
            &command,
            |key| async {
                let body = AddCartItem {
                    product_id: command.product_id.clone(),
                    quantity: command.quantity,
                };
                let result = async {
                    let cart: Cart = send(
                        &ctx,
                        &app.orders,
                        "cart",
                        Method::POST,
                        &format!("/users/{user}/cart/items"),
                        Some(&body),
                        key,
                    )
                    .await?;
                    app.orders.invalidate(&ctx, &stale(&user)).await;
                    view(&app, &ctx, cart).await
                };
                match result.await {
                    Ok(view) => Json(view).into_response(),
                    Err(e) => e.into_response(),
                }
            },
        )
        .await
}

/// Removes a product's line from the caller's cart (404 when it is not in the cart).
#[utoipa::path(
    delete,
    path = "/api/cart/items/{product_id}",
    params(("product_id" = String, Path, description = "Product id (digits)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Optional: a retry with the same key is answered once")),
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The product is not in the cart", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    Path(product_id): Path<String>,
) -> Response {
    let (user, product) = match (caller(&ctx), numeric_id(&product_id)) {
        (Ok(user), Ok(product)) => (user, product.to_owned()),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let request = format!("DELETE /api/cart/items/{product}");
    let idempotency = app.idempotency.clone();
    idempotency
        .run(
            &ctx,
            &headers,
            KeyRule::Optional,
            &request,
            &(),
            |key| async {
                let result = async {
                    let cart: Cart = send(
                        &ctx,
                        &app.orders,
                        "cart",
                        Method::DELETE,
                        &format!("/users/{user}/cart/items/{product}"),
                        None::<&()>,
                        key,
                    )
                    .await?;
                    app.orders.invalidate(&ctx, &stale(&user)).await;
                    view(&app, &ctx, cart).await
                };
                match result.await {
                    Ok(view) => Json(view).into_response(),
                    Err(e) => e.into_response(),
                }
            },
        )
        .await
}
