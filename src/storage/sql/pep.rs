//! `PepStore` in SQL.

use crate::storage::StoreError;
use crate::storage::pep::{Access, NodeConfig, PepItem};

/// A node's configuration from its row (`access_model`, `persist_items`, `max_items`,
/// `notify_retract`).
pub fn config_of<R: sqlx::Row>(r: &R) -> Result<NodeConfig, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i32: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let access: String = r.try_get("access_model")?;
    Ok(NodeConfig {
        access: Access::parse(&access)
            .ok_or_else(|| StoreError::Corrupt(format!("access model {access}")))?,
        persist_items: r.try_get("persist_items")?,
        max_items: u32::try_from(r.try_get::<i32, _>("max_items")?).unwrap_or(1),
        notify_retract: r.try_get("notify_retract")?,
    })
}

/// An item from its row (`item_id`, `publisher`, `ts_ms`, `xml`).
pub fn item_of<R: sqlx::Row>(r: &R) -> Result<PepItem, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PepItem {
        id: r.try_get("item_id")?,
        publisher: r.try_get("publisher")?,
        ts_ms: r.try_get("ts_ms")?,
        xml: r.try_get("xml")?,
    })
}

/// Implements `PepStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_pep_store {
    ($ty:ident, $db:ty) => {
        /// PEP nodes and items in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $ty {
            /// Keeps the newest `keep` items of a node.
            async fn trim<'e, E>(
                e: E,
                host: &str,
                user: &str,
                node: &str,
                keep: u32,
            ) -> Result<(), sqlx::Error>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                sqlx::query(
                    "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3 \
                     AND id <= (SELECT id FROM pep_items WHERE host = $1 AND username = $2 \
                     AND node = $3 ORDER BY id DESC LIMIT 1 OFFSET $4)",
                )
                .bind(host)
                .bind(user)
                .bind(node)
                .bind(i64::from(keep))
                .execute(e)
                .await?;
                Ok(())
            }
        }

        impl $crate::storage::pep::PepStore for $ty {
            fn node<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::pep::NodeConfig>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT access_model, persist_items, max_items, notify_retract \
                         FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .fetch_optional(&self.0)
                    .await?;
                    row.map(|r| $crate::storage::sql::pep::config_of(&r)).transpose()
                })
            }

            fn nodes<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT node FROM pep_nodes WHERE host = $1 AND username = $2 \
                         ORDER BY node",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&self.0)
                    .await?;
                    Ok(rows
                        .iter()
                        .map(|r| r.try_get("node"))
                        .collect::<Result<_, sqlx::Error>>()?)
                })
            }

            fn save_node<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                c: &'a $crate::storage::pep::NodeConfig,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    sqlx::query(
                        "INSERT INTO pep_nodes (host, username, node, access_model, \
                         persist_items, max_items, notify_retract) VALUES ($1, $2, $3, $4, \
                         $5, $6, $7) ON CONFLICT (host, username, node) DO UPDATE SET \
                         access_model = $4, persist_items = $5, max_items = $6, \
                         notify_retract = $7",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(c.access.as_str())
                    .bind(c.persist_items)
                    .bind(i32::try_from(c.max_items).unwrap_or(i32::MAX))
                    .bind(c.notify_retract)
                    .execute(&mut *tx)
                    .await?;
                    Self::trim(&mut *tx, host, user, node, c.max_items).await?;
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn delete_node<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    sqlx::query(
                        "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
                    let n = sqlx::query(
                        "DELETE FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    Ok(n > 0)
                })
            }

            fn publish<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                item: &'a $crate::storage::pep::PepItem,
                keep: u32,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    // Replaced, not updated: the item becomes the newest (XEP-0060 §7.1.2).
                    sqlx::query(
                        "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3 \
                         AND item_id = $4",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(&item.id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO pep_items (host, username, node, item_id, publisher, \
                         ts_ms, size, xml) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(&item.id)
                    .bind(&item.publisher)
                    .bind(item.ts_ms)
                    .bind(i64::try_from(item.xml.len()).unwrap_or(i64::MAX))
                    .bind(&item.xml)
                    .execute(&mut *tx)
                    .await?;
                    Self::trim(&mut *tx, host, user, node, keep).await?;
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn retract<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                id: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let n = sqlx::query(
                        "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3 \
                         AND item_id = $4",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(id)
                    .execute(&self.0)
                    .await?
                    .rows_affected();
                    Ok(n > 0)
                })
            }

            fn items<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                max: usize,
                ids: &'a [String],
            ) -> $crate::storage::StoreFuture<'a, Vec<$crate::storage::pep::PepItem>> {
                Box::pin(async move {
                    let mut b = sqlx::QueryBuilder::<$db>::new(
                        "SELECT item_id, publisher, ts_ms, xml FROM pep_items WHERE host = ",
                    );
                    b.push_bind(host.to_string());
                    b.push(" AND username = ");
                    b.push_bind(user.to_string());
                    b.push(" AND node = ");
                    b.push_bind(node.to_string());
                    if !ids.is_empty() {
                        b.push(" AND item_id IN (");
                        let mut s = b.separated(", ");
                        for id in ids {
                            s.push_bind(id.clone());
                        }
                        b.push(")");
                    }
                    b.push(" ORDER BY id DESC LIMIT ");
                    b.push_bind(i64::try_from(max).unwrap_or(i64::MAX));
                    let rows = b.build().fetch_all(&self.0).await?;
                    let mut v = rows
                        .iter()
                        .map($crate::storage::sql::pep::item_of)
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    v.reverse();
                    Ok(v)
                })
            }

            fn purge<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
            ) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .execute(&self.0)
                    .await?
                    .rows_affected())
                })
            }

            fn last_items<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<
                'a,
                Vec<(String, $crate::storage::pep::NodeConfig, $crate::storage::pep::PepItem)>,
            > {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT n.node, n.access_model, n.persist_items, n.max_items, \
                         n.notify_retract, i.item_id, i.publisher, i.ts_ms, i.xml \
                         FROM pep_nodes n JOIN pep_items i ON i.host = n.host \
                         AND i.username = n.username AND i.node = n.node \
                         WHERE n.host = $1 AND n.username = $2 AND i.id = (SELECT MAX(id) \
                         FROM pep_items j WHERE j.host = n.host AND j.username = n.username \
                         AND j.node = n.node) ORDER BY n.node",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&self.0)
                    .await?;
                    let mut v = Vec::with_capacity(rows.len());
                    for r in &rows {
                        v.push((
                            r.try_get("node")?,
                            $crate::storage::sql::pep::config_of(r)?,
                            $crate::storage::sql::pep::item_of(r)?,
                        ));
                    }
                    Ok(v)
                })
            }

            fn bytes<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row = sqlx::query(
                        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS n FROM pep_items \
                         WHERE host = $1 AND username = $2",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_one(&self.0)
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    Ok(u64::try_from(n).unwrap_or(0))
                })
            }

            fn subscribe<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                jid: &'a str,
                max: usize,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let subs = self.subscribers(host, user, node).await?;
                    if subs.iter().any(|s| s == jid) {
                        return Ok(true);
                    }
                    if subs.len() >= max {
                        return Ok(false);
                    }
                    sqlx::query(
                        "INSERT INTO pep_subscriptions (host, username, node, jid) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(jid)
                    .execute(&self.0)
                    .await?;
                    Ok(true)
                })
            }

            fn unsubscribe<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
                jid: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let n = sqlx::query(
                        "DELETE FROM pep_subscriptions WHERE host = $1 AND username = $2 \
                         AND node = $3 AND jid = $4",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .bind(jid)
                    .execute(&self.0)
                    .await?
                    .rows_affected();
                    Ok(n > 0)
                })
            }

            fn subscribers<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                node: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT jid FROM pep_subscriptions WHERE host = $1 AND username = $2 \
                         AND node = $3 ORDER BY jid",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(node)
                    .fetch_all(&self.0)
                    .await?;
                    Ok(rows.into_iter().map(|(j,)| j).collect())
                })
            }

            fn subscriptions<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                bare: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<(String, String)>> {
                Box::pin(async move {
                    // The bare JID, or one of its full JIDs (no LIKE: '%' and '_' may be in a JID).
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT node, jid FROM pep_subscriptions WHERE host = $1 \
                         AND username = $2 AND (jid = $3 OR substr(jid, 1, length($3) + 1) = $4) \
                         ORDER BY node, jid",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(bare)
                    .bind(format!("{bare}/"))
                    .fetch_all(&self.0)
                    .await?;
                    Ok(rows)
                })
            }
        }
    };
}
