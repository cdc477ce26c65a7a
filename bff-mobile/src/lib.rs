//! # bff-mobile
//!
//! The mobile Backend-for-Frontend: the same screens as the web gateway, shaped lean for phones (one
//! thumbnail, a 140-character teaser, at most a handful of list items; the home screen stays under 2 KB), with
//! strong ETags so an unchanged screen costs a `304` and no body.
//!
//! | Route | Scope | Required parts | Optional parts |
//! |---|---|---|---|
//! | `GET /api/home` | — | `profile` (users), `orders` (orders) | `recommendations` (recommendations + one catalog batch) |
//! | `GET /api/products/{id}` | — | `product` (catalog) | `rating` (reviews), `inventory` (inventory) |
//! | `GET /api/orders/{id}` | `orders:read` | `order` (orders; must be the caller's) | `products` (one catalog batch) |
//! | `POST /api/live/ticket` | — | — | — |
//! | `GET /api/live?ticket=` | — (the ticket's caller) | WebSocket: status of watched own orders (orders stream), stock of watched products (inventory, polled) | |
//!
//! Every `200` carries a strong `ETag` (a matching `If-None-Match` gets an empty `304`) and a `Cache-Control`
//! computed from its parts (see `bff_core::etag`, `bff_core::cache`); every screen takes a sparse fieldset
//! `?fields=a,b.c` among the paths of its view (`bff_core::api::fields`). Listens on port 8082, accepts JWTs with
//! audience `bff-mobile`.

mod handlers;
#[cfg(test)]
mod view_tests;

use bff_core::prelude::*;
use handlers::{checkout, home, live, order, product};
use shared_schemas::gateway::{Services, user_writes};
use utoipa::OpenApi;

/// The port the gateway listens on by default (admin listener: 9082).
pub const DEFAULT_PORT: u16 = 8082;
/// The JWT audience the gateway accepts.
pub const AUDIENCE: &str = "bff-mobile";

/// Built-in defaults: the domain's ([`shared_schemas::gateway::defaults`]: every service, JWT for
/// `bff-mobile`, limits per user and per client address) on `127.0.0.1:8082`, and the tighter per-user
/// limit on checkout.
pub fn defaults() -> BffConfig {
    let mut config = shared_schemas::gateway::defaults(AUDIENCE, DEFAULT_PORT);
    config
        .rate_limit
        .policies
        .push(user_writes(&["/api/orders"]));
    config
}

/// The OpenAPI document of the mobile gateway (core adds security, error responses and `304`).
#[derive(OpenApi)]
#[openapi(
    paths(
        home::home,
        product::product,
        order::order,
        checkout::place,
        live::ticket,
        live::live
    ),
    info(
        title = "bff-mobile",
        version = "1",
        description = "Mobile Backend-for-Frontend: lean home, product and order screens with ETag revalidation. \
                       Authenticate with `Authorization: Bearer <JWT>` (audience `bff-mobile`)."
    )
)]
pub struct ApiDoc;

/// The complete router of the mobile gateway (edge pipeline, health, docs included), or the configuration
/// error naming the missing downstream.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gw = Gateway::new(config)?;
    let api = Api::new()
        .post("/api/orders", CALLER, checkout::place)
        .get("/api/orders/{id}", &["orders:read"], order::order)
        .get("/api/products/{id}", CALLER, product::product)
        .get("/api/home", CALLER, home::home)
        .post("/api/live/ticket", CALLER, live::ticket)
        .live("/api/live", CALLER, live::live)
        .with_state(Services::new(&gw)?);
    gw.into_router(api, ApiDoc::openapi(), &["users", "catalog", "orders"])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document lists the screens and the lean view schemas.
    #[test]
    fn openapi_lists_the_screens() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "/api/home",
                "/api/live",
                "/api/live/ticket",
                "/api/orders",
                "/api/orders/{id}",
                "/api/products/{id}"
            ]
        );
        for schema in ["HomeView", "ProductView", "OrderView", "Money"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }

    /// The defaults build a router; a missing downstream is a configuration error naming its key.
    #[test]
    fn defaults_build_and_missing_downstream_is_named() {
        let config = defaults();
        assert_eq!(config.server.listen.port(), DEFAULT_PORT);
        assert_eq!(config.auth.jwt.audience, AUDIENCE);
        assert!(app(config).is_ok());
        let mut config = defaults();
        config.downstreams.remove("reviews");
        let err = app(config).unwrap_err().to_string();
        assert!(err.contains("downstreams.reviews"), "{err}");
    }
}
