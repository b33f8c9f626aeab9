//! Offline messages (XEP-0160): stored for an account with no available resource, handed out
//! at its next initial presence: deleted at once for a session without stream management, or
//! claimed and deleted when the client acknowledges them (XEP-0198), so that a crash between
//! delivery and acknowledgement loses nothing.

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
    /// Stores a notification as the only one of its kind `key` (the one stored before goes),
    /// within `quota`; whether it was stored.
    fn store_latest<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        key: &'a str,
        stanza: &'a str,
        quota: OfflineQuota,
    ) -> StoreFuture<'a, bool>;
    /// Removes and returns every stored message not claimed, oldest first.
    fn take_all<'a>(&'a self, host: &'a str, user: &'a str)
    -> StoreFuture<'a, Vec<OfflineMessage>>;
    /// Claims every stored message not claimed yet and returns them with their ids, oldest
    /// first; a concurrent claim or take never gets the same message.
    fn claim_all<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, Vec<(i64, OfflineMessage)>>;
    /// Deletes claimed messages (the client acknowledged them).
    fn delete<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()>;
    /// Gives claimed messages back (their session ended before the client acknowledged them).
    fn release<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()>;
    /// Gives back every claim (at start: the sessions that held them are gone).
    fn release_all(&self) -> StoreFuture<'_, u64>;
    /// Number of stored messages.
    fn count<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, usize>;
}
