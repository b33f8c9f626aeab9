//! Offline messages (XEP-0160): stored for an account with no available resource, handed out
//! (and deleted) at its next initial presence.

use super::StoreFuture;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// When it was stored, milliseconds since the epoch (for the XEP-0203 delay stamp).
    pub stored_at_ms: i64,
    /// The serialised stanza.
    pub stanza: String,
}

/// How much one account may have stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineQuota {
    /// Messages.
    pub messages: usize,
    /// Bytes of serialised stanzas.
    pub bytes: usize,
}

/// Offline storage, implemented once in `storage/sql/offline.rs` for both databases.
pub trait OfflineStore: Send + Sync {
    /// Stores a message unless it would take the user past `quota` (in messages or bytes);
    /// whether it was stored. The check and the insert are atomic: concurrent stores for one
    /// user never pass the quota together.
    fn store<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        stanza: &'a str,
        quota: OfflineQuota,
    ) -> StoreFuture<'a, bool>;
    /// Removes and returns every stored message, oldest first.
    fn take_all<'a>(&'a self, host: &'a str, user: &'a str)
    -> StoreFuture<'a, Vec<OfflineMessage>>;
    /// Number of stored messages.
    fn count<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, usize>;
}
