//! `POST /v1/orders` (scope `orders:write`, `Idempotency-Key` required): a partner places an order with
//! explicit lines — one command to the orders service, which records the partner from the verified key —
//! answered as [`OrderV1`] with line SKUs and names (optional part `products`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bff_core::body::{JsonBody, Validate, Violations};
use bff_core::compose::unique_ids;
use bff_core::downstream::command::{Refusal, command_error, created};
use bff_core::error::Problem;
use bff_core::idempotency::KeyRule;
use bff_core::{BffError, RequestContext};
use serde::{Deserialize, Serialize};
use shared_schemas::downstream::{CreateOrder, NewOrderLine, Order, Product, ServiceError};
use shared_schemas::views::partner::OrderV1;

use crate::App;

/// Scope needed to place orders.
pub const SCOPE_ORDERS_WRITE: &str = "orders:write";

/// One line of a [`PlaceOrderV1`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineV1 {
    /// Product id (digits).
    pub product_id: String,
    /// Units, 1..=20.
    pub quantity: u32,
}

/// `POST /v1/orders`: an order of the calling partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderV1 {
    /// 1..=50 lines, each product at most once.
    pub items: Vec<OrderLineV1>,
    /// The partner's own reference (1..=64 characters), optional.
    #[serde(default)]
    pub external_ref: Option<String>,
}

impl Validate for PlaceOrderV1 {
    fn validate(&self, errors: &mut Violations) {
        errors.check(
            (1..=50).contains(&self.items.len()),
            "/items",
            "must have 1..=50 lines",
        );
        let mut seen = HashSet::new();
        for (i, line) in self.items.iter().enumerate() {
            errors.check(
                shared_schemas::services::is_valid_id(&line.product_id),
                format!("/items/{i}/product_id"),
                "must be a product id (1..=32 digits)",
            );
            errors.check(
                seen.insert(line.product_id.as_str()),
                format!("/items/{i}/product_id"),
                "each product at most once",
            );
            errors.check(
                (1..=20).contains(&line.quantity),
                format!("/items/{i}/quantity"),
                "must be 1..=20",
            );
        }
        if let Some(r) = &self.external_ref {
            errors.check(
                (1..=64).contains(&r.chars().count()),
                "/external_ref",
                "must have 1..=64 characters",
            );
        }
    }
}

/// The orders service's refusals, as partners see them.
const REFUSALS: &[Refusal] = &[
    Refusal {
        service_code: "unknown_product",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "unknown_product",
        detail: "an ordered product does not exist",
    },
    Refusal {
        service_code: "out_of_stock",
        status: StatusCode::CONFLICT,
        code: "out_of_stock",
        detail: "an ordered product is out of stock",
    },
];

/// Places an order through the calling partner.
#[utoipa::path(
    post,
    path = "/v1/orders",
    security(("api_key" = ["orders:write"])),
    request_body(content = PlaceOrderV1, content_type = "application/json"),
    params(("Idempotency-Key" = String, Header, description = "Required (IETF draft): a retry with the same key is answered from the first attempt (`idempotent-replayed: true`) and never orders twice")),
    responses(
        (status = 201, description = "The new order; `Location` names it", body = OrderV1),
        (status = 400, description = "`malformed_body`, `idempotency_key_missing` or `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `orders:write`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out_of_stock` or `idempotency_key_in_flight`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body` (JSON Pointers in `errors`), `unknown_product` or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (orders have their own, tighter limit)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json")
    )
)]
pub(crate) async fn place_order(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(command): JsonBody<PlaceOrderV1>,
) -> Response {
    if let Err(e) = ctx.require_scopes(&[SCOPE_ORDERS_WRITE]) {
        return e.into_response();
    }
    let idempotency = app.idempotency.clone();
    idempotency
        .run(
            &ctx,
            &headers,
            KeyRule::Required,
            "POST /v1/orders",
            &command,
            |key| async {
                let extra: Vec<_> = key.into_iter().collect();
                let body = CreateOrder {
                    items: command
                        .items
                        .iter()
                        .map(|l| NewOrderLine {
                            product_id: l.product_id.clone(),
                            quantity: l.quantity,
                        })
                        .collect(),
                    external_ref: command.external_ref.clone(),
                };
                let result = async {
                    let reply = app
                        .orders
                        .command(&ctx, Method::POST, "/orders", Some(&body), &extra)
                        .await
                        .map_err(|e| command_error("order", &e))?;
                    if !reply.is_success() {
                        let code = reply
                            .json::<ServiceError>(&app.orders)
                            .ok()
                            .map(|e| e.error);
                        return Err(reply.refusal("order", code.as_deref(), REFUSALS));
                    }
                    let order: Order = reply
                        .json(&app.orders)
                        .map_err(|e| BffError::from_part("order", &e))?;
                    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
                    let products = ctx
                        .optional("products", app.products.load::<Product>(&ctx, &ids))
                        .await?;
                    Ok::<_, BffError>(OrderV1::new(order, products.as_ref()))
                };
                created(result.await, |view| format!("/v1/orders/{}", view.id))
            },
        )
        .await
}
