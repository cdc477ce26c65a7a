//! The gRPC face of inventory, recommendations and orders (tonic servers, `shared-schemas/proto/`), served
//! beside their REST endpoints on the REST port + 100 (ephemeral when the REST port is), with the same data,
//! the same fault rules and the same request recording (routes recorded as `POST /package.Service/Method`).
//!
//! Fault rules match the gRPC path (e.g. `path_prefix: "/shop.inventory"`) and take their gRPC form:
//! `latency` delays; `error {status}` answers the status's gRPC code (404 `NOT_FOUND`, 403
//! `PERMISSION_DENIED`, 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`, 400 `INVALID_ARGUMENT`, 401
//! `UNAUTHENTICATED`, 429 `RESOURCE_EXHAUSTED`, any other `INTERNAL`) with the leaky
//! [`INJECTED_ERROR_BODY`] as its message; `reset` resets the stream after the headers (for `WatchOrder`:
//! after the first change); `hang` never answers; `malformed_json` sends a message that is not valid
//! protobuf; `oversized {bytes}` a valid message of that size; `wrong_content_type` the real answer with
//! that content type; `slow_drip` is not applied.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, stream};
use http_body_util::StreamBody;
use hyper::body::Frame;
use shared_schemas::grpc::inventory::inventory_server::{Inventory, InventoryServer};
use shared_schemas::grpc::inventory::{BatchGetStockRequest, GetStockRequest, Stock, StockBatch};
use shared_schemas::grpc::orders::orders_server::{Orders, OrdersServer};
use shared_schemas::grpc::orders::{GetOrderRequest, Order, OrderChange, WatchOrderRequest};
use shared_schemas::grpc::recommendations::recommendations_server::{
    Recommendations, RecommendationsServer,
};
use shared_schemas::grpc::recommendations::{ListRecommendationsRequest, RecommendationList};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use crate::data::inventory::inventory_by_id;
use crate::data::recommendations::{MAX_RECOMMENDATIONS, recommendations};
use crate::data::{USER_COUNT, parse_id};
use crate::faults::{FaultKind, INJECTED_ERROR_BODY};
use crate::recorder::record_middleware;
use crate::services::order_events::{Watch, order_id};
use crate::{Service, ServiceState};

/// How far the gRPC port is from the REST port.
pub const PORT_OFFSET: u16 = 100;

/// Whether `service` has a gRPC face.
pub fn serves_grpc(service: Service) -> bool {
    matches!(
        service,
        Service::Inventory | Service::Recommendations | Service::Orders
    )
}

/// The gRPC app of `state`'s service (faulted and recorded like its REST routes; `GET /healthz` neither),
/// `None` for a service without one.
pub fn grpc_router(state: &ServiceState) -> Option<Router> {
    let mut routes = tonic::service::Routes::default();
    routes = match state.service() {
        Service::Inventory => routes.add_service(InventoryServer::new(InventoryGrpc)),
        Service::Recommendations => routes.add_service(RecommendationsServer::new(RecsGrpc)),
        Service::Orders => routes.add_service(OrdersServer::new(OrdersGrpc(state.clone()))),
        _ => return None,
    };
    let faults = GrpcFaults {
        state: state.clone(),
    };
    let api = routes
        .into_axum_router()
        .layer(from_fn_with_state(faults, grpc_fault_middleware))
        .layer(from_fn_with_state(
            state.recorder().clone(),
            record_middleware,
        ))
        .layer(axum::middleware::from_fn(by_method_path));
    Some(api.route("/healthz", get(|| async { "ok" })))
}

/// Has the recorder name a call by its method's path (`/shop.inventory.Inventory/GetStock`) rather than by
/// the service's route template.
async fn by_method_path(mut req: Request, next: Next) -> Response {
    req.extensions_mut().remove::<axum::extract::MatchedPath>();
    next.run(req).await
}

/// `shop.inventory.Inventory`.
struct InventoryGrpc;

#[tonic::async_trait]
impl Inventory for InventoryGrpc {
    async fn get_stock(
        &self,
        request: GrpcRequest<GetStockRequest>,
    ) -> Result<GrpcResponse<Stock>, Status> {
        let id = request.into_inner().product_id;
        inventory_by_id(&id)
            .map(|i| GrpcResponse::new(i.into()))
            .ok_or_else(|| Status::not_found("no such product"))
    }

    async fn batch_get_stock(
        &self,
        request: GrpcRequest<BatchGetStockRequest>,
    ) -> Result<GrpcResponse<StockBatch>, Status> {
        let ids = request.into_inner().product_ids;
        if ids.is_empty() || ids.len() > 100 {
            return Err(Status::invalid_argument("1..=100 product ids"));
        }
        let mut batch = StockBatch::default();
        for id in ids {
            match inventory_by_id(&id) {
                Some(i) => batch.items.push(i.into()),
                None => batch.missing.push(id),
            }
        }
        Ok(GrpcResponse::new(batch))
    }
}

/// `shop.recommendations.Recommendations`.
struct RecsGrpc;

#[tonic::async_trait]
impl Recommendations for RecsGrpc {
    async fn list_recommendations(
        &self,
        request: GrpcRequest<ListRecommendationsRequest>,
    ) -> Result<GrpcResponse<RecommendationList>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 10,
            n if n <= MAX_RECOMMENDATIONS => n,
            _ => return Err(Status::invalid_argument("limit must be in 1..=50")),
        };
        parse_id(&request.user_id, USER_COUNT)
            .and_then(|user| recommendations(user, limit))
            .map(|r| GrpcResponse::new(r.into()))
            .ok_or_else(|| Status::not_found("no such user"))
    }
}

