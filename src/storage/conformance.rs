//! One conformance suite for every backend: SQLite always, PostgreSQL when
//! `XMPPD_TEST_POSTGRES_URL` is set (`.ci/run` starts a server and sets it).

use super::*;
use crate::stream::random_id;
use crate::stream::sasl::scram::{ScramCredentials, ScramHash};

async fn account_store_conformance(s: &Storage) {
    // A fresh host per run, so a shared PostgreSQL database needs no cleaning.
    let host = format!("{}.test", random_id().to_lowercase());
    let a = s.accounts.as_ref();
    let creds = ScramCredentials::new_set("pw1", 4096).unwrap();
    assert!(a.create(&host, "alice", &creds).await.unwrap());
    assert!(
        !a.create(&host, "alice", &creds).await.unwrap(),
        "duplicate create"
    );
    assert!(a.create(&host, "bob", &creds).await.unwrap());
    assert!(a.exists(&host, "alice").await.unwrap());
    assert!(!a.exists(&host, "carol").await.unwrap());
    assert!(!a.exists("other.test", "alice").await.unwrap());
    assert_eq!(a.list(&host).await.unwrap(), vec!["alice", "bob"]);

    for hash in ScramHash::ALL {
        let got = a.credentials(&host, "alice", hash).await.unwrap().unwrap();
        assert_eq!(got.hash, hash);
        assert!(got.verify_password("pw1"));
        assert_eq!(got, creds.iter().find(|c| c.hash == hash).unwrap().clone());
    }
    let new = ScramCredentials::new_set("pw2", 4096).unwrap();
    assert!(a.set_credentials(&host, "alice", &new).await.unwrap());
    assert!(!a.set_credentials(&host, "nobody", &new).await.unwrap());
    let got = a
        .credentials(&host, "alice", ScramHash::Sha256)
        .await
        .unwrap()
        .unwrap();
    assert!(got.verify_password("pw2") && !got.verify_password("pw1"));

    assert!(a.delete(&host, "alice").await.unwrap());
    assert!(!a.delete(&host, "alice").await.unwrap());
    assert!(
        a.credentials(&host, "alice", ScramHash::Sha1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(a.list(&host).await.unwrap(), vec!["bob"]);
}

async fn roster_store_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let r = s.rosters.as_ref();
    assert_eq!(r.items(&host, "alice").await.unwrap(), (0, vec![]));
    let mut bob = RosterItem::new("bob@x.test");
    bob.name = Some("Bob".into());
    bob.groups = vec!["Friends".into(), "Work".into()];
    bob.ask = true;
    let v1 = r.put(&host, "alice", &bob).await.unwrap();
    let v2 = r
        .put(&host, "alice", &RosterItem::new("carol@x.test"))
        .await
        .unwrap();
    assert!(v2 > v1, "every change bumps the version");
    let (ver, items) = r.items(&host, "alice").await.unwrap();
    assert_eq!(ver, v2);
    assert_eq!(items, vec![bob.clone(), RosterItem::new("carol@x.test")]);
    // Replacing an item replaces its groups and state.
    bob.groups = vec!["Family".into()];
    bob.subscription = Subscription::Both;
    bob.ask = false;
    bob.approved = true;
    r.put(&host, "alice", &bob).await.unwrap();
    assert_eq!(
        r.item(&host, "alice", "bob@x.test").await.unwrap(),
        Some(bob.clone())
    );
    // A subscription state change keeps the name and the groups it is not given.
    bob.groups.push("Work".into());
    r.put(&host, "alice", &bob).await.unwrap();
    let mut state = RosterItem::new("bob@x.test");
    state.subscription = Subscription::To;
    state.ask = true;
    let v = r.put_state(&host, "alice", &state).await.unwrap();
    (bob.subscription, bob.ask, bob.approved) = (Subscription::To, true, false);
    assert_eq!(
        r.item(&host, "alice", "bob@x.test").await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(r.items(&host, "alice").await.unwrap().0, v);
    // … and creates the item when there is none.
    let mut erin = RosterItem::new("erin@x.test");
    erin.ask = true;
    assert!(r.put_state(&host, "alice", &erin).await.unwrap() > v);
    assert_eq!(
        r.item(&host, "alice", "erin@x.test").await.unwrap(),
        Some(erin)
    );
    r.remove(&host, "alice", "erin@x.test").await.unwrap();
    assert_eq!(r.count(&host, "alice").await.unwrap(), 2);
    let v3 = r
        .remove(&host, "alice", "bob@x.test")
        .await
        .unwrap()
        .unwrap();
    assert!(v3 > v2);
    assert_eq!(r.remove(&host, "alice", "bob@x.test").await.unwrap(), None);
    assert_eq!(r.item(&host, "alice", "bob@x.test").await.unwrap(), None);
    // Rosters are per user.
    assert_eq!(r.count(&host, "bob").await.unwrap(), 0);

    r.add_pending(
        &host,
        "alice",
        "dave@x.test",
        "<presence type='subscribe'/>",
    )
    .await
    .unwrap();
    r.add_pending(
        &host,
        "alice",
        "dave@x.test",
        "<presence type='subscribe'><status>hi</status></presence>",
    )
    .await
    .unwrap();
    let p = r.pending(&host, "alice").await.unwrap();
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains("hi"));
    assert!(
        r.remove_pending(&host, "alice", "dave@x.test")
            .await
            .unwrap()
    );
    assert!(
        !r.remove_pending(&host, "alice", "dave@x.test")
            .await
            .unwrap()
    );
}

/// A quota of `messages` and plenty of bytes.
fn q(messages: usize) -> OfflineQuota {
    OfflineQuota {
        messages,
        bytes: 1 << 20,
    }
}

async fn offline_and_document_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let o = s.offline.as_ref();
    assert!(
        o.store(&host, "bob", "<message id='1'/>", q(2))
            .await
            .unwrap()
    );
    assert!(
        o.store(&host, "bob", "<message id='2'/>", q(2))
            .await
            .unwrap()
    );
    assert!(
        !o.store(&host, "bob", "<message id='3'/>", q(2))
            .await
            .unwrap(),
        "quota"
    );
    assert!(
        o.store(&host, "carol", "<message id='c'/>", q(2))
            .await
            .unwrap()
    );
    assert_eq!(o.count(&host, "bob").await.unwrap(), 2);
    let got = o.take_all(&host, "bob").await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.stanza.as_str()).collect::<Vec<_>>(),
        vec!["<message id='1'/>", "<message id='2'/>"]
    );
    assert!(got[0].stored_at_ms > 0);
    assert!(o.take_all(&host, "bob").await.unwrap().is_empty());
    assert_eq!(o.count(&host, "carol").await.unwrap(), 1);

    let d = s.documents.as_ref();
    assert_eq!(d.get(&host, "bob", "vcard", "").await.unwrap(), None);
    d.set(&host, "bob", "vcard", "", "<vCard/>").await.unwrap();
    d.set(&host, "bob", "vcard", "", "<vCard><FN>Bob</FN></vCard>")
        .await
        .unwrap();
    d.set(&host, "bob", "private", "urn:x", "<x/>")
        .await
        .unwrap();
    assert_eq!(
        d.get(&host, "bob", "vcard", "").await.unwrap().unwrap(),
        "<vCard><FN>Bob</FN></vCard>"
    );
    assert_eq!(
        d.get(&host, "bob", "private", "urn:x")
            .await
            .unwrap()
            .unwrap(),
        "<x/>"
    );
    assert_eq!(d.get(&host, "bob", "private", "urn:y").await.unwrap(), None);
    d.set(&host, "bob", "block", "z@x.test", "").await.unwrap();
    d.set(&host, "bob", "block", "evil.test", "").await.unwrap();
    assert_eq!(
        d.keys(&host, "bob", "block").await.unwrap(),
        vec!["evil.test", "z@x.test"]
    );
    assert_eq!(
        d.delete(&host, "bob", "block", Some("evil.test"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(d.delete(&host, "bob", "block", None).await.unwrap(), 1);
    assert!(d.keys(&host, "bob", "block").await.unwrap().is_empty());
    assert!(
        d.get(&host, "bob", "vcard", "").await.unwrap().is_some(),
        "other kinds untouched"
    );

    // Deleting the account deletes what was stored for it.
    let creds = ScramCredentials::new_set("pw", 4096).unwrap();
    s.accounts.create(&host, "carol", &creds).await.unwrap();
    s.rosters
        .put(&host, "carol", &RosterItem::new("z@x.test"))
        .await
        .unwrap();
    d.set(&host, "carol", "vcard", "", "<vCard/>")
        .await
        .unwrap();
    assert!(s.accounts.delete(&host, "carol").await.unwrap());
    assert_eq!(o.count(&host, "carol").await.unwrap(), 0);
    assert_eq!(s.rosters.count(&host, "carol").await.unwrap(), 0);
    assert_eq!(d.get(&host, "carol", "vcard", "").await.unwrap(), None);
}

/// Two deliveries racing for the same store (an initial presence and a hand-over after a
/// store) must never both get a message.
async fn offline_take_is_exclusive(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    for round in 0..200 {
        let o = s.offline.clone();
        for i in 0..3 {
            let xml = format!("<message id='{round}-{i}'/>");
            assert!(o.store(&host, "eve", &xml, q(10)).await.unwrap());
        }
        let (a, b) = (o.clone(), o.clone());
        let h = host.clone();
        let first = tokio::spawn(async move { a.take_all(&h, "eve").await });
        let h = host.clone();
        let second = tokio::spawn(async move { b.take_all(&h, "eve").await });
        let mut got = Vec::new();
        for r in [first.await.unwrap(), second.await.unwrap()] {
            got.extend(r.unwrap().into_iter().map(|m| m.stanza));
        }
        got.sort();
        let want: Vec<_> = (0..3)
            .map(|i| format!("<message id='{round}-{i}'/>"))
            .collect();
        assert_eq!(got, want, "round {round}: each message exactly once");
        assert_eq!(o.count(&host, "eve").await.unwrap(), 0);
    }
}

/// The quota check and the insert are one atomic step: stores racing for one account never
/// pass the quota together (PostgreSQL's read committed let two such inserts both see room).
async fn offline_quota_holds_under_concurrency(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    for round in 0..20 {
        let user = format!("frank{round}");
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (o, h, u) = (s.offline.clone(), host.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                o.store(&h, &u, &format!("<message id='{i}'/>"), q(5)).await
            }));
        }
        let mut stored = 0;
        for t in tasks {
            stored += usize::from(t.await.unwrap().unwrap());
        }
        assert_eq!(stored, 5, "round {round}");
        assert_eq!(s.offline.count(&host, &user).await.unwrap(), 5);
    }
    // The byte quota: 3 messages of 100 bytes fit in 350 bytes, a fourth does not.
    let body = format!("<message>{}</message>", "x".repeat(81));
    assert_eq!(body.len(), 100);
    let quota = OfflineQuota {
        messages: 100,
        bytes: 350,
    };
    for _ in 0..3 {
        assert!(s.offline.store(&host, "gina", &body, quota).await.unwrap());
    }
    assert!(!s.offline.store(&host, "gina", &body, quota).await.unwrap());
    assert!(
        s.offline
            .store(&host, "gina", "<message/>", quota)
            .await
            .unwrap(),
        "a small one still fits"
    );
}

