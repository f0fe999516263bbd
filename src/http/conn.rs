//! Bounds on a connection before and between requests: how many one
//! client address may hold at once, and how long a connection may go
//! without a request.
//!
//! A client that opens connections and sends nothing would otherwise hold
//! them forever (hyper times out request headers only once they start, and
//! an HTTP/2 or keep-alive connection between requests not at all), and a
//! few thousand of them fill the listener's `max_connections`. So a client
//! address holds at most `max_per_client` connections: one more is closed
//! at once, before the TLS handshake, so that it holds none of the
//! listener's slots. And every connection is closed after `idle_timeout`
//! without progress, where progress is a request starting or ending, or a
//! byte read or written while a request is in progress ([`Activity`]).
//! Bytes that arrive while no request is in progress earn no time: a
//! slowloris client that sends an HTTP/2 HEADERS frame (or PINGs) a byte
//! at a time, which hyper bounds by no timer of its own, is closed as
//! surely as a silent one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
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

/// What the requests of one connection are doing: how many are in
/// progress, and when one last started or ended. Shared by the
/// connection's stream ([`Idle`]) and its service ([`Tracked`]), which
/// may run on other tasks (HTTP/2 streams).
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    in_progress: AtomicUsize,
    changed: Mutex<Instant>,
    /// Set when [`Idle`] ended the connection.
    timed_out: AtomicBool,
}

/// One request in progress; it ends when dropped (with the response
/// body, or with the request's future if that is dropped first).
struct InProgress(Activity);

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity(Arc::new(ActivityState {
            in_progress: AtomicUsize::new(0),
            changed: Mutex::new(Instant::now()),
            timed_out: AtomicBool::new(false),
        }))
    }

    /// Whether the connection was ended for want of progress.
    pub(crate) fn timed_out(&self) -> bool {
        self.0.timed_out.load(Ordering::Acquire)
    }

    fn begin(&self) -> InProgress {
        self.0.in_progress.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InProgress(self.clone())
    }

    fn touch(&self) {
        *self.0.changed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn busy(&self) -> bool {
        self.0.in_progress.load(Ordering::Acquire) > 0
    }

    /// When a request last started or ended (at first: the accept).
    fn changed(&self) -> Instant {
        *self.0.changed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0 .0.in_progress.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A service that counts its requests in progress in an [`Activity`],
/// each until its response body is done with.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Activity,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Activity) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let in_progress = self.activity.begin();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            // The body owns the marker: the request is in progress until
            // hyper has taken the last of it (or dropped it).
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_progress;
                    frame
                }))
            }))
        })
    }
}

/// An I/O stream that fails with `TimedOut` once `idle` has passed
/// without progress: a request of its [`Activity`] starting or ending, or
/// a byte read or written while one is in progress. A request in progress
/// is bounded by the request timeout, which is shorter, so only
/// connections without a request meet this one.
pub(crate) struct Idle<T> {
    io: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    activity: Activity,
    /// The last byte read or written while a request was in progress.
    last_byte: Instant,
}

impl<T> Idle<T> {
    pub(crate) fn new(io: T, idle: Duration, activity: Activity) -> Idle<T> {
        Idle {
            io,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            activity,
            last_byte: Instant::now(),
        }
    }

    /// Bytes moved: they earn time only while a request is in progress.
    fn progressed(&mut self) {
        if self.activity.busy() {
            let now = Instant::now();
            self.last_byte = now;
            self.timer.as_mut().reset(now + self.idle);
        }
    }

