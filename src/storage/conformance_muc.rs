//! The group-chat store's part of the conformance suite (`conformance.rs` runs it on every
//! backend).

use super::Storage;
use super::muc::{AllowPm, RoomConfig, RoomMessage, StoredRoom, Whois};
use crate::stream::random_id;

pub(super) fn room() -> StoredRoom {
    StoredRoom {
        config: RoomConfig {
            title: "T".into(),
            description: "D".into(),
            persistent: true,
            public: true,
            members_only: false,
            moderated: true,
            password: "pw".into(),
            max_users: 50,
            whois: Whois::Anyone,
            history_length: 10,
            allow_pm: AllowPm::Participants,
            allow_invites: true,
            change_subject: false,
            presence_broadcast: 5,
        },
        subject: "S".into(),
        subject_nick: "n".into(),
        created_ms: 1,
    }
}

pub(super) async fn muc_conformance(s: &Storage) {
    // A fresh service per run, so a shared PostgreSQL database needs no cleaning.
    let service = format!("conference.{}.test", random_id().to_lowercase());
    let m = s.muc.as_ref();
    let a = format!("a@{service}");
    let b = format!("b@{service}");
    assert_eq!(m.room(&a).await.unwrap(), None);
    let mut r = room();
    m.save_room(&a, &r).await.unwrap();
    assert_eq!(m.room(&a).await.unwrap(), Some(r.clone()));
    r.config.whois = Whois::Moderators;
    r.config.allow_pm = AllowPm::Nobody;
    r.subject = "new".into();
    m.save_room(&a, &r).await.unwrap();
    assert_eq!(m.room(&a).await.unwrap(), Some(r.clone()));
    let mut temp = room();
    temp.config.persistent = false;
    temp.config.public = false;
    m.save_room(&b, &temp).await.unwrap();

    // Public rooms, paged by JID.
    let (list, count) = m.public_rooms(&service, None, 10).await.unwrap();
    assert_eq!((list, count), (vec![(a.clone(), "T".to_string())], 1));
    let (list, _) = m.public_rooms(&service, Some(&a), 10).await.unwrap();
    assert!(list.is_empty());

    // Affiliations, and rooms per owner.
    m.set_affiliation(&a, "o@x.test", Some(("owner", "")))
        .await
        .unwrap();
    m.set_affiliation(&b, "o@x.test", Some(("owner", "")))
        .await
        .unwrap();
    m.set_affiliation(&a, "m@x.test", Some(("member", "r")))
        .await
        .unwrap();
    m.set_affiliation(&a, "m@x.test", Some(("outcast", "spam")))
        .await
        .unwrap();
    let mut affs = m.affiliations(&a).await.unwrap();
    affs.sort();
    assert_eq!(
        affs,
        vec![
            ("m@x.test".into(), "outcast".into(), "spam".into()),
            ("o@x.test".into(), "owner".into(), String::new()),
        ]
    );
    assert_eq!(m.owned_rooms(&service, "o@x.test").await.unwrap(), 2);
    m.set_affiliation(&a, "m@x.test", None).await.unwrap();
    assert_eq!(m.affiliations(&a).await.unwrap().len(), 1);

    // Registered nicknames: one per account, each nickname to one account.
    assert!(m.set_nick(&a, "m@x.test", Some("Em")).await.unwrap());
    assert!(m.set_nick(&a, "m@x.test", Some("Emm")).await.unwrap());
    assert!(!m.set_nick(&a, "o@x.test", Some("Emm")).await.unwrap());
    assert!(m.set_nick(&a, "o@x.test", Some("Em")).await.unwrap());
    assert!(
        m.set_nick(&b, "p@x.test", Some("Emm")).await.unwrap(),
        "another room"
    );
    let mut nicks = m.nicks(&a).await.unwrap();
    nicks.sort();
    assert_eq!(
        nicks,
        [
            ("m@x.test".into(), "Emm".into()),
            ("o@x.test".into(), "Em".into())
        ]
    );
    assert!(m.set_nick(&a, "o@x.test", None).await.unwrap());
    assert_eq!(m.nicks(&a).await.unwrap().len(), 1);

    // Messages: the newest `max`, oldest first, from a time on.
    for i in 0..5 {
        let msg = RoomMessage {
            stanza_id: format!("id{i}"),
            nick: "n".into(),
            sender: "o@x.test".into(),
            ts_ms: 1000 * i,
            xml: format!("<message>{i}</message>"),
        };
        m.append(&a, &msg).await.unwrap();
    }
    let h = m.history(&a, 3, 0).await.unwrap();
    let ids: Vec<_> = h.iter().map(|m| m.stanza_id.as_str()).collect();
    assert_eq!(ids, vec!["id2", "id3", "id4"]);
    let h = m.history(&a, 10, 3000).await.unwrap();
    assert_eq!(h.len(), 2);

    // Temporary rooms go at start-up; a deleted room takes its rows with it.
    assert_eq!(m.delete_temporary(&service).await.unwrap(), 1);
    assert_eq!(m.room(&b).await.unwrap(), None);
    assert_eq!(m.owned_rooms(&service, "o@x.test").await.unwrap(), 1);
    m.delete_room(&a).await.unwrap();
    assert_eq!(m.room(&a).await.unwrap(), None);
    assert!(m.affiliations(&a).await.unwrap().is_empty());
    assert!(m.nicks(&a).await.unwrap().is_empty());
    assert!(m.history(&a, 10, 0).await.unwrap().is_empty());
}
