//! The first-bytes / protocol-detection timeout: a new connection must send its first bytes, and an HTTP/2
//! client its whole 24-byte preface, within a bounded time, or it is closed. hyper-util's automatic protocol
//! detection waits without a bound, so the gateway reads the first bytes itself and replays them to hyper.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection's first bytes announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anything that is not the HTTP/2 preface (HTTP/1 is parsed, and bounded, by hyper from here on).
    Http1,
    /// The complete HTTP/2 preface.
    Http2,
}

/// Reads the first bytes of `io` until they either diverge from the HTTP/2 preface or complete it, within
/// `timeout`; returns the connection with those bytes replayed first. A connection that closes, or stays
/// (partly) silent for `timeout`, is an error: the caller drops it.
pub async fn detect<S: AsyncRead + Unpin>(
    mut io: S,
    timeout: Duration,
) -> io::Result<(Protocol, Prefixed<S>)> {
    let mut buf = [0u8; 24];
    let mut filled = 0;
    let protocol = tokio::time::timeout(timeout, async {
        loop {
            let n = io.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            filled += n;
            if buf[..filled] != H2_PREFACE[..filled] {
                return Ok(Protocol::Http1);
            }
            if filled == H2_PREFACE.len() {
                return Ok(Protocol::Http2);
            }
        }
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok((
        protocol,
        Prefixed {
            prefix: buf,
            len: filled,
            pos: 0,
            inner: io,
        },
    ))
}

/// A connection whose first bytes, already read, are replayed before the rest.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: [u8; 24],
    len: usize,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// The connection underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether some of the first bytes are still to be replayed.
    pub fn has_prefix(&self) -> bool {
        self.pos < self.len
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// HTTP/1 is recognised from its first byte and the bytes are replayed; a complete preface is HTTP/2; a
    /// half preface or silence times out.
    #[tokio::test(start_paused = true)]
    async fn detects_and_replays_or_times_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (protocol, mut io) = detect(server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        let mut head = [0u8; 16];
        io.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"GET / HTTP/1.1\r\n");

        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(H2_PREFACE).await.unwrap();
        let (protocol, _) = detect(server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(protocol, Protocol::Http2);

        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let err = detect(server, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (_client, server) = tokio::io::duplex(1024);
        let err = detect(server, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