/// `shop.orders.Orders`.
struct OrdersGrpc(ServiceState);

/// The stream of a `WatchOrder` call.
type ChangeStream = Pin<Box<dyn Stream<Item = Result<OrderChange, Status>> + Send>>;

#[tonic::async_trait]
impl Orders for OrdersGrpc {
    async fn get_order(
        &self,
        request: GrpcRequest<GetOrderRequest>,
    ) -> Result<GrpcResponse<Order>, Status> {
        order_id(&request.into_inner().order_id)
            .and_then(|id| self.0.writes().lock().current_order(id))
            .map(|o| GrpcResponse::new(o.into()))
            .ok_or_else(|| Status::not_found("no such order"))
    }

    type WatchOrderStream = ChangeStream;

    async fn watch_order(
        &self,
        request: GrpcRequest<WatchOrderRequest>,
    ) -> Result<GrpcResponse<ChangeStream>, Status> {
        let request = request.into_inner();
        let watch = order_id(&request.order_id)
            .and_then(|id| Watch::start(&self.0, id, request.after))
            .ok_or_else(|| Status::not_found("no such order"))?;
        let changes = stream::unfold(watch, |mut w| async move {
            let change = w.next().await?;
            let change = OrderChange {
                seq: change.seq,
                order: Some(change.order.into()),
            };
            Some((Ok(change), w))
        });
        Ok(GrpcResponse::new(Box::pin(changes)))
    }
}

/// State of the gRPC fault middleware.
#[derive(Clone)]
struct GrpcFaults {
    state: ServiceState,
}

/// Applies the service's fault rules to a gRPC call, in their gRPC form (see the module docs).
async fn grpc_fault_middleware(
    State(faults): State<GrpcFaults>,
    req: Request,
    next: Next,
) -> Response {
    let (delay, fault) = faults.state.faults().roll(req.uri().path());
    let mut shutdown = faults.state.shutdown_signal();
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return status_only(14, "shutting down"),
        }
    }
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    match fault {
        FaultKind::Latency { .. } | FaultKind::SlowDrip { .. } => next.run(req).await,
        FaultKind::Error { status } => status_only(code_of_http(status), INJECTED_ERROR_BODY),
        FaultKind::Reset => {
            let streaming = req.uri().path().ends_with("/WatchOrder");
            reset_after_first(next.run(req).await, streaming)
        }
        FaultKind::Hang => {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                () = shutdown.wait() => {}
            }
            status_only(14, "shutting down")
        }
        // Field 1 declared as a 100-byte string in a 3-byte message: not protobuf.
        FaultKind::MalformedJson => message_answer(Bytes::from_static(&[0x0a, 100, b'x'])),
        FaultKind::Oversized { bytes } => message_answer(oversized_message(bytes)),
        FaultKind::WrongContentType { content_type } => {
            let mut response = next.run(req).await;
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
    }
}

/// The gRPC code an injected HTTP `status` stands for.
fn code_of_http(status: u16) -> u32 {
    match status {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        429 => 8,
        503 => 14,
        504 => 4,
        _ => 13,
    }
}

/// A trailers-only answer: `grpc-status: code` and `grpc-message` in the headers, no message.
fn status_only(code: u32, message: &str) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    response
}

/// `message` percent-encoded as `grpc-message` wants (printable ASCII but `%` kept).
fn percent_encode(message: &str) -> String {
    message
        .bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An `OK` answer carrying `message` (raw protobuf bytes), streamed in 64 KiB pieces, then the trailers.
fn message_answer(message: Bytes) -> Response {
    let mut prefix = BytesMut::with_capacity(5);
    prefix.put_u8(0);
    prefix.put_u32(message.len() as u32);
    let pieces: Vec<Bytes> = std::iter::once(prefix.freeze())
        .chain(
            (0..message.len().div_ceil(64 * 1024))
                .map(|i| message.slice(i * 64 * 1024..((i + 1) * 64 * 1024).min(message.len()))),
        )
        .collect();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = stream::iter(pieces)
        .map(Frame::data)
        .chain(stream::once(async move { Frame::trailers(trailers) }))
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A valid message of about `total` bytes: field 1 (a string) of `x`s.
fn oversized_message(total: usize) -> Bytes {
    let len = total.saturating_sub(6).max(1);
    let mut buf = BytesMut::with_capacity(len + 6);
    buf.put_u8(0x0a);
    let mut n = len as u64;
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
    buf.put_bytes(b'x', len);
    buf.freeze()
}

/// `response` with its headers sent and its stream reset after the first data frame: for a unary answer
/// after half of it (the message never completes), for a `streaming` one after the whole first message.
fn reset_after_first(response: Response, streaming: bool) -> Response {
    let (parts, body) = response.into_parts();
    let first = body
        .into_data_stream()
        .take(1)
        .map(move |chunk| match chunk {
            Ok(bytes) if streaming => Ok(bytes),
            Ok(bytes) => Ok(bytes.slice(..bytes.len() / 2)),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
    let reset = stream::once(async move {
        // A streaming answer's first message is delivered before the reset.
        if streaming {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))
    });
    Response::from_parts(parts, Body::from_stream(first.chain(reset)))
}
