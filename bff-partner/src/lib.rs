//! # bff-partner
//!
//! The partner Backend-for-Frontend gateway: a small, versioned (`/v1`), stable API for external partners,
//! authenticated by API key (`x-api-key` header). It exposes catalog facts, stock figures and the partner's
//! own orders, and never any personal or internal data (no user ids, names, e-mails, addresses, payment data,
//! supplier or warehouse data). Views: [`shared_schemas::views::partner`].
//!
//! | Route | Scope | Downstream calls |
//! |---|---|---|
//! | `GET /v1/products/{id}` | `catalog:read` | catalog (required) + inventory (optional, only with `inventory:read`), in parallel |
//! | `GET /v1/products?ids=a,b,c` | `catalog:read` | ONE catalog batch + ONE inventory batch (only with `inventory:read`), in parallel |
//! | `GET /v1/products/{id}/availability` | `inventory:read` | inventory (required; its 404 is the client's 404) |
//! | `GET /v1/orders/{id}` | `orders:read` | orders (required), then ONE catalog batch for line SKUs/names (optional part `products`) |
//! | `POST /v1/orders` | `orders:write` | ONE orders command (`Idempotency-Key` required), then ONE catalog batch (optional part `products`) |
//!
//! Contract details:
//! - No or an unknown key: 401 `unauthenticated`; a key without the route's scope: 403 `forbidden`.
//! - Path ids are 1..=32 ASCII digits, anything else is 404 `not_found`.
//! - Every endpoint takes a sparse fieldset `?fields=a,b.c` (dotted paths of its answer; unknown or
//!   disallowed paths are a 400 `bad_request` naming them).
//! - `ids` lists 1..=50 comma-separated ids (counted as sent, before duplicates are removed); an absent,
//!   empty, malformed or longer list is 400 `bad_request`. The answer is `{items, missing}` in request order.
//! - An order that was not placed through the calling partner is 404 `not_found`, exactly like an order that
//!   does not exist.
//! - `availability` of a product is `null` when the key lacks `inventory:read` (inventory is then not called)
//!   or when stock could not be loaded (the `bff-partial` response header then names `availability`).
//! - Downstreams see the partner only through the gateway's identity headers (`x-bff-partner-id`,
//!   `x-bff-partner-tier`, `x-bff-client: partner`, `x-bff-scopes`), never the API key; client-sent `x-bff-*`
//!   headers are removed at the edge.
//!
//! # Development keys
//! [`defaults`] accepts two keys, stored as SHA-256 hashes (for local development and tests only; production
//! configuration replaces `auth.api_keys`):
//!
//! | Key (`x-api-key`) | Partner | Tier | Scopes |
//! |---|---|---|---|
//! | `dev-acme-key` | `acme` | `gold` | `catalog:read inventory:read orders:read orders:write` |
//! | `dev-globex-key` | `globex` | `silver` | `catalog:read` |
//!
//! The gateway listens on `127.0.0.1:8083` by default; its defaults configure every domain service (from
//! `shared_schemas::gateway::defaults`), of which it calls `catalog`, `inventory` and `orders` (probed by
//! `/readyz`). OpenAPI: `/openapi.json`, docs page: `/docs`.

mod handlers;
mod ids;

use bff_core::config::{ApiKeyConfig, AuthMode};
use bff_core::prelude::*;
use bff_core::ratelimit::{KeyPart, PolicyConfig};
use handlers::{orders, place_order, products};
use shared_schemas::gateway::Services;
use utoipa::OpenApi;

pub use ids::{MAX_BATCH_IDS, parse_id_list};
pub use place_order::{OrderLineV1, PlaceOrderV1};

/// Scope needed to read products.
pub const SCOPE_CATALOG_READ: &str = "catalog:read";
/// Scope needed to read stock (and to get `availability` embedded in products).
pub const SCOPE_INVENTORY_READ: &str = "inventory:read";
/// Scope needed to read the partner's orders.
pub const SCOPE_ORDERS_READ: &str = "orders:read";
/// Scope needed to place orders.
pub const SCOPE_ORDERS_WRITE: &str = "orders:write";

