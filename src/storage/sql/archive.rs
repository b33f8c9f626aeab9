//! `ArchiveStore` in SQL. Queries are built with sqlx's `QueryBuilder` (its placeholders suit
//! each database): filters are optional, and a fixed statement with `$N IS NULL OR …` for each
//! would keep the planner from the (owner, with, id) index.

/// Rows per INSERT statement (SQLite allows 32,766 bound values; 7 per row).
pub const APPEND_CHUNK: usize = 500;

/// (table, owner columns, column `with` filters on) of an archive.
pub fn table_of(owner: crate::storage::archive::Owner<'_>) -> (&'static str, &'static str) {
    match owner {
        crate::storage::archive::Owner::Account(..) => ("mam_messages", "with_jid"),
        crate::storage::archive::Owner::Room(_) => ("muc_messages", "nick"),
    }
}

/// Implements `ArchiveStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_archive_store {
    ($ty:ident, $db:ty) => {
        /// Message archives in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $ty {
            /// Appends ` <owner columns> ` to a WHERE clause.
            fn owner_where(
                b: &mut sqlx::QueryBuilder<$db>,
                owner: $crate::storage::archive::Owner<'_>,
            ) {
                use $crate::storage::archive::Owner;
                match owner {
                    Owner::Account(host, user) => {
                        b.push(" host = ");
                        b.push_bind(host);
                        b.push(" AND username = ");
                        b.push_bind(user);
                    }
                    Owner::Room(room) => {
                        b.push(" room = ");
                        b.push_bind(room);
                    }
                }
            }

            /// The row id of message `sid` in `owner`'s archive.
            async fn row_id(
                &self,
                owner: $crate::storage::archive::Owner<'_>,
                sid: &str,
            ) -> Result<Option<i64>, sqlx::Error> {
                use sqlx::Row;
                let (table, _) = $crate::storage::sql::archive::table_of(owner);
                let mut b = sqlx::QueryBuilder::<$db>::new(format!("SELECT id FROM {table} WHERE"));
                Self::owner_where(&mut b, owner);
                b.push(" AND stanza_id = ");
                b.push_bind(sid.to_string());
                let row = b.build().fetch_optional(&self.0).await?;
                row.map(|r| r.try_get::<i64, _>(0)).transpose()
            }

            /// Row ids of the ids a query names; `None` if one is not in the archive.
            async fn bounds_of(
                &self,
                owner: $crate::storage::archive::Owner<'_>,
                q: &$crate::storage::archive::ArchiveQuery,
            ) -> Result<Option<(Option<i64>, Option<i64>)>, sqlx::Error> {
                use $crate::storage::archive::Page;
                let (page_after, page_before) = match &q.page {
                    Page::After(a) => (a.as_deref().filter(|s| !s.is_empty()), None),
                    Page::Before(b) => (None, b.as_deref().filter(|s| !s.is_empty())),
                };
                let mut lower: Option<i64> = None;
                for sid in [page_after, q.after_id.as_deref()].into_iter().flatten() {
                    match self.row_id(owner, sid).await? {
                        Some(id) => lower = Some(lower.map_or(id, |l| l.max(id))),
                        None => return Ok(None),
                    }
                }
                let mut upper: Option<i64> = None;
                for sid in [page_before, q.before_id.as_deref()].into_iter().flatten() {
                    match self.row_id(owner, sid).await? {
                        Some(id) => upper = Some(upper.map_or(id, |u| u.min(id))),
                        None => return Ok(None),
                    }
                }
                Ok(Some((lower, upper)))
            }

            /// The oldest (or newest) message of an archive.
            async fn end_of(
                &self,
                owner: $crate::storage::archive::Owner<'_>,
                newest: bool,
            ) -> Result<Option<$crate::storage::archive::Archived>, sqlx::Error> {
                use sqlx::Row;
                let (table, _) = $crate::storage::sql::archive::table_of(owner);
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT stanza_id, ts_ms, xml FROM {table} WHERE"
                ));
                Self::owner_where(&mut b, owner);
                b.push(if newest { " ORDER BY id DESC LIMIT 1" } else { " ORDER BY id ASC LIMIT 1" });
                let Some(r) = b.build().fetch_optional(&self.0).await? else {
                    return Ok(None);
                };
                Ok(Some($crate::storage::archive::Archived {
                    stanza_id: r.try_get("stanza_id")?,
                    ts_ms: r.try_get("ts_ms")?,
                    xml: r.try_get("xml")?,
                }))
            }

            /// Removes the oldest messages of each archive of `table` (owned by `cols`) beyond
            /// `keep`.
            async fn trim(&self, table: &str, cols: &[&str], keep: u64) -> Result<u64, sqlx::Error> {
                use sqlx::Row;
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                let list = cols.join(", ");
                let over = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {list} FROM {table} GROUP BY {list} HAVING COUNT(*) > $1"
                )))
                .bind(keep)
                .fetch_all(&self.0)
                .await?;
                let mut gone = 0;
                for r in over {
                    let vals = (0..cols.len())
                        .map(|i| r.try_get::<String, _>(i))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!("DELETE FROM {table} WHERE"));
                    // Twice: the rows to delete, and the subquery finding the (keep+1)-th newest.
                    for pass in 0..2 {
                        if pass == 1 {
                            b.push(format!(" AND id <= (SELECT id FROM {table} WHERE"));
                        }
                        for (i, (c, v)) in cols.iter().zip(&vals).enumerate() {
                            b.push(format!("{} {c} = ", if i == 0 { "" } else { " AND" }));
                            b.push_bind(v.clone());
                        }
                    }
                    b.push(" ORDER BY id DESC LIMIT 1 OFFSET ");
                    b.push_bind(keep);
                    b.push(")");
                    gone += b.build().execute(&self.0).await?.rows_affected();
                }
                Ok(gone)
            }
        }

        impl $crate::storage::archive::ArchiveStore for $ty {
            fn append<'a>(
                &'a self,
                entries: &'a [$crate::storage::archive::ArchiveEntry],
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut tx = self.0.begin().await?;
                    for chunk in entries.chunks($crate::storage::sql::archive::APPEND_CHUNK) {
                        let mut b = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO mam_messages (host, username, stanza_id, with_jid, \
                             ts_ms, outgoing, xml) ",
                        );
                        b.push_values(chunk, |mut row, e| {
                            row.push_bind(e.host.as_str())
                                .push_bind(e.user.as_str())
                                .push_bind(e.stanza_id.as_str())
                                .push_bind(e.with.as_str())
                                .push_bind(e.ts_ms)
                                .push_bind(e.outgoing)
                                .push_bind(e.xml.as_str());
                        });
                        b.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn contains<'a>(
                &'a self,
                owner: $crate::storage::archive::Owner<'a>,
                stanza_id: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move { Ok(self.row_id(owner, stanza_id).await?.is_some()) })
            }

            fn query<'a>(
                &'a self,
                owner: $crate::storage::archive::Owner<'a>,
                q: &'a $crate::storage::archive::ArchiveQuery,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::archive::ArchivePage>>
            {
                Box::pin(async move {
                    use sqlx::Row;
                    use $crate::storage::archive::{Archived, ArchivePage, Page};
                    let Some((lower, upper)) = self.bounds_of(owner, q).await? else {
                        return Ok(None);
                    };
                    let (table, with_col) = $crate::storage::sql::archive::table_of(owner);
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT stanza_id, ts_ms, xml FROM {table} WHERE"
                    ));
                    Self::owner_where(&mut b, owner);
                    if let Some(w) = &q.with {
                        b.push(format!(" AND {with_col} = "));
                        b.push_bind(w.as_str());
                    }
                    if let Some(t) = q.start_ms {
                        b.push(" AND ts_ms >= ");
                        b.push_bind(t);
                    }
                    if let Some(t) = q.end_ms {
                        b.push(" AND ts_ms <= ");
                        b.push_bind(t);
                    }
                    if let Some(id) = lower {
                        b.push(" AND id > ");
                        b.push_bind(id);
                    }
                    if let Some(id) = upper {
                        b.push(" AND id < ");
                        b.push_bind(id);
                    }
                    if !q.ids.is_empty() {
                        b.push(" AND stanza_id IN (");
                        let mut s = b.separated(", ");
                        for id in &q.ids {
                            s.push_bind(id.as_str());
                        }
                        b.push(")");
                    }
                    let backwards = matches!(q.page, Page::Before(_));
                    b.push(if backwards { " ORDER BY id DESC" } else { " ORDER BY id ASC" });
                    b.push(" LIMIT ");
                    b.push_bind(i64::try_from(q.max.saturating_add(1)).unwrap_or(i64::MAX));
                    let rows = b.build().fetch_all(&self.0).await?;
                    let complete = rows.len() <= q.max;
                    let mut items = rows
                        .iter()
                        .take(q.max)
                        .map(|r| {
                            Ok(Archived {
                                stanza_id: r.try_get("stanza_id")?,
                                ts_ms: r.try_get("ts_ms")?,
                                xml: r.try_get("xml")?,
                            })
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    if backwards {
                        items.reverse();
                    }
                    Ok(Some(ArchivePage { items, complete }))
                })
            }

            fn bounds<'a>(
                &'a self,
                owner: $crate::storage::archive::Owner<'a>,
            ) -> $crate::storage::StoreFuture<
                'a,
                Option<($crate::storage::archive::Archived, $crate::storage::archive::Archived)>,
            > {
                Box::pin(async move {
                    let first = self.end_of(owner, false).await?;
                    let last = self.end_of(owner, true).await?;
                    Ok(first.zip(last))
                })
            }

            fn prefs<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::archive::Prefs>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let row = sqlx::query(
                        "SELECT default_mode, always_jids, never_jids FROM mam_prefs \
                         WHERE host = $1 AND username = $2",
                    )
                    .bind(host)
                    .bind(user)
                    .fetch_optional(&self.0)
                    .await?;
                    let Some(r) = row else { return Ok(None) };
                    let mode: String = r.try_get("default_mode")?;
                    let default = $crate::storage::archive::Mode::parse(&mode).ok_or_else(|| {
                        $crate::storage::StoreError::Corrupt(format!("archive mode {mode}"))
                    })?;
                    let lines = |s: String| -> Vec<String> {
                        s.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
                    };
                    Ok(Some($crate::storage::archive::Prefs {
                        default,
                        always: lines(r.try_get("always_jids")?),
                        never: lines(r.try_get("never_jids")?),
                    }))
                })
            }

            fn set_prefs<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                p: &'a $crate::storage::archive::Prefs,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO mam_prefs (host, username, default_mode, always_jids, \
                         never_jids) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host, username) \
                         DO UPDATE SET default_mode = $3, always_jids = $4, never_jids = $5",
                    )
                    .bind(host)
                    .bind(user)
                    .bind(p.default.as_str())
                    .bind(p.always.join("\n"))
                    .bind(p.never.join("\n"))
                    .execute(&self.0)
                    .await?;
                    Ok(())
                })
            }

            fn purge<'a>(&'a self, before_ms: i64, keep: u64) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let mut gone = 0;
                    for q in [
                        "DELETE FROM mam_messages WHERE ts_ms < $1",
                        "DELETE FROM muc_messages WHERE ts_ms < $1",
                    ] {
                        gone += sqlx::query(q).bind(before_ms).execute(&self.0).await?.rows_affected();
                    }
                    if keep > 0 {
                        gone += self.trim("mam_messages", &["host", "username"], keep).await?;
                        gone += self.trim("muc_messages", &["room"], keep).await?;
                    }
                    Ok(gone)
                })
            }
        }
    };
}