/// Claims (XEP-0198 sessions): exclusive like a take, kept until deleted or released, and
/// given back at start.
async fn offline_claims(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let o = s.offline.as_ref();
    for i in 0..4 {
        assert!(
            o.store(&host, "hal", &format!("<message id='{i}'/>"), q(10))
                .await
                .unwrap()
        );
    }
    let claimed = o.claim_all(&host, "hal").await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        claimed
            .iter()
            .map(|(_, m)| m.stanza.as_str())
            .collect::<Vec<_>>(),
        (0..4)
            .map(|i| format!("<message id='{i}'/>"))
            .collect::<Vec<_>>()
    );
    // Claimed: neither claimed again nor taken, still counted against the quota.
    assert!(o.claim_all(&host, "hal").await.unwrap().is_empty());
    assert!(o.take_all(&host, "hal").await.unwrap().is_empty());
    assert_eq!(o.count(&host, "hal").await.unwrap(), 4);
    // Two acknowledged, two given back.
    o.delete(&ids[..2]).await.unwrap();
    o.release(&ids[2..]).await.unwrap();
    let again = o.take_all(&host, "hal").await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.stanza.as_str()).collect::<Vec<_>>(),
        ["<message id='2'/>", "<message id='3'/>"]
    );
    // A claim left by a crashed run is given back at start.
    o.store(&host, "hal", "<message id='4'/>", q(10))
        .await
        .unwrap();
    assert_eq!(o.claim_all(&host, "hal").await.unwrap().len(), 1);
    assert!(o.release_all().await.unwrap() >= 1);
    assert_eq!(o.take_all(&host, "hal").await.unwrap().len(), 1);
    // Concurrent claims and takes never hand out one message twice.
    for round in 0..50 {
        for i in 0..3 {
            o.store(&host, "ivy", &format!("<message id='{round}-{i}'/>"), q(10))
                .await
                .unwrap();
        }
        let (a, b) = (s.offline.clone(), s.offline.clone());
        let (h1, h2) = (host.clone(), host.clone());
        let first = tokio::spawn(async move { a.claim_all(&h1, "ivy").await });
        let second = tokio::spawn(async move { b.take_all(&h2, "ivy").await });
        let mut got: Vec<String> = first
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.stanza)
            .collect();
        got.extend(second.await.unwrap().unwrap().into_iter().map(|m| m.stanza));
        got.sort();
        assert_eq!(got.len(), 3, "round {round}: {got:?}");
        got.dedup();
        assert_eq!(got.len(), 3, "round {round}: each once");
        // Clean up what was claimed, for the next round.
        o.release_all().await.unwrap();
        o.take_all(&host, "ivy").await.unwrap();
    }
}

