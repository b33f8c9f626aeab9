//! The HTTP listener (`[http]`): `/health` and `/metrics` for now; the web transports
//! (WebSocket, RFC 7395; BOSH, XEP-0124/0206) and HTTP upload are to join it.
//!
//! axum's router on hyper's HTTP/1 connections, in a loop of our own: each connection is
//! admitted by the same per-IP limits as client connections (`[limits]`), its headers must
//! arrive within `http.request_timeout_secs` and fit 16 KiB, and it is closed gracefully at
//! shutdown. Plain HTTP on loopback by default; a reverse proxy in front terminates TLS.

use std::sync::Arc;
use std::time::Duration;

use axum::Router as Routes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::router::Router;
use crate::storage::Storage;
use crate::transport::ConnLimits;

/// What the handlers read.
pub struct HttpState {
    /// Sessions (for the gauges).
    pub router: Arc<Router>,
    /// The database (health).
    pub storage: Storage,
    /// Open connections (for the gauges).
    pub limits: Arc<ConnLimits>,
    /// Whether `/metrics` is served.
    pub metrics: bool,
}

/// The routes.
pub fn routes(state: Arc<HttpState>) -> Routes {
    Routes::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Largest request head (request line and headers) a connection may send.
const MAX_HEAD: usize = 16 * 1024;

/// Serves `routes` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = state.limits.clone();
    let app = routes(state);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let guard = match limits.admit(peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                tracing::debug!(%peer, ?why, "HTTP connection refused by limits");
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = shutdown.clone();
        let open = crate::metrics::open("http");
        tokio::spawn(async move {
            let _held = (guard, open);
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!(%peer, "HTTP connection: {e}");
                },
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// 200 when the database answers, 503 when it does not.
async fn health(State(s): State<Arc<HttpState>>) -> Response {
    match s.storage.accounts.exists("health.invalid", "probe").await {
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
        s.router.registry.len(),
        s.limits.connections(),
        s.router.registry.queued_bytes(),
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
