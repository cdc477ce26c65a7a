//! `POST /api/live/ticket` and `GET /api/live`: the mobile app's live updates over a WebSocket — the status
//! of the caller's orders (relayed from the orders service's NDJSON stream `GET /orders/{id}/events`, or
//! its gRPC server stream `WatchOrder` when `[downstreams.orders] protocol = "grpc"`) and the stock of
//! watched products (polled from inventory every `live.poll_ms`, over REST or gRPC alike). The protocol (JSON text
//! messages, [`LiveRequest`] in, [`LiveMessage`] out) is in docs/websocket.md; tickets, origins, limits and
//! close codes are core's ([`bff_core::live`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use bff_core::downstream::DownstreamErrorKind;
use bff_core::prelude::*;
use futures::StreamExt;
use futures::stream::{AbortHandle, BoxStream, SelectAll};
use shared_schemas::downstream::{Inventory, Order, OrderChange};
use shared_schemas::gateway::{Req, Services};
use shared_schemas::services::is_valid_id;
use shared_schemas::views::mobile::{
    LIVE_MAX_ORDERS, LIVE_MAX_PRODUCTS, LiveMessage, LiveRequest, LiveTopics,
};
use tokio::time::MissedTickBehavior;

/// A single-use ticket to open `GET /api/live` (bearer-authenticated; valid `live.ticket_ttl_s` seconds and
/// never past the token's expiry).
#[utoipa::path(post, path = "/api/live/ticket", responses(
    (status = 200, description = "A ticket for `GET /api/live?ticket=...`; `Cache-Control: no-store`", body = Ticket),
    (status = 503, description = "`overloaded`: too many tickets outstanding", body = bff_core::error::Problem),
))]
pub(crate) async fn ticket(Req { s, who, .. }: Req) -> Reply {
    let ticket = s.live.ticket(who.identity())?;
    let mut response = Json(ticket).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Live updates: a WebSocket opened with a ticket from `POST /api/live/ticket`.
/// The ticket (query parameter `ticket`) is documented as the route's security scheme by core.
#[utoipa::path(get, path = "/api/live",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol. Client messages: `{\"watch\": \
            {\"orders\": [...], \"products\": [...]}}`, `{\"unwatch\": {...}}`; gateway messages: LiveMessage \
            (`watching`, `order_status`, `stock`, `error`). Close codes: 1001 shutdown / ping_timeout, 1003 \
            text_only, 1008 token_expired, 1009 message_too_big, 1013 slow_consumer"),
        (status = 403, description = "`origin_not_allowed`: the `Origin` is not allowed", body = bff_core::error::Problem),
        (status = 429, description = "`too_many_connections`: the caller has `live.max_per_user` connections open", body = bff_core::error::Problem),
    ))]
pub(crate) async fn live(Req { s, ctx, .. }: Req, upgrade: WebSocketUpgrade) -> Reply {
    let services = s.clone();
    s.live
        .upgrade(upgrade, &ctx, move |session| feed(services, session))
}

/// An order's status changes, then its end (the downstream stream ended), unless unwatched first.
type OrderFeed = BoxStream<'static, FeedItem>;

/// One item of an order's feed.
enum FeedItem {
    /// A status to send.
    Status(LiveMessage),
    /// The order's downstream stream ended: the order is no longer watched.
    Ended(String),
}

/// What one connection watches.
#[derive(Default)]
struct Watching {
    /// Watched orders and the handle ending their feed.
    orders: BTreeMap<String, AbortHandle>,
    /// Watched products and the stock last sent (none yet: sent at the next poll).
    products: BTreeMap<String, Option<(u32, bool)>>,
}

/// The connection's own future: client messages, order feeds and stock polls, until the connection ends
/// (core then drops this future, ending every feed).
async fn feed(s: Arc<Services>, mut session: Session) {
    let mut watching = Watching::default();
    let mut feeds: SelectAll<OrderFeed> = SelectAll::new();
    let mut poll = tokio::time::interval(Duration::from_millis(s.live.config().poll_ms));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            text = session.inbox.recv() => {
                let Some(text) = text else { return };
                handle(&s, &session, &mut watching, &mut feeds, &text).await;
            }
            Some(item) = feeds.next(), if !feeds.is_empty() => match item {
                FeedItem::Status(message) => {
                    session.outbox.send_json(&message);
                }
                FeedItem::Ended(id) => {
                    watching.orders.remove(&id);
                    send_watching(&session, &watching);
                }
            },
            _ = poll.tick(), if !watching.products.is_empty() => {
                poll_stock(&s, &session, &mut watching).await;
            }
        }
    }
}

