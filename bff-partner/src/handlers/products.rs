//! `GET /v1/products/{id}`, `GET /v1/products?ids=` (one catalog batch) and
//! `GET /v1/products/{id}/availability`. Stock is embedded only for keys with `inventory:read`.

use bff_core::prelude::*;
use serde::Deserialize;
use shared_schemas::downstream::{Inventory, Product};
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::partner::ProductAvailabilityV1 as StockV1;
use shared_schemas::views::partner::{ProductListV1, ProductV1};

use crate::{SCOPE_INVENTORY_READ, parse_id_list};

/// A product, with its stock when the key may read inventory (scope `catalog:read`).
#[utoipa::path(get, path = "/v1/products/{id}", params(Fields<ProductV1>), responses(
    (status = 200, description = "The product", body = ProductV1),
))]
pub(crate) async fn product(Req { s, ctx, who }: Req, id: DomainId, f: Fields<ProductV1>) -> Reply {
    let stock = async {
        if !who.has_scopes(&[SCOPE_INVENTORY_READ]) {
            return Ok(None);
        }
        ctx.optional("availability", s.stock_of(&ctx, id.as_str()))
            .await
    };
    let product = ctx.required(
        "product",
        s.catalog
            .get_json::<Product>(&ctx, format!("/products/{id}")),
    );
    let (product, stock) = tokio::try_join!(product, stock)?;
    Ok(f.json(&ProductV1::new(product, stock.as_ref())))
}

/// Query of `GET /v1/products` (`fields` is read by [`Fields`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IdsQuery {
    /// 1 to 50 comma-separated product ids; duplicates are ignored.
    ids: String,
}

/// Several products by id (one catalog batch call), with stock when the key may read inventory.
#[utoipa::path(get, path = "/v1/products", params(IdsQuery, Fields<ProductListV1>), responses(
    (status = 200, description = "The products found and the ids not found", body = ProductListV1),
))]
pub(crate) async fn list(
    Req { s, ctx, who }: Req,
    Query(query): Query<IdsQuery>,
    f: Fields<ProductListV1>,
) -> Reply {
    let ids = parse_id_list(Some(&query.ids))?;
    let stock = async {
        if !who.has_scopes(&[SCOPE_INVENTORY_READ]) {
            return Ok(None);
        }
        ctx.optional("availability", s.stock_by_id(&ctx, &ids))
            .await
    };
    let products = ctx.required("products", s.products.load::<Product>(&ctx, &ids));
    let (products, stock) = tokio::try_join!(products, stock)?;
    Ok(f.json(&ProductListV1::new(&ids, products, stock.as_ref())))
}

/// The stock of one product (scope `inventory:read`).
#[utoipa::path(get, path = "/v1/products/{id}/availability", params(Fields<StockV1>),
    responses((status = 200, description = "The product's stock", body = StockV1)))]
pub(crate) async fn availability(
    Req { s, ctx, .. }: Req,
    id: DomainId,
    f: Fields<StockV1>,
) -> Reply {
    let stock: Inventory = ctx
        .required("availability", s.stock_of(&ctx, id.as_str()))
        .await?;
    Ok(f.json(&StockV1::from(stock)))
}