    /// `Pending` while the connection may still wait; the error once it
    /// has gone too long without progress.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer counts from the last byte; a request that started
            // or ended since then moves the deadline.
            let deadline = self.last_byte.max(self.activity.changed()) + self.idle;
            if deadline <= Instant::now() {
                self.activity.0.timed_out.store(true, Ordering::Release);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection without progress for too long",
                )));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    /// After bytes that earned no time: the error if the connection is
    /// already past its deadline (a client that never lets a read wait
    /// still meets it).
    fn still_allowed(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.activity.busy() {
            return None;
        }
        match self.expired(cx) {
            Poll::Ready(Err(e)) => Some(e),
            _ => None,
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
                    if let Some(e) = self.still_allowed(cx) {
                        return Poll::Ready(Err(e));
                    }
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
                    if let Some(e) = this.still_allowed(cx) {
                        return Poll::Ready(Err(e));
                    }
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
    use crate::metrics::{Listener, Metrics};

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
        let metrics = Arc::new(Metrics::new());
        let server = tokio::spawn(serve(
            listener,
            None,
            router,
            limits,
            metrics.clone(),
            Listener::Status,
            async {
                let _ = stopped.await;
            },
        ));
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
        let text = metrics.encode();
        assert!(
            text.contains(
                "acme_ca_connections_closed_total{listener=\"status\",reason=\"client_limit\"} 6\n"
            ),
            "{text}"
        );
        // Silent for idle_timeout: closed, and the address is free again.
        tokio::time::sleep(Duration::from_millis(5500)).await;
        for c in &mut flood {
            assert!(
                closed(c, Duration::from_secs(2)).await,
                "an idle connection stayed open"
            );
        }
        assert!(get_from("127.0.0.1", addr).await);
        // Counted as each connection's task ends, just after its socket
        // closed.
        let idle = "acme_ca_connections_closed_total{listener=\"status\",reason=\"idle\"} 4\n";
        tokio::time::timeout(Duration::from_secs(10), async {
            while !metrics.encode().contains(idle) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("four connections counted as idle");
        let _ = stop.send(());
        let _ = server.await;
    }

    /// One connection served as `serve` serves it (stream under [`Idle`],
    /// service under [`Tracked`], HTTP/1.1 or HTTP/2 by the preface) on
    /// the far end of an in-memory pipe: the client's end, the
    /// connection's task, which ends when the connection does, and its
    /// activity.
    fn pipe(
        idle: Duration,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
        Activity,
    ) {
        use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
        use hyper_util::server::conn::auto;
        use hyper_util::service::TowerToHyperService;

        let (client, server) = tokio::io::duplex(64 * 1024);
        let router = Router::new().route("/", get(|| async { "ok" }));
        let activity = Activity::new();
        let io = Idle::new(server, idle, activity.clone());
        let svc = TowerToHyperService::new(Tracked::new(router, activity.clone()));
        let task = tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            builder.http2().timer(TokioTimer::new());
            let _ = builder.serve_connection(TokioIo::new(io), svc).await;
        });
        (client, task, activity)
    }

    /// Regression: an HTTP/2 HEADERS frame sent a byte at a time kept a
    /// connection open for ever (every byte reset the idle timer, and
    /// hyper's HTTP/2 has no header timeout). Bytes without a request in
    /// progress now earn no time.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_http2_header_block_is_closed() {
        let idle = Duration::from_secs(2);
        let (mut c, task, activity) = pipe(idle);
        let started = Instant::now();
        c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        c.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // SETTINGS
                                                                  // HEADERS, END_HEADERS, stream 1, announcing 16 KiB of header block.
        c.write_all(&[0, 0x40, 0, 1, 4, 0, 0, 0, 1]).await.unwrap();
        let mut trickled = 0;
        while !task.is_finished() {
            assert!(
                started.elapsed() < idle * 10,
                "a connection trickling a header block stayed open ({trickled} bytes)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            if c.write_all(&[0]).await.is_err() {
                break;
            }
            trickled += 1;
        }
        task.await.unwrap();
        assert!(activity.timed_out());
        assert!(trickled >= 5, "closed before the trickle began");
        assert!(started.elapsed() < idle + Duration::from_secs(1));
    }

    /// Requests keep a connection open however long it lives; once they
    /// stop, it is closed after `idle`, not before.
    #[tokio::test(start_paused = true)]
    async fn requests_keep_a_connection_and_silence_ends_it() {
        let idle = Duration::from_secs(2);
        let (mut c, task, activity) = pipe(idle);
        for _ in 0..10 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            while !answer.ends_with(b"\r\n\r\nok") {
                let mut b = [0u8; 512];
                let n = c.read(&mut b).await.unwrap();
                assert!(n > 0, "closed while requests kept coming");
                answer.extend_from_slice(&b[..n]);
            }
            assert!(answer.starts_with(b"HTTP/1.1 200"));
            tokio::time::sleep(idle * 3 / 4).await;
        }
        assert!(!task.is_finished() && !activity.timed_out());
        let silent = Instant::now() - idle * 3 / 4;
        tokio::time::timeout(idle * 10, task)
            .await
            .expect("a silent connection stayed open")
            .unwrap();
        assert!(silent.elapsed() >= idle);
        assert!(activity.timed_out());
    }

    /// A request is in progress from the service call until its response
    /// body is done with, not only until the handler returns.
    #[tokio::test]
    async fn a_request_is_in_progress_until_its_body_is_dropped() {
        use tower::ServiceExt;
        let activity = Activity::new();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let svc = Tracked::new(router, activity.clone());
        assert!(!activity.busy());
        let request = axum::http::Request::get("/").body(Body::empty()).unwrap();
        let response = svc.oneshot(request).await.unwrap();
        assert!(activity.busy(), "the body is still to be sent");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert!(!activity.busy());
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
