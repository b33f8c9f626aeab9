//! `DocumentStore` in SQL.

/// Implements `DocumentStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_document_store {
    ($ty:ident, $db:ty) => {
        /// Per-user documents in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $crate::storage::documents::DocumentStore for $ty {
            fn get<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                kind: &'a str,
                key: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<String>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row = sqlx::query(
                        "SELECT xml FROM user_documents \
                         WHERE host = $1 AND username = $2 AND kind = $3 AND doc_key = $4",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(kind)
                    .bind(key)
                    .fetch_optional(&self.0)
                    .await?;
                    Ok(row.map(|r| r.try_get("xml")).transpose()?)
                })
            }

            fn keys<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                kind: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT doc_key FROM user_documents WHERE host = $1 AND username = $2 AND kind = $3 \
                         ORDER BY doc_key",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(kind)
                    .fetch_all(&self.0)
                    .await?;
                    rows.iter()
                        .map(|r| r.try_get("doc_key").map_err($crate::storage::StoreError::from))
                        .collect()
                })
            }

            fn delete<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                kind: &'a str,
                key: Option<&'a str>,
            ) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let done = match key {
                        Some(k) => sqlx::query(
                            "DELETE FROM user_documents \
                             WHERE host = $1 AND username = $2 AND kind = $3 AND doc_key = $4",
                        )
                        .bind(host)
                        .bind(user)
                        .bind(kind)
                        .bind(k)
                        .execute(&self.0)
                        .await?,
                        None => sqlx::query(
                            "DELETE FROM user_documents WHERE host = $1 AND username = $2 AND kind = $3",
                        )
                        .bind(host)
                        .bind(user)
                        .bind(kind)
                        .execute(&self.0)
                        .await?,
                    };
                    Ok(done.rows_affected())
                })
            }

            fn set<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                kind: &'a str,
                key: &'a str,
                xml: &'a str,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO user_documents (host, username, kind, doc_key, xml) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (host, username, kind, doc_key) DO UPDATE SET xml = excluded.xml",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(kind)
                    .bind(key)
                    .bind(xml)
                    .execute(&self.0)
                    .await?;
                    Ok(())
                })
            }
        }
    };
}
