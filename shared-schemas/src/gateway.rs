//! What every gateway of this domain starts from, so a new one inherits sane behaviour: [`defaults`] (listen
//! and admin ports, every domain service at its default URL with the shared cache policy, JWT of the dev
//! identity provider, rate limits per user and per client address), the domain's id format ([`DomainId`]),
//! the services' clients ([`Services`], with the batch endpoints [`PRODUCT_BATCH`], [`STOCK_BATCH`]) and
//! [`send`] for one command with the domain's refusals ([`REFUSALS`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use bff_core::api::extract::{Caller, Digits, Id};
use bff_core::cache::{BatchSpec, Batcher};
use bff_core::compose::unique_ids;
use bff_core::config::{AuthMode, ConfigError, DownstreamConfig};
use bff_core::downstream::command::{Refusal, command_error};
use bff_core::downstream::{Downstream, DownstreamError, Protocol};
use bff_core::idempotency::ForwardedKey;
use bff_core::ratelimit::{KeyPart, PolicyConfig};
use bff_core::{BffConfig, BffError, Gateway, RequestContext};
use serde::Serialize;
use serde::de::DeserializeOwned;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::downstream::{Inventory, Order, OrderChange, Recommendations, ServiceError};
use crate::grpc;
use crate::services::{DEV_ISSUER, MAX_BATCH_IDS, SHARED_CACHE, default_urls};

/// An id of the domain in a client's path: 1..=32 ASCII digits (see [`crate::services::is_valid_id`]);
/// anything else is a 404 before any downstream call.
pub type DomainId = Id<Digits<32>>;

/// The catalog's batch endpoint (`GET /products?ids=`), for a [`bff_core::cache::Batcher`].
pub const PRODUCT_BATCH: BatchSpec = BatchSpec {
    prefix: "/products?ids=",
    items_field: "items",
    id_field: "id",
    max_ids: MAX_BATCH_IDS,
};

/// The inventory's batch endpoint (`GET /inventory?ids=`), items keyed by `product_id`.
pub const STOCK_BATCH: BatchSpec = BatchSpec {
    prefix: "/inventory?ids=",
    items_field: "items",
    id_field: "product_id",
    max_ids: MAX_BATCH_IDS,
};

/// The clients of the domain's services a gateway composes with, built once per gateway.
#[derive(Debug)]
pub struct Services {
    /// Profiles.
    pub users: Downstream,
    /// Products.
    pub catalog: Downstream,
    /// Orders and carts.
    pub orders: Downstream,
    /// Reviews and ratings.
    pub reviews: Downstream,
    /// Stock.
    pub inventory: Downstream,
    /// Recommendations.
    pub recommendations: Downstream,
    /// Product lookups by id, batched across concurrent requests ([`PRODUCT_BATCH`]).
    pub products: Batcher,
    /// Stock lookups by product id, batched across concurrent requests ([`STOCK_BATCH`]).
    pub stock: Batcher,
    /// The gateway's event streams (per-caller admission, SSE relay).
    pub streams: Arc<bff_core::streams::Streams>,
    /// The gateway's WebSocket connections (tickets, per-caller admission, the connection runner).
    pub live: Arc<bff_core::live::Live>,
}

impl Services {
    /// The clients of `gateway`, or the configuration error naming a missing `downstreams.<name>`.
    pub fn new(gateway: &Gateway) -> Result<Arc<Self>, ConfigError> {
        let catalog = gateway.downstream("catalog")?;
        let inventory = gateway.downstream("inventory")?;
        Ok(Arc::new(Self {
            users: gateway.downstream("users")?,
            products: catalog.batcher(PRODUCT_BATCH),
            stock: inventory.batcher(STOCK_BATCH),
            catalog,
            inventory,
            orders: gateway.downstream("orders")?,
            reviews: gateway.downstream("reviews")?,
            recommendations: gateway.downstream("recommendations")?,
            streams: gateway.streams(),
            live: gateway.live(),
        }))
    }
}

