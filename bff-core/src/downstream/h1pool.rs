//! The lean HTTP/1.1 connection pool of one plain `http://` instance, layer 6's fast path: idle connections on
//! a stack (the most recently used first, so a burst's spare connections age out at the bottom), no pool key
//! hashed per call, no connect race, no boxed futures. TLS, HTTP/2 (`http2 = "always"`), gRPC, event streams
//! and health checks keep hyper-util's pooled client (`client.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::http::{Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an idle connection is kept before it is closed (as hyper-util's pooled client).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per instance (as hyper-util's pooled client, per host); a connection released when
/// the stack is full is closed.
pub(crate) const MAX_IDLE: usize = 256;

/// The idle HTTP/1.1 connections of one `http://` instance, and how to open another.
#[derive(Debug)]
pub(crate) struct H1Pool {
    /// `host:port` connected to (port 80 when the base URL names none).
    authority: String,
    /// The base URL's path without a trailing slash (`""` for none): the prefix of every request target.
    prefix: String,
    /// Bound on opening a connection (TCP connect, including name resolution).
    connect_timeout: Duration,
    /// Idle connections, the most recently released last.
    idle: Mutex<VecDeque<Idle>>,
    /// Whether the background task closing expired idle connections runs.
    reaping: AtomicBool,
}

/// An idle connection and when it was released.
#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// A connection lent for one exchange. [`Lease::release`] returns it to the pool once the answer has been
/// read to its end; dropped otherwise (an error, an unread body, a cancelled call), it closes the connection.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<H1Pool>,
    sender: SendRequest<Full<Bytes>>,
}

/// Why an exchange got no answer.
#[derive(Debug)]
pub(crate) enum PoolError {
    /// No connection could be opened (refused, unreachable, timed out, name not resolved): the cause.
    Connect(String),
    /// The connection broke before the answer's head arrived (reset, closed, not HTTP).
    Broke(hyper::Error),
}

impl H1Pool {
    /// The pool of the instance at `base`, or `None` when `base` is not a plain `http://` URL with a host.
    pub(crate) fn new(base: &str, connect_timeout: Duration) -> Option<Arc<Self>> {
        let uri: Uri = base.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(80);
        Some(Arc::new(Self {
            authority: format!("{host}:{port}"),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            connect_timeout,
            idle: Mutex::new(VecDeque::new()),
            reaping: AtomicBool::new(false),
        }))
    }

    /// The base URL's path without a trailing slash: what precedes a call's path and query in its origin-form
    /// request target.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends `request` (origin-form target, `Host` set) on an idle connection, or on a new one when none is
    /// idle or the idle one closed before the request could be written. The answer's head and the lease of
    /// its connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        if let Some(mut sender) = self.checkout().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed meanwhile; a new one is safe for any method.
                    Some(unsent) => request = unsent,
                    None => return Err(PoolError::Broke(e.into_error())),
                },
            }
        }
        // Boxed: the cold path's futures (connect, handshake) would otherwise enlarge every call's state.
        let mut sender = Box::pin(self.connect()).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, self.lease(sender))),
            Err(e) => Err(PoolError::Broke(e)),
        }
    }

    fn lease(self: &Arc<Self>, sender: SendRequest<Full<Bytes>>) -> Lease {
        Lease {
            pool: self.clone(),
            sender,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently released idle connection that is still open and ready; expired and closed ones met
    /// on the way are dropped (closed).
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let Idle { mut sender, since } = self.idle().pop_back()?;
            if since.elapsed() >= IDLE_TIMEOUT || sender.is_closed() {
                continue;
            }
            // Released as soon as its answer was read, a connection may still be finishing that exchange.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Opens a connection (TCP with `TCP_NODELAY`, then the HTTP/1.1 handshake) and spawns its driver task,
    /// which ends when the connection closes.
    async fn connect(self: &Arc<Self>) -> Result<SendRequest<Full<Bytes>>, PoolError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.authority))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(PoolError::Connect(e.to_string())),
                Err(_) => return Err(PoolError::Connect("connect timed out".to_owned())),
            };
        // Small requests and answers go out at once (as hyper-util's connector is configured).
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "downstream connection ended");
            }
        });
        self.start_reaper();
        Ok(sender)
    }

    /// Starts, once, the task that closes idle connections past [`IDLE_TIMEOUT`] while no call comes (calls
    /// close them on the way too); it ends with the pool.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(IDLE_TIMEOUT / 2);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                pool.expire(Instant::now());
            }
        });
    }

    /// Closes the idle connections released before `now - IDLE_TIMEOUT` (the oldest are at the front) and
    /// those whose peer closed them.
    fn expire(&self, now: Instant) {
        let mut idle = self.idle();
        idle.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && !i.sender.is_closed());
    }

    /// Idle connections now (tests).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

