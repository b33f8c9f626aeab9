//! `AccountStore` in SQL.

/// Implements `AccountStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_account_store {
    ($ty:ident, $db:ty) => {
        /// Accounts in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $ty {
            async fn insert_creds(
                tx: &mut sqlx::Transaction<'_, $db>,
                host: &str,
                user: &str,
                creds: &[$crate::stream::sasl::scram::ScramCredentials],
            ) -> Result<(), $crate::storage::StoreError> {
                sqlx::query("DELETE FROM scram_credentials WHERE host = $1 AND username = $2")
                    .bind(host)
                    .bind(user)
                    .execute(&mut **tx)
                    .await?;
                for c in creds {
                    sqlx::query(
                        "INSERT INTO scram_credentials \
                         (host, username, mechanism, salt, iterations, stored_key, server_key) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(c.hash.mechanism())
                    .bind(&c.salt)
                    .bind(i64::from(c.iterations))
                    .bind(&c.stored_key)
                    .bind(&c.server_key)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        impl $crate::storage::AccountStore for $ty {
            fn create<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                creds: &'a [$crate::stream::sasl::scram::ScramCredentials],
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    let inserted = sqlx::query(
                        "INSERT INTO accounts (host, username, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(host)
                    .bind(user)
                    .bind($crate::storage::now_ms() / 1000)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        return Ok(false);
                    }
                    Self::insert_creds(&mut tx, host, user, creds).await?;
                    tx.commit().await?;
                    Ok(true)
                })
            }

            fn delete<'a>(&'a self, host: &'a str, user: &'a str) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    // Everything stored for the account goes with it.
                    for table in [
                        "DELETE FROM scram_credentials WHERE host = $1 AND username = $2",
                        "DELETE FROM roster_groups WHERE host = $1 AND username = $2",
                        "DELETE FROM roster_items WHERE host = $1 AND username = $2",
                        "DELETE FROM roster_versions WHERE host = $1 AND username = $2",
                        "DELETE FROM presence_pending WHERE host = $1 AND username = $2",
                        "DELETE FROM offline_messages WHERE host = $1 AND username = $2",
                        "DELETE FROM user_documents WHERE host = $1 AND username = $2",
                        "DELETE FROM mam_messages WHERE host = $1 AND username = $2",
                        "DELETE FROM mam_prefs WHERE host = $1 AND username = $2",
                        "DELETE FROM inbox WHERE host = $1 AND username = $2",
                        "DELETE FROM pep_subscriptions WHERE host = $1 AND username = $2",
                        "DELETE FROM pep_items WHERE host = $1 AND username = $2",
                        "DELETE FROM pep_nodes WHERE host = $1 AND username = $2",
                    ] {
                        sqlx::query(table).bind(host).bind(user).execute(&mut *tx).await?;
                    }
                    let n = sqlx::query("DELETE FROM accounts WHERE host = $1 AND username = $2")
                        .bind(host)
                        .bind(user)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(n > 0)
                })
            }

            fn set_credentials<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                creds: &'a [$crate::stream::sasl::scram::ScramCredentials],
            ) -> $crate::storage::StoreFuture<'a, bool> {
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
                    Self::insert_creds(&mut tx, host, user, creds).await?;
                    tx.commit().await?;
                    Ok(true)
                })
            }

            fn credentials<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                hash: $crate::stream::sasl::scram::ScramHash,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::stream::sasl::scram::ScramCredentials>> {
                Box::pin(async move {
                    use sqlx::Row;
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
                    let iterations: i64 = row.try_get("iterations")?;
                    Ok(Some($crate::stream::sasl::scram::ScramCredentials {
                        hash,
                        salt: row.try_get("salt")?,
                        iterations: u32::try_from(iterations)
                            .map_err(|_| $crate::storage::StoreError::Corrupt("iterations".into()))?,
                        stored_key: row.try_get("stored_key")?,
                        server_key: row.try_get("server_key")?,
                    }))
                })
            }

            fn exists<'a>(&'a self, host: &'a str, user: &'a str) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    Ok(sqlx::query("SELECT 1 FROM accounts WHERE host = $1 AND username = $2")
                        .bind(host)
                        .bind(user)
                        .fetch_optional(&self.0)
                        .await?
                        .is_some())
                })
            }

            fn list<'a>(&'a self, host: &'a str) -> $crate::storage::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query("SELECT username FROM accounts WHERE host = $1 ORDER BY username")
                        .bind(host)
                        .fetch_all(&self.0)
                        .await?;
                    rows.iter()
                        .map(|r| r.try_get("username").map_err($crate::storage::StoreError::from))
                        .collect()
                })
            }
        }
    };
}
