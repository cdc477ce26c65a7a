//! `POST /api/orders` (checkout): the caller's cart becomes an order — one command to the orders service —
//! answered lean (id, status, total, units). The cached cart and recent orders are invalidated.

use bff_core::body::{Validate, Violations};
use bff_core::prelude::*;
use serde::{Deserialize, Serialize};
use shared_schemas::downstream::{Checkout, Order};
use shared_schemas::gateway::{Call, Req, send};
use shared_schemas::views::mobile::{HOME_ORDERS, OrderPlacedView};

/// `POST /api/orders` of the mobile app: order the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceOrder {
    /// `card`, `paypal` or `apple_pay`.
    pub(crate) payment_method: String,
}

impl Validate for PlaceOrder {
    fn validate(&self, errors: &mut Violations) {
        let known = ["card", "paypal", "apple_pay"].contains(&self.payment_method.as_str());
        errors.check(
            known,
            "/payment_method",
            "must be one of card, paypal, apple_pay",
        );
    }
}

/// Orders the caller's cart.
#[utoipa::path(post, path = "/api/orders", params(Write), request_body = PlaceOrder, responses(
    (status = 201, description = "The new order, lean; `Location` names it", body = OrderPlacedView),
    (status = 409, description = "`cart_empty`, `out_of_stock` or `order_limit`", body = bff_core::error::Problem),
))]
pub(crate) async fn place(Req { s, ctx, who }: Req, cmd: Command<PlaceOrder>) -> Response {
    let body = Checkout {
        payment_method: cmd.body.payment_method.clone(),
    };
    let user = who.user();
    let stale = [
        format!("/users/{user}/cart"),
        format!("/users/{user}/orders?limit={HOME_ORDERS}"),
    ];
    cmd.run(KeyRule::Optional, |key| async {
        let call = Call::post("order", format!("/users/{user}/orders"), &body);
        let order: Result<Order, BffError> =
            send(&ctx, &s.orders, key, call.invalidates(stale)).await;
        let placed = order.map(OrderPlacedView::from);
        created(placed, |view| format!("/api/orders/{}", view.id))
    })
    .await
}
