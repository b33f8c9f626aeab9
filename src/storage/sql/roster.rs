//! `RosterStore` in SQL.

/// Implements `RosterStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_roster_store {
    ($ty:ident, $db:ty) => {
        /// Rosters in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $ty {
            async fn bump(
                tx: &mut sqlx::Transaction<'_, $db>,
                host: &str,
                user: &str,
            ) -> Result<i64, $crate::storage::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1) \
                     ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1 \
                     RETURNING version",
                )
                .bind(host)
                .bind(user)
                .fetch_one(&mut **tx)
                .await?;
                Ok(row.try_get("version")?)
            }

            /// Inserts `item`, or updates a stored one: its subscription state, and with
            /// `name_too` its name. Groups are the caller's business.
            async fn upsert(
                tx: &mut sqlx::Transaction<'_, $db>,
                host: &str,
                user: &str,
                item: &$crate::storage::roster::RosterItem,
                name_too: bool,
            ) -> Result<(), $crate::storage::StoreError> {
                let sql = if name_too {
                    "INSERT INTO roster_items (host, username, contact, name, subscription, ask, approved) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (host, username, contact) DO UPDATE SET name = excluded.name, \
                     subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved"
                } else {
                    "INSERT INTO roster_items (host, username, contact, name, subscription, ask, approved) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (host, username, contact) DO UPDATE SET \
                     subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved"
                };
                sqlx::query(sql)
                    .bind(host)
                    .bind(user)
                    .bind(&item.contact)
                    .bind(&item.name)
                    .bind(item.subscription.as_str())
                    .bind(item.ask)
                    .bind(item.approved)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            fn row_to_item(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::storage::roster::RosterItem, $crate::storage::StoreError> {
                use sqlx::Row;
                let sub: String = row.try_get("subscription")?;
                Ok($crate::storage::roster::RosterItem {
                    contact: row.try_get("contact")?,
                    name: row.try_get("name")?,
                    subscription: $crate::storage::roster::Subscription::parse(&sub)
                        .ok_or_else(|| $crate::storage::StoreError::Corrupt(format!("subscription {sub}")))?,
                    ask: row.try_get("ask")?,
                    approved: row.try_get("approved")?,
                    groups: Vec::new(),
                })
            }
        }

        impl $crate::storage::roster::RosterStore for $ty {
            fn items<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, (i64, Vec<$crate::storage::roster::RosterItem>)> {
                Box::pin(async move {
                    use sqlx::Row;
                    let mut tx = self.0.begin().await?;
                    let ver: Option<i64> =
                        sqlx::query("SELECT version FROM roster_versions WHERE host = $1 AND username = $2")
                            .bind(host)
                            .bind(user)
                            .fetch_optional(&mut *tx)
                            .await?
                            .map(|r| r.try_get("version"))
                            .transpose()?;
                    let rows = sqlx::query(
                        "SELECT contact, name, subscription, ask, approved FROM roster_items \
                         WHERE host = $1 AND username = $2 ORDER BY contact",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut items = rows.iter().map(Self::row_to_item).collect::<Result<Vec<_>, _>>()?;
                    let groups = sqlx::query(
                        "SELECT contact, grp FROM roster_groups WHERE host = $1 AND username = $2 \
                         ORDER BY contact, grp",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    for g in &groups {
                        let contact: String = g.try_get("contact")?;
                        if let Ok(i) = items.binary_search_by(|it| it.contact.as_str().cmp(&contact)) {
                            items[i].groups.push(g.try_get("grp")?);
                        }
                    }
                    Ok((ver.unwrap_or(0), items))
                })
            }

            fn item<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                contact: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::roster::RosterItem>> {
                Box::pin(async move {
                    use sqlx::Row;
                    // One statement: the item, once per group (or once with no group).
                    let rows = sqlx::query(
                        "SELECT i.contact, i.name, i.subscription, i.ask, i.approved, g.grp \
                         FROM roster_items i LEFT JOIN roster_groups g ON g.host = i.host \
                         AND g.username = i.username AND g.contact = i.contact \
                         WHERE i.host = $1 AND i.username = $2 AND i.contact = $3 ORDER BY g.grp",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(contact)
                    .fetch_all(&self.0)
                    .await?;
                    let Some(first) = rows.first() else { return Ok(None) };
                    let mut item = Self::row_to_item(first)?;
                    for r in &rows {
                        if let Some(g) = r.try_get::<Option<String>, _>("grp")? {
                            item.groups.push(g);
                        }
                    }
                    Ok(Some(item))
                })
            }

            fn put_state<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                item: &'a $crate::storage::roster::RosterItem,
            ) -> $crate::storage::StoreFuture<'a, i64> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    Self::upsert(&mut tx, host, user, item, false).await?;
                    let ver = Self::bump(&mut tx, host, user).await?;
                    tx.commit().await?;
                    Ok(ver)
                })
            }

            fn put<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                item: &'a $crate::storage::roster::RosterItem,
            ) -> $crate::storage::StoreFuture<'a, i64> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    Self::upsert(&mut tx, host, user, item, true).await?;
                    sqlx::query("DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND contact = $3")
                        .bind(host)
                        .bind(user)
                        .bind(&item.contact)
                        .execute(&mut *tx)
                        .await?;
                    for g in &item.groups {
                        sqlx::query(
                            "INSERT INTO roster_groups (host, username, contact, grp) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(host)
                        .bind(user)
                        .bind(&item.contact)
                        .bind(g)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let ver = Self::bump(&mut tx, host, user).await?;
                    tx.commit().await?;
                    Ok(ver)
                })
            }

            fn remove<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                contact: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<i64>> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    sqlx::query("DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND contact = $3")
                        .bind(host)
                        .bind(user)
                        .bind(contact)
                        .execute(&mut *tx)
                        .await?;
                    let n = sqlx::query("DELETE FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3")
                        .bind(host)
                        .bind(user)
                        .bind(contact)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Ok(None);
                    }
                    let ver = Self::bump(&mut tx, host, user).await?;
                    tx.commit().await?;
                    Ok(Some(ver))
                })
            }

            fn count<'a>(&'a self, host: &'a str, user: &'a str) -> $crate::storage::StoreFuture<'a, usize> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM roster_items WHERE host = $1 AND username = $2")
                        .bind(host)
                        .bind(user)
                        .fetch_one(&self.0)
                        .await?;
                    let n: i64 = row.try_get("n")?;
                    Ok(usize::try_from(n).unwrap_or(0))
                })
            }

            fn pending<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<(String, String)>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT contact, stanza FROM presence_pending WHERE host = $1 AND username = $2 \
                         ORDER BY contact",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_all(&self.0)
                    .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get("contact")?, r.try_get("stanza")?)))
                        .collect()
                })
            }

            fn add_pending<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                contact: &'a str,
                stanza: &'a str,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO presence_pending (host, username, contact, stanza) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (host, username, contact) DO UPDATE SET stanza = excluded.stanza",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(contact)
                    .bind(stanza)
                    .execute(&self.0)
                    .await?;
                    Ok(())
                })
            }

            fn remove_pending<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                contact: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let n = sqlx::query(
                        "DELETE FROM presence_pending WHERE host = $1 AND username = $2 AND contact = $3",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(contact)
                    .execute(&self.0)
                    .await?
                    .rows_affected();
                    Ok(n > 0)
                })
            }
        }
    };
}
