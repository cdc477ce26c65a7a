//! Orders service: `GET /users/{id}/orders?limit=&cursor=` and `GET /orders/{id}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared_schemas::downstream::OrderPage;

use super::{BadRequest, Params, int_param, json_or_404, not_found, params};
use crate::data::orders::{order_by_id, orders_page};
use crate::data::{USER_COUNT, parse_id};

pub(super) fn routes() -> Router {
    Router::new()
        .route("/users/{id}/orders", get(user_orders))
        .route("/orders/{id}", get(get_order))
}

async fn get_order(Path(id): Path<String>) -> Response {
    json_or_404(order_by_id(&id))
}

async fn user_orders(
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    let Some(user) = parse_id(&id, USER_COUNT) else {
        return Ok(not_found());
    };
    let limit = int_param(&params, "limit", 10, 1, 50)?;
    // The cursor is the offset of the next page, as a decimal string.
    let offset = match params.get("cursor") {
        None => 0,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| BadRequest("invalid cursor".to_owned()))?,
    };
    Ok(match orders_page(user, offset, limit) {
        Some((items, next)) => Json(OrderPage {
            items,
            next_cursor: next.map(|n| n.to_string()),
        })
        .into_response(),
        None => not_found(),
    })
}
