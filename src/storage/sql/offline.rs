//! `OfflineStore` in SQL.

/// Implements `OfflineStore` for `$ty(pub Pool<$db>)`. `$lock` is the statement that, inside
/// the store's transaction, serialises stores for one account (`$1` host, `$2` user), or `None`
/// where the engine already runs one writer at a time (SQLite: a single statement is atomic).
#[macro_export]
#[doc(hidden)]
macro_rules! sql_offline_store {
    ($ty:ident, $db:ty, $lock:expr) => {
        /// Offline messages in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $crate::storage::offline::OfflineStore for $ty {
            fn store<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                stanza: &'a str,
                quota: $crate::storage::offline::OfflineQuota,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    // The quota check and the insert are one statement. Under PostgreSQL's read
                    // committed isolation two such statements do not see each other's row, so
                    // there a transaction-scoped lock per account orders them first.
                    let size = i64::try_from(stanza.len()).unwrap_or(i64::MAX);
                    let insert = sqlx::query(
                        "INSERT INTO offline_messages (host, username, stored_at, stanza, bytes) \
                         SELECT $1, $2, $3, $4, $5 FROM \
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
                    .bind(i64::try_from(quota.bytes).unwrap_or(i64::MAX));
                    let lock: Option<&'static str> = $lock;
                    let n = match lock {
                        // One statement on an engine with one writer at a time: atomic as it is.
                        None => insert.execute(&self.0).await?.rows_affected(),
                        Some(lock) => {
                            let mut tx = self.0.begin().await?;
                            sqlx::query(lock).bind(host).bind(user).execute(&mut *tx).await?;
                            let n = insert.execute(&mut *tx).await?.rows_affected();
                            tx.commit().await?;
                            n
                        }
                    };
                    Ok(n > 0)
                })
            }

            fn take_all<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<$crate::storage::offline::OfflineMessage>> {
                Box::pin(async move {
                    use sqlx::Row;
                    // One statement: two deliveries racing for the same store (an initial
                    // presence and a hand-over after a store) can never both get a row. A
                    // SELECT then DELETE could, in PostgreSQL's read-committed mode, and in
                    // SQLite the loser of the upgrade failed with SQLITE_BUSY.
                    let rows = sqlx::query(
                        "DELETE FROM offline_messages WHERE host = $1 AND username = $2 \
                         RETURNING id, stored_at, stanza",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&self.0)
                    .await?;
                    let mut out = rows
                        .iter()
                        .map(|r| {
                            Ok((
                                r.try_get::<i64, _>("id")?,
                                $crate::storage::offline::OfflineMessage {
                                    stored_at_ms: r.try_get("stored_at")?,
                                    stanza: r.try_get("stanza")?,
                                },
                            ))
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    // RETURNING promises no order.
                    out.sort_by_key(|(id, _)| *id);
                    Ok(out.into_iter().map(|(_, m)| m).collect())
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
