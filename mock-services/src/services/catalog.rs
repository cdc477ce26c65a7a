//! Catalog service: `GET /products/{id}`, `GET /products?ids=` (batch) and `GET /products?category=&q=`
//! (search, paged).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared_schemas::downstream::{ProductBatch, ProductPage};

use super::{BadRequest, Params, id_list, int_param, json_or_404, params};
use crate::data::catalog::{product, product_by_id, search};

pub(super) fn routes() -> Router {
    Router::new()
        .route("/products/{id}", get(get_product))
        .route("/products", get(list_products))
}

async fn get_product(Path(id): Path<String>) -> Response {
    json_or_404(product_by_id(&id))
}

async fn list_products(
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    if let Some(ids) = id_list(&params)? {
        let mut batch = ProductBatch {
            items: Vec::new(),
            missing: Vec::new(),
        };
        for id in ids {
            match product_by_id(&id) {
                Some(p) => batch.items.push(p),
                None => batch.missing.push(id),
            }
        }
        return Ok(Json(batch).into_response());
    }
    let page = int_param(&params, "page", 1, 1, 1_000_000)?;
    let page_size = int_param(&params, "page_size", 20, 1, 100)?;
    let ids = search(
        params.get("category").map(String::as_str),
        params.get("q").map(String::as_str),
    );
    let start = (page as usize - 1).saturating_mul(page_size as usize);
    let items = ids
        .iter()
        .skip(start)
        .take(page_size as usize)
        .map(|&id| product(id))
        .collect();
    Ok(Json(ProductPage {
        items,
        page,
        page_size,
        total: ids.len() as u64,
    })
    .into_response())
}
