//! Per-user XML documents: the vCard (XEP-0054, kind `vcard`, key "") and private XML storage
//! (XEP-0049, kind `private`, key = the namespace).

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
