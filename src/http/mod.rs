//! The HTTP listeners (`[http]`): XMPP over WebSocket (RFC 7395, `websocket.rs`), BOSH
//! (XEP-0124/0206, `bosh/`), the connection-method discovery of XEP-0156 (`host_meta.rs`), HTTP
//! File Upload (XEP-0363, `upload/`), `/health` and `/metrics`.
//!
//! axum's router on hyper's HTTP/1 connections, in a loop of our own: each connection is
//! admitted by the same per-IP limits as client connections (`[limits]`; behind a trusted
//! reverse proxy, per forwarded client, `proxy.rs`), its headers must arrive within
//! `http.request_timeout_secs` and fit 16 KiB, and it is closed gracefully at shutdown. Plain
//! HTTP on loopback (`http.listen`) and HTTPS with the server's certificate (`http.tls_listen`).
//!
//! Why axum on hyper: hyper is the HTTP implementation most of the Rust ecosystem runs on
//! (curl's optional backend, reqwest, the cloud SDKs), maintained with tokio; axum adds routing
//! and extractors over it, including the WebSocket handshake over tungstenite, so no HTTP or
//! WebSocket framing is written here.

pub mod bosh;
pub mod host_meta;
pub mod proxy;
pub mod upload;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router as Routes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, body::Body};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::session::c2s::Shared;
use crate::transport::ConnGuard;

/// What the handlers read.
pub struct HttpState {
    /// What every client session shares (config, storage, router, limits).
    pub c2s: Arc<Shared>,
    /// Whether `/metrics` is served.
    pub metrics: bool,
    /// Trusted reverse proxies.
    pub proxies: proxy::Proxies,
    /// Server shutdown, for the sessions started here.
    pub shutdown: watch::Receiver<bool>,
    /// Held by every session started here, so that shutdown waits for them.
    pub alive: mpsc::Sender<()>,
    /// BOSH sessions by `sid`.
    pub bosh: Arc<bosh::Sessions>,
    /// HTTP File Upload, when enabled.
    pub uploads: Option<Arc<upload::Uploads>>,
}

/// One HTTP connection, as its handlers see it.
pub struct Conn {
    /// The peer (a proxy, or the client).
    pub peer: SocketAddr,
    /// Over TLS (`http.tls_listen`).
    pub tls: bool,
    /// The connection's slot in the limits, taken by a session the connection turns into.
    guard: Mutex<Option<ConnGuard>>,
}

impl Conn {
    /// Takes the connection's slot (a WebSocket session holds it from now on).
    pub fn take_guard(&self) -> Option<ConnGuard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Conn {
    /// Where the client of a request is, and whether its path is secure: HTTPS, what a
    /// trusted proxy says (`X-Forwarded-Proto`), or a loopback connection.
    pub fn client(&self, proxies: &proxy::Proxies, headers: &HeaderMap) -> websocket::Client {
        let ip = proxies.client(self.peer.ip(), headers);
        let secure = self.tls
            || proxies
                .forwarded_https(self.peer.ip(), headers)
                .unwrap_or_else(|| self.peer.ip().is_loopback());
        websocket::Client {
            addr: SocketAddr::new(ip, self.peer.port()),
            secure,
        }
    }
}

/// The routes.
pub fn routes(state: Arc<HttpState>) -> Routes {
    let mut r = Routes::new();
    if let Some(u) = &state.uploads {
        let files = Routes::new()
            .route(
                "/{id}/{name}",
                get(upload::files::get)
                    .head(upload::files::get)
                    .put(upload::files::put)
                    .options(upload::files::preflight),
            )
            .with_state(u.clone());
        r = r.nest_service("/upload", files);
    }
    r.route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/xmpp-websocket", get(ws))
        .route(
            "/http-bind",
            get(bosh_info).post(bosh_request).options(bosh_preflight),
        )
        .route("/.well-known/host-meta", get(host_meta::xml))
        .route("/.well-known/host-meta.json", get(host_meta::json))
        .with_state(state)
}

/// Largest request head (request line and headers) a connection may send.
const MAX_HEAD: usize = 16 * 1024;
/// Time a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves the routes on `listener` (with TLS when `tls` is given) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = state.c2s.limits.clone();
    let app = routes(state.clone());
    loop {
        let Some((tcp, peer)) = crate::transport::accept(&listener, &mut shutdown, "HTTP").await
        else {
            return;
        };
        // A trusted proxy's connection counts toward the total; its clients are counted by
        // address when they start a session.
        let admitted = if state.proxies.trusts(peer.ip()) {
            limits.admit_proxy()
        } else {
            limits.admit(peer.ip())
        };
        let guard = match admitted {
            Ok(g) => g,
            Err(why) => {
                tracing::debug!(%peer, ?why, "HTTP connection refused by limits");
                continue;
            }
        };
        // As on client connections: a WebSocket or BOSH answer goes out at once (Nagle's
        // algorithm with delayed acks held small writes up to 40 ms).
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(Conn {
            peer,
            tls: tls.is_some(),
            guard: Mutex::new(Some(guard)),
        });
        let (app, tls, stop) = (app.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let open = crate::metrics::open(if tls.is_some() { "https" } else { "http" });
            match tls {
                None => serve_conn(tcp, app, conn, timeout, stop).await,
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(t)) => serve_conn(t, app, conn, timeout, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "HTTPS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
            drop(open);
        });
    }
}

/// Serves one connection's requests (and its upgrade to a WebSocket).
async fn serve_conn<IO>(
    io: IO,
    app: Routes,
    conn: Arc<Conn>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn.clone());
        let mut app = app.clone();
        async move { app.call(req.map(Body::new)).await }
    });
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(http);
    tokio::select! {
        r = http.as_mut() => if let Err(e) = r {
            tracing::debug!(%peer, "HTTP connection: {e}");
        },
        _ = stop.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
        }
    }
}

/// `GET /xmpp-websocket`: a c2s session over WebSocket.
async fn ws(
    State(s): State<Arc<HttpState>>,
    Extension(conn): Extension<Arc<Conn>>,
    req: Request,
) -> Response {
    websocket::upgrade(s, conn, req).await
}

/// `POST /http-bind`: a BOSH request.
async fn bosh_request(
    State(s): State<Arc<HttpState>>,
    Extension(conn): Extension<Arc<Conn>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bosh::request(s, conn, headers, body).await
}

/// `OPTIONS /http-bind`: CORS.
async fn bosh_preflight(State(s): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    bosh::preflight(s, headers).await
}

/// `GET /http-bind`: what this is, for a person who opens it in a browser.
async fn bosh_info(State(s): State<Arc<HttpState>>) -> Response {
    if !s.c2s.config.http.bosh {
        return StatusCode::NOT_FOUND.into_response();
    }
    "xmppd: XMPP over BOSH (XEP-0206). Clients POST here.\n".into_response()
}

/// 200 when the database answers, 503 when it does not.
async fn health(State(s): State<Arc<HttpState>>) -> Response {
    match s
        .c2s
        .storage
        .accounts
        .exists("health.invalid", "probe")
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!("health: the database does not answer: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// The metrics in Prometheus text format (version 0.0.4).
async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    let Some(handle) = s.metrics.then(crate::metrics::handle).flatten() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    crate::metrics::set_gauges(
        s.c2s.router.registry.len(),
        s.c2s.limits.connections(),
        s.c2s.router.registry.queued_bytes(),
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
