//! The floor of a hyper reverse proxy, for comparison (bench/notes.md): GET requests on `BARE_LISTEN`
//! (default 127.0.0.1:18191) are sent to `BARE_BACKEND` (default 127.0.0.1:19001) over pooled HTTP/1.1
//! connections, the answer's body collected and returned with its status and `Content-Type`. `/healthz` is
//! answered locally. One worker thread, mimalloc, as the gateways in `bench/callgrind`. No timeouts, no
//! errors handled beyond a 502: a measuring device, not a product.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Idle connections to the backend.
type Pool = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

/// An idle connection that is still open, or a new one.
async fn checkout(pool: &Pool, backend: &str) -> Option<SendRequest<Full<Bytes>>> {
    loop {
        let idle = pool.lock().ok()?.pop();
        match idle {
            Some(mut sender) => {
                if sender.ready().await.is_ok() {
                    return Some(sender);
                }
            }
            None => break,
        }
    }
    let tcp = TcpStream::connect(backend).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One answer: the backend's, or a 502.
async fn proxy(pool: Pool, backend: Arc<str>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    let answer = async {
        let mut sender = checkout(&pool, &backend).await?;
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let out = Request::builder()
            .uri(path)
            .header("host", &*backend)
            .body(Full::new(Bytes::new()))
            .ok()?;
        let answer = sender.send_request(out).await.ok()?;
        pool.lock().ok()?.push(sender);
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = parts.status;
        if let Some(content_type) = parts.headers.get("content-type") {
            response
                .headers_mut()
                .insert("content-type", content_type.clone());
        }
        Some(response)
    };
    answer.await.unwrap_or_else(|| {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    })
}

fn main() {
    let listen = std::env::var("BARE_LISTEN").unwrap_or_else(|_| "127.0.0.1:18191".into());
    let backend: Arc<str> = std::env::var("BARE_BACKEND")
        .unwrap_or_else(|_| "127.0.0.1:19001".into())
        .into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind(&listen).await.expect("the listen address");
        let pool: Pool = Arc::default();
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            let (pool, backend) = (pool.clone(), backend.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let (pool, backend) = (pool.clone(), backend.clone());
                    async move { Ok::<_, std::convert::Infallible>(proxy(pool, backend, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
}
