//! `ArchiveStore` in SQL. Queries are built with sqlx's `QueryBuilder` (its placeholders suit
//! each database): filters are optional, and a fixed statement with `$N IS NULL OR …` for each
//! would keep the planner from the (owner, with, id) index.
//!
//! The two archives differ in their ids: an account's message is named by its row id (given
//! here at commit, from the time), so a time range is an id range and no other index is
//! needed; a room's by the random stanza id it was broadcast with (`muc_messages.stanza_id`).

use crate::storage::archive::Owner;

/// Rows per INSERT statement (SQLite allows 32,766 bound values; 7 per row).
pub const APPEND_CHUNK: usize = 500;

/// (table, column `with` filters on, column naming a message) of an archive.
pub fn table_of(owner: Owner<'_>) -> (&'static str, &'static str, &'static str) {
    match owner {
        Owner::Account(..) => ("mam_messages", "with_jid", "id"),
        Owner::Room(_) => ("muc_messages", "nick", "stanza_id"),
    }
}

/// What the writer keeps: its connection and the last id it gave.
pub struct Writer<C> {
    /// A pooled connection of its own.
    pub conn: Option<C>,
    /// The last id given (read from the table when the writer starts).
    pub last: Option<i64>,
}

/// Implements `ArchiveStore` for `$ty`, over a `Pool<$db>`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_archive_store {
    ($ty:ident, $db:ty) => {
        $crate::sql_inbox_methods!($ty, $db);

        /// Message archives in this database. Appends (one writer task calls them, one at a
        /// time) keep one pooled connection of their own: on SQLite a connection that another
        /// one wrote behind its back starts over with a cold page cache, and taking any
        /// connection of the pool for each commit made every append read its pages again.
        pub struct $ty(
            pub sqlx::Pool<$db>,
            tokio::sync::Mutex<
                $crate::storage::sql::archive::Writer<sqlx::pool::PoolConnection<$db>>,
            >,
        );

        impl $ty {
            /// The archive of the database behind `pool`.
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                let w = $crate::storage::sql::archive::Writer { conn: None, last: None };
                $ty(pool, tokio::sync::Mutex::new(w))
            }

            /// Appends ` <owner columns> ` to a WHERE clause.
            fn owner_where(
                b: &mut sqlx::QueryBuilder<$db>,
                owner: $crate::storage::archive::Owner<'_>,
            ) {
                use $crate::storage::archive::Owner;
                match owner {
                    Owner::Account(host, user) => {
                        b.push(" host = ");
                        b.push_bind(host.to_string());
                        b.push(" AND username = ");
                        b.push_bind(user.to_string());
                    }
                    Owner::Room(room) => {
                        b.push(" room = ");
                        b.push_bind(room.to_string());
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
                use $crate::storage::archive::Owner;
                let mut b = match owner {
                    Owner::Account(..) => {
                        // An account's ids are the row ids: one that is not a number is unknown.
                        let Ok(id) = sid.parse::<i64>() else { return Ok(None) };
                        let mut b = sqlx::QueryBuilder::<$db>::new("SELECT id FROM mam_messages WHERE");
                        Self::owner_where(&mut b, owner);
                        b.push(" AND id = ");
                        b.push_bind(id);
                        b
                    }
                    Owner::Room(_) => {
                        let mut b = sqlx::QueryBuilder::<$db>::new("SELECT id FROM muc_messages WHERE");
                        Self::owner_where(&mut b, owner);
                        b.push(" AND stanza_id = ");
                        b.push_bind(sid.to_string());
                        b
                    }
                };
                let row = b.build().fetch_optional(&self.0).await?;
                row.map(|r| r.try_get::<i64, _>(0)).transpose()
            }

            /// Row ids bounding a query (exclusive), from the ids it names and, for an
            /// account's archive, its time range; `None` if a named id is not in the archive.
            async fn bounds_of(
                &self,
                owner: $crate::storage::archive::Owner<'_>,
                q: &$crate::storage::archive::ArchiveQuery,
            ) -> Result<Option<(Option<i64>, Option<i64>)>, sqlx::Error> {
                use $crate::storage::archive::{Owner, Page, id_at};
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
                if let Owner::Account(..) = owner {
                    if let Some(t) = q.start_ms {
                        let id = id_at(t) - 1;
                        lower = Some(lower.map_or(id, |l| l.max(id)));
                    }
                    if let Some(t) = q.end_ms {
                        let id = id_at(t.saturating_add(1));
                        upper = Some(upper.map_or(id, |u| u.min(id)));
                    }
                }
                Ok(Some((lower, upper)))
            }

            /// A message of `owner`'s archive from its row.
            fn archived(
                owner: $crate::storage::archive::Owner<'_>,
                r: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::storage::archive::Archived, sqlx::Error> {
                use sqlx::Row;
                let stanza_id = match owner {
                    $crate::storage::archive::Owner::Account(..) => {
                        r.try_get::<i64, _>("id")?.to_string()
                    }
                    $crate::storage::archive::Owner::Room(_) => r.try_get("stanza_id")?,
                };
                Ok($crate::storage::archive::Archived {
                    stanza_id,
                    ts_ms: r.try_get("ts_ms")?,
                    xml: r.try_get("xml")?,
                })
            }

            /// The oldest (or newest) message of an archive.
            async fn end_of(
                &self,
                owner: $crate::storage::archive::Owner<'_>,
                newest: bool,
            ) -> Result<Option<$crate::storage::archive::Archived>, sqlx::Error> {
                let (table, _, sid) = $crate::storage::sql::archive::table_of(owner);
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {sid}, ts_ms, xml FROM {table} WHERE"
                ));
                Self::owner_where(&mut b, owner);
                b.push(if newest { " ORDER BY id DESC LIMIT 1" } else { " ORDER BY id ASC LIMIT 1" });
                match b.build().fetch_optional(&self.0).await? {
                    Some(r) => Ok(Some(Self::archived(owner, &r)?)),
                    None => Ok(None),
                }
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
                entries: &'a mut [$crate::storage::archive::ArchiveEntry],
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut w = self.1.lock().await;
                    let r = Self::insert(&mut w, &self.0, entries).await;
                    if r.is_err() {
                        // Not kept: a broken connection, or ids another writer took meanwhile;
                        // the next append starts afresh from the table.
                        w.conn = None;
                        w.last = None;
                    }
                    Ok(r?)
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
                    use $crate::storage::archive::{ArchivePage, Owner, Page};
                    let Some((lower, upper)) = self.bounds_of(owner, q).await? else {
                        return Ok(None);
                    };
                    let (table, with_col, sid) = $crate::storage::sql::archive::table_of(owner);
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT id, {sid}, ts_ms, xml FROM {table} WHERE"
                    ));
                    if sid == "id" {
                        b = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT id, ts_ms, xml FROM {table} WHERE"
                        ));
                    }
                    Self::owner_where(&mut b, owner);
                    if let Some(w) = &q.with {
                        b.push(format!(" AND {with_col} = "));
                        b.push_bind(w.clone());
                    }
                    if let Owner::Room(_) = owner {
                        if let Some(t) = q.start_ms {
                            b.push(" AND ts_ms >= ");
                            b.push_bind(t);
                        }
                        if let Some(t) = q.end_ms {
                            b.push(" AND ts_ms <= ");
                            b.push_bind(t);
                        }
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
                        b.push(format!(" AND {sid} IN ("));
                        let mut s = b.separated(", ");
                        for id in &q.ids {
                            match owner {
                                // An id that is not a number names nothing here.
                                Owner::Account(..) => s.push_bind(id.parse::<i64>().unwrap_or(-1)),
                                Owner::Room(_) => s.push_bind(id.clone()),
                            };
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
                        .map(|r| Self::archived(owner, r))
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
                    // An account's ids bound its times: the messages before `before_ms` are
                    // those with smaller ids.
                    let before_id = $crate::storage::archive::id_at(before_ms);
                    gone += sqlx::query("DELETE FROM mam_messages WHERE id < $1")
                        .bind(before_id)
                        .execute(&self.0)
                        .await?
                        .rows_affected();
                    // Conversations idle since then leave the inbox with their messages.
                    sqlx::query("DELETE FROM inbox WHERE NOT room AND last_id < $1")
                        .bind(before_id)
                        .execute(&self.0)
                        .await?;
                    gone += sqlx::query("DELETE FROM muc_messages WHERE ts_ms < $1")
                        .bind(before_ms)
                        .execute(&self.0)
                        .await?
                        .rows_affected();
                    if keep > 0 {
                        gone += self.trim("mam_messages", &["host", "username"], keep).await?;
                        gone += self.trim("muc_messages", &["room"], keep).await?;
                        // A conversation whose newest message went leaves the inbox: an
                        // account's inbox never holds more conversations than its archive
                        // holds messages, however many senders wrote to it once.
                        sqlx::query(
                            "DELETE FROM inbox WHERE NOT room AND NOT EXISTS \
                             (SELECT 1 FROM mam_messages m WHERE m.id = inbox.last_id)",
                        )
                        .execute(&self.0)
                        .await?;
                    }
                    Ok(gone)
                })
            }

            fn inbox<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                limit: usize,
                count_cap: u64,
            ) -> $crate::storage::StoreFuture<'a, Vec<$crate::storage::inbox::Conversation>> {
                Box::pin(async move { Ok(self.inbox_list(host, user, limit, count_cap).await?) })
            }

            fn inbox_received<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                with: &'a str,
                before: Option<i64>,
                n: usize,
            ) -> $crate::storage::StoreFuture<
                'a,
                Option<(u64, i64, Vec<$crate::storage::inbox::Received>)>,
            > {
                Box::pin(async move { Ok(self.inbox_received_sql(host, user, with, before, n).await?) })
            }

            fn inbox_set_unread<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                with: &'a str,
                unread: u64,
                last_id: i64,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    Ok(self.inbox_set_unread_sql(host, user, with, unread, last_id).await?)
                })
            }

            fn inbox_room<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                room: &'a str,
                mark: &'a $crate::storage::inbox::RoomMark,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move { Ok(self.inbox_room_sql(host, user, room, mark).await?) })
            }

            fn inbox_reset<'a>(
                &'a self,
                host: &'a str,
                user: &'a str,
                jid: &'a str,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move { Ok(self.inbox_reset_sql(host, user, jid).await?) })
            }
        }
    };
}
