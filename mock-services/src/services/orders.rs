//! Orders service: `GET /users/{id}/orders?limit=&cursor=`, `GET /orders/{id}`, and the commands
//! `POST /users/{id}/orders` (checkout: the user's cart becomes an order) and `POST /orders` (an order of
//! the partner named by `x-bff-partner-id`, with explicit lines). Orders created at run time are merged into
//! the reads, newest first.

use std::collections::HashSet;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared_schemas::downstream::{Checkout, CreateOrder, OrderPage};

use super::cart::check_line;
use super::{
    BadRequest, Params, body, created, int_param, json_or_404, not_found, once, params, refused,
};
use crate::data::orders::{order_count, orders_page};
use crate::data::{USER_COUNT, parse_id};
use crate::writes::{MAX_LINES, Writes};

/// Payment methods a checkout accepts.
const PAYMENT_METHODS: &[&str] = &["card", "paypal", "invoice", "apple_pay"];

pub(super) fn routes(writes: &Writes) -> Router {
    Router::new()
        .route("/users/{id}/orders", get(user_orders).post(checkout))
        .route("/orders/{id}", get(get_order))
        .route("/orders", post(partner_order))
        .with_state(writes.clone())
}

async fn get_order(State(writes): State<Writes>, Path(id): Path<String>) -> Response {
    json_or_404(parse_id(&id, u32::MAX).and_then(|n| writes.lock().current_order(u64::from(n))))
}

async fn user_orders(
    State(writes): State<Writes>,
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
    // Orders created at run time are the newest: they come first, then the generated ones.
    let recent = writes.lock().user_orders(user);
    let fresh = recent.len() as u32;
    let mut items: Vec<_> = recent
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    let generated_offset = offset.saturating_sub(fresh);
    let room = limit - items.len() as u32;
    let total = fresh + order_count(user);
    if room > 0
        && let Some((more, _)) = orders_page(user, generated_offset, room)
    {
        items.extend(more);
    }
    let end = offset.saturating_add(items.len() as u32);
    Ok(Json(OrderPage {
        items,
        next_cursor: (end < total).then(|| end.to_string()),
    })
    .into_response())
}

async fn checkout(
    State(writes): State<Writes>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<Checkout>, JsonRejection>,
) -> Response {
    let Some(user) = parse_id(&id, USER_COUNT) else {
        return not_found();
    };
    once(&writes, &format!("checkout {user}"), &headers, |state| {
        let command = match body(request) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        if !PAYMENT_METHODS.contains(&command.payment_method.as_str()) {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "unknown payment method",
            );
        }
        match state.checkout(user, &command.payment_method) {
            Ok(order) => created(StatusCode::CREATED, &order),
            Err(code) => refused(StatusCode::CONFLICT, code, "the cart cannot be ordered"),
        }
    })
}

async fn partner_order(
    State(writes): State<Writes>,
    headers: HeaderMap,
    request: Result<Json<CreateOrder>, JsonRejection>,
) -> Response {
    let Some(partner) = headers
        .get("x-bff-partner-id")
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
    else {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "forbidden", "detail": "orders are placed by partners"})),
        )
            .into_response();
    };
    once(&writes, &format!("partner {partner}"), &headers, |state| {
        let command = match body(request) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        if command.items.is_empty() || command.items.len() > MAX_LINES {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "an order has 1..=50 lines",
            );
        }
        if command
            .external_ref
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.chars().count() > 64)
        {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "external_ref has 1..=64 characters",
            );
        }
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(command.items.len());
        for line in &command.items {
            match check_line(&line.product_id, line.quantity) {
                Ok(product) if seen.insert(product) => lines.push((product, line.quantity)),
                Ok(_) => {
                    return refused(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        "each product at most once",
                    );
                }
                Err(answer) => return answer,
            }
        }
        let order = state.partner_order(&partner, &lines, command.external_ref.as_deref());
        created(StatusCode::CREATED, &order)
    })
}
