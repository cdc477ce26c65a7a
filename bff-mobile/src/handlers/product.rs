//! `GET /api/products/{id}`: one product, lean, with its rating and whether it is in stock.

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::extract::{Path, State};
use axum::response::Response;
use bff_core::downstream::encode_segment;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{Inventory, Product, RatingSummary};
use shared_schemas::views::mobile::ProductView;

use super::validate_id;
use crate::App;
use bff_core::shape::{sparse_fields, sparse_json};

/// A product screen.
///
/// The product is required (404 when unknown); its rating (reviews) and stock (inventory) are optional:
/// when one fails, its field is `null` and the response carries `bff-partial: rating` / `inventory`.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "mobile",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Product id (digits)"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy: 304 when unchanged"),
        ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths, e.g. `id,name,price.amount_cents`"),
    ),
    responses(
        (status = 200, description = "The product screen", body = ProductView,
            headers(("ETag" = String, description = "Strong tag of the body"),
                    ("bff-partial" = String, description = "Optional parts that failed: `rating`, `inventory`"))),
        (status = 304, description = "The cached copy named by If-None-Match is current; empty body"),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = bff_core::error::Problem),
        (status = 401, description = "No valid token", body = bff_core::error::Problem),
        (status = 404, description = "No such product", body = bff_core::error::Problem),
        (status = 502, description = "The catalog answered badly", body = bff_core::error::Problem),
        (status = 503, description = "The catalog is unavailable", body = bff_core::error::Problem),
        (status = 504, description = "The time budget ran out", body = bff_core::error::Problem),
    )
)]
pub(crate) async fn product(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    ctx.require_scopes(&[])?;
    let fields = sparse_fields(query.as_deref(), super::fields::PRODUCT)?;
    validate_id(&id)?;
    let id = encode_segment(&id);
    let product_path = format!("/products/{id}");
    let rating_path = format!("/products/{id}/rating");
    let inventory_path = format!("/inventory/{id}");
    let (product, rating, inventory) = tokio::try_join!(
        ctx.required(
            "product",
            app.catalog.get_json::<Product>(&ctx, &product_path)
        ),
        ctx.optional(
            "rating",
            app.reviews.get_json::<RatingSummary>(&ctx, &rating_path)
        ),
        ctx.optional(
            "inventory",
            app.inventory.get_json::<Inventory>(&ctx, &inventory_path)
        ),
    )?;
    Ok(sparse_json(
        &ProductView::new(product, rating, inventory),
        fields.as_ref(),
    ))
}
