//! `POST /api/orders` (checkout): the caller's cart becomes an order — one command to the orders service —
//! answered lean (id, status, total, units). The cached cart and recent orders are invalidated.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bff_core::body::{JsonBody, Validate, Violations};
use bff_core::downstream::command::{Refusal, command_error, created};
use bff_core::downstream::encode_segment;
use bff_core::idempotency::KeyRule;
use bff_core::{BffError, RequestContext};
use serde::{Deserialize, Serialize};
use shared_schemas::downstream::{Checkout, Order, ServiceError};
use shared_schemas::views::mobile::OrderPlacedView;

use crate::App;
use shared_schemas::views::mobile::HOME_ORDERS;

/// `POST /api/orders` of the mobile app: order the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceOrder {
    /// `card`, `paypal` or `apple_pay`.
    pub(crate) payment_method: String,
}

impl Validate for PlaceOrder {
    fn validate(&self, errors: &mut Violations) {
        errors.check(
            ["card", "paypal", "apple_pay"].contains(&self.payment_method.as_str()),
            "/payment_method",
            "must be one of card, paypal, apple_pay",
        );
    }
}

/// The services' refusals, as mobile clients see them.
const REFUSALS: &[Refusal] = &[
    Refusal {
        service_code: "cart_empty",
        status: StatusCode::CONFLICT,
        code: "cart_empty",
        detail: "the cart is empty",
    },
    Refusal {
        service_code: "out_of_stock",
        status: StatusCode::CONFLICT,
        code: "out_of_stock",
        detail: "a product is out of stock",
    },
    Refusal {
        service_code: "order_limit",
        status: StatusCode::CONFLICT,
        code: "order_limit",
        detail: "no more orders can be placed for this account",
    },
];

/// Orders the caller's cart.
#[utoipa::path(
    post,
    path = "/api/orders",
    tag = "mobile",
    security(("bearer" = [])),
    request_body(content = PlaceOrder, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Recommended: a retry with the same key never orders twice")),
    responses(
        (status = 201, description = "The new order, lean; `Location` names it", body = OrderPlacedView),
        (status = 400, description = "`malformed_body` or `idempotency_key_invalid`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cart_empty`, `out_of_stock`, `order_limit` or `idempotency_key_in_flight`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body` (JSON Pointers in `errors`) or `idempotency_key_reused`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn place(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(command): JsonBody<PlaceOrder>,
) -> Response {
    let user = match ctx.require_scopes(&[]) {
        Ok(identity) => encode_segment(&identity.subject),
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
                let extra: Vec<_> = key.into_iter().collect();
                let body = Checkout {
                    payment_method: command.payment_method.clone(),
                };
                let result = async {
                    let reply = app
                        .orders
                        .command(
                            &ctx,
                            Method::POST,
                            &format!("/users/{user}/orders"),
                            Some(&body),
                            &extra,
                        )
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
                    app.orders
                        .invalidate(
                            &ctx,
                            &[
                                format!("/users/{user}/cart"),
                                format!("/users/{user}/orders?limit={HOME_ORDERS}"),
                            ],
                        )
                        .await;
                    Ok(OrderPlacedView::from(order))
                };
                created(result.await, |view| format!("/api/orders/{}", view.id))
            },
        )
        .await
}
