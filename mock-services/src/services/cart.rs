//! Carts, kept by the orders service: `GET /users/{id}/cart`, `POST /users/{id}/cart/items` (add units of a
//! product) and `DELETE /users/{id}/cart/items/{product_id}` (remove the line).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shared_schemas::downstream::AddCartItem;

use super::{Answer, body, created, json_or_404, not_found, once, refused};
use crate::data::catalog::product_exists;
use crate::data::inventory::inventory;
use crate::data::{PRODUCT_COUNT, USER_COUNT, parse_id};
use crate::writes::{MAX_LINE_QUANTITY, Writes};

pub(super) fn routes(writes: &Writes) -> Router {
    Router::new()
        .route("/users/{id}/cart", get(get_cart))
        .route("/users/{id}/cart/items", axum::routing::post(add_item))
        .route("/users/{id}/cart/items/{product_id}", delete(remove_item))
        .with_state(writes.clone())
}

async fn get_cart(State(writes): State<Writes>, Path(id): Path<String>) -> Response {
    json_or_404(parse_id(&id, USER_COUNT).map(|user| writes.lock().cart(user)))
}

async fn add_item(
    State(writes): State<Writes>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<AddCartItem>, JsonRejection>,
) -> Response {
    let Some(user) = parse_id(&id, USER_COUNT) else {
        return not_found();
    };
    once(&writes, &format!("cart {user}"), &headers, |state| {
        let item = match body(request) {
            Ok(item) => item,
            Err(answer) => return answer,
        };
        match check_line(&item.product_id, item.quantity) {
            Err(answer) => answer,
            Ok(product) => match state.add_to_cart(user, product, item.quantity) {
                Ok(cart) => created(StatusCode::OK, &cart),
                Err(code) => refused(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    code,
                    "the cart line would exceed its limit",
                ),
            },
        }
    })
}

/// The product of a line to add or order, or the refusal: unknown product (422), quantity outside
/// 1..=20 (422), out of stock (409).
pub(super) fn check_line(product_id: &str, quantity: u32) -> Result<u32, Answer> {
    let Some(product) = parse_id(product_id, PRODUCT_COUNT).filter(|p| product_exists(*p)) else {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_product",
            "no such product",
        ));
    };
    if !(1..=MAX_LINE_QUANTITY).contains(&quantity) {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity_limit",
            "quantity must be in 1..=20",
        ));
    }
    if inventory(product).available == 0 {
        return Err(refused(
            StatusCode::CONFLICT,
            "out_of_stock",
            "the product is out of stock",
        ));
    }
    Ok(product)
}

async fn remove_item(
    State(writes): State<Writes>,
    Path((id, product_id)): Path<(String, String)>,
) -> Response {
    let (Some(user), Some(product)) = (
        parse_id(&id, USER_COUNT),
        parse_id(&product_id, PRODUCT_COUNT),
    ) else {
        return not_found();
    };
    json_or_404(writes.lock().remove_from_cart(user, product))
}
