//! The write side of the archive in SQL: the writer's commit (the messages of a batch, given
//! their ids, and the inbox changes they make, in one transaction) and the inbox (XEP-0430,
//! table `inbox`): inherent methods of the archive's type (`sql_archive_store!` calls this
//! macro), which its `ArchiveStore` methods call.

use std::collections::HashMap;

use crate::storage::archive::ArchiveEntry;

/// What one commit does to one conversation of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// The newest message's id.
    pub last_id: i64,
    /// Unread messages to add (after the reset, if any).
    pub add: i64,
    /// The account sent a message: what came before is read.
    pub reset: bool,
}

/// The inbox changes of a batch of archive entries, per (host, user, with), in the order
/// first seen: a sent message reads the conversation, each received one after it is unread.
pub fn touches(entries: &[ArchiveEntry]) -> Vec<((&str, &str, &str), Touch)> {
    let mut order: Vec<(&str, &str, &str)> = Vec::new();
    let mut by: HashMap<(&str, &str, &str), Touch> = HashMap::new();
    for e in entries.iter().filter(|e| e.inbox) {
        let key = (e.host.as_str(), e.user.as_str(), e.with.as_str());
        let t = by.entry(key).or_insert_with(|| {
            order.push(key);
            Touch {
                last_id: e.id,
                add: 0,
                reset: false,
            }
        });
        t.last_id = e.id;
        if e.outgoing {
            t.reset = true;
            t.add = 0;
        } else {
            t.add += 1;
        }
    }
    order.into_iter().map(|k| (k, by[&k])).collect()
}

