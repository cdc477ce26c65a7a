//! Parking idle HTTP/1 keep-alive connections outside hyper. While a connection waits for its next request
//! inside hyper it holds hyper's 8 KiB read buffer, 8 KiB write buffer and dispatcher; once it has been quiet
//! for `park_idle_after_ms`, [`crate::server`] closes hyper's side gracefully — [`Parkable`] keeps the socket
//! open by swallowing hyper's shutdown — takes the socket, the service and any bytes hyper had buffered back
//! (`into_parts`), waits for the client's next bytes with no buffer at all ([`ParkIo::poll_peek`]), and serves
//! them with a fresh hyper connection. [`ParkState`] says when a connection is quiet enough for that: every
//! request answered and its body read to the end, everything flushed, nothing read or written for a while.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::detect::Prefixed;

/// Connections parked so far by this process (all listeners).
static PARKS: AtomicU64 = AtomicU64::new(0);
/// Connections parked now.
static PARKED: AtomicI64 = AtomicI64::new(0);

/// Connections parked so far by this process, on all listeners (`bff_connections_parks_total`).
pub fn parks_total() -> u64 {
    PARKS.load(Ordering::Relaxed)
}

/// Connections parked now, on all listeners (`bff_connections_parked`).
pub fn parked_now() -> i64 {
    PARKED.load(Ordering::Relaxed)
}

/// One parked connection, counted while it lives.
#[derive(Debug)]
pub struct Parked(());

