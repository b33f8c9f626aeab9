//! `MucStore` in SQL.

/// Implements `MucStore` for `$ty(pub Pool<$db>)`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_muc_store {
    ($ty:ident, $db:ty) => {
        /// Group-chat rooms in this database.
        pub struct $ty(pub sqlx::Pool<$db>);

        impl $crate::storage::muc::MucStore for $ty {
            fn room<'a>(
                &'a self,
                room: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Option<$crate::storage::muc::StoredRoom>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT title, description, persistent, public, members_only, \
                         moderated, password, max_users, whois, history_length, allow_pm, \
                         allow_invites, change_subject, presence_broadcast, subject, \
                         subject_nick, created_ms FROM muc_rooms WHERE jid = $1",
                    )
                    .bind(room)
                    .fetch_optional(&self.0)
                    .await?;
                    match row {
                        None => Ok(None),
                        Some(r) => Ok(Some($crate::storage::sql::muc::room_of(&r)?)),
                    }
                })
            }

            fn save_room<'a>(
                &'a self,
                room: &'a str,
                r: &'a $crate::storage::muc::StoredRoom,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    let c = &r.config;
                    let service = room.split_once('@').map(|(_, s)| s).unwrap_or(room);
                    sqlx::query(
                        "INSERT INTO muc_rooms (jid, service, title, description, persistent, \
                         public, members_only, moderated, password, max_users, whois, \
                         history_length, allow_pm, allow_invites, change_subject, \
                         presence_broadcast, subject, subject_nick, created_ms) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                         $16, $17, $18, $19) ON CONFLICT (jid) DO UPDATE SET \
                         title = $3, description = $4, persistent = $5, public = $6, \
                         members_only = $7, moderated = $8, password = $9, max_users = $10, \
                         whois = $11, history_length = $12, allow_pm = $13, \
                         allow_invites = $14, change_subject = $15, presence_broadcast = $16, \
                         subject = $17, subject_nick = $18",
                    )
                    .bind(room)
                    .bind(service)
                    .bind(&c.title)
                    .bind(&c.description)
                    .bind(c.persistent)
                    .bind(c.public)
                    .bind(c.members_only)
                    .bind(c.moderated)
                    .bind(&c.password)
                    .bind(i32::try_from(c.max_users).unwrap_or(i32::MAX))
                    .bind(c.whois.as_str())
                    .bind(i32::try_from(c.history_length).unwrap_or(i32::MAX))
                    .bind(c.allow_pm.as_str())
                    .bind(c.allow_invites)
                    .bind(c.change_subject)
                    .bind(i32::from(c.presence_broadcast))
                    .bind(&r.subject)
                    .bind(&r.subject_nick)
                    .bind(r.created_ms)
                    .execute(&self.0)
                    .await?;
                    Ok(())
                })
            }

            fn delete_room<'a>(&'a self, room: &'a str) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    // Affiliations and messages go with it (ON DELETE CASCADE).
                    sqlx::query("DELETE FROM muc_rooms WHERE jid = $1")
                        .bind(room)
                        .execute(&self.0)
                        .await?;
                    Ok(())
                })
            }

            fn delete_temporary<'a>(
                &'a self,
                service: &'a str,
            ) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let n = sqlx::query(
                        "DELETE FROM muc_rooms WHERE service = $1 AND persistent = FALSE",
                    )
                    .bind(service)
                    .execute(&self.0)
                    .await?
                    .rows_affected();
                    Ok(n)
                })
            }

            fn public_rooms<'a>(
                &'a self,
                service: &'a str,
                after: Option<&'a str>,
                max: usize,
            ) -> $crate::storage::StoreFuture<'a, (Vec<(String, String)>, u64)> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT jid, title FROM muc_rooms WHERE service = $1 AND public = TRUE \
                         AND jid > $2 ORDER BY jid LIMIT $3",
                    )
                    .bind(service)
                    .bind(after.unwrap_or(""))
                    .bind(i64::try_from(max).unwrap_or(i64::MAX))
                    .fetch_all(&self.0)
                    .await?;
                    let count: i64 = sqlx::query(
                        "SELECT COUNT(*) FROM muc_rooms WHERE service = $1 AND public = TRUE",
                    )
                    .bind(service)
                    .fetch_one(&self.0)
                    .await?
                    .try_get(0)?;
                    let rooms = rows
                        .iter()
                        .map(|r| Ok((r.try_get("jid")?, r.try_get("title")?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    Ok((rooms, u64::try_from(count).unwrap_or(0)))
                })
            }

            fn affiliations<'a>(
                &'a self,
                room: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<(String, String, String)>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT jid, affiliation, reason FROM muc_affiliations WHERE room = $1",
                    )
                    .bind(room)
                    .fetch_all(&self.0)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok((
                                r.try_get("jid")?,
                                r.try_get("affiliation")?,
                                r.try_get("reason")?,
                            ))
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                        .map_err($crate::storage::StoreError::from)
                })
            }

            fn set_affiliation<'a>(
                &'a self,
                room: &'a str,
                jid: &'a str,
                affiliation: Option<(&'a str, &'a str)>,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    match affiliation {
                        None => {
                            sqlx::query("DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2")
                                .bind(room)
                                .bind(jid)
                                .execute(&self.0)
                                .await?;
                        }
                        Some((a, reason)) => {
                            sqlx::query(
                                "INSERT INTO muc_affiliations (room, jid, affiliation, reason) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (room, jid) DO UPDATE \
                                 SET affiliation = $3, reason = $4",
                            )
                            .bind(room)
                            .bind(jid)
                            .bind(a)
                            .bind(reason)
                            .execute(&self.0)
                            .await?;
                        }
                    }
                    Ok(())
                })
            }

            fn nicks<'a>(
                &'a self,
                room: &'a str,
            ) -> $crate::storage::StoreFuture<'a, Vec<(String, String)>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query("SELECT jid, nick FROM muc_nicks WHERE room = $1")
                        .bind(room)
                        .fetch_all(&self.0)
                        .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get("jid")?, r.try_get("nick")?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                        .map_err($crate::storage::StoreError::from)
                })
            }

            fn set_nick<'a>(
                &'a self,
                room: &'a str,
                jid: &'a str,
                nick: Option<&'a str>,
            ) -> $crate::storage::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let Some(nick) = nick else {
                        sqlx::query("DELETE FROM muc_nicks WHERE room = $1 AND jid = $2")
                            .bind(room)
                            .bind(jid)
                            .execute(&self.0)
                            .await?;
                        return Ok(true);
                    };
                    // The nickname's owner, if any, decides: nobody takes another's.
                    let held: Option<(String,)> =
                        sqlx::query_as("SELECT jid FROM muc_nicks WHERE room = $1 AND nick = $2")
                            .bind(room)
                            .bind(nick)
                            .fetch_optional(&self.0)
                            .await?;
                    if held.is_some_and(|(j,)| j != jid) {
                        return Ok(false);
                    }
                    let done = sqlx::query(
                        "INSERT INTO muc_nicks (room, jid, nick) VALUES ($1, $2, $3) \
                         ON CONFLICT (room, jid) DO UPDATE SET nick = $3",
                    )
                    .bind(room)
                    .bind(jid)
                    .bind(nick)
                    .execute(&self.0)
                    .await;
                    match done {
                        Ok(_) => Ok(true),
                        // Taken meanwhile by another account (the unique index).
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                        Err(e) => Err(e.into()),
                    }
                })
            }

            fn owned_rooms<'a>(
                &'a self,
                service: &'a str,
                jid: &'a str,
            ) -> $crate::storage::StoreFuture<'a, u64> {
                Box::pin(async move {
                    use sqlx::Row;
                    let n: i64 = sqlx::query(
                        "SELECT COUNT(*) FROM muc_affiliations a JOIN muc_rooms r \
                         ON r.jid = a.room WHERE a.jid = $1 AND a.affiliation = 'owner' \
                         AND r.service = $2",
                    )
                    .bind(jid)
                    .bind(service)
                    .fetch_one(&self.0)
                    .await?
                    .try_get(0)?;
                    Ok(u64::try_from(n).unwrap_or(0))
                })
            }

            fn append<'a>(
                &'a self,
                room: &'a str,
                m: &'a $crate::storage::muc::RoomMessage,
            ) -> $crate::storage::StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO muc_messages (room, stanza_id, nick, sender, ts_ms, xml) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(room)
                    .bind(&m.stanza_id)
                    .bind(&m.nick)
                    .bind(&m.sender)
                    .bind(m.ts_ms)
                    .bind(&m.xml)
                    .execute(&self.0)
                    .await?;
                    Ok(())
                })
            }

            fn history<'a>(
                &'a self,
                room: &'a str,
                max: usize,
                since_ms: i64,
            ) -> $crate::storage::StoreFuture<'a, Vec<$crate::storage::muc::RoomMessage>> {
                Box::pin(async move {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT stanza_id, nick, sender, ts_ms, xml FROM muc_messages \
                         WHERE room = $1 AND ts_ms >= $2 ORDER BY id DESC LIMIT $3",
                    )
                    .bind(room)
                    .bind(since_ms)
                    .bind(i64::try_from(max).unwrap_or(i64::MAX))
                    .fetch_all(&self.0)
                    .await?;
                    let mut v = rows
                        .iter()
                        .map(|r| {
                            Ok($crate::storage::muc::RoomMessage {
                                stanza_id: r.try_get("stanza_id")?,
                                nick: r.try_get("nick")?,
                                sender: r.try_get("sender")?,
                                ts_ms: r.try_get("ts_ms")?,
                                xml: r.try_get("xml")?,
                            })
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    v.reverse();
                    Ok(v)
                })
            }
        }
    };
}

