//! The access layer's transport: TCP and TLS connections, TLS set-up, connection limits.

pub mod conn;
pub mod limits;
pub mod tls;

pub use conn::Conn;
pub use limits::{ConnGuard, ConnLimits, Refusal};

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The next connection on `l` (`what` names the listener in the log), or `None` once the
/// server shuts down. A failed accept (out of descriptors, most likely) is waited out for a
/// tenth of a second rather than retried in a spin.
pub async fn accept(
    l: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return None,
            r = l.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!("{what}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}
