//! # bff-web
//!
//! The Backend-for-Frontend of the web app: rich, composed screens over the domain services.
//!
//! | route | composed from | required | optional parts (`bff-partial`) |
//! |---|---|---|---|
//! | `GET /api/home` | users, orders, catalog (batch), recommendations, inventory (batch) | profile, orders | `order_products`, `recommendations` |
//! | `GET /api/products/{id}` | catalog, reviews, inventory, catalog (batch of related) | product | `rating`, `reviews`, `availability`, `related` |
//! | `GET /api/products?category=&q=&page=&page_size=` | catalog | listing | — |
//! | `GET /api/orders/{id}` (scope `orders:read`) | orders, catalog (batch) | order | `products` |
//! | `GET /api/cart` | orders, catalog (batch) | cart | `products` |
//! | `POST /api/cart/items` | orders (command), catalog (batch) | cart | `products` |
//! | `DELETE /api/cart/items/{product_id}` | orders (command), catalog (batch) | cart | `products` |
//! | `POST /api/orders` (checkout) | orders (command), catalog (batch) | order | `products` |
//! | `POST /api/products/{id}/reviews` | reviews (command) | review | — |
//!
//! Writes take typed JSON bodies ([`commands`]), honour `Idempotency-Key`, make one command call, and
//! invalidate the cached reads they make stale.
//!
//! Clients authenticate with a JWT bearer token for audience `bff-web`, or — with `[auth.session] enabled = true`
//! (the dev stack) — as a browser with bff-core's session cookie (see `docs/sessions.md`).

pub mod commands;
mod handlers;
mod ids;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use bff_core::cache::Batcher;
use bff_core::config::{AuthMode, ConfigError, DownstreamConfig};
use bff_core::downstream::Downstream;
use bff_core::ratelimit::{KeyPart, PolicyConfig};
use bff_core::{BffConfig, Gateway};
use utoipa::OpenApi;

/// The JWT audience of this gateway's clients.
pub const AUDIENCE: &str = "bff-web";
/// Default listening port.
pub const DEFAULT_PORT: u16 = 8081;
/// Default port of the admin listener (metrics, probes, redacted config), on loopback.
pub const ADMIN_PORT: u16 = 9081;

/// Built-in defaults: `127.0.0.1:8081`, every domain service at its default mock port, JWT for `bff-web`,
/// rate limits per user (20/s, burst 100) and per client address (200/s, burst 400).
pub fn defaults() -> BffConfig {
    let mut config = BffConfig::default();
    config.server.listen = ([127, 0, 0, 1], DEFAULT_PORT).into();
    config.admin.listen = ([127, 0, 0, 1], ADMIN_PORT).into();
    config.telemetry.otlp.service_name = "bff-web".into();
    config.downstreams.extend(
        shared_schemas::services::default_urls()
            .map(|(name, url)| (name.into(), DownstreamConfig::at(url))),
    );
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt.audience = AUDIENCE.into();
    config.auth.jwt.issuer = shared_schemas::services::DEV_ISSUER.into();
    // Rate limits: per user (a client stuck in a loop), and per client address (floods; generous, since many
    // users may share one address). Instances of bff-web share budgets under this prefix in Redis.
    config.rate_limit.redis.key_prefix = "bff:rl:web:".into();
    config.rate_limit.policies = vec![
        PolicyConfig::new("user", &[KeyPart::User], 20, 1, 100),
        PolicyConfig::new("ip", &[KeyPart::Ip], 200, 1, 400),
        // Writes: tighter, per user (2/s, burst 10).
        PolicyConfig::new("user-writes", &[KeyPart::User], 2, 1, 10).on_routes(&[
            "/api/cart/items",
            "/api/cart/items/{product_id}",
            "/api/orders",
            "/api/products/{id}/reviews",
        ]),
    ];
    for (name, ttl_s, stale_if_error_s) in shared_schemas::services::SHARED_CACHE {
        config.share_cache(name, *ttl_s, *stale_if_error_s);
    }
    config
}

/// The downstream clients the handlers compose.
struct App {
    users: Downstream,
    catalog: Downstream,
    orders: Downstream,
    reviews: Downstream,
    inventory: Downstream,
    recommendations: Downstream,
    /// Product lookups by id, batched across concurrent requests.
    products: Batcher,
    /// Stock lookups by product id, batched across concurrent requests.
    stock: Batcher,
    /// `Idempotency-Key` records of the writes.
    idempotency: Arc<bff_core::idempotency::Idempotency>,
}

/// The OpenAPI document of bff-web.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bff-web",
        version = "1",
        description = "Backend-for-Frontend of the web app: composed, web-shaped screens. Authenticate with `Authorization: Bearer <JWT for audience bff-web>`. Failed optional parts are listed in the `bff-partial` response header."
    ),
    paths(
        handlers::home::home,
        handlers::products::product,
        handlers::products::list,
        handlers::orders::order,
        handlers::cart::get,
        handlers::cart::add,
        handlers::cart::remove,
        handlers::checkout::place,
        handlers::reviews::create
    ),
    components(schemas(bff_core::error::Problem, bff_core::error::FieldError))
)]
pub struct ApiDoc;

/// The complete bff-web router for `config`.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gateway = Gateway::new(config)?;
    let catalog = gateway.downstream("catalog")?;
    let inventory = gateway.downstream("inventory")?;
    let app = Arc::new(App {
        users: gateway.downstream("users")?,
        products: catalog.batcher(handlers::catalog::PRODUCT_BATCH),
        stock: inventory.batcher(handlers::catalog::STOCK_BATCH),
        catalog,
        orders: gateway.downstream("orders")?,
        reviews: gateway.downstream("reviews")?,
        inventory,
        recommendations: gateway.downstream("recommendations")?,
        idempotency: gateway.idempotency(),
    });
    let api = Router::new()
        .route("/api/home", get(handlers::home::home))
        .route("/api/products", get(handlers::products::list))
        .route("/api/products/{id}", get(handlers::products::product))
        .route("/api/orders/{id}", get(handlers::orders::order))
        .route("/api/orders", post(handlers::checkout::place))
        .route("/api/cart", get(handlers::cart::get))
        .route("/api/cart/items", post(handlers::cart::add))
        .route(
            "/api/cart/items/{product_id}",
            delete(handlers::cart::remove),
        )
        .route(
            "/api/products/{id}/reviews",
            post(handlers::reviews::create),
        )
        .with_state(app);
    gateway.into_router(api, ApiDoc::openapi(), &["users", "catalog", "orders"])
}
