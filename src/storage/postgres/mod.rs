//! PostgreSQL implementations, for deployments that outgrow the embedded SQLite.

mod account;

use std::sync::Arc;

use sqlx::postgres::PgPoolOptions;

use super::migrations::{Dialect, migrator};
use super::{Storage, StoreError};

/// Connects to `url` and migrates the database.
pub async fn open(url: &str, pool_size: u32) -> Result<Storage, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(url)
        .await?;
    migrator(Dialect::Postgres).run(&pool).await?;
    Ok(Storage {
        accounts: Arc::new(account::PgAccounts(pool)),
    })
}