impl Parked {
    /// Counts a connection as parked until the returned value is dropped.
    pub fn enter() -> Self {
        PARKS.fetch_add(1, Ordering::Relaxed);
        PARKED.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the connection task reads to decide whether its connection is idle: written by the IO adapter (inside
/// hyper) and by the service (request dispatched, 101 answered), all in the connection's own task.
#[derive(Debug, Default)]
pub struct ParkState {
    /// Bumped by every read that returned bytes and every write attempt.
    activity: AtomicU64,
    /// Requests dispatched on this client connection.
    requests: AtomicU64,
    /// The last request's body has not been read to its end (hyper may still be reading or draining it).
    body_open: AtomicBool,
    /// Never park again: the connection was upgraded (101).
    never: AtomicBool,
    /// A write was attempted since hyper's last completed flush (hyper may hold unsent bytes).
    unflushed: AtomicBool,
    /// hyper shut the connection down on its own (it decided to close it).
    shut: AtomicBool,
    /// The connection task is parking the connection: hyper's shutdown is swallowed.
    parking: AtomicBool,
}

impl ParkState {
    fn bump(&self) {
        // One writer (the connection's own task): no read-modify-write needed.
        let n = self.activity.load(Ordering::Relaxed);
        self.activity.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Reads and writes seen so far (a counter compared between two looks).
    pub fn activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }

    /// Requests dispatched so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A request was dispatched: its body, watched to its end when it has one (hyper is idle after the
    /// answer only once the body has been read completely).
    pub fn request(self: &std::sync::Arc<Self>, body: hyper::body::Incoming) -> axum::body::Body {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let open = !hyper::body::Body::is_end_stream(&body);
        self.body_open.store(open, Ordering::Relaxed);
        if open {
            axum::body::Body::new(Watched {
                inner: body,
                state: self.clone(),
            })
        } else {
            axum::body::Body::new(body)
        }
    }

    /// A response of `status` is about to be sent; a 101 means the connection leaves hyper for good.
    pub fn response(&self, status: axum::http::StatusCode) {
        if status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
            self.never.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the connection may be parked now: nothing read or written since `last` (the activity at the
    /// previous look, updated here), at least one request dispatched since the hyper connection started with
    /// `served` requests behind it (hyper is only idle after an answer), every dispatched request answered
    /// (`finished` response bodies ended), the last one's body read to its end, everything written flushed, and hyper
    /// not closing the connection itself.
    pub fn quiet(&self, last: &mut u64, served: u64, finished: u64) -> bool {
        let activity = self.activity();
        let unchanged = activity == *last;
        *last = activity;
        let requests = self.requests();
        unchanged
            && requests > served
            && requests == finished
            && !self.body_open.load(Ordering::Relaxed)
            && !self.never.load(Ordering::Relaxed)
            && !self.unflushed.load(Ordering::Relaxed)
            && !self.shut.load(Ordering::Relaxed)
    }

    /// Starts (or abandons) parking: while set, hyper's shutdown of the connection is swallowed.
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
    }

    /// Whether the connection task is parking the connection.
    pub fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }
}

/// A request body that tells its [`ParkState`] when it has been read to its end.
#[derive(Debug)]
struct Watched {
    inner: hyper::body::Incoming,
    state: std::sync::Arc<ParkState>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.state.body_open.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection as hyper sees it: bytes to replay first (what an earlier hyper connection had read but not
/// parsed), activity reported to a [`ParkState`], and hyper's shutdown swallowed while parking.
#[derive(Debug)]
pub struct Parkable<I> {
    inner: I,
    replay: Bytes,
    state: std::sync::Arc<ParkState>,
}

impl<I> Parkable<I> {
    /// `inner` with `replay` read first, reporting to `state`.
    pub fn new(inner: I, replay: Bytes, state: std::sync::Arc<ParkState>) -> Self {
        Self {
            inner,
            replay,
            state,
        }
    }

    /// The connection and the bytes still to replay: `unparsed` (hyper's read buffer) before what this
    /// adapter had not handed to hyper yet. Copied out when there are any, since `unparsed` is a view of
    /// hyper's whole read buffer and would keep it alive.
    pub fn into_inner(self, unparsed: Bytes) -> (I, Bytes) {
        let replay = if unparsed.is_empty() && self.replay.is_empty() {
            Bytes::new()
        } else {
            let mut both = BytesMut::with_capacity(unparsed.len() + self.replay.len());
            both.extend_from_slice(&unparsed);
            both.extend_from_slice(&self.replay);
            both.freeze()
        };
        (self.inner, replay)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Parkable<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            this.state.bump();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bump();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> Parkable<I> {
    fn wrote(&self) {
        self.state.bump();
        self.state.unflushed.store(true, Ordering::Relaxed);
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Parkable<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.state.unflushed.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.parking() {
            // hyper has flushed (its shutdown flushes first); the socket stays open for the next request.
            return Poll::Ready(Ok(()));
        }
        this.state.shut.store(true, Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A client connection that may wait, parked, for its next bytes without a buffer.
pub trait ParkIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether this connection can be parked (a TLS stream cannot: its plaintext may sit in rustls' buffers
    /// where socket readiness does not see it).
    fn can_park(&self) -> bool;

    /// Resolves once the client has sent bytes (`Ok(true)`) or closed its side (`Ok(false)`), without
    /// consuming anything.
    fn poll_peek(&self, cx: &mut Context<'_>) -> Poll<io::Result<bool>>;
}

impl ParkIo for TcpStream {
    fn can_park(&self) -> bool {
        true
    }

    fn poll_peek(&self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let n = std::task::ready!(TcpStream::poll_peek(self, cx, &mut buf))?;
        Poll::Ready(Ok(n > 0))
    }
}

impl ParkIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn can_park(&self) -> bool {
        false
    }

    fn poll_peek(&self, _cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        Poll::Ready(Ok(true))
    }
}

impl<S: ParkIo> ParkIo for Prefixed<S> {
    fn can_park(&self) -> bool {
        self.get_ref().can_park()
    }

    fn poll_peek(&self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.has_prefix() {
            return Poll::Ready(Ok(true));
        }
        self.get_ref().poll_peek(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Quiet only with every request answered, its body read, everything flushed, nothing since the last
    /// look, hyper not closing and no upgrade.
    #[tokio::test]
    async fn quiet_needs_every_condition() {
        let state = Arc::new(ParkState::default());
        let (client, server) = tokio::io::duplex(1024);
        let mut io = Parkable::new(server, Bytes::new(), state.clone());
        let mut last = state.activity();
        assert!(!state.quiet(&mut last, 0, 0), "no request yet");
        state.requests.fetch_add(1, Ordering::Relaxed);
        assert!(!state.quiet(&mut last, 0, 0), "not answered");
        assert!(state.quiet(&mut last, 0, 1), "answered, nothing since");
        assert!(
            !state.quiet(&mut last, 1, 1),
            "no request on this hyper connection"
        );
        io.write_all(b"x").await.unwrap();
        assert!(!state.quiet(&mut last, 0, 1), "written since the last look");
        assert!(!state.quiet(&mut last, 0, 1), "not flushed");
        io.flush().await.unwrap();
        let _ = state.quiet(&mut last, 0, 1);
        assert!(state.quiet(&mut last, 0, 1), "flushed, then quiet");
        state.body_open.store(true, Ordering::Relaxed);
        assert!(!state.quiet(&mut last, 0, 1), "body not read to its end");
        state.body_open.store(false, Ordering::Relaxed);
        state.response(axum::http::StatusCode::SWITCHING_PROTOCOLS);
        assert!(!state.quiet(&mut last, 0, 1), "upgraded");
        drop(client);
    }

    /// hyper's shutdown reaches the socket unless the connection is being parked (then the socket stays
    /// open); a shutdown that went through rules parking out.
    #[tokio::test]
    async fn shutdown_swallowed_only_while_parking() {
        let state = Arc::new(ParkState::default());
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = Parkable::new(server, Bytes::new(), state.clone());
        state.set_parking(true);
        io.shutdown().await.unwrap();
        io.write_all(b"still open").await.unwrap();
        let mut buf = [0u8; 10];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still open");
        state.set_parking(false);
        io.shutdown().await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
        state.requests.fetch_add(1, Ordering::Relaxed);
        let mut last = state.activity();
        assert!(!state.quiet(&mut last, 0, 1), "hyper closed it");
    }

    /// Replayed bytes come first; what is left to replay is hyper's unparsed bytes, then the adapter's own,
    /// copied out of hyper's buffer.
    #[tokio::test]
    async fn replay_and_leftovers() {
        let state = Arc::new(ParkState::default());
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = Parkable::new(server, Bytes::from_static(b"GET /a"), state.clone());
        client.write_all(b" HTTP/1.1").await.unwrap();
        let mut buf = [0u8; 3];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET");
        let hyper_buffer = Bytes::from(vec![b'x'; 8192]);
        let (_, replay) = io.into_inner(hyper_buffer.slice(8190..));
        assert_eq!(&replay[..], b"xx /a");
        let io = Parkable::new(tokio::io::empty(), Bytes::new(), state);
        let (_, replay) = io.into_inner(hyper_buffer.slice(8192..));
        assert!(replay.is_empty());
    }
}