/// Upload slots: the quota (pending slots count) holds under concurrency, a slot completes
/// once, and the purge removes old files and unused slots only.
async fn upload_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let slot = |user: &str, size: u64, created_ms: i64| Upload {
        id: random_id(),
        host: host.clone(),
        username: user.to_string(),
        filename: "a.png".into(),
        size,
        content_type: "image/png".into(),
        created_ms,
        done: false,
    };
    let u = s.uploads.clone();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (u, sl) = (u.clone(), slot("alice", 10_000, 1000));
        tasks.push(tokio::spawn(async move { u.reserve(&sl, 35_000).await }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(granted, 3, "3 of 10,000 bytes fit in 35,000");
    // Tiny uploads are charged 4 KiB each: 2 fit in 10,000 bytes, not 1,000.
    let a = slot("bob", 10, 1000);
    assert!(u.reserve(&a, 10_000).await.unwrap());
    assert!(u.reserve(&slot("bob", 10, 1000), 10_000).await.unwrap());
    assert!(!u.reserve(&slot("bob", 10, 1000), 10_000).await.unwrap());
    assert_eq!(u.get(&a.id).await.unwrap(), Some(a.clone()));
    assert!(u.complete(&a.id).await.unwrap());
    assert!(!u.complete(&a.id).await.unwrap(), "once");
    assert!(u.get(&a.id).await.unwrap().unwrap().done);
    assert_eq!(u.get("nope").await.unwrap(), None);
    // Old files and unused slots go; a recent pending slot and a recent file stay.
    let old_file = slot("carol", 1, 10);
    let old_slot = slot("carol", 1, 500);
    let new_slot = slot("carol", 1, 5000);
    let new_file = slot("carol", 1, 5000);
    for x in [&old_file, &old_slot, &new_slot, &new_file] {
        assert!(u.reserve(x, 1 << 20).await.unwrap());
    }
    u.complete(&old_file.id).await.unwrap();
    u.complete(&new_file.id).await.unwrap();
    let mut gone = u.purge(100, 1000).await.unwrap();
    gone.retain(|id| [&old_file.id, &old_slot.id, &new_slot.id, &new_file.id].contains(&id));
    gone.sort();
    let mut want = vec![old_file.id.clone(), old_slot.id.clone()];
    want.sort();
    assert_eq!(gone, want);
    assert!(u.get(&new_slot.id).await.unwrap().is_some());
    assert!(u.get(&new_file.id).await.unwrap().is_some());
}

async fn all(s: &Storage) {
    account_store_conformance(s).await;
    roster_store_conformance(s).await;
    offline_and_document_conformance(s).await;
    offline_take_is_exclusive(s).await;
    offline_quota_holds_under_concurrency(s).await;
    offline_claims(s).await;
    upload_conformance(s).await;
    super::conformance_muc::muc_conformance(s).await;
    super::conformance_archive::archive_conformance(s).await;
    super::conformance_inbox::inbox_conformance(s).await;
    super::conformance_pep::pep_conformance(s).await;
    super::conformance_offline::coalesced_conformance(s).await;
}

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.sqlite").display());
    let s = sqlite::open(&url, 2, 256).await.unwrap();
    all(&s).await;
    // Re-opening applies no migration twice and keeps the data.
    drop(s);
    let s = sqlite::open(&url, 2, 256).await.unwrap();
    assert!(s.accounts.list("x.test").await.unwrap().is_empty());
}

#[tokio::test]
async fn postgres_conformance() {
    let Ok(url) = std::env::var("XMPPD_TEST_POSTGRES_URL") else {
        // CI (`CI` set, as `.ci/run` runs) must run it: a missing URL there is a failure, not
        // a quiet pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but XMPPD_TEST_POSTGRES_URL is not: PostgreSQL conformance not run"
        );
        return;
    };
    // A database of its own per run: what earlier runs left (archive ids from the time of
    // those runs, say) cannot change what this one sees.
    use sqlx::Connection;
    let name = format!(
        "xmppd_conformance_{}",
        crate::stream::random_id().to_lowercase()
    )
    .replace(['-', '_'], "");
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let s = postgres::open(&format!("{base}/{name}"), 2).await.unwrap();
    all(&s).await;
    drop(s);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
}