/// The downstream services this gateway calls (all required for readiness).
pub const DOWNSTREAMS: &[&str] = &["catalog", "inventory", "orders"];

/// A development key: (sha256 of the key, partner, tier, scopes).
fn dev_key(key_sha256: &str, partner: &str, tier: &str, scopes: &[&str]) -> ApiKeyConfig {
    ApiKeyConfig {
        key_sha256: key_sha256.into(),
        partner_id: partner.into(),
        tier: tier.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Built-in defaults: the domain's ([`shared_schemas::gateway::defaults`]) on `127.0.0.1:8083` (admin 9083),
/// API-key authentication with the two development keys of the crate docs, and per-partner rate limits by
/// tier (base 60/min burst 10, `silver` 600/min burst 50, `gold` 3000/min burst 200) plus tighter ones on
/// `/v1/orders/{id}` (60/min burst 20, `gold` 600/min burst 60) and on placing orders (30/min burst 10,
/// `gold` 120/min burst 20).
pub fn defaults() -> BffConfig {
    let mut c = shared_schemas::gateway::defaults("bff-partner", 8083);
    c.auth.mode = AuthMode::ApiKey;
    let all = [
        SCOPE_CATALOG_READ,
        SCOPE_INVENTORY_READ,
        SCOPE_ORDERS_READ,
        SCOPE_ORDERS_WRITE,
    ];
    c.auth.api_keys = vec![
        // sha256("dev-acme-key")
        dev_key(
            "62c2fc277ab4261d4243be7b5cf49bdab2c39fed01ae2d4ce1cf9a38ec4e793c",
            "acme",
            "gold",
            &all,
        ),
        // sha256("dev-globex-key")
        dev_key(
            "4763e480ccf7dc583baddba37894eb1dc1fabf79bfc9d82a4a8b00710e18f124",
            "globex",
            "silver",
            &all[..1],
        ),
    ];
    let partner = |name, rate, burst| PolicyConfig::new(name, &[KeyPart::Partner], rate, 60, burst);
    c.rate_limit.policies = vec![
        partner("partner", 60, 10)
            .tier("silver", 600, 50)
            .tier("gold", 3_000, 200),
        partner("partner-orders", 60, 20)
            .on_routes(&["/v1/orders/{id}"])
            .tier("gold", 600, 60),
        partner("partner-writes", 30, 10)
            .on_routes(&["/v1/orders"])
            .tier("gold", 120, 20),
    ];
    c
}

/// The complete router (edge pipeline, health, OpenAPI and docs included) for `config`.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gw = Gateway::new(config)?;
    let api = Api::new()
        .get("/v1/products", &[SCOPE_CATALOG_READ], products::list)
        .get(
            "/v1/products/{id}",
            &[SCOPE_CATALOG_READ],
            products::product,
        )
        .get(
            "/v1/products/{id}/availability",
            &[SCOPE_INVENTORY_READ],
            products::availability,
        )
        .get("/v1/orders/{id}", &[SCOPE_ORDERS_READ], orders::order)
        .post(
            "/v1/orders",
            &[SCOPE_ORDERS_WRITE],
            place_order::place_order,
        )
        .with_state(Services::new(&gw)?);
    gw.into_router(api, openapi(), DOWNSTREAMS)
}

/// The OpenAPI document of the partner API (core adds the API-key scheme, scopes and error responses).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(
        products::product,
        products::list,
        products::availability,
        orders::order,
        place_order::place_order
    ),
    info(
        title = "bff-partner",
        version = "1",
        description = "Partner API v1: products, stock and the partner's own orders. Authenticate with the \
                       `x-api-key` header. Errors are RFC 9457 problem+json with a stable `code`."
    )
)]
struct ApiDoc;

#[cfg(test)]
mod tests;
