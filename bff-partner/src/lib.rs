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
//! The gateway listens on `127.0.0.1:8083` by default and needs the downstreams `catalog`, `inventory` and
//! `orders` (probed by `/readyz`). OpenAPI: `/openapi.json`, docs page: `/docs`.

mod fields;
mod ids;
mod place_order;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use bff_core::cache::{BatchSpec, Batcher};
use bff_core::compose::unique_ids;
use bff_core::config::{ApiKeyConfig, AuthMode, ConfigError, DownstreamConfig};
use bff_core::downstream::{Downstream, encode_segment};
use bff_core::error::Problem;
use bff_core::ratelimit::{KeyPart, PolicyConfig};
use bff_core::shape::{sparse_fields, sparse_json};
use bff_core::{BffConfig, BffError, Gateway, RequestContext};
use serde::Deserialize;
use shared_schemas::downstream::{Inventory, Money, Order, Product};
use shared_schemas::services::MAX_BATCH_IDS as DOWNSTREAM_BATCH_MAX;
use shared_schemas::views::partner::{
    AvailabilityV1, OrderItemV1, OrderV1, ProductAvailabilityV1, ProductListV1, ProductV1,
};
use utoipa::OpenApi;

pub use ids::{MAX_BATCH_IDS, is_valid_id, parse_id_list};
pub use place_order::{OrderLineV1, PlaceOrderV1, SCOPE_ORDERS_WRITE};

/// Scope needed to read products.
pub const SCOPE_CATALOG_READ: &str = "catalog:read";
/// Scope needed to read stock (and to get `availability` embedded in products).
pub const SCOPE_INVENTORY_READ: &str = "inventory:read";
/// Scope needed to read the partner's orders.
pub const SCOPE_ORDERS_READ: &str = "orders:read";

/// The downstream services this gateway calls (all required for readiness).
pub const DOWNSTREAMS: &[&str] = &["catalog", "inventory", "orders"];

/// Default port of the admin listener (metrics, probes, redacted config), on loopback.
pub const ADMIN_PORT: u16 = 9083;

/// Built-in defaults: listen on `127.0.0.1:8083`, the `catalog`, `inventory` and `orders` downstreams at
/// their default mock ports, API-key authentication with the two development keys of the crate docs, and
/// per-partner rate limits by tier (base 60/min burst 10, `silver` 600/min burst 50, `gold` 3000/min burst
/// 200) plus a tighter one on `/v1/orders/{id}` (60/min burst 20, `gold` 600/min burst 60).
pub fn defaults() -> BffConfig {
    let mut c = BffConfig::default();
    c.server.listen = ([127, 0, 0, 1], 8083).into();
    c.admin.listen = ([127, 0, 0, 1], ADMIN_PORT).into();
    c.telemetry.otlp.service_name = "bff-partner".into();
    c.downstreams.extend(
        shared_schemas::services::default_urls()
            .filter(|(name, _)| DOWNSTREAMS.contains(name))
            .map(|(name, url)| (name.into(), DownstreamConfig::at(url))),
    );
    c.auth.mode = AuthMode::ApiKey;
    c.auth.api_keys = vec![
        ApiKeyConfig {
            // sha256("dev-acme-key")
            key_sha256: "62c2fc277ab4261d4243be7b5cf49bdab2c39fed01ae2d4ce1cf9a38ec4e793c".into(),
            partner_id: "acme".into(),
            tier: "gold".into(),
            scopes: vec![
                SCOPE_CATALOG_READ.into(),
                SCOPE_INVENTORY_READ.into(),
                SCOPE_ORDERS_READ.into(),
                SCOPE_ORDERS_WRITE.into(),
            ],
        },
        ApiKeyConfig {
            // sha256("dev-globex-key")
            key_sha256: "4763e480ccf7dc583baddba37894eb1dc1fabf79bfc9d82a4a8b00710e18f124".into(),
            partner_id: "globex".into(),
            tier: "silver".into(),
            scopes: vec![SCOPE_CATALOG_READ.into()],
        },
    ];
    // Rate limits per partner, by tier (partners of an unlisted tier get the base limit); orders, the most
    // expensive route, have a second, tighter policy. Instances share budgets under this prefix in Redis.
    c.rate_limit.redis.key_prefix = "bff:rl:partner:".into();
    c.rate_limit.policies = vec![
        PolicyConfig::new("partner", &[KeyPart::Partner], 60, 60, 10)
            .tier("silver", 600, 50)
            .tier("gold", 3_000, 200),
        PolicyConfig::new("partner-orders", &[KeyPart::Partner], 60, 60, 20)
            .on_routes(&["/v1/orders/{id}"])
            .tier("gold", 600, 60),
        // Placing orders: tighter still (30/min burst 10, `gold` 120/min burst 20).
        PolicyConfig::new("partner-writes", &[KeyPart::Partner], 30, 60, 10)
            .on_routes(&["/v1/orders"])
            .tier("gold", 120, 20),
    ];
    // Catalog and stock answer the same for every partner (the domain's shared cache policy); orders stay
    // uncached.
    for (name, ttl_s, stale_if_error_s) in shared_schemas::services::SHARED_CACHE {
        c.share_cache(name, *ttl_s, *stale_if_error_s);
    }
    c
}

