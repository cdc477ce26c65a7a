//! `GET /api/orders/{id}/events`: Server-Sent Events of one of the caller's orders' status changes (scope
//! `orders:read`), relayed from the orders service's NDJSON stream `GET /orders/{id}/events`, or from its
//! gRPC server stream `WatchOrder` when `[downstreams.orders] protocol = "grpc"`.

use axum::http::HeaderMap;
use bff_core::prelude::*;
use futures::StreamExt;
use shared_schemas::downstream::Order;
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::web::OrderStatusEvent;

/// The order's status now and each change as it happens, as `status` events whose `id` is the change's
/// position; a client reconnecting with `Last-Event-ID` gets the changes it missed. Ownership is checked at
/// connect: another user's order is a 404, like one that does not exist, and opens no stream.
#[utoipa::path(get, path = "/api/orders/{id}/events", responses(
    (status = 200, description = "`text/event-stream`: `retry:` first, then `status` events (`id:` = change \
        number, `data:` = OrderStatusEvent), `: hb` heartbeat comments, and a final `end` event with \
        `{\"reason\": \"idle_timeout\" | \"token_expired\" | \"shutdown\"}` when the gateway ends the stream",
        content_type = "text/event-stream", body = String),
    (status = 404, description = "No such order of this user", body = bff_core::error::Problem),
    (status = 429, description = "`too_many_streams`: the caller has `streams.max_per_user` streams open", body = bff_core::error::Problem),
))]
pub(crate) async fn events(Req { s, ctx, who }: Req, id: DomainId, headers: HeaderMap) -> Reply {
    let order: Order = ctx.required("order", s.order(&ctx, id.as_str())).await?;
    if order.user_id != who.subject() {
        return Err(BffError::NotFound);
    }
    let permit = s.streams.admit(who.identity())?;
    let after = last_event_id(&headers).and_then(|v| v.parse::<u64>().ok());
    let changes = ctx
        .required_stream("order", s.watch_order(&ctx, id.as_str(), after))
        .await?;
    let events = changes.filter_map(|change| async move {
        let data = serde_json::to_string(&OrderStatusEvent {
            order_id: change.order.id,
            status: change.order.status,
        })
        .ok()?;
        Some(SseEvent {
            id: change.seq.to_string(),
            event: "status",
            data,
        })
    });
    Ok(s.streams.respond(permit, who.identity(), events))
}