/// The reads of inventory and recommendations over the protocol each is configured with
/// (`[downstreams.<name>] protocol`): REST JSON, or gRPC (`crate::grpc`) converted to the same DTOs, so a
/// screen composes the same view either way.
impl Services {
    /// The stock of product `id` (a [`DomainId`]'s digits): `GET /inventory/{id}`, or `GetStock`.
    pub async fn stock_of(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Inventory, DownstreamError> {
        match self.inventory.protocol() {
            Protocol::Http => {
                self.inventory
                    .get_json(ctx, format!("/inventory/{id}"))
                    .await
            }
            Protocol::Grpc => {
                let request = grpc::inventory::GetStockRequest {
                    product_id: id.to_owned(),
                };
                let stock: grpc::inventory::Stock =
                    self.inventory.unary(ctx, grpc::GET_STOCK, &request).await?;
                Ok(stock.into())
            }
        }
    }

    /// The stock of the products `ids`, by product id (unknown ids absent): batched across concurrent
    /// requests over REST ([`STOCK_BATCH`]), one `BatchGetStock` per [`MAX_BATCH_IDS`] ids over gRPC.
    pub async fn stock_by_id(
        &self,
        ctx: &RequestContext,
        ids: &[String],
    ) -> Result<HashMap<String, Inventory>, DownstreamError> {
        if self.inventory.protocol() == Protocol::Http {
            return self.stock.load(ctx, ids).await;
        }
        let ids = unique_ids(ids.iter().map(String::as_str));
        let calls = ids.chunks(MAX_BATCH_IDS).map(|chunk| {
            let request = grpc::inventory::BatchGetStockRequest {
                product_ids: chunk.to_vec(),
            };
            async move {
                self.inventory
                    .unary::<_, grpc::inventory::StockBatch>(ctx, grpc::BATCH_GET_STOCK, &request)
                    .await
            }
        });
        let batches = futures::future::try_join_all(calls).await?;
        Ok(batches
            .into_iter()
            .flat_map(|b| b.items)
            .map(|stock| (stock.product_id.clone(), Inventory::from(stock)))
            .collect())
    }

    /// Order `id` (a [`DomainId`]'s digits): `GET /orders/{id}`, or `GetOrder`.
    pub async fn order(&self, ctx: &RequestContext, id: &str) -> Result<Order, DownstreamError> {
        match self.orders.protocol() {
            Protocol::Http => self.orders.get_json(ctx, format!("/orders/{id}")).await,
            Protocol::Grpc => {
                let request = grpc::orders::GetOrderRequest {
                    order_id: id.to_owned(),
                };
                let order: grpc::orders::Order =
                    self.orders.unary(ctx, grpc::GET_ORDER, &request).await?;
                Ok(order.into())
            }
        }
    }

    /// The status changes of order `id` (after the change `after`, else from its current state): the NDJSON
    /// stream `GET /orders/{id}/events?after=`, or the gRPC server stream `WatchOrder`. The stream ends when
    /// the service ends it, breaks off or sends something that is not a change.
    pub async fn watch_order(
        &self,
        ctx: &RequestContext,
        id: &str,
        after: Option<u64>,
    ) -> Result<BoxStream<'static, OrderChange>, DownstreamError> {
        match self.orders.protocol() {
            Protocol::Http => {
                let after = after.map_or(String::new(), |seq| format!("?after={seq}"));
                let lines = self
                    .orders
                    .open_lines(ctx, &format!("/orders/{id}/events{after}"))
                    .await?;
                let changes = futures::stream::unfold(lines, |mut lines| async move {
                    let line = lines.next_line().await?.ok()?;
                    let change: OrderChange = serde_json::from_slice(&line).ok()?;
                    Some((change, lines))
                });
                Ok(changes.boxed())
            }
            Protocol::Grpc => {
                let request = grpc::orders::WatchOrderRequest {
                    order_id: id.to_owned(),
                    after,
                };
                let messages = self
                    .orders
                    .open_messages(ctx, grpc::WATCH_ORDER, &request)
                    .await?;
                let changes = futures::stream::unfold(messages, |mut messages| async move {
                    let change = messages
                        .next_message::<grpc::orders::OrderChange>()
                        .await?
                        .ok()?;
                    Some((OrderChange::from(change), messages))
                });
                Ok(changes.boxed())
            }
        }
    }

