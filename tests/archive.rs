//! The message archive (XEP-0313) against the real server with tokio-xmpp clients: messages
//! archived once per account and stamped with the archive's id before delivery (online,
//! offline, carbons), queries with every filter and page, preferences, forged ids, a room's
//! archive and who may read it.

mod common;

use common::TestServer;
use common::archive::*;
use common::im::go_online;
use common::muc::{ROOM, ask, body_is, configure, instant, join, ping, send, users, wait};

fn chat(to: &str, body: &str) -> String {
    format!("<message type='chat' to='{to}'><body>{body}</body></message>")
}

#[tokio::test]
async fn messages_are_archived_for_both_sides_and_stamped_before_delivery() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;

    // The account's disco lists the archive.
    let info = ask(
        &mut alice,
        "<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = info.children().next().unwrap();
    for f in [MAM, "urn:xmpp:mam:2#extended", SID] {
        assert!(q.children().any(|c| c.attr("var") == Some(f)), "{f}");
    }

    let mut ids = Vec::new();
    for i in 0..3 {
        send(&mut alice, &chat("bob@localhost", &format!("m{i}"))).await;
        let got = wait(&mut bob, "the message", |e| body_is(e, &format!("m{i}"))).await;
        ids.push(stanza_id(&got, "bob@localhost").expect("stamped by bob's archive"));
    }
    let mine = query(&mut bob, "", "", "").await;
    assert_eq!(mine.bodies(), ["m0", "m1", "m2"]);
    assert_eq!(
        mine.ids(),
        ids,
        "the delivered ids name the archived messages"
    );
    assert!(mine.complete());
    assert_eq!(mine.first_last(), (ids[0].clone(), ids[2].clone()));
    // Archived as routed: from Alice's full JID.
    let from = mine.results[0].1.attr("from").unwrap();
    assert!(from.starts_with("alice@localhost/"), "{from}");

    // Alice's archive has her outgoing copies (once each).
    let hers = query(&mut alice, "alice@localhost", "", "").await;
    assert_eq!(hers.bodies(), ["m0", "m1", "m2"]);
    assert!(
        hers.ids().iter().all(|id| !ids.contains(id)),
        "each archive has its own ids"
    );

    // Nobody reads another account's archive.
    let other = query(&mut alice, "bob@localhost", "", "").await;
    assert_eq!(other.condition().as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn offline_messages_and_carbons_carry_the_archive_id() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    drop(bob);
    // Bob is offline (his only session gone): the message is stored with its id.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    send(&mut alice, &chat("bob@localhost", "while away")).await;
    ping(&mut alice).await;

    let (mut bob1, _) = t.login("bob@localhost/one", "pw").await;
    let (mut bob2, _) = t.login("bob@localhost/two", "pw").await;
    ask(
        &mut bob2,
        "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
    )
    .await;
    go_online(&mut bob1).await;
    let got = wait(&mut bob1, "the offline message", |e| {
        body_is(e, "while away")
    })
    .await;
    let id = stanza_id(&got, "bob@localhost").expect("the offline copy is stamped");
    let archived = query(&mut bob1, "", "", "").await;
    assert_eq!(archived.ids(), [id]);

    // A live message to bob1's full JID: bob2 gets a carbon carrying the same id.
    go_online(&mut bob2).await;
    send(&mut alice, &chat("bob@localhost/one", "live")).await;
    let live = wait(&mut bob1, "the live message", |e| body_is(e, "live")).await;
    let live_id = stanza_id(&live, "bob@localhost").unwrap();
    let carbon = wait(&mut bob2, "the carbon", |e| {
        e.get_child("received", "urn:xmpp:carbons:2").is_some()
    })
    .await;
    let inner = carbon
        .get_child("received", "urn:xmpp:carbons:2")
        .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", "jabber:client"))
        .unwrap();
    assert_eq!(stanza_id(inner, "bob@localhost"), Some(live_id));
}

#[tokio::test]
async fn queries_filter_and_page() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;
    for i in 0..6 {
        let (from, name) = if i % 2 == 0 {
            (&mut alice, "a")
        } else {
            (&mut carol, "c")
        };
        send(from, &chat("bob@localhost", &format!("{name}{i}"))).await;
        wait(&mut bob, "the message", |e| {
            body_is(e, &format!("{name}{i}"))
        })
        .await;
    }
    let all = query(&mut bob, "", "", "").await;
    let ids = all.ids();
    assert_eq!(all.bodies(), ["a0", "c1", "a2", "c3", "a4", "c5"]);

    // with
    let from_alice = query(&mut bob, "", &field("with", "alice@localhost"), "").await;
    assert_eq!(from_alice.bodies(), ["a0", "a2", "a4"]);

    // RSM forwards: pages of 2, each after the last.
    let p1 = query(&mut bob, "", "", "<max>2</max>").await;
    assert_eq!(p1.bodies(), ["a0", "c1"]);
    assert!(!p1.complete());
    let after = format!("<max>2</max><after>{}</after>", p1.first_last().1);
    let p2 = query(&mut bob, "", "", &after).await;
    assert_eq!(p2.bodies(), ["a2", "c3"]);
    let after = format!("<max>2</max><after>{}</after>", p2.first_last().1);
    let p3 = query(&mut bob, "", "", &after).await;
    assert_eq!(p3.bodies(), ["a4", "c5"]);
    assert!(p3.complete());

    // RSM backwards: the last page, then the one before it.
    let last = query(&mut bob, "", "", "<max>4</max><before/>").await;
    assert_eq!(last.bodies(), ["a2", "c3", "a4", "c5"]);
    assert!(!last.complete());
    let before = format!("<max>4</max><before>{}</before>", last.first_last().0);
    let prev = query(&mut bob, "", "", &before).await;
    assert_eq!(prev.bodies(), ["a0", "c1"]);
    assert!(prev.complete());

    // #extended: after-id, before-id, ids.
    let fields = field("after-id", &ids[1]) + &field("before-id", &ids[4]);
    let mid = query(&mut bob, "", &fields, "").await;
    assert_eq!(mid.bodies(), ["a2", "c3"]);
    let pick = format!(
        "<field var='ids'><value>{}</value><value>{}</value></field>",
        ids[5], ids[0]
    );
    let picked = query(&mut bob, "", &pick, "").await;
    assert_eq!(picked.bodies(), ["a0", "c5"]);

    // start / end: everything is from the last minutes; nothing from the future.
    let future = query(&mut bob, "", &field("start", "2100-01-01T00:00:00Z"), "").await;
    assert!(future.results.is_empty() && future.complete());
    let past = query(&mut bob, "", &field("end", "2100-01-01T00:00:00Z"), "").await;
    assert_eq!(past.results.len(), 6);

    // Unknown ids and malformed values are errors, not empty pages.
    let unknown = query(&mut bob, "", "", "<after>nope</after>").await;
    assert_eq!(unknown.condition().as_deref(), Some("item-not-found"));
    let bad = query(&mut bob, "", &field("start", "yesterday"), "").await;
    assert_eq!(bad.condition().as_deref(), Some("bad-request"));

    // The form's fields.
    let form = ask(
        &mut bob,
        &format!("<iq type='get' id='f'><query xmlns='{MAM}'/></iq>"),
    )
    .await;
    let x = form
        .get_child("query", MAM)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert!(x.children().any(|f| f.attr("var") == Some("with")));

    // Metadata: the first and the last message.
    let md = ask(
        &mut bob,
        &format!("<iq type='get' id='m'><metadata xmlns='{MAM}'/></iq>"),
    )
    .await;
    let md = md.get_child("metadata", MAM).unwrap();
    assert_eq!(
        md.get_child("start", MAM).unwrap().attr("id"),
        Some(ids[0].as_str())
    );
    assert_eq!(
        md.get_child("end", MAM).unwrap().attr("id"),
        Some(ids[5].as_str())
    );
}

