//! The HTTP listener (`[http]`): `/health` and `/metrics` for now; the web transports
//! (WebSocket, RFC 7395; BOSH, XEP-0124/0206) and HTTP upload are to join it.
//!
//! axum on hyper: one task per connection, graceful shutdown with the server's signal. Plain
//! HTTP on loopback by default; a reverse proxy in front terminates TLS.

use std::sync::Arc;

use axum::Router as Routes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

/// Serves `routes` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, routes(state))
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!("HTTP listener: {e}");
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
