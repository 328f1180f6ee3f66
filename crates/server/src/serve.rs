//! Serving HTTP (or HTTPS through rustls) on a listener, one task per connection.
//!
//! The accept loop is ours rather than `axum::serve` because a live stream whose client
//! stopped reading never polls its body again, so only dropping its connection frees it: each
//! connection carries a [`ConnectionControl`] that the event hub cancels to do exactly that.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::TlsConfig;
use crate::connection::ConnectionControl;
use crate::node::Node;

/// Why serving failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key did not load.
    #[error("TLS: {0}")]
    Tls(String),
    /// The audit trail could not be checkpointed at start (the database is not writable).
    #[error("audit checkpoint: {0}")]
    Checkpoint(#[from] crate::store::StoreError),
    /// The metrics listener could not be opened.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::ListenError),
}

fn load_tls(t: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| ServeError::Tls(format!("cannot read {}", p.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|_| read(&t.cert))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", t.cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{} holds no certificate",
            t.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", t.key.display())))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Serves the node on `listener` until `node.shutdown` is cancelled, then lets open
/// requests finish (up to 10 s) and returns.
pub async fn serve(node: Arc<Node>, listener: TcpListener) -> Result<(), ServeError> {
    let tls = node.config.tls.as_ref().map(load_tls).transpose()?;
    let app = crate::api::router(node.clone());
    // Anchor whatever was audited while the node was stopped (or before a crash) first.
    crate::audit::checkpoint(&node.store).await?;
    crate::metrics::serve(node.clone()).await?;
    crate::jobs::spawn(&node);
    let tracker = TaskTracker::new();
    let limits = Limits::of(&node.config);
    // A connection holds a permit for its life: at the cap, the loop stops accepting and new
    // connections wait in the kernel's queue.
    let permits = Arc::new(tokio::sync::Semaphore::new(
        node.config.max_connections as usize,
    ));
    loop {
        let permit = tokio::select! {
            _ = node.shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, addr) = tokio::select! {
            _ = node.shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Some(n) = node.config.tcp_send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(n as usize);
        }
        let kill = CancellationToken::new();
        let app = app.clone();
        let shutdown = node.shutdown.clone();
        let tls = tls.clone();
        let node_for_conn = node.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let io: Box<dyn Io> = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => {
                    let mut stream = stream;
                    let Some(head) = read_head(&mut stream, limits.header).await else {
                        return;
                    };
                    if is_event_stream(&head) {
                        crate::api::v1::events::serve_plain(
                            node_for_conn,
                            stream,
                            head,
                            addr.ip().to_string(),
                            kill,
                        )
                        .await;
                        return;
                    }
                    Box::new(Prefixed {
                        prefix: bytes::Bytes::from(head),
                        inner: stream,
                    })
                }
            };
            // Boxed: a task's future is as large as its largest state, and this one would
            // otherwise be carried by every lean live-stream connection too.
            Box::pin(serve_hyper(io, app, addr, kill, shutdown, limits)).await;
        });
    }
    tracker.close();
    node.hub.disconnect_all();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10 s");
    }
    // The inbox's refusals counted since the last minute are audited, and the last
    // requests' entries anchored, before the node goes.
    if let Err(e) = crate::federation::refusals::audit_counted(&node).await {
        tracing::error!(error = %e, "auditing the inbox's counted refusals at shutdown failed");
    }
    if let Err(e) = crate::audit::checkpoint(&node.store).await {
        tracing::error!(error = %e, "the audit checkpoint at shutdown failed");
    }
    Ok(())
}

/// How long a client may take to send what it must.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A request's head (and a TLS handshake).
    header: Duration,
    /// A request's whole body, once its head arrived.
    body: Duration,
}

impl Limits {
    fn of(config: &crate::config::NodeConfig) -> Self {
        Self {
            header: Duration::from_secs(u64::from(config.header_timeout_seconds)),
            body: Duration::from_secs(u64::from(config.body_timeout_seconds)),
        }
    }
}

/// Serves one connection with hyper until it ends, is killed, or the node shuts down.
async fn serve_hyper(
    io: Box<dyn Io>,
    app: axum::Router,
    addr: SocketAddr,
    kill: CancellationToken,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let control = ConnectionControl(kill.clone());
    let svc = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
        req.extensions_mut().insert(control.clone());
        let req = if hyper::body::Body::is_end_stream(req.body()) {
            req.map(axum::body::Body::new)
        } else {
            req.map(|b| axum::body::Body::new(Deadline::new(b, limits.body)))
        };
        app.clone().oneshot(req)
    });
    let svc = TowerToHyperService::new(svc);
    let mut builder = Builder::new(TokioExecutor::new());
    // Every later request's head on a kept-alive connection (the first one's was read above).
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Dropping the connection closes the socket, even if the peer stopped reading.
        _ = kill.cancelled() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
        }
    }
}

/// Reads a plain connection's first request head (up to the blank line, 16 KiB, or the time
/// allowed). Whatever else arrived with it stays in the returned bytes, to be replayed to hyper.
async fn read_head(stream: &mut tokio::net::TcpStream, allowed: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= 16 * 1024 {
                return Some(());
            }
            buf.reserve(1024);
            // Straight into the Vec: no read array kept in every connection's future.
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(allowed, read).await.ok().flatten()?;
    Some(buf)
}

/// A request body that must arrive whole before a deadline: a client dripping its body must
/// not hold a connection and a handler for ever. (A per-chunk timeout would not do: a byte
/// every few seconds never trips it.)
struct Deadline<B> {
    inner: B,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, allowed: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(allowed)),
        }
    }
}

/// The request body was not sent in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTooSlow;

impl<B> hyper::body::Body for Deadline<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        let this = self.get_mut();
        if let std::task::Poll::Ready(frame) = std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            return std::task::Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(Box::new(BodyTooSlow))));
        }
        std::task::Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request head asks for the live stream over HTTP/1.
fn is_event_stream(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    matches!(req.parse(head), Ok(httparse::Status::Complete(_)))
        && req.method == Some("GET")
        && req
            .path
            .is_some_and(|p| p.split('?').next() == Some("/api/v1/events"))
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<T> {
    prefix: bytes::Bytes,
    inner: T,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A plain or TLS stream.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