use crate::storage::StoreError;
use crate::storage::muc::{AllowPm, RoomConfig, StoredRoom, Whois};

/// A room from its row (either database).
pub fn room_of<R>(r: &R) -> Result<StoredRoom, StoreError>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i32: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let whois = match r.try_get::<String, _>("whois")?.as_str() {
        "anyone" => Whois::Anyone,
        _ => Whois::Moderators,
    };
    let allow_pm = match r.try_get::<String, _>("allow_pm")?.as_str() {
        "anyone" => AllowPm::Anyone,
        "participants" => AllowPm::Participants,
        "moderators" => AllowPm::Moderators,
        _ => AllowPm::Nobody,
    };
    let n = |k: &str| -> Result<u32, StoreError> {
        Ok(u32::try_from(r.try_get::<i32, _>(k)?).unwrap_or(0))
    };
    Ok(StoredRoom {
        config: RoomConfig {
            title: r.try_get("title")?,
            description: r.try_get("description")?,
            persistent: r.try_get("persistent")?,
            public: r.try_get("public")?,
            members_only: r.try_get("members_only")?,
            moderated: r.try_get("moderated")?,
            password: r.try_get("password")?,
            max_users: n("max_users")?,
            whois,
            history_length: n("history_length")?,
            allow_pm,
            allow_invites: r.try_get("allow_invites")?,
            change_subject: r.try_get("change_subject")?,
            presence_broadcast: u8::try_from(n("presence_broadcast")?).unwrap_or(7),
        },
        subject: r.try_get("subject")?,
        subject_nick: r.try_get("subject_nick")?,
        created_ms: r.try_get("created_ms")?,
    })
}
