//! The account store: who has an account on which host, and their SCRAM credentials.

use super::StoreFuture;
use crate::stream::sasl::scram::{ScramCredentials, ScramHash};

/// Accounts, implemented once in `storage/sql/account.rs` for both databases.
pub trait AccountStore: Send + Sync {
    /// Creates an account with its credentials; `false` if it already exists.
    fn create<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        creds: &'a [ScramCredentials],
    ) -> StoreFuture<'a, bool>;
    /// Deletes an account and everything stored for it; `false` if there was none.
    fn delete<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, bool>;
    /// Replaces the credentials (password change); `false` if there is no such account.
    fn set_credentials<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        creds: &'a [ScramCredentials],
    ) -> StoreFuture<'a, bool>;
    /// The credentials of one hash family, if the account exists and has them.
    fn credentials<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        hash: ScramHash,
    ) -> StoreFuture<'a, Option<ScramCredentials>>;
    /// Whether the account exists.
    fn exists<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, bool>;
    /// The user names on a host, sorted.
    fn list<'a>(&'a self, host: &'a str) -> StoreFuture<'a, Vec<String>>;
}
