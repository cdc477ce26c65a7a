//! The domain's gRPC messages (`proto/*.proto`, one package per service), generated once and checked in
//! (`gen/`, kept current by `tests/codegen.rs`): building needs no `protoc`. Each package's module holds its
//! messages, the [`GrpcMethod`]s a gateway calls, and the conversions to and from the JSON DTOs of
//! [`crate::downstream`] (a gRPC part composes into the same views as a REST one). The tonic server stubs
//! (`<service>_server`) are compiled only with the `grpc-server` feature (the mock services).

use bff_core::downstream::GrpcMethod;

use crate::downstream as dto;

/// `shop.inventory`: `GetStock`, `BatchGetStock`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod inventory {
    include!("gen/shop.inventory.rs");
    #[cfg(feature = "grpc-server")]
    include!("gen/server/shop.inventory.rs");
}

/// `shop.recommendations`: `ListRecommendations`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod recommendations {
    include!("gen/shop.recommendations.rs");
    #[cfg(feature = "grpc-server")]
    include!("gen/server/shop.recommendations.rs");
}

/// `shop.orders`: `GetOrder`, `WatchOrder` (server streaming).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod orders {
    include!("gen/shop.orders.rs");
    #[cfg(feature = "grpc-server")]
    include!("gen/server/shop.orders.rs");
}

/// The descriptor set of `proto/*.proto` (imports included; generated beside `gen/` and kept current by
/// `tests/codegen.rs`), for `[downstreams.<name>] descriptor_set` (declarative REST→gRPC routes): its path in
/// this source tree.
pub const DESCRIPTOR_SET: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/src/grpc/gen/descriptor.bin");

/// `shop.inventory.Inventory/GetStock` (a read: retried on `UNAVAILABLE`).
pub const GET_STOCK: GrpcMethod = GrpcMethod::idempotent("/shop.inventory.Inventory/GetStock");
/// `shop.inventory.Inventory/BatchGetStock` (a read).
pub const BATCH_GET_STOCK: GrpcMethod =
    GrpcMethod::idempotent("/shop.inventory.Inventory/BatchGetStock");
/// `shop.recommendations.Recommendations/ListRecommendations` (a read).
pub const LIST_RECOMMENDATIONS: GrpcMethod =
    GrpcMethod::idempotent("/shop.recommendations.Recommendations/ListRecommendations");
/// `shop.orders.Orders/GetOrder` (a read).
pub const GET_ORDER: GrpcMethod = GrpcMethod::idempotent("/shop.orders.Orders/GetOrder");
/// `shop.orders.Orders/WatchOrder` (a server stream).
pub const WATCH_ORDER: GrpcMethod = GrpcMethod::idempotent("/shop.orders.Orders/WatchOrder");

impl From<inventory::Stock> for dto::Inventory {
    fn from(s: inventory::Stock) -> Self {
        Self {
            product_id: s.product_id,
            available: s.available,
            reserved: s.reserved,
            warehouses: s
                .warehouses
                .into_iter()
                .map(|w| dto::WarehouseStock {
                    warehouse_id: w.warehouse_id,
                    on_hand: w.on_hand,
                })
                .collect(),
            restock_eta: s.restock_eta,
            updated_at: s.updated_at,
        }
    }
}

impl From<dto::Inventory> for inventory::Stock {
    fn from(i: dto::Inventory) -> Self {
        Self {
            product_id: i.product_id,
            available: i.available,
            reserved: i.reserved,
            warehouses: i
                .warehouses
                .into_iter()
                .map(|w| inventory::WarehouseStock {
                    warehouse_id: w.warehouse_id,
                    on_hand: w.on_hand,
                })
                .collect(),
            restock_eta: i.restock_eta,
            updated_at: i.updated_at,
        }
    }
}

impl From<inventory::StockBatch> for dto::InventoryBatch {
    fn from(b: inventory::StockBatch) -> Self {
        Self {
            items: b.items.into_iter().map(Into::into).collect(),
            missing: b.missing,
        }
    }
}

impl From<dto::InventoryBatch> for inventory::StockBatch {
    fn from(b: dto::InventoryBatch) -> Self {
        Self {
            items: b.items.into_iter().map(Into::into).collect(),
            missing: b.missing,
        }
    }
}

impl From<recommendations::RecommendationList> for dto::Recommendations {
    fn from(r: recommendations::RecommendationList) -> Self {
        Self {
            user_id: r.user_id,
            items: r
                .items
                .into_iter()
                .map(|i| dto::Recommendation {
                    product_id: i.product_id,
                    score: i.score,
                    reason: i.reason,
                })
                .collect(),
            model_version: r.model_version,
            generated_at: r.generated_at,
        }
    }
}

impl From<dto::Recommendations> for recommendations::RecommendationList {
    fn from(r: dto::Recommendations) -> Self {
        Self {
            user_id: r.user_id,
            items: r
                .items
                .into_iter()
                .map(|i| recommendations::Recommendation {
                    product_id: i.product_id,
                    score: i.score,
                    reason: i.reason,
                })
                .collect(),
            model_version: r.model_version,
            generated_at: r.generated_at,
        }
    }
}

fn money_to_dto(m: Option<orders::Money>) -> dto::Money {
    let m = m.unwrap_or_default();
    dto::Money {
        amount_cents: m.amount_cents,
        currency: m.currency,
    }
}

fn money_of(m: dto::Money) -> orders::Money {
    orders::Money {
        amount_cents: m.amount_cents,
        currency: m.currency,
    }
}

impl From<orders::Order> for dto::Order {
    fn from(o: orders::Order) -> Self {
        let address = o.shipping_address.unwrap_or_default();
        let payment = o.payment.unwrap_or_default();
        Self {
            id: o.id,
            user_id: o.user_id,
            partner_id: o.partner_id,
            status: o.status,
            items: o
                .items
                .into_iter()
                .map(|i| dto::OrderItem {
                    product_id: i.product_id,
                    quantity: i.quantity,
                    unit_price: money_to_dto(i.unit_price),
                })
                .collect(),
            total: money_to_dto(o.total),
            placed_at: o.placed_at,
            shipping_address: dto::Address {
                line1: address.line1,
                city: address.city,
                postal_code: address.postal_code,
                country: address.country,
            },
            payment: dto::Payment {
                method: payment.method,
                card_last4: payment.card_last4,
                processor_ref: payment.processor_ref,
            },
            internal_notes: o.internal_notes,
        }
    }
}

impl From<dto::Order> for orders::Order {
    fn from(o: dto::Order) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            partner_id: o.partner_id,
            status: o.status,
            items: o
                .items
                .into_iter()
                .map(|i| orders::OrderItem {
                    product_id: i.product_id,
                    quantity: i.quantity,
                    unit_price: Some(money_of(i.unit_price)),
                })
                .collect(),
            total: Some(money_of(o.total)),
            placed_at: o.placed_at,
            shipping_address: Some(orders::Address {
                line1: o.shipping_address.line1,
                city: o.shipping_address.city,
                postal_code: o.shipping_address.postal_code,
                country: o.shipping_address.country,
            }),
            payment: Some(orders::Payment {
                method: o.payment.method,
                card_last4: o.payment.card_last4,
                processor_ref: o.payment.processor_ref,
            }),
            internal_notes: o.internal_notes,
        }
    }
}

impl From<orders::OrderChange> for dto::OrderChange {
    fn from(c: orders::OrderChange) -> Self {
        Self {
            seq: c.seq,
            order: c.order.unwrap_or_default().into(),
        }
    }
}
