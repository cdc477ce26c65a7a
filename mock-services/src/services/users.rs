//! Users service: `GET /users/{id}`.

use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;

use super::json_or_404;
use crate::data::users::user_by_id;

pub(super) fn routes() -> Router {
    Router::new().route("/users/{id}", get(get_user))
}

async fn get_user(Path(id): Path<String>) -> Response {
    json_or_404(user_by_id(&id))
}
