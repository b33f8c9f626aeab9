//! The access layer's transport: TCP and TLS connections, TLS set-up, connection limits.

pub mod conn;
pub mod limits;
pub mod tls;

pub use conn::Conn;
pub use limits::{ConnGuard, ConnLimits, Refusal};
