//! Early answers over HTTP/2: what is left of the request body is read and
//! dropped, within bounds, before the answer goes out.
//!
//! A server may answer before it has read the whole request body: a body
//! over the limit, a 404, a wrong method. RFC 9113 §8.1 lets it then ask
//! the client to stop sending with RST_STREAM(NO_ERROR), and hyper does
//! that; but widely deployed clients treat any reset of a stream they are
//! still uploading on as a failure and throw the answer away (curl 7.88,
//! Debian 12's: "HTTP/2 stream was not closed cleanly", exit 92), where over
//! HTTP/1.1 they get the 400 or 413 problem document.
//!
//! So for HTTP/2 the body the handler sees shares the real one, and once
//! the handler has answered, the rest of the body is read and discarded: at
//! most [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`]. A client that sent a
//! little too much then ends its upload normally and reads the answer; one
//! that sends more still gets the reset after the complete answer, as the
//! RFC allows. HTTP/1.1 needs none of this: hyper closes the connection
//! after an answer to a request whose body was not read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Version};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};

/// At most this much of an unread request body is read after the answer.
pub(super) const DRAIN_LIMIT: usize = 1024 * 1024;
/// For at most this long.
pub(super) const DRAIN_TIME: Duration = Duration::from_secs(2);

type Shared = Arc<Mutex<Incoming>>;

/// Turns a request from hyper into one for the router; for HTTP/2 also
/// gives the handle that [`drain`] reads the rest of the body through.
pub(super) fn share(req: Request<Incoming>) -> (Request<Body>, Option<Shared>) {
    if req.version() != Version::HTTP_2 {
        return (req.map(Body::new), None);
    }
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(body));
    let seen = Request::from_parts(parts, Body::new(SharedBody(shared.clone())));
    (seen, Some(shared))
}

/// Reads and discards what the handler left of the body, within the
/// bounds above; returns whether the body was read to its end.
pub(super) async fn drain(held: Option<Shared>) -> bool {
    let Some(held) = held else { return true };
    let mut body = SharedBody(held);
    if hyper::body::Body::is_end_stream(&body) {
        return true;
    }
    let read = async {
        let mut left = DRAIN_LIMIT;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    let n = frame.data_ref().map_or(0, |d| d.len());
                    if n > left {
                        return false;
                    }
                    left -= n;
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// The handler's view of a shared request body.
struct SharedBody(Shared);

impl SharedBody {
    fn with<T>(&self, f: impl FnOnce(&mut Incoming) -> T) -> T {
        // A poisoned lock means a poll panicked; the body is still usable
        // as far as hyper is concerned.
        let mut body = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut body)
    }
}

impl hyper::body::Body for SharedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.with(|body| Pin::new(body).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.with(|body| hyper::body::Body::is_end_stream(body))
    }

    fn size_hint(&self) -> SizeHint {
        self.with(|body| hyper::body::Body::size_hint(body))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::{Channel, Full};
    use hyper::client::conn::http2::SendRequest;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::{TcpListener, TcpStream};

    use super::super::{serve, Limits};
    use super::*;

    /// A server whose one route reads at most 1 KiB, and an HTTP/2 (h2c)
    /// client on it.
    async fn server_and_client<B>() -> (tokio::sync::oneshot::Sender<()>, SendRequest<B>, String)
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/small",
            post(|body: Body| async move {
                match axum::body::to_bytes(body, 1024).await {
                    Ok(b) => (StatusCode::OK, format!("{} bytes", b.len())),
                    Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too large".to_string()),
                }
            }),
        );
        let limits = Limits {
            max_connections: 16,
            max_connections_per_client: 16,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, None, router, limits, async {
            let _ = stopped.await;
        }));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        (stop, client, format!("http://{addr}"))
    }

    /// An answer given before the body is read is held back until the
    /// client has sent the rest (so no reset cuts its upload short), then
    /// arrives whole; this holds for the handler's own 413 and for the
    /// router's 404.
    #[tokio::test]
    async fn an_early_answer_waits_for_the_end_of_the_upload() {
        let (stop, mut client, base) = server_and_client::<Channel<Bytes>>().await;
        for (path, status, text) in [
            ("/small", StatusCode::PAYLOAD_TOO_LARGE, "too large"),
            ("/nowhere", StatusCode::NOT_FOUND, ""),
        ] {
            client.ready().await.unwrap();
            let (mut tx, body) = Channel::<Bytes>::new(4);
            let req = Request::post(format!("{base}{path}")).body(body).unwrap();
            let mut answer = tokio::spawn(client.send_request(req));
            tx.send_data(Bytes::from(vec![b'a'; 2048])).await.unwrap();
            // The server has what it needs to answer, but the upload is
            // still going: the answer waits (up to DRAIN_TIME, 2 s).
            assert!(
                tokio::time::timeout(Duration::from_millis(500), &mut answer)
                    .await
                    .is_err(),
                "{path}: answered while the client was still sending"
            );
            tx.send_data(Bytes::from(vec![b'a'; 100_000]))
                .await
                .unwrap();
            drop(tx);
            let resp = tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .expect("an answer within 10 s")
                .unwrap()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(resp.status(), status, "{path}");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(String::from_utf8_lossy(&body), text);
        }
        let _ = stop.send(());
    }

    /// Bodies within the limit are read as before; one far over the drain
    /// bound still gets its answer, the rest of the upload being refused.
    #[tokio::test]
    async fn small_and_huge_bodies_are_answered() {
        let (stop, mut client, base) = server_and_client::<Full<Bytes>>().await;
        for (size, status, text) in [
            (100, StatusCode::OK, "100 bytes"),
            (4 * DRAIN_LIMIT, StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        ] {
            client.ready().await.unwrap();
            let req = Request::post(format!("{base}/small"))
                .body(Full::new(Bytes::from(vec![b'a'; size])))
                .unwrap();
            let resp = tokio::time::timeout(Duration::from_secs(10), client.send_request(req))
                .await
                .expect("an answer within 10 s")
                .unwrap_or_else(|e| panic!("{size} bytes: {e}"));
            assert_eq!(resp.status(), status, "{size} bytes");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(String::from_utf8_lossy(&body), text);
        }
        let _ = stop.send(());
    }
}
