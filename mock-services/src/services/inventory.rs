//! Inventory service: `GET /inventory/{product_id}` and `GET /inventory?ids=` (batch).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use shared_schemas::downstream::InventoryBatch;

use super::{BadRequest, Params, id_list, json_or_404, params};
use crate::data::inventory::inventory_by_id;

pub(super) fn routes() -> Router {
    Router::new()
        .route("/inventory/{product_id}", get(get_inventory))
        .route("/inventory", get(batch))
}

async fn get_inventory(Path(id): Path<String>) -> Response {
    json_or_404(inventory_by_id(&id))
}

async fn batch(
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<InventoryBatch>, BadRequest> {
    let ids = id_list(&params(query)?)?.ok_or_else(|| BadRequest("missing ids".to_owned()))?;
    let mut batch = InventoryBatch {
        items: Vec::new(),
        missing: Vec::new(),
    };
    for id in ids {
        match inventory_by_id(&id) {
            Some(i) => batch.items.push(i),
            None => batch.missing.push(id),
        }
    }
    Ok(Json(batch))
}