    /// The recommendations of `user` (path-encoded), at most `limit`, with their product ids (unique, in
    /// the recommended order) for the batch lookups that enrich them: `GET
    /// /users/{user}/recommendations?limit=`, or `ListRecommendations`.
    pub async fn recommended(
        &self,
        ctx: &RequestContext,
        user: &str,
        limit: usize,
    ) -> Result<(Recommendations, Vec<String>), DownstreamError> {
        let recs: Recommendations = match self.recommendations.protocol() {
            Protocol::Http => {
                let path = format!("/users/{user}/recommendations?limit={limit}");
                self.recommendations.get_json(ctx, path).await?
            }
            Protocol::Grpc => {
                let request = grpc::recommendations::ListRecommendationsRequest {
                    user_id: user.to_owned(),
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                };
                let list: grpc::recommendations::RecommendationList = self
                    .recommendations
                    .unary(ctx, grpc::LIST_RECOMMENDATIONS, &request)
                    .await?;
                list.into()
            }
        };
        let mut ids = unique_ids(recs.items.iter().map(|r| r.product_id.as_str()));
        ids.truncate(limit);
        Ok((recs, ids))
    }
}

/// What a handler of a domain gateway composes with: the service clients, the request's context and the
/// verified caller (401 without one); destructure it in the signature: `Req { s, ctx, who }: Req`.
#[derive(Debug)]
pub struct Req {
    /// The domain's service clients.
    pub s: Arc<Services>,
    /// The request's context: deadline, parts, identity.
    pub ctx: RequestContext,
    /// The verified caller.
    pub who: Caller,
}

impl FromRequestParts<Arc<Services>> for Req {
    type Rejection = BffError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> Result<Self, BffError> {
        let ctx = RequestContext::from_request_parts(parts, services).await?;
        let who = Caller::from_request_parts(parts, services).await?;
        Ok(Self {
            s: services.clone(),
            ctx,
            who,
        })
    }
}

/// The defaults of the gateway `name` (e.g. `bff-web`) on `port` (admin listener on `port + 1000`, both on
/// loopback): every domain service at its default URL, catalog / reviews / inventory cached and shared
/// ([`SHARED_CACHE`]), JWT tokens of the dev identity provider for audience `name`, and rate limits per
/// user (20/s, burst 100) and per client address (200/s, burst 400), shared across instances in Redis under
/// `bff:rl:<name without bff->:`.
pub fn defaults(name: &str, port: u16) -> BffConfig {
    let mut config = BffConfig::default();
    config.server.listen = ([127, 0, 0, 1], port).into();
    config.admin.listen = ([127, 0, 0, 1], port.saturating_add(1000)).into();
    config.telemetry.otlp.service_name = name.into();
    config
        .downstreams
        .extend(default_urls().map(|(service, url)| (service.into(), DownstreamConfig::at(url))));
    for (service, ttl_s, stale_if_error_s) in SHARED_CACHE {
        config.share_cache(service, *ttl_s, *stale_if_error_s);
    }
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt.audience = name.into();
    config.auth.jwt.issuer = DEV_ISSUER.into();
    let short = name.strip_prefix("bff-").unwrap_or(name);
    config.rate_limit.redis.key_prefix = format!("bff:rl:{short}:");
    // Per user (a client stuck in a loop), and per client address (floods; generous, since many users may
    // share one address).
    config.rate_limit.policies = vec![
        PolicyConfig::new("user", &[KeyPart::User], 20, 1, 100),
        PolicyConfig::new("ip", &[KeyPart::Ip], 200, 1, 400),
    ];
    config
}

/// The tighter limit of writes, per user (2/s, burst 10), on `routes`.
pub fn user_writes(routes: &[&str]) -> PolicyConfig {
    PolicyConfig::new("user-writes", &[KeyPart::User], 2, 1, 10).on_routes(routes)
}

