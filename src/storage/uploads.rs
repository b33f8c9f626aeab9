//! HTTP File Upload slots and files (XEP-0363): what was handed out to whom, for the quota,
//! the PUT that fills a slot, the GET that serves it, and the purge of old files.

use super::StoreFuture;

/// What the quota charges at least for one upload, in bytes.
pub const MIN_CHARGE: i64 = 4096;

/// One slot (and, once `done`, its file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The secret id in the file's URL.
    pub id: String,
    /// The owner's host and user name.
    pub host: String,
    /// The owner's user name.
    pub username: String,
    /// The file name the client asked for.
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its declared type.
    pub content_type: String,
    /// When the slot was handed out.
    pub created_ms: i64,
    /// Whether the file was uploaded.
    pub done: bool,
}

/// The uploads, implemented once in `storage/sql/uploads.rs` for both databases.
pub trait UploadStore: Send + Sync {
    /// Records a slot if the owner's uploads (pending slots included, each charged at least
    /// [`MIN_CHARGE`] bytes) stay within `quota` bytes with it; false when they would not.
    fn reserve<'a>(&'a self, slot: &'a Upload, quota: u64) -> StoreFuture<'a, bool>;
    /// One upload by id.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Upload>>;
    /// Marks a slot's file as uploaded; false if it was not a pending slot.
    fn complete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    /// Removes uploads created before `before_ms` (files) or, still pending, before
    /// `pending_before_ms` (slots never used); returns their ids.
    fn purge<'a>(&'a self, before_ms: i64, pending_before_ms: i64) -> StoreFuture<'a, Vec<String>>;
}
