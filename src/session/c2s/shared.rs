//! What every client session shares, and the core's one interface to the server's services:
//! the stores, the router, the limits, the resumption table, and the work that must leave the
//! session's task (password hashing on the blocking pool, a deletion in the background). The
//! session core awaits these; it names no runtime and no socket itself.

use std::sync::Arc;

use crate::config::Config;
use crate::router::Router;
use crate::storage::Storage;
use crate::stream::sasl::scram::{ScramCredentials, random_bytes};
use crate::transport::ConnLimits;
use crate::transport::tls::TlsAcceptors;

use super::Takeover;

/// What every c2s session shares.
pub struct Shared {
    /// The configuration.
    pub config: Arc<Config>,
    /// TLS acceptors (absent only when no certificate could be set up and TLS is not required).
    pub tls: Option<TlsAcceptors>,
    /// The stores.
    pub storage: Storage,
    /// The router (and through it the registry).
    pub router: Arc<Router>,
    /// Connection and authentication limits.
    pub limits: Arc<ConnLimits>,
    /// Key for the decoy credentials of unknown users (stable for this process).
    pub decoy_secret: [u8; 32],
    /// Sessions that can be resumed (XEP-0198).
    pub resumptions: crate::session::resume::Resumptions<Takeover>,
    /// Sessions holding a read buffer now ([`Self::read_buffers`] is shared with the server).
    pub read_buffers: Arc<std::sync::atomic::AtomicUsize>,
}

impl Shared {
    /// New shared state.
    pub fn new(
        config: Arc<Config>,
        tls: Option<TlsAcceptors>,
        storage: Storage,
        router: Arc<Router>,
        limits: Arc<ConnLimits>,
    ) -> Self {
        Shared {
            config,
            tls,
            storage,
            router,
            limits,
            decoy_secret: random_bytes::<32>(),
            resumptions: Default::default(),
            read_buffers: Default::default(),
        }
    }
}

impl Shared {
    /// Checks a password against stored credentials (PBKDF2: CPU work, kept off the I/O
    /// threads).
    pub async fn verify_password(&self, creds: ScramCredentials, password: String) -> bool {
        tokio::task::spawn_blocking(move || creds.verify_password(&password))
            .await
            .unwrap_or(false)
    }

    /// Credentials for a new password (PBKDF2 for each hash, off the I/O threads).
    pub async fn new_credentials(
        &self,
        password: String,
        iterations: u32,
    ) -> Option<Vec<ScramCredentials>> {
        tokio::task::spawn_blocking(move || ScramCredentials::new_set(&password, iterations))
            .await
            .ok()?
            .ok()
    }

    /// Deletes claimed offline messages in the background (a session without stream
    /// management wrote them).
    pub fn forget_claims(&self, ids: Vec<i64>) {
        let storage = self.storage.clone();
        tokio::spawn(async move {
            if let Err(e) = storage.offline.delete(&ids).await {
                tracing::error!("offline claims not deleted: {e}");
            }
        });
    }
}
