//! SQLite (the embedded default): WAL journal, foreign keys on. The stores are the shared SQL
//! of `storage/sql/`, instantiated for SQLite.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::migrations::{Dialect, migrator};
use super::{Storage, StoreError};

crate::sql_account_store!(SqliteAccounts, sqlx::Sqlite);
crate::sql_roster_store!(SqliteRosters, sqlx::Sqlite);
crate::sql_offline_store!(SqliteOffline, sqlx::Sqlite, None);
crate::sql_document_store!(SqliteDocuments, sqlx::Sqlite);
crate::sql_upload_store!(SqliteUploads, sqlx::Sqlite, None);
crate::sql_muc_store!(SqliteMuc, sqlx::Sqlite);
crate::sql_archive_store!(SqliteArchive, sqlx::Sqlite);
crate::sql_pep_store!(SqlitePep, sqlx::Sqlite);

/// How every pooled connection is opened.
fn options(url: &str, cache_kib: u32) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL + NORMAL survives a process crash (kill -9) without losing committed rows.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Page cache per pooled connection (negative: KiB). SQLite's default, 2 MiB, let the 8
        // connections warm up to 16 MiB of the file's pages in the first thousand logins; the
        // operating system caches the file anyway.
        .pragma("cache_size", format!("-{cache_kib}"))
        .busy_timeout(Duration::from_secs(5)))
}

/// Opens (creating if needed) the database at `url` and migrates it.
pub async fn open(url: &str, pool_size: u32, cache_kib: u32) -> Result<Storage, StoreError> {
    let opts = options(url, cache_kib)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(pool_size)
        // The default pings the connection on every acquire: a round trip to its worker
        // thread before each query. A broken file shows as the query's own error instead.
        .test_before_acquire(false)
        .connect_with(opts)
        .await?;
    migrator(Dialect::Sqlite).run(&pool).await?;
    Ok(Storage {
        accounts: Arc::new(SqliteAccounts(pool.clone())),
        rosters: Arc::new(SqliteRosters(pool.clone())),
        offline: Arc::new(SqliteOffline(pool.clone())),
        documents: Arc::new(SqliteDocuments(pool.clone())),
        uploads: Arc::new(SqliteUploads(pool.clone())),
        muc: Arc::new(SqliteMuc(pool.clone())),
        archive: Arc::new(SqliteArchive::new(pool.clone())),
        pep: Arc::new(SqlitePep(pool)),
    })
}

#[cfg(test)]
mod tests {
    use sqlx::{ConnectOptions, Row};

    #[tokio::test]
    async fn each_connection_gets_the_configured_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.sqlite").display());
        let mut c = super::options(&url, 300).unwrap().connect().await.unwrap();
        let row = sqlx::query("PRAGMA cache_size")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>(0), -300);
    }
}