#[tokio::test]
async fn preferences_decide_and_forged_ids_are_removed() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;

    // Defaults: always, no lists.
    let p = ask(
        &mut bob,
        &format!("<iq type='get' id='p'><prefs xmlns='{MAM}'/></iq>"),
    )
    .await;
    assert_eq!(
        p.get_child("prefs", MAM).unwrap().attr("default"),
        Some("always")
    );

    // Never Alice: her message comes without an id and is not archived (on either side for
    // Bob; Alice's own default still archives her copy).
    let set = format!(
        "<iq type='set' id='s'><prefs xmlns='{MAM}' default='always'><always/><never><jid>alice@localhost</jid></never></prefs></iq>"
    );
    let r = ask(&mut bob, &set).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    send(&mut alice, &chat("bob@localhost", "unarchived")).await;
    let got = wait(&mut bob, "the message", |e| body_is(e, "unarchived")).await;
    assert_eq!(stanza_id(&got, "bob@localhost"), None);
    assert!(query(&mut bob, "", "", "").await.results.is_empty());
    assert_eq!(query(&mut alice, "", "", "").await.bodies(), ["unarchived"]);

    // Roster mode: Alice is not a contact, so nothing is archived.
    let set = format!("<iq type='set' id='r'><prefs xmlns='{MAM}' default='roster'/></iq>");
    ask(&mut bob, &set).await;

    // A forged stanza-id "by" Bob's archive is removed; the real one is the archive's.
    let forged = format!(
        "<message type='chat' to='bob@localhost'><body>forged</body><stanza-id xmlns='{SID}' by='bob@localhost' id='fake'/></message>"
    );
    send(&mut alice, &forged).await;
    let got = wait(&mut bob, "the forged message", |e| body_is(e, "forged")).await;
    assert_eq!(
        stanza_id(&got, "bob@localhost"),
        None,
        "the forged id is gone"
    );
    let set = format!("<iq type='set' id='a'><prefs xmlns='{MAM}' default='always'/></iq>");
    ask(&mut bob, &set).await;
    send(&mut alice, &forged.replace("forged<", "forged again<")).await;
    let got = wait(&mut bob, "the message", |e| body_is(e, "forged again")).await;
    let id = stanza_id(&got, "bob@localhost").unwrap();
    assert_ne!(id, "fake");
    assert_eq!(query(&mut bob, "", "", "").await.ids(), [id]);

    // Malformed preferences are refused.
    let bad = ask(
        &mut bob,
        &format!("<iq type='set' id='b'><prefs xmlns='{MAM}' default='sometimes'/></iq>"),
    )
    .await;
    assert_eq!(bad.attr("type"), Some("error"));
}

