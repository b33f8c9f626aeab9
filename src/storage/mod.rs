//! Storage (the DAS layer): one `…Store` trait per area, implemented for SQLite and PostgreSQL.
//! This is the only place SQL lives; migrations come from `schemas/{sqlite,postgres}/`.

pub mod account;
pub mod archive;
pub mod archive_writer;
pub mod documents;
pub mod inbox;
mod migrations;
pub mod muc;
pub mod offline;
pub mod pep;
pub mod postgres;
pub mod roster;
pub mod roster_cache;
mod sql;
pub mod sqlite;
pub mod uploads;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use account::AccountStore;
pub use archive::ArchiveStore;
pub use documents::DocumentStore;
pub use muc::MucStore;
pub use offline::{OfflineMessage, OfflineQuota, OfflineStore};
pub use pep::PepStore;
pub use roster::{RosterItem, RosterStore, Subscription};
pub use uploads::{Upload, UploadStore};

use crate::config::{Backend, Config};

/// What a store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be understood.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Files around the database (the data folder).
    #[error("{0}")]
    Io(String),
}

/// All stores of one database.
#[derive(Clone)]
pub struct Storage {
    /// Accounts and credentials.
    pub accounts: Arc<dyn AccountStore>,
    /// Rosters and pending subscription requests.
    pub rosters: Arc<dyn RosterStore>,
    /// Offline messages.
    pub offline: Arc<dyn OfflineStore>,
    /// vCards and private XML.
    pub documents: Arc<dyn DocumentStore>,
    /// HTTP File Upload slots and files.
    pub uploads: Arc<dyn UploadStore>,
    /// Group-chat rooms, their affiliations and messages.
    pub muc: Arc<dyn MucStore>,
    /// Message archives (XEP-0313) of accounts and rooms, and archiving preferences.
    pub archive: Arc<dyn ArchiveStore>,
    /// Personal eventing (XEP-0163) nodes and items.
    pub pep: Arc<dyn PepStore>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Storage {
    /// Opens the configured database and applies pending migrations; rosters and archiving
    /// preferences are cached (`storage.roster_cache`), archive writes are group-committed.
    pub async fn open(config: &Config) -> Result<Storage, StoreError> {
        let mut s = Self::open_uncached(config).await?;
        let a = &config.archive;
        s.archive = Arc::new(archive_writer::Batched::new(
            s.archive,
            a.write_queue,
            a.write_batch,
            config.storage.roster_cache,
        ));
        if config.storage.roster_cache > 0 {
            s.rosters = Arc::new(roster_cache::CachedRosters::new(
                s.rosters,
                config.storage.roster_cache,
            ));
        }
        Ok(s)
    }

    async fn open_uncached(config: &Config) -> Result<Storage, StoreError> {
        match config.storage.backend {
            Backend::Sqlite => {
                let url = if config.storage.url.is_empty() {
                    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| {
                        StoreError::Io(format!(
                            "cannot create {}: {e}",
                            config.server.data_dir.display()
                        ))
                    })?;
                    format!(
                        "sqlite://{}",
                        config.server.data_dir.join("xmppd.sqlite").display()
                    )
                } else {
                    config.storage.url.clone()
                };
                sqlite::open(
                    &url,
                    config.storage.pool_size,
                    config.storage.sqlite_cache_kib,
                )
                .await
            }
            Backend::Postgres => {
                postgres::open(&config.storage.url, config.storage.pool_size).await
            }
        }
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod conformance_archive;
#[cfg(test)]
mod conformance_inbox;
#[cfg(test)]
mod conformance_muc;
#[cfg(test)]
mod conformance_offline;
#[cfg(test)]
mod conformance_pep;
