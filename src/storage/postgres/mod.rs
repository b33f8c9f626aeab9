//! PostgreSQL, for deployments that outgrow the embedded SQLite. The stores are the shared SQL
//! of `storage/sql/`, instantiated for PostgreSQL.

use std::sync::Arc;

use sqlx::postgres::PgPoolOptions;

use super::migrations::{Dialect, migrator};
use super::{Storage, StoreError};

crate::sql_account_store!(PgAccounts, sqlx::Postgres);
crate::sql_roster_store!(PgRosters, sqlx::Postgres);
crate::sql_offline_store!(
    PgOffline,
    sqlx::Postgres,
    Some("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
);
crate::sql_document_store!(PgDocuments, sqlx::Postgres);
crate::sql_upload_store!(
    PgUploads,
    sqlx::Postgres,
    Some("SELECT pg_advisory_xact_lock(hashtextextended('upload/' || $1 || '/' || $2, 0))")
);
crate::sql_muc_store!(PgMuc, sqlx::Postgres);
crate::sql_archive_store!(PgArchive, sqlx::Postgres);
crate::sql_pep_store!(PgPep, sqlx::Postgres);

/// Connects to `url` and migrates the database.
pub async fn open(url: &str, pool_size: u32) -> Result<Storage, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(url)
        .await?;
    migrator(Dialect::Postgres).run(&pool).await?;
    Ok(Storage {
        accounts: Arc::new(PgAccounts(pool.clone())),
        rosters: Arc::new(PgRosters(pool.clone())),
        offline: Arc::new(PgOffline(pool.clone())),
        documents: Arc::new(PgDocuments(pool.clone())),
        uploads: Arc::new(PgUploads(pool.clone())),
        muc: Arc::new(PgMuc(pool.clone())),
        archive: Arc::new(PgArchive::new(pool.clone())),
        pep: Arc::new(PgPep(pool)),
    })
}
