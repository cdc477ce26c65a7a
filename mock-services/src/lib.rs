//! Deterministic mock downstream services for the bff gateways: an e-commerce backend of seven small
//! axum apps (identity, users, catalog, orders, reviews, inventory, recommendations), each with fault
//! injection and request recording, usable as a library (tests, dev-stack) or via the `mock-services`
//! binary.
//!
//! # Layout
//! - [`service`]: the [`Service`] enum (names, default ports 7000..=7006).
//! - [`data`]: the deterministic data set, computed on demand from ids (splitmix64-seeded), one module
//!   per domain.
//! - `services` (private): the HTTP routes, one module per service; [`router`] assembles an app.
//! - [`faults`]: fault rules and the fault middleware; [`recorder`]: request recording.
//! - [`idp`]: the dev identity provider (keys, rotation, JWKS, token minting); [`oidc`]: its authorization-code
//!   side (clients, PKCE-bound single-use codes, rotating refresh tokens, sessions, logout tokens).
//! - [`state`]: [`ServiceConfig`] and the shared [`ServiceState`]; [`server`]: [`spawn`],
//!   [`spawn_all`], [`spawn_many`], [`MockHandle`], [`MockStack`].
//! - [`certs`]: certificates generated at run time (CA, server, client, self-signed) for TLS tests and the
//!   dev stack.
//! - `admin` (private): the admin API; [`tls`]: HTTPS (and mTLS) serving with [`MockTls`].
//! - [`grpc`]: the tonic servers of inventory, recommendations and orders, on the REST port + 100.
//!
//! # Endpoints
//! | service | port | endpoints |
//! |---|---|---|
//! | identity | 7000 | `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json`, `POST /token` (JSON mint, or form-encoded `authorization_code` / `refresh_token` grants), `GET /authorize` (dev login page; `login_hint=<user id>` approves at once), `GET /end_session`, `POST /admin/rotate-keys`, `POST /admin/clients`, `POST /admin/backchannel-logout`, `POST /admin/oidc` |
//! | users | 7001 | `GET /users/{id}` |
//! | catalog | 7002 | `GET /products/{id}`, `GET /products?ids=a,b,c`, `GET /products?category=&q=&page=&page_size=` |
//! | orders | 7003 | `GET /users/{id}/orders?limit=&cursor=`, `GET /orders/{id}`, `GET /users/{id}/cart`, `POST /users/{id}/cart/items`, `DELETE /users/{id}/cart/items/{product_id}`, `POST /users/{id}/orders` (checkout), `POST /orders` (partner) |
//! | reviews | 7004 | `GET /products/{id}/reviews?limit=`, `GET /products/{id}/rating`, `POST /products/{id}/reviews` |
//! | inventory | 7005 | `GET /inventory/{product_id}`, `GET /inventory?ids=a,b,c` |
//! | recommendations | 7006 | `GET /users/{id}/recommendations?limit=` |
//!
//! gRPC (plain HTTP/2, `shared-schemas/proto/`), on the REST port + 100: inventory 7105
//! (`shop.inventory.Inventory/GetStock`, `BatchGetStock`), recommendations 7106
//! (`shop.recommendations.Recommendations/ListRecommendations`), orders 7103 (`shop.orders.Orders/GetOrder`,
//! server-streaming `WatchOrder`); same data, faults and recording (see [`grpc`]).
//!
//! Unknown ids (and unknown paths) answer `404 {"error":"not_found"}`; invalid query parameters answer
//! `400 {"error":"bad_request","detail":...}`. `limit`/`page_size`/`page` outside their range are a 400
//! (not clamped): `limit` 1..=50 (default 10), `page_size` 1..=100 (default 20), `page` >= 1 (default 1).
//! Batch endpoints (`ids=`) take 1..=100 comma-separated ids (else 400) and list unknown ids in
//! `missing`, keeping request order (duplicates are kept). When `ids` is present on `GET /products`,
//! it is a batch and the search parameters are ignored. Every service also answers `GET /healthz` with
//! `200 ok` (neither recorded nor faulted).
//!
//! # Data formulas
//! Ids are canonical decimal strings (no leading zeros, no sign).
//! - **Users**: `"1"..="1000"`.
//! - **Products**: `"1"..="5000"`; category of product `n` is
//!   `data::catalog::CATEGORY_SLUGS[(n - 1) % 10]` = kitchen, garden, books, electronics, toys,
//!   sports, fashion, beauty, office, pets (so product 1 is `kitchen`, 3 is `books`, 10 is `pets`).
//!   Images: `https://img.example.com/p/{n}/{size}.jpg` for thumbnail/small/medium/large/original.
//!   Prices are in EUR cents and end in 99.
//! - **Orders**: user `u` has `data::orders::order_count(u)` orders, always in `3..=12`. The `k`-th order
//!   (1-based, oldest first) has id **`u * 100 + k`**, e.g. `"1001"` is user 10's first order, `"701"`,
//!   `"702"`, `"703"` are user 7's first three; orders `u*100+1 ..= u*100+3` exist for every user.
//!   `GET /orders/{id}` derives the user from the id (`u = id / 100`, `k = id % 100`).
//!   Listing is newest first (highest `k` first); the cursor is the decimal offset of the next page.
//! - **Partner ownership** (`partner_id`): by `k % 3`: `1` → `"acme"`, `2` → `"globex"`, `0` → none.
//!   So for every user `u`: order `u*100+1` belongs to acme, `u*100+2` to globex, `u*100+3` to no
//!   partner (e.g. user 7: `"701"` acme, `"702"` globex, `"703"` none; `"1001"` is acme).
//! - Order items: 1..=5 lines with existing product ids, `unit_price` = the product's current price,
//!   `total` = sum of `unit_price * quantity`; status among placed/paid/shipped/delivered/cancelled.
//! - **Reviews**: product `p` has `data::reviews::review_count(p)` in `0..=20` reviews with ids
//!   `"{p}-{j}"`, listed newest first; `summary`/`GET /products/{p}/rating` are computed from all of
//!   them (`average` rounded to 2 decimals, 0 when there are none).
//! - **Inventory**: one record per product; about 10% have `available == 0` and then `restock_eta`
//!   is set; otherwise `available` is in `1..=500`.
//! - **Recommendations**: up to 50 distinct existing products per user, best first; a smaller `limit`
//!   returns a prefix of a larger one.
//!
//! # Commands (writes)
//! State written at run time lives in memory ([`writes`]) and is merged into the reads, so a client reads
//! its own writes. Bodies are JSON ([`shared_schemas::downstream`]: `AddCartItem`, `Checkout`, `CreateOrder`,
//! `CreateReview`; unknown fields refused); a malformed body is a 400; business rules answer
//! `{"error": code, "detail": ...}`:
//! - `POST /users/{id}/cart/items` `{"product_id","quantity"}` adds units (200 + the cart): unknown product
//!   → 422 `unknown_product`, quantity outside 1..=20 or a line over 20 → 422 `quantity_limit`, out of stock
//!   → 409 `out_of_stock`. `DELETE /users/{id}/cart/items/{product_id}` removes the line (200 + the cart,
//!   404 when it is not in the cart).
//! - `POST /users/{id}/orders` `{"payment_method"}` (`card`, `paypal`, `invoice`, `apple_pay`, else 422
//!   `invalid`) turns the cart into the user's next order `u*100+k` (201 + the order) and empties the cart;
//!   an empty cart → 409 `cart_empty`.
//! - `POST /orders` `{"items":[{"product_id","quantity"}], "external_ref"?}` needs `x-bff-partner-id`
//!   (else 403) and creates an order of that partner with id `10000001, 10000002, ...` (201).
//! - `POST /products/{id}/reviews` `{"user_id","rating","title","body"}` (201 + the review, moderation
//!   `pending`): one per user and product (409 `already_reviewed`), rating 1..=5, title 1..=120 and body
//!   1..=4000 characters (422 `invalid`).
//!
//! The creations (`POST`) honour `Idempotency-Key`: a repeated key (per route and user or partner) gets the
//! first answer again with `idempotent-replayed: true`, without running the command again (5xx answers are
//! not remembered). The recorder keeps the body of the last non-GET request (`last.body`).
//!
//! # Fault injection
//! Every service holds a list of [`FaultRule`]s (see [`faults`]), applied to every non-admin route
//! (not `/healthz`). Admin API (never recorded, never faulted):
//! - `GET /admin/faults` → the rules as a JSON array;
//! - `PUT /admin/faults` (JSON array) replaces them, `POST /admin/faults` (one rule) appends (201),
//!   `DELETE /admin/faults` clears (204). Invalid rules → 400.
//! - `GET /admin/received` →
//!   `{"total":n,"routes":{"GET /users/{id}":n},"abandoned":n,"last":{"method","uri","headers"}}`
//!   (`last` is `null` before the first request; `abandoned` counts requests whose caller closed the
//!   connection before the answer was ready, i.e. calls the gateway cancelled); `DELETE /admin/received`
//!   resets (204).
//!
//! Rules look like `{"kind":"latency","ms":300,"jitter_ms":0,"path_prefix":"/users","rate":1.0}`; kinds:
//! `latency {ms, jitter_ms}`, `error {status}`, `reset`, `hang`, `malformed_json`,
//! `slow_drip {bytes_per_chunk, interval_ms}`, `oversized {bytes}`.
//!
//! # Identity provider
//! Issuer `bff-dev-idp` by default. Signing keys `rsa-1..3` (RS256) and `ec-1..3` (ES256); `rsa-1` and
//! `ec-1` are active at start. `POST /admin/rotate-keys` (optional body `{"grace_s": N}`) advances both
//! and returns `{"rsa":"rsa-2","ec":"ec-2","grace_s":300}`; previous keys stay in the JWKS for the grace
//! period. `POST /token` takes a [`idp::MintRequest`] (the fields of `TokenRequest` plus `iss`,
//! `time_offset_s`, `omit_exp`) and answers a `TokenResponse`.

pub mod certs;
pub mod data;
pub mod faults;
pub mod feed;
pub mod grpc;
pub mod h2c;
pub mod idp;
pub mod oidc;
pub mod recorder;
pub mod server;
pub mod service;
pub mod state;
pub mod tls;
pub mod writes;

mod admin;
mod services;

pub use faults::{FaultKind, FaultRule, Faults};
pub use idp::{Idp, IdpConfig, MintRequest};
pub use recorder::{Received, Recorder};
pub use server::{MockHandle, MockStack, spawn, spawn_all, spawn_many};
pub use service::Service;
pub use services::router;
pub use state::{ServiceConfig, ServiceState};
pub use tls::MockTls;