/// One command to a domain service: the part it answers for, method, path and body.
#[derive(Debug)]
pub struct Call<'a, B: ?Sized = ()> {
    /// The part name (`bff-partial`, logs, metrics), e.g. `order`.
    pub part: &'static str,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: Method,
    /// The service path, with its segments already encoded.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<&'a B>,
    /// The cached reads (path and query, of the same service) the command makes stale: invalidated once it
    /// succeeded (read-your-writes).
    pub stale: Vec<String>,
}

impl<B: ?Sized> Call<'_, B> {
    /// The call, invalidating `paths` of the service's cache once it succeeded.
    pub fn invalidates(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        self.stale.extend(paths);
        self
    }
}

impl<'a, B: Serialize + ?Sized> Call<'a, B> {
    /// `POST path` with `body`.
    pub fn post(part: &'static str, path: String, body: &'a B) -> Self {
        Self {
            part,
            method: Method::POST,
            path,
            body: Some(body),
            stale: Vec::new(),
        }
    }
}

impl Call<'static, ()> {
    /// `DELETE path`, no body.
    pub fn delete(part: &'static str, path: String) -> Self {
        Self {
            part,
            method: Method::DELETE,
            path,
            body: None,
            stale: Vec::new(),
        }
    }
}

/// Sends `call` (one attempt; see `bff_core::downstream::command`) with the forwarded `key` (so the service
/// deduplicates retries): a 2xx answer decoded as `T` (the call's stale reads invalidated); a refusal (the service's `{"error": code}`) named by
/// [`REFUSALS`]; a failure as a problem (504 `outcome_unknown` when it may have taken effect).
pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
    ctx: &RequestContext,
    downstream: &Downstream,
    key: ForwardedKey,
    call: Call<'_, B>,
) -> Result<T, BffError> {
    let extra: Vec<_> = key.into_iter().collect();
    let part = call.part;
    let reply = downstream
        .command(ctx, call.method, &call.path, call.body, &extra)
        .await
        .map_err(|e| command_error(part, &e))?;
    if reply.is_success() {
        // Done, whatever its body: the reads it changed are stale.
        downstream.invalidate(ctx, &call.stale).await;
        return reply
            .json(downstream)
            .map_err(|e| BffError::from_part(part, &e));
    }
    let code = reply.json::<ServiceError>(downstream).ok().map(|e| e.error);
    Err(reply.refusal(part, code.as_deref(), REFUSALS))
}

const fn refusal(status: StatusCode, code: &'static str, detail: &'static str) -> Refusal {
    Refusal {
        service_code: code,
        status,
        code,
        detail,
    }
}

/// The domain services' refusals of a command, as clients see them (same code as the service's).
pub const REFUSALS: &[Refusal] = &[
    refusal(UNPROCESSABLE, "unknown_product", "no such product"),
    refusal(
        UNPROCESSABLE,
        "quantity_limit",
        "at most 20 units of one product",
    ),
    refusal(
        UNPROCESSABLE,
        "cart_full",
        "the cart holds at most 50 products",
    ),
    refusal(
        StatusCode::CONFLICT,
        "out_of_stock",
        "a product is out of stock",
    ),
    refusal(StatusCode::CONFLICT, "cart_empty", "the cart is empty"),
    refusal(
        StatusCode::CONFLICT,
        "order_limit",
        "no more orders can be placed for this account",
    ),
    refusal(
        StatusCode::CONFLICT,
        "already_reviewed",
        "you have already reviewed this product",
    ),
];

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults name the gateway everywhere and limit every caller.
    #[test]
    fn defaults_limit_and_name() {
        let config = defaults("bff-tv", 8090);
        assert_eq!(config.server.listen.port(), 8090);
        assert_eq!(config.admin.listen.port(), 9090);
        assert_eq!(config.auth.jwt.audience, "bff-tv");
        assert_eq!(config.rate_limit.redis.key_prefix, "bff:rl:tv:");
        assert_eq!(config.rate_limit.policies.len(), 2);
        assert!(config.downstreams["catalog"].cache.shared);
        assert!(!config.downstreams["users"].cache.shared);
        config.validate().expect("valid");
    }
}