/// The downstream clients the handlers compose with.
struct App {
    catalog: Downstream,
    inventory: Downstream,
    orders: Downstream,
    /// Product lookups by id, batched across concurrent requests.
    products: Batcher,
    /// Stock lookups by product id, batched across concurrent requests.
    stock: Batcher,
    /// `Idempotency-Key` records of `POST /v1/orders`.
    idempotency: Arc<bff_core::idempotency::Idempotency>,
}

/// The catalog's batch endpoint.
const PRODUCT_BATCH: BatchSpec = BatchSpec {
    prefix: "/products?ids=",
    items_field: "items",
    id_field: "id",
    max_ids: DOWNSTREAM_BATCH_MAX,
};

/// The inventory's batch endpoint.
const STOCK_BATCH: BatchSpec = BatchSpec {
    prefix: "/inventory?ids=",
    items_field: "items",
    id_field: "product_id",
    max_ids: DOWNSTREAM_BATCH_MAX,
};

/// The complete router (edge pipeline, health, OpenAPI and docs included) for `config`.
pub fn app(config: BffConfig) -> Result<axum::Router, ConfigError> {
    let gw = Gateway::new(config)?;
    let catalog = gw.downstream("catalog")?;
    let inventory = gw.downstream("inventory")?;
    let app = Arc::new(App {
        products: catalog.batcher(PRODUCT_BATCH),
        stock: inventory.batcher(STOCK_BATCH),
        catalog,
        inventory,
        orders: gw.downstream("orders")?,
        idempotency: gw.idempotency(),
    });
    let api = axum::Router::new()
        .route("/v1/products", get(list_products))
        .route("/v1/products/{id}", get(get_product))
        .route("/v1/products/{id}/availability", get(get_availability))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders", axum::routing::post(place_order::place_order))
        .with_state(app);
    gw.into_router(api, openapi(), DOWNSTREAMS)
}

/// The OpenAPI document of the partner API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(get_product, list_products, get_availability, get_order, place_order::place_order),
    components(schemas(
        ProductV1,
        AvailabilityV1,
        ProductListV1,
        ProductAvailabilityV1,
        OrderV1,
        OrderItemV1,
        Money,
        Problem,
        bff_core::error::FieldError,
        place_order::PlaceOrderV1,
        place_order::OrderLineV1
    )),
    modifiers(&ApiKeyScheme),
    security(("api_key" = [])),
    info(
        title = "bff-partner",
        version = "1",
        description = "Partner API v1: products, stock and the partner's own orders. Authenticate with the \
                       `x-api-key` header. Errors are RFC 9457 problem+json with a stable `code`."
    )
)]
struct ApiDoc;

/// Adds the `api_key` security scheme (header `x-api-key`).
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    bff_core::auth::API_KEY_HEADER,
                    "Partner API key",
                ))),
            );
    }
}

/// The validated path id, or 404.
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, BffError> {
    let Path(id) = path.map_err(|_| BffError::NotFound)?;
    ids::path_id(id)
}

/// Query of `GET /v1/products`.
#[derive(Debug, Deserialize)]
struct IdsQuery {
    ids: Option<String>,
}

/// A product, with its stock when the key may read inventory.
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    params(("id" = String, Path, description = "Product id (1 to 32 digits)"), ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths of the answer, e.g. `id,price.amount_cents`; unknown ones are a 400")),
    security(("api_key" = ["catalog:read"])),
    responses(
        (status = 200, description = "The product", body = ProductV1),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = Problem),
        (status = 401, description = "No or unknown API key", body = Problem),
        (status = 403, description = "The key lacks `catalog:read`", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 502, description = "The catalog answered badly", body = Problem),
        (status = 503, description = "The catalog is unavailable", body = Problem),
        (status = 504, description = "The time budget ran out", body = Problem)
    )
)]
async fn get_product(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    let with_stock = ctx
        .require_scopes(&[SCOPE_CATALOG_READ])?
        .has_scopes(&[SCOPE_INVENTORY_READ]);
    let id = encode_segment(&path_id(path)?);
    let fields = sparse_fields(query.as_deref(), fields::PRODUCT)?;
    let product_path = format!("/products/{id}");
    let inventory_path = format!("/inventory/{id}");
    let (product, stock) = tokio::try_join!(
        ctx.required(
            "product",
            app.catalog.get_json::<Product>(&ctx, &product_path)
        ),
        async {
            if with_stock {
                let stock = app.inventory.get_json::<Inventory>(&ctx, &inventory_path);
                ctx.optional("availability", stock).await
            } else {
                Ok(None)
            }
        },
    )?;
    Ok(sparse_json(
        &ProductV1::new(product, stock.as_ref()),
        fields.as_ref(),
    ))
}