/// Defines the inbox methods of `$ty` over `$db` (see the module's header).
#[macro_export]
#[doc(hidden)]
macro_rules! sql_inbox_methods {
    ($ty:ident, $db:ty) => {
        impl $ty {
            /// Gives `entries` their ids and inserts them, on the writer's connection.
            async fn insert(
                w: &mut $crate::storage::sql::archive::Writer<sqlx::pool::PoolConnection<$db>>,
                pool: &sqlx::Pool<$db>,
                entries: &mut [$crate::storage::archive::ArchiveEntry],
            ) -> Result<(), sqlx::Error> {
                use sqlx::Row;
                let conn = match w.conn.as_mut() {
                    Some(c) => c,
                    None => w.conn.insert(pool.acquire().await?),
                };
                let mut last = match w.last {
                    Some(l) => l,
                    None => sqlx::query("SELECT COALESCE(MAX(id), 0) FROM mam_messages")
                        .fetch_one(&mut **conn)
                        .await?
                        .try_get::<i64, _>(0)?,
                };
                for e in entries.iter_mut() {
                    last = $crate::storage::archive::next_id(last, e.ts_ms);
                    e.id = last;
                }
                let rows = |chunk: &[$crate::storage::archive::ArchiveEntry]| {
                    let mut b = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO mam_messages (id, host, username, with_jid, ts_ms, \
                         outgoing, xml) ",
                    );
                    b.push_values(chunk, |mut row, e| {
                        row.push_bind(e.id)
                            .push_bind(e.host.clone())
                            .push_bind(e.user.clone())
                            .push_bind(e.with.clone())
                            .push_bind(e.ts_ms)
                            .push_bind(e.outgoing)
                            .push_bind(e.xml.clone());
                    });
                    b
                };
                let chunk = $crate::storage::sql::archive::APPEND_CHUNK;
                let inbox = entries.iter().any(|e| e.inbox);
                // One statement is atomic by itself: no transaction (two fewer round trips per
                // commit) unless the batch takes several, or updates the inbox too.
                if entries.len() <= chunk && !inbox {
                    rows(entries).build().execute(&mut **conn).await?;
                } else {
                    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                    for c in entries.chunks(chunk) {
                        rows(c).build().execute(&mut *tx).await?;
                    }
                    if inbox {
                        Self::inbox_touch(&mut tx, entries).await?;
                    }
                    tx.commit().await?;
                }
                w.last = Some(last);
                Ok(())
            }

            /// Applies the inbox changes of `entries` (their ids given) on `conn`, inside the
            /// commit that archives them: one upsert statement for the conversations a sent
            /// message reset, one for the others. A row that is a room is left alone (a
            /// private message through a room is archived with the room's JID).
            async fn inbox_touch(
                conn: &mut <$db as sqlx::Database>::Connection,
                entries: &[$crate::storage::archive::ArchiveEntry],
            ) -> Result<(), sqlx::Error> {
                let all = $crate::storage::sql::inbox::touches(entries);
                for reset in [true, false] {
                    let rows: Vec<_> = all.iter().filter(|(_, t)| t.reset == reset).collect();
                    for chunk in rows.chunks($crate::storage::sql::archive::APPEND_CHUNK) {
                        let mut b = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO inbox (host, username, jid, room, last_id, unread) ",
                        );
                        b.push_values(chunk, |mut row, ((host, user, with), t)| {
                            row.push_bind(host.to_string())
                                .push_bind(user.to_string())
                                .push_bind(with.to_string())
                                .push_bind(false)
                                .push_bind(t.last_id)
                                .push_bind(t.add);
                        });
                        b.push(if reset {
                            " ON CONFLICT (host, username, jid) DO UPDATE SET \
                             last_id = excluded.last_id, unread = excluded.unread \
                             WHERE NOT inbox.room"
                        } else {
                            " ON CONFLICT (host, username, jid) DO UPDATE SET \
                             last_id = excluded.last_id, unread = inbox.unread + excluded.unread \
                             WHERE NOT inbox.room"
                        });
                        b.build().execute(&mut *conn).await?;
                    }
                }
                Ok(())
            }

            /// The newest message id of room `room` (0: none yet).
            async fn room_newest(&self, room: &str) -> Result<i64, sqlx::Error> {
                use sqlx::Row;
                sqlx::query("SELECT COALESCE(MAX(id), 0) FROM muc_messages WHERE room = $1")
                    .bind(room)
                    .fetch_one(&self.0)
                    .await?
                    .try_get::<i64, _>(0)
            }

            async fn inbox_list(
                &self,
                host: &str,
                user: &str,
                limit: usize,
                cap: u64,
            ) -> Result<Vec<$crate::storage::inbox::Conversation>, sqlx::Error> {
                use sqlx::Row;
                use $crate::storage::inbox::Conversation;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let mut out = Vec::new();
                // Contacts: their newest message's id is the time of it.
                let rows = sqlx::query(
                    "SELECT jid, last_id, unread FROM inbox WHERE host = $1 AND username = $2 \
                     AND NOT room ORDER BY last_id DESC LIMIT $3",
                )
                .bind(host)
                .bind(user)
                .bind(limit)
                .fetch_all(&self.0)
                .await?;
                for r in rows {
                    let last: i64 = r.try_get("last_id")?;
                    out.push(Conversation {
                        jid: r.try_get("jid")?,
                        room: false,
                        unread: u64::try_from(r.try_get::<i64, _>("unread")?).unwrap_or(0),
                        last: Some(last.to_string()),
                        active: last,
                    });
                }
                // Rooms: read from each room's archive now (read diffusion).
                let rooms = sqlx::query(
                    "SELECT jid, last_id FROM inbox WHERE host = $1 AND username = $2 \
                     AND room LIMIT $3",
                )
                .bind(host)
                .bind(user)
                .bind(limit)
                .fetch_all(&self.0)
                .await?;
                let me = format!("{user}@{host}");
                let cap = i64::try_from(cap).unwrap_or(i64::MAX);
                for r in rooms {
                    let jid: String = r.try_get("jid")?;
                    let read: i64 = r.try_get("last_id")?;
                    let newest = sqlx::query(
                        "SELECT stanza_id, ts_ms FROM muc_messages WHERE room = $1 \
                         ORDER BY id DESC LIMIT 1",
                    )
                    .bind(&jid)
                    .fetch_optional(&self.0)
                    .await?;
                    let (last, active) = match newest {
                        Some(n) => (
                            Some(n.try_get::<String, _>(0)?),
                            $crate::storage::archive::id_at(n.try_get::<i64, _>(1)?),
                        ),
                        None => (None, 0),
                    };
                    let unread = sqlx::query(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM muc_messages WHERE room = $1 \
                         AND id > $2 AND sender <> $3 LIMIT $4) AS t",
                    )
                    .bind(&jid)
                    .bind(read)
                    .bind(&me)
                    .bind(cap)
                    .fetch_one(&self.0)
                    .await?
                    .try_get::<i64, _>(0)?;
                    out.push(Conversation {
                        jid,
                        room: true,
                        unread: u64::try_from(unread).unwrap_or(0),
                        last,
                        active,
                    });
                }
                out.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| a.jid.cmp(&b.jid)));
                out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                Ok(out)
            }

            async fn inbox_received_sql(
                &self,
                host: &str,
                user: &str,
                with: &str,
                before: Option<i64>,
                n: usize,
            ) -> Result<Option<(u64, i64, Vec<$crate::storage::inbox::Received>)>, sqlx::Error>
            {
                use sqlx::Row;
                let Some(row) = sqlx::query(
                    "SELECT unread, last_id FROM inbox WHERE host = $1 AND username = $2 \
                     AND jid = $3 AND NOT room",
                )
                .bind(host)
                .bind(user)
                .bind(with)
                .fetch_optional(&self.0)
                .await?
                else {
                    return Ok(None);
                };
                let unread = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
                let last: i64 = row.try_get(1)?;
                // Only unread messages can be what a marker reads: none to fetch when all are read.
                let n = i64::try_from(n.min(usize::try_from(unread).unwrap_or(usize::MAX)))
                    .unwrap_or(i64::MAX);
                let upto = before.map_or(last, |b| b.saturating_sub(1).min(last));
                let rows = sqlx::query(
                    "SELECT id, xml FROM mam_messages WHERE host = $1 AND username = $2 \
                     AND with_jid = $3 AND NOT outgoing AND id <= $4 ORDER BY id DESC LIMIT $5",
                )
                .bind(host)
                .bind(user)
                .bind(with)
                .bind(upto)
                .bind(n)
                .fetch_all(&self.0)
                .await?;
                let mut got = Vec::with_capacity(rows.len());
                for r in rows {
                    got.push($crate::storage::inbox::Received {
                        id: r.try_get(0)?,
                        xml: r.try_get(1)?,
                    });
                }
                Ok(Some((unread, last, got)))
            }

            async fn inbox_set_unread_sql(
                &self,
                host: &str,
                user: &str,
                with: &str,
                unread: u64,
                last_id: i64,
            ) -> Result<bool, sqlx::Error> {
                let n = sqlx::query(
                    "UPDATE inbox SET unread = $4 WHERE host = $1 AND username = $2 \
                     AND jid = $3 AND NOT room AND last_id = $5",
                )
                .bind(host)
                .bind(user)
                .bind(with)
                .bind(i64::try_from(unread).unwrap_or(i64::MAX))
                .bind(last_id)
                .execute(&self.0)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            async fn inbox_room_sql(
                &self,
                host: &str,
                user: &str,
                room: &str,
                mark: &$crate::storage::inbox::RoomMark,
            ) -> Result<(), sqlx::Error> {
                use sqlx::Row;
                use $crate::storage::inbox::RoomMark;
                let (through, on_conflict) = match mark {
                    RoomMark::Joined => (
                        self.room_newest(room).await?,
                        "DO UPDATE SET room = excluded.room, last_id = excluded.last_id, \
                         unread = 0 WHERE NOT inbox.room",
                    ),
                    RoomMark::ReadAll => (
                        self.room_newest(room).await?,
                        "DO UPDATE SET room = excluded.room, last_id = excluded.last_id, \
                         unread = 0",
                    ),
                    RoomMark::ReadThrough(sid) => {
                        let found = sqlx::query(
                            "SELECT id FROM muc_messages WHERE room = $1 AND stanza_id = $2",
                        )
                        .bind(room)
                        .bind(sid)
                        .fetch_optional(&self.0)
                        .await?;
                        let Some(found) = found else { return Ok(()) };
                        (
                            found.try_get::<i64, _>(0)?,
                            "DO UPDATE SET room = excluded.room, unread = 0, last_id = CASE \
                             WHEN inbox.room AND inbox.last_id > excluded.last_id \
                             THEN inbox.last_id ELSE excluded.last_id END",
                        )
                    }
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO inbox (host, username, jid, room, last_id, unread) \
                     VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (host, username, jid) {on_conflict}"
                )))
                .bind(host)
                .bind(user)
                .bind(room)
                .bind(true)
                .bind(through)
                .execute(&self.0)
                .await?;
                Ok(())
            }

            async fn inbox_reset_sql(
                &self,
                host: &str,
                user: &str,
                jid: &str,
            ) -> Result<bool, sqlx::Error> {
                let person = sqlx::query(
                    "UPDATE inbox SET unread = 0 WHERE host = $1 AND username = $2 AND jid = $3 \
                     AND NOT room",
                )
                .bind(host)
                .bind(user)
                .bind(jid)
                .execute(&self.0)
                .await?
                .rows_affected();
                let newest = self.room_newest(jid).await?;
                let room = sqlx::query(
                    "UPDATE inbox SET last_id = $4 WHERE host = $1 AND username = $2 \
                     AND jid = $3 AND room",
                )
                .bind(host)
                .bind(user)
                .bind(jid)
                .bind(newest)
                .execute(&self.0)
                .await?
                .rows_affected();
                Ok(person + room > 0)
            }
        }
    };
}
