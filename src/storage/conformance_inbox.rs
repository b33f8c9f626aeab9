//! The inbox's part of the conformance suite (`conformance.rs` runs it on every backend):
//! counts kept by the archive's commits (received, sent, in one batch and across batches),
//! the marker's building blocks (received messages newest first, the conditional set), rooms
//! counted from their archive, resets, and account deletion.

use std::sync::Arc;

use super::Storage;
use super::archive::{ArchiveEntry, ArchiveStore};
use super::archive_writer::Batched;
use super::inbox::{Conversation, RoomMark};
use super::muc::RoomMessage;
use crate::stream::random_id;

fn entry(host: &str, with: &str, outgoing: bool, body: &str, inbox: bool) -> ArchiveEntry {
    ArchiveEntry {
        host: host.into(),
        user: "alice".into(),
        id: 0,
        with: with.into(),
        ts_ms: crate::storage::now_ms(),
        outgoing,
        xml: format!("<message id='{body}'><body>{body}</body></message>"),
        inbox,
    }
}

fn counts(list: &[Conversation]) -> Vec<(&str, u64)> {
    list.iter().map(|c| (c.jid.as_str(), c.unread)).collect()
}

pub(super) async fn inbox_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let a = s.archive.as_ref();
    let (bob, carol) = ("bob@x.test", "carol@x.test");
    // One batch: two from Bob, Alice answers, one more from Bob; three from Carol, of which
    // one does not count (a <store/> hint without a body).
    let mut batch = vec![
        entry(&host, bob, false, "b1", true),
        entry(&host, bob, false, "b2", true),
        entry(&host, carol, false, "c1", true),
        entry(&host, bob, true, "a1", true),
        entry(&host, bob, false, "b3", true),
        entry(&host, carol, false, "c2", false),
        entry(&host, carol, false, "c3", true),
    ];
    a.append(&mut batch).await.unwrap();
    let list = a.inbox(&host, "alice", 100, 1000).await.unwrap();
    // Carol's newest message is the newest of all.
    assert_eq!(counts(&list), vec![(carol, 2), (bob, 1)]);
    assert_eq!(list[0].last, Some(batch[6].id.to_string()));
    assert_eq!(list[1].last, Some(batch[4].id.to_string()));
    assert!(!list[0].room && list[0].active > 0);
    // Another batch adds to the counts.
    a.append(&mut [entry(&host, bob, false, "b4", true)])
        .await
        .unwrap();
    let list = a.inbox(&host, "alice", 100, 1000).await.unwrap();
    assert_eq!(counts(&list), vec![(bob, 2), (carol, 2)]);
    assert_eq!(
        counts(&a.inbox(&host, "alice", 1, 1000).await.unwrap()),
        vec![(bob, 2)]
    );

    // Received from Bob, newest first, as many as are unread per page, and before an id.
    let (unread, last, got) = a
        .inbox_received(&host, "alice", bob, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unread, 2);
    let ids: Vec<i64> = got.iter().map(|r| r.id).collect();
    assert_eq!(last, ids[0]);
    assert_eq!(ids.len(), 2, "b4, b3");
    assert!(got[0].xml.contains("b4") && got[1].xml.contains("b3"));
    let (_, _, older) = a
        .inbox_received(&host, "alice", bob, Some(ids[1]), 10)
        .await
        .unwrap()
        .unwrap();
    let older: Vec<&str> = older.iter().map(|r| r.xml.as_str()).collect();
    assert!(
        older[0].contains("b2") && older[1].contains("b1"),
        "{older:?} (a1 was sent)"
    );
    assert!(
        a.inbox_received(&host, "alice", "nobody@x.test", None, 10)
            .await
            .unwrap()
            .is_none()
    );
    // Set only while the newest message is still the same.
    assert!(
        !a.inbox_set_unread(&host, "alice", bob, 0, last - 1)
            .await
            .unwrap()
    );
    assert!(
        a.inbox_set_unread(&host, "alice", bob, 1, last)
            .await
            .unwrap()
    );
    assert_eq!(
        counts(&a.inbox(&host, "alice", 100, 1000).await.unwrap())[0],
        (bob, 1)
    );
    assert!(a.inbox_reset(&host, "alice", carol).await.unwrap());
    assert!(
        !a.inbox_reset(&host, "alice", "nobody@x.test")
            .await
            .unwrap()
    );

    // A room: counted from its archive, from what Alice read through.
    let room = format!("r@conference.{host}");
    s.muc
        .save_room(&room, &super::conformance_muc::room())
        .await
        .unwrap();
    let say = |n: u32, from: &str| RoomMessage {
        stanza_id: format!("s{n}"),
        nick: "n".into(),
        sender: from.into(),
        ts_ms: crate::storage::now_ms() + 60_000,
        xml: format!("<message><body>{n}</body></message>"),
    };
    s.muc.append(&room, &say(1, "o@x.test")).await.unwrap();
    a.inbox_room(&host, "alice", &room, &RoomMark::Joined)
        .await
        .unwrap();
    let me = format!("alice@{host}");
    for (n, from) in [
        (2, "o@x.test"),
        (3, me.as_str()),
        (4, "o@x.test"),
        (5, "p@x.test"),
    ] {
        s.muc.append(&room, &say(n, from)).await.unwrap();
    }
    let list = a.inbox(&host, "alice", 100, 1000).await.unwrap();
    assert_eq!(list[0].jid, room);
    assert!(list[0].room);
    assert_eq!(
        (list[0].unread, list[0].last.as_deref()),
        (3, Some("s5")),
        "2, 4, 5 (3 is hers)"
    );
    assert_eq!(
        a.inbox(&host, "alice", 100, 2).await.unwrap()[0].unread,
        2,
        "counted up to the cap"
    );
    // Joining again keeps what was read; a marker reads through it, never backwards.
    a.inbox_room(&host, "alice", &room, &RoomMark::Joined)
        .await
        .unwrap();
    assert_eq!(
        a.inbox(&host, "alice", 100, 1000).await.unwrap()[0].unread,
        3
    );
    a.inbox_room(&host, "alice", &room, &RoomMark::ReadThrough("s4".into()))
        .await
        .unwrap();
    assert_eq!(
        a.inbox(&host, "alice", 100, 1000).await.unwrap()[0].unread,
        1
    );
    a.inbox_room(&host, "alice", &room, &RoomMark::ReadThrough("s2".into()))
        .await
        .unwrap();
    assert_eq!(
        a.inbox(&host, "alice", 100, 1000).await.unwrap()[0].unread,
        1
    );
    a.inbox_room(&host, "alice", &room, &RoomMark::ReadThrough("nope".into()))
        .await
        .unwrap();
    assert!(a.inbox_reset(&host, "alice", &room).await.unwrap());
    assert_eq!(
        a.inbox(&host, "alice", 100, 1000).await.unwrap()[0].unread,
        0
    );
    s.muc.append(&room, &say(6, "o@x.test")).await.unwrap();
    a.inbox_room(&host, "alice", &room, &RoomMark::ReadAll)
        .await
        .unwrap();
    assert_eq!(
        a.inbox(&host, "alice", 100, 1000).await.unwrap()[0].unread,
        0
    );
    // A private message through the room (archived with the room's JID) leaves the room's
    // row as it is.
    a.append(&mut [entry(&host, &room, false, "pm", true)])
        .await
        .unwrap();
    let list = a.inbox(&host, "alice", 100, 1000).await.unwrap();
    let r = list.iter().find(|c| c.jid == room).unwrap();
    assert!(r.room && r.unread == 0);

    // Through the group-commit writer: the same counts.
    let w = Batched::new(s.archive.clone() as Arc<dyn ArchiveStore>, 8, 4, 10);
    let mut more: Vec<ArchiveEntry> = (0..6)
        .map(|i| entry(&host, "dave@x.test", false, &format!("d{i}"), true))
        .collect();
    w.append(&mut more).await.unwrap();
    let list = w.inbox(&host, "alice", 100, 1000).await.unwrap();
    assert!(counts(&list).contains(&("dave@x.test", 6)));

    // Deleting the account deletes its inbox.
    s.accounts.delete(&host, "alice").await.unwrap();
    assert!(a.inbox(&host, "alice", 100, 1000).await.unwrap().is_empty());

    // Retention: a conversation whose messages are purged leaves the inbox; a marker on a
    // conversation with nothing unread reads nothing.
    let host2 = format!("{}.test", random_id().to_lowercase());
    a.append(&mut [entry(&host2, bob, true, "mine", true)])
        .await
        .unwrap();
    let (unread, _, rows) = a
        .inbox_received(&host2, "alice", bob, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((unread, rows.len()), (0, 0));
    // Count retention: the older conversation's only message is trimmed, so it leaves.
    a.append(&mut [entry(&host2, carol, false, "c", true)])
        .await
        .unwrap();
    a.purge(0, 1).await.unwrap();
    let left = a.inbox(&host2, "alice", 100, 1000).await.unwrap();
    assert_eq!(counts(&left), [(carol, 1)]);
    a.purge(crate::storage::now_ms() + 3_600_000, 0)
        .await
        .unwrap();
    assert!(
        a.inbox(&host2, "alice", 100, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}
