//! Bounds on a connection before any request is read: how many one client
//! address may hold at once, and how long a connection may stay silent.
//!
//! A client that opens connections and sends nothing would otherwise hold
//! them forever (hyper times out request headers only once they start, and
//! an HTTP/2 or keep-alive connection between requests not at all), and a
//! few thousand of them fill the listener's `max_connections`. So every
//! connection is closed after `idle_timeout` without a byte read or
//! written, and a client address holds at most `max_per_client`
//! connections: one more is closed at once, before the TLS handshake, so
//! that it holds none of the listener's slots.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Connections held per client address.
#[derive(Debug, Clone)]
pub(crate) struct PerClient {
    limit: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted for its address; uncounted when dropped.
pub(crate) struct Admitted {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub(crate) fn new(limit: usize) -> PerClient {
        PerClient {
            limit: limit.max(1),
            held: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` when that address already
    /// holds its limit.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<Admitted> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Admitted {
            ip,
            held: self.held.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// An I/O stream that fails with `TimedOut` once `idle` has passed
/// without a byte read or written. A request in progress is bounded by
/// the request timeout, which is shorter, so only silent connections meet
/// this one.
pub(crate) struct Idle<T> {
    io: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    pub(crate) fn new(io: T, idle: Duration) -> Idle<T> {
        Idle {
            io,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progressed(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }

    /// `Pending` while the connection may still wait; the error once it
    /// has been silent too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Idle<T> {
    /// What a write of the inner stream gave: progress resets the timer;
    /// a write still waiting fails once the connection has been silent
    /// too long.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.expired(cx).map(|r| r.map(|()| 0)),
            other => other,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.expired(cx),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    use super::super::{serve, Limits};
    use super::*;

    /// Whether the server has closed `c` (end of stream or reset) within
    /// `wait`; `false` if it is still open, silent.
    async fn closed(c: &mut TcpStream, wait: Duration) -> bool {
        let mut b = [0u8; 64];
        match tokio::time::timeout(wait, c.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("the server sent something unasked"),
            Err(_) => false,
        }
    }

    /// A plain HTTP/1.1 GET from `from`, answered 200.
    async fn get_from(from: &str, to: SocketAddr) -> bool {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut c = socket.connect(to).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200")
    }

    /// Idle connections beyond an address's share are closed at once, the
    /// admitted ones once silent for idle_timeout, and another client is
    /// answered throughout.
    #[tokio::test]
    async fn silent_and_excess_connections_are_closed_and_others_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let limits = Limits {
            max_connections: 64,
            max_connections_per_client: 4,
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, None, router, limits, async {
            let _ = stopped.await;
        }));
        let mut flood = Vec::new();
        for _ in 0..10 {
            flood.push(TcpStream::connect(addr).await.unwrap());
        }
        // Another address is served while 127.0.0.1 holds its share.
        assert!(get_from("127.0.0.2", addr).await);
        let mut open = 0;
        for c in &mut flood {
            if !closed(c, Duration::from_millis(300)).await {
                open += 1;
            }
        }
        assert_eq!(open, 4, "127.0.0.1 keeps exactly its 4 connections");
        // Silent for idle_timeout: closed, and the address is free again.
        tokio::time::sleep(Duration::from_millis(5500)).await;
        for c in &mut flood {
            assert!(
                closed(c, Duration::from_secs(2)).await,
                "an idle connection stayed open"
            );
        }
        assert!(get_from("127.0.0.1", addr).await);
        let _ = stop.send(());
        let _ = server.await;
    }

    #[test]
    fn an_address_holds_at_most_its_limit() {
        let per = PerClient::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = per.admit(a).unwrap();
        let _two = per.admit(a).unwrap();
        assert!(per.admit(a).is_none());
        assert!(per.admit(b).is_some(), "another address is not held up");
        drop(one);
        assert!(
            per.admit(a).is_some(),
            "a closed connection frees its place"
        );
    }
}
