//! The lean HTTP/1.1 connection pool of one plain `http://` instance, layer 6's fast path: idle connections on
//! a stack (the most recently used first, so a burst's spare connections age out at the bottom), no pool key
//! hashed per call, no connect race, no boxed futures, and no task per connection: the call that borrows a
//! connection drives it (writes the request, reads the answer) inside its own task, so an answer's arrival
//! wakes that call directly instead of a connection task that then wakes it. TLS, HTTP/2
//! (`http2 = "always"`), gRPC, event streams and health checks keep hyper-util's pooled client (`client.rs`).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::http::{Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::conn::gate::WakeFlag;

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
    conn: Box<Conn>,
    since: Instant,
}

/// One HTTP/1.1 connection: the handle requests are sent through and the state machine that does the I/O,
/// which makes progress only while its borrower polls it ([`Conn::drive`]).
#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Connection<TokioIo<TcpStream>, Full<Bytes>>,
    /// The driver finished (the connection closed or broke): it must not be polled again.
    ended: bool,
    /// What the driver is polled with: records that it was woken, then wakes its borrower's task. The
    /// borrower's task polls all of a composition's calls whenever one of them is woken; the flag lets the
    /// others skip polling their idle drivers, as a task per connection would not have been polled either.
    flag: WakeFlag,
}

impl Conn {
    fn new(
        sender: SendRequest<Full<Bytes>>,
        driver: Connection<TokioIo<TcpStream>, Full<Bytes>>,
    ) -> Self {
        Self {
            sender,
            driver,
            ended: false,
            flag: WakeFlag::new(),
        }
    }

    /// Polls the driver once (with its own waker), unless it has ended.
    fn poll_driver(&mut self) {
        if !self.ended
            && Pin::new(&mut self.driver)
                .poll(&mut Context::from_waker(self.flag.waker()))
                .is_ready()
        {
            self.ended = true;
        }
    }

    /// Lets the connection make progress (write a queued request, read an answer into its body channel)
    /// when it was woken since it was last polled; a wake-up from now on wakes `cx`'s task.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if self.flag.take(cx.waker()) {
            self.poll_driver();
        }
    }

    /// Whether the connection is open and can take the next request now. Polls the driver only when it was
    /// woken since it was last polled (a peer's close, say): otherwise nothing changed since the poll that
    /// finished the last exchange.
    fn reusable(&mut self) -> bool {
        if self.flag.take_unregistered() {
            self.poll_driver();
        }
        !self.ended && !self.sender.is_closed() && self.sender.is_ready()
    }
}

/// Polls `progress` after letting `conn` make progress. `progress` can only advance when `conn` does (the
/// answer's head and body are handed over by the connection's state machine, which nothing else polls), so
/// it is polled without a waker: the connection's driver wakes the task.
fn after_driving<T>(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    progress: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    conn.drive(cx);
    progress(&mut Context::from_waker(Waker::noop()))
}