/// Several products by id (one catalog batch call), with stock when the key may read inventory.
#[utoipa::path(
    get,
    path = "/v1/products",
    params(("ids" = String, Query, description = "1 to 50 comma-separated product ids; duplicates are ignored"), ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths of the answer, e.g. `id,price.amount_cents`; unknown ones are a 400")),
    security(("api_key" = ["catalog:read"])),
    responses(
        (status = 200, description = "The products found and the ids not found", body = ProductListV1),
        (status = 400, description = "`ids` absent, empty, malformed or longer than 50, or `fields` names unknown or disallowed fields", body = Problem),
        (status = 401, description = "No or unknown API key", body = Problem),
        (status = 403, description = "The key lacks `catalog:read`", body = Problem),
        (status = 502, description = "The catalog answered badly", body = Problem),
        (status = 503, description = "The catalog is unavailable", body = Problem),
        (status = 504, description = "The time budget ran out", body = Problem)
    )
)]
async fn list_products(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    query: Result<Query<IdsQuery>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BffError> {
    let with_stock = ctx
        .require_scopes(&[SCOPE_CATALOG_READ])?
        .has_scopes(&[SCOPE_INVENTORY_READ]);
    let Query(query) = query.map_err(|_| BffError::BadRequest {
        detail: "the query string is malformed".into(),
    })?;
    let ids = parse_id_list(query.ids.as_deref())?;
    let fields = sparse_fields(raw.as_deref(), fields::PRODUCT_LIST)?;
    let (products, stock) = tokio::try_join!(
        ctx.required("products", app.products.load::<Product>(&ctx, &ids)),
        async {
            if with_stock {
                let stock = app.stock.load::<Inventory>(&ctx, &ids);
                ctx.optional("availability", stock).await
            } else {
                Ok(None)
            }
        },
    )?;
    Ok(sparse_json(
        &ProductListV1::new(&ids, products, stock.as_ref()),
        fields.as_ref(),
    ))
}

/// The stock of one product.
#[utoipa::path(
    get,
    path = "/v1/products/{id}/availability",
    params(("id" = String, Path, description = "Product id (1 to 32 digits)"), ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths of the answer, e.g. `id,price.amount_cents`; unknown ones are a 400")),
    security(("api_key" = ["inventory:read"])),
    responses(
        (status = 200, description = "The product's stock", body = ProductAvailabilityV1),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = Problem),
        (status = 401, description = "No or unknown API key", body = Problem),
        (status = 403, description = "The key lacks `inventory:read`", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 502, description = "The inventory answered badly", body = Problem),
        (status = 503, description = "The inventory is unavailable", body = Problem),
        (status = 504, description = "The time budget ran out", body = Problem)
    )
)]
async fn get_availability(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    ctx.require_scopes(&[SCOPE_INVENTORY_READ])?;
    let path = format!("/inventory/{}", encode_segment(&path_id(path)?));
    let fields = sparse_fields(query.as_deref(), fields::AVAILABILITY)?;
    let stock = ctx
        .required(
            "availability",
            app.inventory.get_json::<Inventory>(&ctx, &path),
        )
        .await?;
    Ok(sparse_json(
        &ProductAvailabilityV1::from(stock),
        fields.as_ref(),
    ))
}

/// One order placed through the calling partner, with line SKUs and names.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    params(("id" = String, Path, description = "Order id (1 to 32 digits)"), ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths of the answer, e.g. `id,price.amount_cents`; unknown ones are a 400")),
    security(("api_key" = ["orders:read"])),
    responses(
        (status = 200, description = "The order (line `sku`/`name` are null when products could not be loaded; \
                                      the `bff-partial` header then names `products`)", body = OrderV1),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = Problem),
        (status = 401, description = "No or unknown API key", body = Problem),
        (status = 403, description = "The key lacks `orders:read`", body = Problem),
        (status = 404, description = "No such order placed through this partner", body = Problem),
        (status = 502, description = "The orders service answered badly", body = Problem),
        (status = 503, description = "The orders service is unavailable", body = Problem),
        (status = 504, description = "The time budget ran out", body = Problem)
    )
)]
async fn get_order(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    let identity = ctx.require_scopes(&[SCOPE_ORDERS_READ])?;
    let fields = sparse_fields(query.as_deref(), fields::ORDER)?;
    // Only partner credentials can own orders; any other caller sees none.
    let partner = identity
        .partner
        .as_ref()
        .map(|p| p.id.clone())
        .ok_or(BffError::NotFound)?;
    let path = format!("/orders/{}", encode_segment(&path_id(path)?));
    let order = ctx
        .required("order", app.orders.get_json::<Order>(&ctx, &path))
        .await?;
    if order.partner_id.as_deref() != Some(partner.as_str()) {
        // Indistinguishable from a missing order: never reveal that another channel's order exists.
        return Err(BffError::NotFound);
    }
    let ids = unique_ids(order.items.iter().map(|i| i.product_id.as_str()));
    let products = if ids.is_empty() {
        Some(HashMap::new())
    } else {
        ctx.optional("products", app.products.load::<Product>(&ctx, &ids))
            .await?
    };
    Ok(sparse_json(
        &OrderV1::new(order, products.as_ref()),
        fields.as_ref(),
    ))
}

#[cfg(test)]
mod tests;
