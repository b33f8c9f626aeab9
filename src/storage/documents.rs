//! Per-user XML documents: the vCard (XEP-0054, kind `vcard`, key "") and private XML storage
//! (XEP-0049, kind `private`, key = the namespace), and the blocklist (XEP-0191, kind `block`,
//! key = the blocked JID, one row each).

use super::StoreFuture;

/// Per-user documents, implemented once in `storage/sql/documents.rs` for both databases.
pub trait DocumentStore: Send + Sync {
    /// One document.
    fn get<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        kind: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<String>>;
    /// The keys of every document of one kind, sorted.
    fn keys<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        kind: &'a str,
    ) -> StoreFuture<'a, Vec<String>>;
    /// Deletes one document (`key` = None: every document of the kind); how many were deleted.
    fn delete<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        kind: &'a str,
        key: Option<&'a str>,
    ) -> StoreFuture<'a, u64>;
    /// Creates or replaces a document.
    fn set<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        kind: &'a str,
        key: &'a str,
        xml: &'a str,
    ) -> StoreFuture<'a, ()>;
}
