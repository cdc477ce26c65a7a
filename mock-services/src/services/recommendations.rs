//! Recommendations service: `GET /users/{id}/recommendations?limit=`.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;

use super::{BadRequest, Params, int_param, json_or_404, not_found, params};
use crate::data::recommendations::{MAX_RECOMMENDATIONS, recommendations};
use crate::data::{USER_COUNT, parse_id};

pub(super) fn routes() -> Router {
    Router::new().route("/users/{id}/recommendations", get(get_recommendations))
}

async fn get_recommendations(
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    let Some(user) = parse_id(&id, USER_COUNT) else {
        return Ok(not_found());
    };
    let limit = int_param(&params, "limit", 10, 1, MAX_RECOMMENDATIONS)?;
    Ok(json_or_404(recommendations(user, limit)))
}