/// A connection lent for one exchange. Its answer's body is read with [`Lease::frame`], which drives the
/// connection; [`Lease::release`] returns the connection to the pool once the answer has been read to its
/// end; dropped otherwise (an error, an unread body, a cancelled call), it closes the connection.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<H1Pool>,
    conn: Box<Conn>,
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
        if let Some(mut conn) = self.checkout() {
            let mut answer = pin!(conn.sender.try_send_request(request));
            match poll_fn(|cx| after_driving(&mut conn, cx, |cx| answer.as_mut().poll(cx))).await {
                Ok(response) => return Ok((response, self.lease(conn))),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed meanwhile; a new one is safe for any method.
                    Some(unsent) => request = unsent,
                    None => return Err(PoolError::Broke(e.into_error())),
                },
            }
        }
        // Boxed: the cold path's futures (connect, handshake) would otherwise enlarge every call's state.
        let mut conn = Box::pin(self.connect()).await?;
        let mut answer = pin!(conn.sender.send_request(request));
        match poll_fn(|cx| after_driving(&mut conn, cx, |cx| answer.as_mut().poll(cx))).await {
            Ok(response) => Ok((response, self.lease(conn))),
            Err(e) => Err(PoolError::Broke(e)),
        }
    }

    fn lease(self: &Arc<Self>, conn: Box<Conn>) -> Lease {
        Lease {
            pool: self.clone(),
            conn,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently released idle connection that is still open and ready; expired, closed and busy ones
    /// met on the way are dropped (closed).
    fn checkout(&self) -> Option<Box<Conn>> {
        loop {
            let Idle { mut conn, since } = self.idle().pop_back()?;
            if since.elapsed() < IDLE_TIMEOUT && conn.reusable() {
                return Some(conn);
            }
        }
    }

    /// Opens a connection (TCP with `TCP_NODELAY`, then the HTTP/1.1 handshake). It has no task of its own:
    /// whoever borrows it drives it.
    async fn connect(self: &Arc<Self>) -> Result<Box<Conn>, PoolError> {
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
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        self.start_reaper();
        Ok(Box::new(Conn::new(sender, driver)))
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
    /// those whose peer closed them (noticed by polling each once: nothing drives an idle connection).
    fn expire(&self, now: Instant) {
        let mut idle = self.idle();
        idle.retain_mut(|i| now.duration_since(i.since) < IDLE_TIMEOUT && i.conn.reusable());
    }

    /// Idle connections now (tests).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

impl Lease {
    /// The next frame of `body`, the answer this lease's connection carries (`None` at its end), driving the
    /// connection meanwhile.
    pub(crate) async fn frame(
        &mut self,
        body: &mut Incoming,
    ) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        poll_fn(|cx| after_driving(&mut self.conn, cx, |cx| Pin::new(&mut *body).poll_frame(cx)))
            .await
    }

    /// Returns the connection to the pool: the answer has been read to its end. A connection that closed,
    /// or one more than [`MAX_IDLE`], is closed instead.
    pub(crate) fn release(self) {
        if self.conn.ended || self.conn.sender.is_closed() {
            return;
        }
        // Idle, the connection wakes no task (a wake-up is still recorded, for the next checkout).
        self.conn.flag.wake_no_task();
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
                conn: self.conn,
                since: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use axum::http::header::HOST;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// A real HTTP/1.1 server on loopback: counts the connections it accepted and answers every request head
    /// with the bytes `answer` makes of it, written in two halves `pause` apart when `pause` is not zero.
    /// `close_after` answers per connection before it closes the connection itself (0 = never).
    async fn serve_with(
        close_after: usize,
        pause: Duration,
        answer: impl Fn(String) -> Vec<u8> + Clone + Send + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
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
                            let bytes = answer(String::from_utf8_lossy(&head).into_owned());
                            let (first, second) = if pause.is_zero() {
                                (&bytes[..], &[][..])
                            } else {
                                bytes.split_at(bytes.len() / 2)
                            };
                            if socket.write_all(first).await.is_err() {
                                return;
                            }
                            if !second.is_empty() {
                                tokio::time::sleep(pause).await;
                                if socket.write_all(second).await.is_err() {
                                    return;
                                }
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
        (format!("http://{addr}"), accepted)
    }

    /// [`serve_with`] answering `{"ok":true}` at once, reporting each request's head.
    async fn server(
        close_after: usize,
    ) -> (String, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
        let (heads, rx) = mpsc::unbounded_channel();
        let (base, accepted) = serve_with(close_after, Duration::ZERO, move |head| {
            let _ = heads.send(head);
            let body = "{\"ok\":true}";
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .await;
        (base, accepted, rx)
    }

    /// [`serve_with`] answering `len` bytes (the alphabet, repeated) in two halves `pause` apart: a body that
    /// spans many reads and arrives in two bursts.
    async fn slow_server(len: usize, pause: Duration) -> (String, Arc<AtomicUsize>) {
        serve_with(0, pause, move |_| {
            let mut answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n").into_bytes();
            answer.extend((0..len).map(|i| b'a' + (i % 26) as u8));
            answer
        })
        .await
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
        let (response, mut lease) = pool.send(get(pool, path)).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        while let Some(frame) = lease.frame(&mut incoming).await {
            if let Ok(data) = frame.unwrap().into_data() {
                body.extend_from_slice(&data);
            }
        }
        lease.release();
        Bytes::from(body)
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

    /// The call drives its connection itself: a large answer arriving in two bursts is read whole, and the
    /// connection is then idle and reused, on either scheduler.
    async fn large_answers_in_bursts_are_read_whole_on_one_connection() {
        let len = 300_000;
        let (base, accepted) = slow_server(len, Duration::from_millis(30)).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        for _ in 0..3 {
            let body = exchange(&pool, "/big").await;
            assert_eq!(body.len(), len);
            assert!(
                body.iter()
                    .enumerate()
                    .all(|(i, b)| *b == b'a' + (i % 26) as u8)
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn large_answers_current_thread() {
        large_answers_in_bursts_are_read_whole_on_one_connection().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_answers_multi_thread() {
        large_answers_in_bursts_are_read_whole_on_one_connection().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_on_many_threads_reuse_connections() {
        let (base, accepted, _heads) = server(0).await;
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        let round = || {
            let pool = pool.clone();
            async move {
                let calls = (0..8).map(|_| {
                    let pool = pool.clone();
                    tokio::spawn(async move { exchange(&pool, "/a").await })
                });
                for body in futures::future::join_all(calls).await {
                    assert_eq!(body.unwrap(), "{\"ok\":true}");
                }
            }
        };
        for _ in 0..6 {
            round().await;
        }
        // 48 calls, at most 8 at a time: never more connections than calls in flight.
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=8).contains(&opened), "{opened}");
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
            // Let the close reach the connection before the next call (the race itself is covered by
            // the unsent-request retry, which hyper reports only when the request was never written).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// An idle connection whose server closed it is noticed (its waker fired) and dropped by the reaper's
    /// pass, before any call takes it.
    #[tokio::test]
    async fn the_reaper_drops_idle_connections_the_server_closed() {
        // Answers one request, then closes the connection 50 ms later (while it is idle in the pool).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        let pool = H1Pool::new(&base, Duration::from_secs(1)).unwrap();
        assert_eq!(exchange(&pool, "/a").await, "ok");
        pool.expire(Instant::now());
        assert_eq!(pool.idle_count(), 1, "open and idle: kept");
        tokio::time::sleep(Duration::from_millis(150)).await;
        pool.expire(Instant::now());
        assert_eq!(pool.idle_count(), 0, "closed by the server: dropped");
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