#[tokio::test]
async fn a_room_has_one_archive_readable_by_those_who_may_enter() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "eve"]).await;
    let (mut eve, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    join(&mut bob, ROOM, "Bob", "").await;
    let mut ids = Vec::new();
    for (i, who) in ["one", "two", "three"].iter().enumerate() {
        let c = if i == 1 { &mut bob } else { &mut alice };
        send(
            c,
            &format!("<message type='groupchat' to='{ROOM}'><body>{who}</body></message>"),
        )
        .await;
        let got = wait(&mut alice, "the room message", |e| body_is(e, who)).await;
        ids.push(stanza_id(&got, ROOM).unwrap());
    }
    // Not in anyone's personal archive: groupchat is the room's.
    assert!(query(&mut bob, "", "", "").await.results.is_empty());

    let all = query(&mut bob, ROOM, "", "").await;
    assert_eq!(all.bodies(), ["one", "two", "three"]);
    assert_eq!(all.ids(), ids);
    assert_eq!(
        all.results[1].1.attr("from"),
        Some(format!("{ROOM}/Bob").as_str())
    );
    let by_bob = query(&mut alice, ROOM, &field("with", &format!("{ROOM}/Bob")), "").await;
    assert_eq!(by_bob.bodies(), ["two"]);
    let last = query(&mut alice, ROOM, "", "<max>1</max><before/>").await;
    assert_eq!(last.bodies(), ["three"]);

    // An open room's archive is readable without joining; a members-only room's is not.
    assert_eq!(query(&mut eve, ROOM, "", "").await.results.len(), 3);
    let r = configure(&mut alice, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    assert_eq!(r.attr("type"), Some("result"));
    let refused = query(&mut eve, ROOM, "", "").await;
    assert_eq!(refused.condition().as_deref(), Some("forbidden"));

    let info = ask(
        &mut eve,
        &format!("<iq type='get' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    let q = info.children().next().unwrap();
    assert!(q.children().any(|f| f.attr("var") == Some(MAM)));
}
