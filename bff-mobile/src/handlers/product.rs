//! `GET /api/products/{id}`: one product, lean, with its rating and whether it is in stock.

use bff_core::prelude::*;
use shared_schemas::downstream::{Product, RatingSummary};
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::mobile::ProductView;

/// A product screen.
///
/// The product is required (404 when unknown); its rating (reviews) and stock (inventory) are optional:
/// when one fails, its field is `null` and the response carries `bff-partial: rating` / `inventory`.
#[utoipa::path(get, path = "/api/products/{id}", params(Fields<ProductView>), responses(
    (status = 200, description = "The product screen; strong `ETag`", body = ProductView),
))]
pub(crate) async fn product(
    Req { s, ctx, .. }: Req,
    id: DomainId,
    f: Fields<ProductView>,
) -> Reply {
    let (product, rating, inventory) = tokio::try_join!(
        ctx.required(
            "product",
            s.catalog
                .get_json::<Product>(&ctx, format!("/products/{id}"))
        ),
        ctx.optional(
            "rating",
            s.reviews
                .get_json::<RatingSummary>(&ctx, format!("/products/{id}/rating"))
        ),
        ctx.optional("inventory", s.stock_of(&ctx, id.as_str())),
    )?;
    Ok(f.json(&ProductView::new(product, rating, inventory)))
}
