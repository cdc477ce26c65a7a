//! Reviews service: `GET /products/{id}/reviews?limit=` and `GET /products/{id}/rating`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared_schemas::downstream::ReviewList;

use super::{BadRequest, Params, int_param, json_or_404, not_found, params};
use crate::data::reviews::{newest_reviews, rating_summary};
use crate::data::{PRODUCT_COUNT, parse_id};

pub(super) fn routes() -> Router {
    Router::new()
        .route("/products/{id}/reviews", get(list_reviews))
        .route("/products/{id}/rating", get(get_rating))
}

async fn list_reviews(
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    let Some(product) = parse_id(&id, PRODUCT_COUNT) else {
        return Ok(not_found());
    };
    let limit = int_param(&params, "limit", 10, 1, 50)?;
    Ok(
        match (newest_reviews(product, limit), rating_summary(product)) {
            (Some(items), Some(summary)) => Json(ReviewList {
                product_id: product.to_string(),
                items,
                summary,
            })
            .into_response(),
            _ => not_found(),
        },
    )
}

async fn get_rating(Path(id): Path<String>) -> Response {
    json_or_404(parse_id(&id, PRODUCT_COUNT).and_then(rating_summary))
}
