//! The caller's cart: `GET /api/cart`, `POST /api/cart/items` (add units), `DELETE /api/cart/items/{product_id}`
//! (remove the line). Each change is one command to the orders service; the answer is the cart enriched with
//! product summaries (optional part `products`). A change invalidates the cached cart (read-your-writes).

use bff_core::idempotency::ForwardedKey;
use bff_core::prelude::*;
use shared_schemas::downstream::{AddCartItem, Cart};
use shared_schemas::gateway::{Call, DomainId, Req, Services, send};
use shared_schemas::views::web::CartView;

use crate::commands::AddToCart;

/// The cart with its product summaries (one batch lookup, optional part `products`).
async fn view(s: &Services, ctx: &RequestContext, cart: Cart) -> Result<Json<CartView>, BffError> {
    let products = super::line_products(
        &s.products,
        ctx,
        cart.items.iter().map(|l| l.product_id.as_str()),
    )
    .await?;
    Ok(Json(CartView::new(cart, products.as_ref())))
}

/// A change of the cart of `user` (path-encoded): one command that makes the cached cart stale.
async fn change<B: serde::Serialize + ?Sized>(
    s: &Services,
    ctx: &RequestContext,
    user: &str,
    key: ForwardedKey,
    call: Call<'_, B>,
) -> Reply<Json<CartView>> {
    let call = call.invalidates([format!("/users/{user}/cart")]);
    let cart: Cart = send(ctx, &s.orders, key, call).await?;
    view(s, ctx, cart).await
}

/// The caller's cart.
#[utoipa::path(get, path = "/api/cart", responses(
    (status = 200, description = "The cart; `bff-partial: products` when product details are missing", body = CartView),
))]
pub(crate) async fn get(Req { s, ctx, who }: Req) -> Reply<Json<CartView>> {
    let path = format!("/users/{}/cart", who.user());
    let cart: Cart = ctx.required("cart", s.orders.get_json(&ctx, path)).await?;
    view(&s, &ctx, cart).await
}

/// Adds units of a product to the caller's cart.
#[utoipa::path(post, path = "/api/cart/items", params(Write), request_body = AddToCart, responses(
    (status = 200, description = "The cart after the change", body = CartView),
    (status = 409, description = "`out_of_stock`", body = bff_core::error::Problem),
    (status = 422, description = "`invalid_body` (JSON Pointers in `errors`), `unknown_product`, `quantity_limit`, `cart_full`", body = bff_core::error::Problem),
))]
pub(crate) async fn add(Req { s, ctx, who }: Req, cmd: Command<AddToCart>) -> Response {
    let user = who.user();
    cmd.run(KeyRule::Optional, |key| async {
        let body = AddCartItem {
            product_id: cmd.body.product_id.clone(),
            quantity: cmd.body.quantity,
        };
        let call = Call::post("cart", format!("/users/{user}/cart/items"), &body);
        change(&s, &ctx, user, key, call).await
    })
    .await
}

/// Removes a product's line from the caller's cart (404 when it is not in the cart).
#[utoipa::path(delete, path = "/api/cart/items/{product_id}", params(Write), responses(
    (status = 200, description = "The cart after the change", body = CartView),
    (status = 404, description = "The product is not in the cart", body = bff_core::error::Problem),
))]
pub(crate) async fn remove(Req { s, ctx, who }: Req, write: Write, product: DomainId) -> Response {
    let user = who.user();
    write
        .run(KeyRule::Optional, &(), |key| async {
            let call = Call::delete("cart", format!("/users/{user}/cart/items/{product}"));
            change(&s, &ctx, user, key, call).await
        })
        .await
}
