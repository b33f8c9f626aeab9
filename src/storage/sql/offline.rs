//! `OfflineStore` in SQL.

/// Ids per statement when deleting or releasing claims (well below both engines' limits on
/// bound parameters).
#[doc(hidden)]
pub const ID_CHUNK: usize = 500;

/// `$1, $2, …, $n`: only placeholders go into the SQL text, the ids are bound.
#[doc(hidden)]
pub fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `id, stored_at, stanza`, sorted by id (RETURNING promises no order).
#[doc(hidden)]
pub fn offline_rows<R: sqlx::Row>(
    rows: &[R],
) -> Result<Vec<(i64, crate::storage::offline::OfflineMessage)>, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let mut out = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("id")?,
                crate::storage::offline::OfflineMessage {
                    stored_at_ms: r.try_get("stored_at")?,
                    stanza: r.try_get("stanza")?,
                },
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// Implements `OfflineStore` for `$ty(pub Pool<$db>)`. `$lock` is the statement that, inside
/// the store's transaction, serialises stores for one account (`$1` host, `$2` user), or `None`
/// where the engine already runs one writer at a time (SQLite: a single statement is atomic).
#[macro_export]
#[doc(hidden)]
macro_rules! sql_offline_store {
    ($ty:ident, $db:ty, $lock:expr) => {
        use $crate::storage::sql::offline::{offline_rows, placeholders, ID_CHUNK};
        /// Offline messages in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $ty {
            /// The insert of one message, with its quota check in the same statement (`key`:
            /// a coalesced notification's kind).
            fn insert<'q>(
                host: &'q str,
                user: &'q str,
                stanza: &'q str,
                quota: $crate::storage::offline::OfflineQuota,
                key: Option<&'q str>,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
                // The quota check and the insert are one statement. Under PostgreSQL's read
                // committed isolation two such statements do not see each other's row, so
                // there a transaction-scoped lock per account orders them first.
                let size = i64::try_from(stanza.len()).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO offline_messages (host, username, stored_at, stanza, bytes, \
                     coalesce_key) SELECT $1, $2, $3, $4, $5, $8 FROM \
                     (SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM offline_messages \
                      WHERE host = $1 AND username = $2) AS used \
                     WHERE used.n < $6 AND used.b + $5 <= $7",
                )
                .bind(host)
                .bind(user)
                .bind($crate::storage::now_ms())
                .bind(stanza)
                .bind(size)
                .bind(i64::try_from(quota.messages).unwrap_or(i64::MAX))
                .bind(i64::try_from(quota.bytes).unwrap_or(i64::MAX))
                .bind(key)
            }

            /// Runs `sql`, a statement that takes one user's unclaimed rows (`$1` host, `$2`
            /// user) and returns `id, stored_at, stanza`; the rows, oldest first.
            async fn unclaimed(
                &self,
                sql: &'static str,
                host: &str,
                user: &str,
            ) -> Result<Vec<(i64, $crate::storage::offline::OfflineMessage)>, $crate::storage::StoreError> {
                let rows = sqlx::query(sql).bind(host).bind(user).fetch_all(&self.0).await?;
                Ok(offline_rows(&rows)?)
            }
        }

        impl $crate::storage::offline::OfflineStore for $ty {
            fn store<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                stanza: &'a str,
                quota: $crate::storage::offline::OfflineQuota,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let lock: Option<&'static str> = $lock;
                    let n = match lock {
                        // One statement on an engine with one writer at a time: atomic as it is.
                        None => Self::insert(host, user, stanza, quota, None)
                            .execute(&self.0)
                            .await?
                            .rows_affected(),
                        Some(lock) => {
                            let mut tx = self.0.begin().await?;
                            sqlx::query(lock).bind(host).bind(user).execute(&mut *tx).await?;
                            let n = Self::insert(host, user, stanza, quota, None)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected();
                            tx.commit().await?;
                            n
                        }
                    };
                    Ok(n > 0)
                })
            }

            fn store_latest<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                key: &'a str,
                stanza: &'a str,
                quota: $crate::storage::offline::OfflineQuota,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    let lock: Option<&'static str> = $lock;
                    if let Some(lock) = lock {
                        sqlx::query(lock).bind(host).bind(user).execute(&mut *tx).await?;
                    }
                    sqlx::query(
                        "DELETE FROM offline_messages WHERE host = $1 AND username = $2 \
                         AND coalesce_key = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                    let n = Self::insert(host, user, stanza, quota, Some(key))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(n > 0)
                })
            }

            fn take_all<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<$crate::storage::offline::OfflineMessage>> {
                Box::pin(async move {
                    // One statement: two deliveries racing for the same store (an initial
                    // presence and a hand-over after a store) can never both get a row. A
                    // SELECT then DELETE could, in PostgreSQL's read-committed mode, and in
                    // SQLite the loser of the upgrade failed with SQLITE_BUSY.
                    let rows = self
                        .unclaimed(
                            "DELETE FROM offline_messages \
                             WHERE host = $1 AND username = $2 AND claimed = FALSE \
                             RETURNING id, stored_at, stanza",
                            host,
                            user,
                        )
                        .await?;
                    Ok(rows.into_iter().map(|(_, m)| m).collect())
                })
            }

            fn claim_all<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<(i64, $crate::storage::offline::OfflineMessage)>> {
                Box::pin(async move {
                    // One statement, exclusive as `take_all` is: a concurrent claim waits for
                    // this one (PostgreSQL re-checks `claimed` after the wait) or runs after it.
                    self.unclaimed(
                        "UPDATE offline_messages SET claimed = TRUE \
                         WHERE host = $1 AND username = $2 AND claimed = FALSE \
                         RETURNING id, stored_at, stanza",
                        host,
                        user,
                    )
                    .await
                })
            }

            fn delete<'a>(&'a self, ids: &'a [i64]) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    for chunk in ids.chunks(ID_CHUNK) {
                        let sql = format!("DELETE FROM offline_messages WHERE id IN ({})", placeholders(chunk.len()));
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&self.0).await?;
                    }
                    Ok(())
                })
            }

            fn release<'a>(&'a self, ids: &'a [i64]) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    for chunk in ids.chunks(ID_CHUNK) {
                        let sql = format!(
                            "UPDATE offline_messages SET claimed = FALSE WHERE id IN ({})",
                            placeholders(chunk.len())
                        );
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&self.0).await?;
                    }
                    Ok(())
                })
            }

            fn release_all(&self) -> $crate::storage::StoreFuture<'_, u64> {
                Box::pin(async move {
                    Ok(sqlx::query("UPDATE offline_messages SET claimed = FALSE WHERE claimed = TRUE")
                        .execute(&self.0)
                        .await?
                        .rows_affected())
                })
            }

            fn count<'a>(&'a self, host: &'a str, user: &'a str) -> $crate::storage::StoreFuture<'a, usize> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row =
                        sqlx::query("SELECT COUNT(*) AS n FROM offline_messages WHERE host = $1 AND username = $2")
                            .bind(host)
                            .bind(user)
                            .fetch_one(&self.0)
                            .await?;
                    let n: i64 = row.try_get("n")?;
                    Ok(usize::try_from(n).unwrap_or(0))
                })
            }
        }
    };
}