/// Longest id echoed in an `error` message (a longer one is not repeated back).
const MAX_ECHOED_ID: usize = 64;

fn error(code: &'static str, id: Option<&str>) -> LiveMessage {
    LiveMessage::Error {
        code,
        id: id.filter(|id| id.len() <= MAX_ECHOED_ID).map(str::to_owned),
    }
}

/// One client message: unwatch, then watch, then the `watching` summary.
async fn handle(
    s: &Arc<Services>,
    session: &Session,
    watching: &mut Watching,
    feeds: &mut SelectAll<OrderFeed>,
    text: &str,
) {
    let out = &session.outbox;
    let Ok(request) = serde_json::from_str::<LiveRequest>(text) else {
        out.send_json(&error("bad_message", None));
        return;
    };
    let LiveTopics { orders, products } = request.unwatch.unwrap_or_default();
    for id in orders {
        if let Some(handle) = watching.orders.remove(&id) {
            handle.abort();
        }
    }
    for id in products {
        watching.products.remove(&id);
    }
    let LiveTopics { orders, products } = request.watch.unwrap_or_default();
    for id in orders {
        if watching.orders.contains_key(&id) {
            continue;
        }
        if watching.orders.len() >= LIVE_MAX_ORDERS {
            out.send_json(&error("too_many_watches", Some(&id)));
            continue;
        }
        match open_order(s, session, &id).await {
            Ok(feed) => {
                let (feed, handle) = futures::stream::abortable(feed);
                watching.orders.insert(id, handle);
                feeds.push(feed.boxed());
            }
            Err(code) => {
                out.send_json(&error(code, Some(&id)));
            }
        }
    }
    for id in products {
        if watching.products.contains_key(&id) {
            continue;
        }
        if !is_valid_id(&id) {
            out.send_json(&error("not_found", Some(&id)));
        } else if watching.products.len() >= LIVE_MAX_PRODUCTS {
            out.send_json(&error("too_many_watches", Some(&id)));
        } else {
            watching.products.insert(id, None);
        }
    }
    send_watching(session, watching);
}

/// The `watching` summary.
fn send_watching(session: &Session, watching: &Watching) {
    session.outbox.send_json(&LiveMessage::Watching {
        orders: watching.orders.keys().cloned().collect(),
        products: watching.products.keys().cloned().collect(),
    });
}

/// The status feed of order `id` after checking it is the caller's (as `GET /api/orders/{id}` does: another
/// user's order is `not_found`, like one that does not exist), or the error code for the client.
async fn open_order(
    s: &Arc<Services>,
    session: &Session,
    id: &str,
) -> Result<OrderFeed, &'static str> {
    if !is_valid_id(id) {
        return Err("not_found");
    }
    let ctx = session.call_context();
    let refused = |kind: &DownstreamErrorKind| match kind {
        DownstreamErrorKind::NotFound => "not_found",
        _ => "unavailable",
    };
    let order: Order = (s.order(&ctx, id).await).map_err(|e| refused(&e.kind))?;
    if order.user_id != session.identity.subject {
        return Err("not_found");
    }
    let changes = (s.watch_order(&ctx, id, None).await).map_err(|e| refused(&e.kind))?;
    // What is not an order change ends the downstream stream there (`Services::watch_order`); nothing of it
    // reaches the client.
    let feed = changes
        .map(|change: OrderChange| {
            FeedItem::Status(LiveMessage::OrderStatus {
                order_id: change.order.id,
                status: change.order.status,
            })
        })
        .chain(futures::stream::once(std::future::ready(FeedItem::Ended(
            id.to_owned(),
        ))));
    Ok(feed.boxed())
}

/// One stock poll of the watched products: what changed since it was last sent (everything the first time).
async fn poll_stock(s: &Arc<Services>, session: &Session, watching: &mut Watching) {
    let ids: Vec<String> = watching.products.keys().cloned().collect();
    let ctx = session.call_context();
    let found: HashMap<String, Inventory> = match s.stock_by_id(&ctx, &ids).await {
        Ok(found) => found,
        // The failure is logged by the call stack; the next poll tries again.
        Err(_) => return,
    };
    let mut unknown = BTreeSet::new();
    for (id, last) in &mut watching.products {
        let Some(stock) = found.get(id) else {
            unknown.insert(id.clone());
            continue;
        };
        let now = (stock.available, stock.available > 0);
        if *last != Some(now) {
            *last = Some(now);
            session.outbox.send_json(&LiveMessage::Stock {
                product_id: id.clone(),
                available: now.0,
                in_stock: now.1,
            });
        }
    }
    for id in unknown {
        watching.products.remove(&id);
        session.outbox.send_json(&error("not_found", Some(&id)));
    }
}
