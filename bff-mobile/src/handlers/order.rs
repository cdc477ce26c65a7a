//! `GET /api/orders/{id}`: one of the caller's orders, lean, its lines named by one catalog batch call.

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::extract::{Path, State};
use axum::response::Response;
use bff_core::compose::unique_ids;
use bff_core::downstream::encode_segment;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::Order;
use shared_schemas::views::mobile::OrderView;

use super::validate_id;
use crate::App;
use bff_core::shape::{sparse_fields, sparse_json};

/// Scope required to read orders.
pub(crate) const ORDERS_READ: &str = "orders:read";

/// An order screen.
///
/// Needs the `orders:read` scope (403 otherwise). The order must exist and belong to the caller: another
/// user's order is a 404, exactly like an unknown one, so its existence is never revealed. Product names and
/// thumbnails come from one catalog batch call, an optional part: when it fails they are `null` and the
/// response carries `bff-partial: products`.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "mobile",
    security(("bearer" = ["orders:read"])),
    params(
        ("id" = String, Path, description = "Order id (digits)"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy: 304 when unchanged"),
        ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths, e.g. `id,status,items.name`"),
    ),
    responses(
        (status = 200, description = "The order screen", body = OrderView,
            headers(("ETag" = String, description = "Strong tag of the body"),
                    ("bff-partial" = String, description = "Optional parts that failed: `products`"))),
        (status = 304, description = "The cached copy named by If-None-Match is current; empty body"),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = bff_core::error::Problem),
        (status = 401, description = "No valid token", body = bff_core::error::Problem),
        (status = 403, description = "The token lacks `orders:read`", body = bff_core::error::Problem),
        (status = 404, description = "No such order of the caller", body = bff_core::error::Problem),
        (status = 502, description = "The orders service answered badly", body = bff_core::error::Problem),
        (status = 503, description = "The orders service is unavailable", body = bff_core::error::Problem),
        (status = 504, description = "The time budget ran out", body = bff_core::error::Problem),
    )
)]
pub(crate) async fn order(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    let caller = ctx.require_scopes(&[ORDERS_READ])?.subject.clone();
    let fields = sparse_fields(query.as_deref(), super::fields::ORDER)?;
    validate_id(&id)?;
    let path = format!("/orders/{}", encode_segment(&id));
    let order: Order = ctx
        .required("order", app.orders.get_json(&ctx, &path))
        .await?;
    if order.user_id != caller {
        return Err(BffError::NotFound);
    }
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = ctx
        .optional("products", app.products.load(&ctx, &ids))
        .await?;
    Ok(sparse_json(
        &OrderView::new(order, products.as_ref()),
        fields.as_ref(),
    ))
}