impl Lease {
    /// Returns the connection to the pool: the answer has been read to its end. A connection the peer closed,
    /// or one more than [`MAX_IDLE`], is closed instead.
    pub(crate) fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.pool.idle();
        while idle
            .front()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle {
                sender: self.sender,
                since: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use axum::http::header::HOST;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// A real HTTP/1.1 server on loopback: answers every request on a connection with `body`, counts the
    /// connections it accepted, and reports each request's head. `close_after` answers per connection before
    /// it closes the connection itself (0 = never).
    async fn server(
        close_after: usize,
    ) -> (String, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (heads, rx) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let heads = heads.clone();
                tokio::spawn(async move {
                    let mut served = 0;
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                            let body = "{\"ok\":true}";
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            served += 1;
                            if served == close_after {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (format!("http://{addr}"), accepted, rx)
    }

    fn get(pool: &H1Pool, path: &str) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = Uri::try_from(format!("{}{path}", pool.prefix())).unwrap();
        request
            .headers_mut()
            .insert(HOST, pool.authority.parse().unwrap());
        request
    }

    /// One exchange, the answer read to its end and the connection released.
    async fn exchange(pool: &Arc<H1Pool>, path: &str) -> Bytes {
        let (response, lease) = pool.send(get(pool, path)).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        lease.release();
        body
    }

    #[tokio::test]
    async fn sequential_calls_share_one_connection() {
        let (base, accepted, mut heads) = server(0).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        for _ in 0..5 {
            assert_eq!(exchange(&pool, "/users/7").await, "{\"ok\":true}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /users/7 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("host: 127.0.0.1:"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_that_are_then_reused() {
        let (base, accepted, _heads) = server(0).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        let round = || futures::future::join_all((0..4).map(|_| exchange(&pool, "/a")));
        round().await;
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=4).contains(&opened), "{opened}");
        round().await;
        assert_eq!(accepted.load(Ordering::SeqCst), opened, "no new connection");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let (base, accepted, _heads) = server(1).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        for _ in 0..3 {
            exchange(&pool, "/a").await;
            // Let the connection's task see the close before the next call (the race itself is covered by
            // the unsent-request retry, which hyper reports only when the request was never written).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unread_answer_closes_its_connection() {
        let (base, accepted, _heads) = server(0).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        let (response, lease) = pool.send(get(&pool, "/a")).await.unwrap();
        drop((response, lease));
        assert_eq!(pool.idle_count(), 0);
        exchange(&pool, "/a").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_base_path_prefixes_every_target() {
        let (base, _accepted, mut heads) = server(0).await;
        let pool = H1Pool::new(&format!("{base}/v2/"), Duration::from_secs(1)).unwrap();
        exchange(&pool, "/items?id=1").await;
        let head = heads.recv().await.unwrap();
        assert!(
            head.starts_with("GET /v2/items?id=1 HTTP/1.1\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let pool =
            H1Pool::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
        assert!(matches!(
            pool.send(get(&pool, "/a")).await,
            Err(PoolError::Connect(_))
        ));
    }

    #[tokio::test]
    async fn expired_idle_connections_are_closed() {
        let (base, _accepted, _heads) = server(0).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        exchange(&pool, "/a").await;
        assert_eq!(pool.idle_count(), 1);
        pool.expire(Instant::now() + IDLE_TIMEOUT / 2);
        assert_eq!(pool.idle_count(), 1);
        pool.expire(Instant::now() + IDLE_TIMEOUT);
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn only_plain_http_bases_get_a_pool() {
        assert!(H1Pool::new("https://users.internal", Duration::from_secs(1)).is_none());
        assert!(H1Pool::new("not a url", Duration::from_secs(1)).is_none());
        let pool = H1Pool::new("http://users.internal", Duration::from_secs(1)).unwrap();
        assert_eq!(pool.authority, "users.internal:80");
        assert_eq!(pool.prefix(), "");
    }
}
