//! `POST /v1/orders` (scope `orders:write`, `Idempotency-Key` required): a partner places an order with
//! explicit lines — one command to the orders service, which records the partner from the verified key —
//! answered as [`OrderV1`] with line SKUs and names (optional part `products`).

use std::collections::HashSet;

use bff_core::body::{Validate, Violations};
use bff_core::prelude::*;
use serde::{Deserialize, Serialize};
use shared_schemas::downstream::{CreateOrder, NewOrderLine, Order, Product};
use shared_schemas::gateway::{Call, Req, Services, send};
use shared_schemas::views::partner::OrderV1;

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

/// Places an order through the calling partner (scope `orders:write`, `Idempotency-Key` required).
#[utoipa::path(post, path = "/v1/orders", request_body = PlaceOrderV1,
    params(("Idempotency-Key" = String, Header, description = "Required (IETF draft): a retry with the same key is answered from the first attempt (`idempotent-replayed: true`) and never orders twice")),
    responses(
        (status = 201, description = "The new order; `Location` names it", body = OrderV1),
        (status = 409, description = "`out_of_stock`", body = bff_core::error::Problem),
        (status = 422, description = "`invalid_body` (JSON Pointers in `errors`) or `unknown_product`", body = bff_core::error::Problem),
    )
)]
pub(crate) async fn place_order(Req { s, ctx, .. }: Req, cmd: Command<PlaceOrderV1>) -> Response {
    let items = cmd.body.items.iter();
    let lines = items.map(|l| NewOrderLine {
        product_id: l.product_id.clone(),
        quantity: l.quantity,
    });
    let body = CreateOrder {
        items: lines.collect(),
        external_ref: cmd.body.external_ref.clone(),
    };
    cmd.run(KeyRule::Required, |key| async {
        let call = Call::post("order", "/orders".into(), &body);
        let placed = match send::<_, Order>(&ctx, &s.orders, key, call).await {
            Ok(order) => with_products(&s, &ctx, order).await,
            Err(refused) => Err(refused),
        };
        created(placed, |view| format!("/v1/orders/{}", view.id))
    })
    .await
}

/// The placed order with its lines' SKUs and names (one batch call, optional part `products`).
async fn with_products(s: &Services, ctx: &RequestContext, order: Order) -> Reply<OrderV1> {
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = ctx.optional("products", s.products.load::<Product>(ctx, &ids));
    Ok(OrderV1::new(order, products.await?.as_ref()))
}
