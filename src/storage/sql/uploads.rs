//! `UploadStore` in SQL.

/// Implements `UploadStore` for `$ty(pub Pool<$db>)`; `$lock`, if given, is a statement that
/// takes a transaction-scoped lock per account (`$1` host, `$2` user) before the quota check.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_upload_store {
    ($ty:ident, $db:ty, $lock:expr) => {
        /// HTTP File Upload slots in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $crate::storage::uploads::UploadStore for $ty {
            fn reserve<'a>(
                &'a self,
                u: &'a $crate::storage::uploads::Upload,
                quota: u64,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    // The quota check and the insert are one statement (ordered by a lock per
                    // account where the engine runs writers side by side, as for offline
                    // messages).
                    // Each upload is charged at least MIN_CHARGE bytes (a file takes a disk
                    // block and a row), so tiny slots cannot pile up within a quota.
                    let size = i64::try_from(u.size).unwrap_or(i64::MAX);
                    let charge = size.max($crate::storage::uploads::MIN_CHARGE);
                    let insert = sqlx::query(
                        "INSERT INTO uploads \
                         (id, host, username, filename, size, content_type, created_ms, done) \
                         SELECT $3, $1, $2, $4, $5, $6, $7, FALSE FROM \
                         (SELECT COALESCE(SUM(CASE WHEN size < $9 THEN $9 ELSE size END), 0) \
                          AS b FROM uploads WHERE host = $1 AND username = $2) AS used \
                         WHERE used.b + $10 <= $8",
                    )
                    .bind(&u.host)
                    .bind(&u.username)
                    .bind(&u.id)
                    .bind(&u.filename)
                    .bind(size)
                    .bind(&u.content_type)
                    .bind(u.created_ms)
                    .bind(i64::try_from(quota).unwrap_or(i64::MAX))
                    .bind($crate::storage::uploads::MIN_CHARGE)
                    .bind(charge);
                    let lock: Option<&'static str> = $lock;
                    let n = match lock {
                        None => insert.execute(&self.0).await?.rows_affected(),
                        Some(lock) => {
                            let mut tx = self.0.begin().await?;
                            sqlx::query(lock)
                                .bind(&u.host)
                                .bind(&u.username)
                                .execute(&mut *tx)
                                .await?;
                            let n = insert.execute(&mut *tx).await?.rows_affected();
                            tx.commit().await?;
                            n
                        }
                    };
                    Ok(n > 0)
                })
            }

            fn get<'a>(
                &'a self,
                id: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::uploads::Upload>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row = sqlx::query(
                        "SELECT id, host, username, filename, size, content_type, created_ms, \
                         done FROM uploads WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.0)
                    .await?;
                    let Some(r) = row else { return Ok(None) };
                    Ok(Some($crate::storage::uploads::Upload {
                        id: r.try_get("id")?,
                        host: r.try_get("host")?,
                        username: r.try_get("username")?,
                        filename: r.try_get("filename")?,
                        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                        content_type: r.try_get("content_type")?,
                        created_ms: r.try_get("created_ms")?,
                        done: r.try_get("done")?,
                    }))
                })
            }

            fn complete<'a>(&'a self, id: &'a str) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let n = sqlx::query("UPDATE uploads SET done = TRUE WHERE id = $1 AND done = FALSE")
                        .bind(id)
                        .execute(&self.0)
                        .await?
                        .rows_affected();
                    Ok(n > 0)
                })
            }

            fn purge<'a>(
                &'a self,
                before_ms: i64,
                pending_before_ms: i64,
            ) -> $crate::storage::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "DELETE FROM uploads WHERE created_ms < $1 \
                         OR (done = FALSE AND created_ms < $2) RETURNING id",
                    )
                    .bind(before_ms)
                    .bind(pending_before_ms)
                    .fetch_all(&self.0)
                    .await?;
                    rows.iter()
                        .map(|r| r.try_get("id").map_err($crate::storage::StoreError::from))
                        .collect()
                })
            }
        }
    };
}
