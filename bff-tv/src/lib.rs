//! # bff-tv
//!
//! The tv Backend-for-Frontend, created by `cargo run -p dev-stack -- new-gateway bff-tv` (see
//! `docs/new-gateway.md`). It starts from the domain's defaults (every service, JWT for audience `bff-tv`,
//! rate limits per user and per client address) and composes one endpoint:
//!
//! | route | composed from | required | optional parts (`bff-partial`) |
//! |---|---|---|---|
//! | `GET /api/tiles/{id}` | catalog, reviews | product | `rating` |

use bff_core::prelude::*;
use serde::Serialize;
use shared_schemas::downstream::{Money, Product, RatingSummary};
use shared_schemas::gateway::{DomainId, Req, Services};
use utoipa::{OpenApi, ToSchema};

/// Built-in defaults: the domain's, listening on `127.0.0.1:8085` (admin listener on 9085).
pub fn defaults() -> BffConfig {
    shared_schemas::gateway::defaults("bff-tv", 8085)
}

/// The complete router of the gateway for `config`.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gateway = Gateway::new(config)?;
    let api = Api::new()
        .get("/api/tiles/{id}", CALLER, tile)
        .with_state(Services::new(&gateway)?);
    gateway.into_router(api, ApiDoc::openapi(), &["catalog"])
}

/// The OpenAPI document (core adds security, error responses and path parameters).
#[derive(OpenApi)]
#[openapi(info(title = "bff-tv", version = "1"), paths(tile))]
struct ApiDoc;

/// A product tile: what a shelf of the tv app shows for one product.
#[derive(Debug, Serialize, ToSchema)]
struct Tile {
    /// Product id.
    id: String,
    /// Product name.
    title: String,
    /// Current price.
    price: Money,
    /// Average rating, `null` when the reviews service failed (`bff-partial: rating`).
    stars: Option<f64>,
}

/// A product tile: the product (required) and its rating (optional), in parallel.
#[utoipa::path(get, path = "/api/tiles/{id}", responses((status = 200, description = "The tile", body = Tile)))]
async fn tile(Req { s, ctx, .. }: Req, id: DomainId) -> Reply<Json<Tile>> {
    let product_path = format!("/products/{id}");
    let rating_path = format!("{product_path}/rating");
    let product = ctx.required("product", s.catalog.get_json(&ctx, &product_path));
    let rating = ctx.optional("rating", s.reviews.get_json(&ctx, &rating_path));
    let (product, rating): (Product, Option<RatingSummary>) = tokio::try_join!(product, rating)?;
    Ok(Json(Tile {
        id: product.id,
        title: product.name,
        price: product.price,
        stars: rating.map(|r| r.average),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults build the gateway, and its document describes the endpoint.
    #[tokio::test]
    async fn builds_and_documents() {
        assert!(app(defaults()).is_ok());
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["paths"]["/api/tiles/{id}"]["get"].is_object());
    }
}
