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
//!
//! Every `200` carries a strong `ETag` (a matching `If-None-Match` gets an empty `304`) and a `Cache-Control`
//! computed from its parts (see `bff_core::etag`, `bff_core::cache`); every screen takes a sparse fieldset
//! `?fields=a,b.c` within its allow-list (`handlers::fields`). Listens on port 8082, accepts JWTs with
//! audience `bff-mobile`.

mod handlers;
#[cfg(test)]
mod view_tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bff_core::cache::{BatchSpec, Batcher};
use bff_core::config::{AuthMode, ConfigError, DownstreamConfig};
use bff_core::downstream::Downstream;
use bff_core::ratelimit::{KeyPart, PolicyConfig};
use bff_core::{BffConfig, Gateway};
use utoipa::OpenApi;

/// The port the gateway listens on by default.
pub const DEFAULT_PORT: u16 = 8082;
/// Default port of the admin listener (metrics, probes, redacted config), on loopback.
pub const ADMIN_PORT: u16 = 9082;
/// The JWT audience the gateway accepts.
pub const AUDIENCE: &str = "bff-mobile";
/// The downstreams `/readyz` requires.
pub const READY_ON: &[&str] = &["users", "catalog", "orders"];

/// Built-in defaults: `127.0.0.1:8082`, every downstream at its default mock port, JWT auth for `bff-mobile`
/// tokens of the dev identity provider, rate limits per user (20/s, burst 100) and per client address (200/s,
/// burst 400).
pub fn defaults() -> BffConfig {
    let mut c = BffConfig::default();
    c.server.listen = ([127, 0, 0, 1], DEFAULT_PORT).into();
    c.admin.listen = ([127, 0, 0, 1], ADMIN_PORT).into();
    c.telemetry.otlp.service_name = "bff-mobile".into();
    c.downstreams.extend(
        shared_schemas::services::default_urls()
            .map(|(name, url)| (name.into(), DownstreamConfig::at(url))),
    );
    c.auth.mode = AuthMode::Jwt;
    c.auth.jwt.audience = AUDIENCE.into();
    c.auth.jwt.issuer = shared_schemas::services::DEV_ISSUER.into();
    // Rate limits: per user (a client stuck in a loop), and per client address (floods; generous, since many
    // users may share one address). Instances of bff-mobile share budgets under this prefix in Redis.
    c.rate_limit.redis.key_prefix = "bff:rl:mobile:".into();
    c.rate_limit.policies = vec![
        PolicyConfig::new("user", &[KeyPart::User], 20, 1, 100),
        PolicyConfig::new("ip", &[KeyPart::Ip], 200, 1, 400),
        // Writes: tighter, per user (2/s, burst 10).
        PolicyConfig::new("user-writes", &[KeyPart::User], 2, 1, 10).on_routes(&["/api/orders"]),
    ];
    for (name, ttl_s, stale_if_error_s) in shared_schemas::services::SHARED_CACHE {
        c.share_cache(name, *ttl_s, *stale_if_error_s);
    }
    c
}

/// The catalog's batch endpoint.
const PRODUCT_BATCH: BatchSpec = BatchSpec {
    prefix: "/products?ids=",
    items_field: "items",
    id_field: "id",
    max_ids: shared_schemas::services::MAX_BATCH_IDS,
};

/// The downstream clients the handlers compose.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) users: Downstream,
    pub(crate) catalog: Downstream,
    pub(crate) orders: Downstream,
    pub(crate) reviews: Downstream,
    pub(crate) inventory: Downstream,
    pub(crate) recommendations: Downstream,
    /// Product lookups by id, batched across concurrent requests (`GET /products?ids=`).
    pub(crate) products: Batcher,
    /// `Idempotency-Key` records of the writes.
    pub(crate) idempotency: Arc<bff_core::idempotency::Idempotency>,
}

/// The OpenAPI document of the mobile gateway.
#[derive(OpenApi)]
#[openapi(
    paths(handlers::home::home, handlers::product::product, handlers::order::order, handlers::checkout::place),
    components(schemas(
        shared_schemas::views::mobile::HomeView,
        shared_schemas::views::mobile::HomeOrder,
        shared_schemas::views::mobile::HomeRecommendation,
        shared_schemas::views::mobile::ProductView,
        shared_schemas::views::mobile::RatingView,
        shared_schemas::views::mobile::OrderView,
        shared_schemas::views::mobile::OrderItemView,
        shared_schemas::views::mobile::OrderPlacedView,
        handlers::checkout::PlaceOrder,
        bff_core::error::FieldError,
        shared_schemas::downstream::Money,
        bff_core::error::Problem,
    )),
    modifiers(&BearerScheme),
    info(
        title = "bff-mobile",
        version = "1",
        description = "Mobile Backend-for-Frontend: lean home, product and order screens with ETag revalidation. \
                       Authenticate with `Authorization: Bearer <JWT>` (audience `bff-mobile`)."
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` (JWT) security scheme the operations refer to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The complete router of the mobile gateway (edge pipeline, health, docs included), or the configuration
/// error naming the missing downstream.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gw = Gateway::new(config)?;
    let catalog = gw.downstream("catalog")?;
    let state = Arc::new(App {
        users: gw.downstream("users")?,
        products: catalog.batcher(PRODUCT_BATCH),
        catalog,
        orders: gw.downstream("orders")?,
        reviews: gw.downstream("reviews")?,
        inventory: gw.downstream("inventory")?,
        recommendations: gw.downstream("recommendations")?,
        idempotency: gw.idempotency(),
    });
    let api = Router::new()
        .route("/api/home", get(handlers::home::home))
        .route("/api/products/{id}", get(handlers::product::product))
        .route("/api/orders/{id}", get(handlers::order::order))
        .route(
            "/api/orders",
            axum::routing::post(handlers::checkout::place),
        )
        .with_state(state);
    gw.into_router(api, ApiDoc::openapi(), READY_ON)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document lists the three screens with the bearer scheme and the lean view schemas.
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
                "/api/orders",
                "/api/orders/{id}",
                "/api/products/{id}"
            ]
        );
        assert!(paths["/api/orders/{id}"]["get"]["responses"]["403"].is_object());
        assert!(paths["/api/home"]["get"]["responses"]["304"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for schema in ["HomeView", "ProductView", "OrderView", "Money", "Problem"] {
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
