//! `AccountStore` on PostgreSQL.

use sqlx::{PgPool, Row};

use crate::storage::account::{AccountStore, now};
use crate::storage::{StoreError, StoreFuture};
use crate::stream::sasl::scram::{ScramCredentials, ScramHash};

/// Accounts in PostgreSQL.
pub struct PgAccounts(pub PgPool);

async fn insert_creds(
    tx: &mut sqlx::PgConnection,
    host: &str,
    user: &str,
    creds: &[ScramCredentials],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM scram_credentials WHERE host = $1 AND username = $2")
        .bind(host)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    for c in creds {
        sqlx::query(
            "INSERT INTO scram_credentials (host, username, mechanism, salt, iterations, stored_key, server_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(host)
        .bind(user)
        .bind(c.hash.mechanism())
        .bind(&c.salt)
        .bind(c.iterations as i32)
        .bind(&c.stored_key)
        .bind(&c.server_key)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

impl AccountStore for PgAccounts {
    fn create<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        creds: &'a [ScramCredentials],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.0.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO accounts (host, username, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(host)
            .bind(user)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            insert_creds(&mut tx, host, user, creds).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn delete<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let n = sqlx::query("DELETE FROM accounts WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(user)
                .execute(&self.0)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    fn set_credentials<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        creds: &'a [ScramCredentials],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.0.begin().await?;
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                return Ok(false);
            }
            insert_creds(&mut tx, host, user, creds).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn credentials<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        hash: ScramHash,
    ) -> StoreFuture<'a, Option<ScramCredentials>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT salt, iterations, stored_key, server_key FROM scram_credentials \
                 WHERE host = $1 AND username = $2 AND mechanism = $3",
            )
            .bind(host)
            .bind(user)
            .bind(hash.mechanism())
            .fetch_optional(&self.0)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let iterations: i32 = row.try_get("iterations")?;
            Ok(Some(ScramCredentials {
                hash,
                salt: row.try_get("salt")?,
                iterations: u32::try_from(iterations)
                    .map_err(|_| StoreError::Corrupt("iterations".into()))?,
                stored_key: row.try_get("stored_key")?,
                server_key: row.try_get("server_key")?,
            }))
        })
    }

    fn exists<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(
                sqlx::query("SELECT 1 FROM accounts WHERE host = $1 AND username = $2")
                    .bind(host)
                    .bind(user)
                    .fetch_optional(&self.0)
                    .await?
                    .is_some(),
            )
        })
    }

    fn list<'a>(&'a self, host: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT username FROM accounts WHERE host = $1 ORDER BY username")
                    .bind(host)
                    .fetch_all(&self.0)
                    .await?;
            rows.iter()
                .map(|r| r.try_get("username").map_err(StoreError::from))
                .collect()
        })
    }
}
