//! The instant-messaging life cycle with real clients (tokio-xmpp): rosters, the subscription
//! handshake, presence, offline messages (also across a restart), and the roster limits.

mod common;

use common::im::*;
use common::*;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{IqRequest, Stanza};

#[tokio::test]
async fn subscription_handshake_presence_and_offline_life_cycle() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/home", "pw").await;
    let (mut bob, _) = t.login("bob@localhost/phone", "pw").await;
    assert_eq!(roster(&mut alice).await.1, vec![]);
    roster(&mut bob).await;
    go_online(&mut alice).await;
    go_online(&mut bob).await;

    // Alice asks; her roster shows the pending request; Bob sees the request from her bare JID.
    send_presence(&mut alice, PresenceType::Subscribe, "bob@localhost").await;
    wait_for(&mut alice, "push ask", |s| {
        is_push(s, "bob@localhost", "none")
    })
    .await;
    wait_for(&mut bob, "subscribe", |s| {
        is_presence(s, PresenceType::Subscribe, "alice@localhost")
    })
    .await;
    assert_eq!(
        roster(&mut alice).await.1,
        vec![("bob@localhost".into(), "none".into(), true)]
    );

    // Bob approves: Alice's item becomes `to`, and she receives Bob's presence at once.
    send_presence(&mut bob, PresenceType::Subscribed, "alice@localhost").await;
    wait_for(&mut bob, "push from", |s| {
        is_push(s, "alice@localhost", "from")
    })
    .await;
    wait_for(&mut alice, "subscribed", |s| {
        is_presence(s, PresenceType::Subscribed, "bob@localhost")
    })
    .await;
    wait_for(&mut alice, "bob's presence", |s| {
        is_presence(s, PresenceType::None, "bob@localhost")
    })
    .await;
    assert_eq!(
        roster(&mut alice).await.1,
        vec![("bob@localhost".into(), "to".into(), false)]
    );

    // And the other way round: both.
    send_presence(&mut bob, PresenceType::Subscribe, "alice@localhost").await;
    wait_for(&mut alice, "subscribe", |s| {
        is_presence(s, PresenceType::Subscribe, "bob@localhost")
    })
    .await;
    send_presence(&mut alice, PresenceType::Subscribed, "bob@localhost").await;
    wait_for(&mut bob, "alice's presence", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    assert_eq!(
        roster(&mut alice).await.1,
        vec![("bob@localhost".into(), "both".into(), false)]
    );
    assert_eq!(
        roster(&mut bob).await.1,
        vec![("alice@localhost".into(), "both".into(), false)]
    );

    // A second resource of Alice's comes online: Bob sees it, and it gets Bob's presence
    // (the server answers its probe on Bob's behalf).
    let (mut alice2, _) = t.login("alice@localhost/work", "pw").await;
    go_online(&mut alice2).await;
    wait_for(&mut alice2, "bob's presence via probe", |s| {
        is_presence(s, PresenceType::None, "bob@localhost")
    })
    .await;
    wait_for(&mut bob, "alice/work", |s| {
        matches!(s, Stanza::Presence(p) if p.from.as_ref().map(|f| f.to_string()) == Some("alice@localhost/work".into()))
    })
    .await;

    // Bob logs off: Alice's resources see him go unavailable.
    bob.send_end().await.unwrap();
    wait_for(&mut alice, "bob unavailable", |s| {
        is_presence(s, PresenceType::Unavailable, "bob@localhost")
    })
    .await;

    // While Bob is offline, messages wait for him.
    alice
        .send_stanza(chat("bob@localhost", "first"))
        .await
        .unwrap();
    alice
        .send_stanza(chat("bob@localhost/phone", "second"))
        .await
        .unwrap();
    let mut headline =
        Message::new(Some(jid("bob@localhost"))).with_body(Lang::default(), "news".into());
    headline.type_ = MessageType::Headline;
    alice.send_stanza(Stanza::Message(headline)).await.unwrap();
    let store = &t.server().storage.offline;
    tokio::time::timeout(WAIT, async {
        while store.count("localhost", "bob").await.unwrap() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();

    let (mut bob, _) = t.login("bob@localhost/tablet", "pw").await;
    go_online(&mut bob).await;
    for expected in ["first", "second"] {
        let m = next_message(&mut bob).await;
        assert_eq!(body(&m), expected);
        assert_eq!(m.from.unwrap().to_string(), "alice@localhost/home");
        let delay = m
            .payloads
            .iter()
            .find(|p| p.name() == "delay")
            .expect("a delay stamp");
        assert_eq!(delay.ns(), "urn:xmpp:delay");
        assert!(delay.attr("stamp").unwrap().ends_with('Z'));
    }
    // The headline was kept too, as the newest notification of its kind (tests/notifications.rs).
    let m = next_message(&mut bob).await;
    assert_eq!(
        (body(&m), m.type_),
        ("news".to_string(), MessageType::Headline)
    );
    // Delivered means removed.
    assert_eq!(store.count("localhost", "bob").await.unwrap(), 0);
}

#[tokio::test]
async fn presence_goes_unavailable_when_the_connection_drops() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    // Make them mutual contacts through the store, as after an earlier handshake.
    befriend(&t, "alice", "bob").await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    go_online(&mut bob).await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "laptop").await;
    alice.send("<presence/>").await;
    wait_for(&mut bob, "alice online", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    // The TCP connection is cut without a closing tag.
    drop(alice);
    let s = wait_for(&mut bob, "alice unavailable", |s| {
        is_presence(s, PresenceType::Unavailable, "alice@localhost")
    })
    .await;
    let Stanza::Presence(p) = s else {
        unreachable!()
    };
    assert_eq!(p.from.unwrap().to_string(), "alice@localhost/laptop");
}

#[tokio::test]
async fn pending_requests_wait_for_login_and_pre_approval_works() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    t.add_user("carol", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    go_online(&mut alice).await;
    // Bob is offline when Alice asks; the request is kept.
    send_presence(&mut alice, PresenceType::Subscribe, "bob@localhost").await;
    tokio::time::timeout(WAIT, async {
        while t
            .server()
            .storage
            .rosters
            .pending("localhost", "bob")
            .await
            .unwrap()
            .is_empty()
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    go_online(&mut bob).await;
    wait_for(&mut bob, "stored subscribe", |s| {
        is_presence(s, PresenceType::Subscribe, "alice@localhost")
    })
    .await;

    // Carol pre-approves Alice; Alice's later request is accepted without asking Carol.
    let (mut carol, _) = t.login("carol@localhost/c", "pw").await;
    send_presence(&mut carol, PresenceType::Subscribed, "alice@localhost").await;
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(&mut carol, Some("localhost"), IqRequest::Get(ping))
        .await
        .unwrap();
    send_presence(&mut alice, PresenceType::Subscribe, "carol@localhost").await;
    wait_for(&mut alice, "auto subscribed", |s| {
        is_presence(s, PresenceType::Subscribed, "carol@localhost")
    })
    .await;
    let items = roster(&mut alice).await.1;
    assert!(
        items.contains(&("carol@localhost".into(), "to".into(), false)),
        "{items:?}"
    );

    // Removing Bob from the roster cancels the pending request on both sides.
    let q = minidom::Element::builder("query", ROSTER)
        .append(
            minidom::Element::builder("item", ROSTER)
                .attr(n("jid"), "bob@localhost")
                .attr(n("subscription"), "remove"),
        )
        .build();
    iq(&mut alice, None, IqRequest::Set(q)).await.unwrap();
    wait_for(&mut bob, "unsubscribe", |s| {
        is_presence(s, PresenceType::Unsubscribe, "alice@localhost")
    })
    .await;
    assert!(
        !roster(&mut alice)
            .await
            .1
            .iter()
            .any(|i| i.0 == "bob@localhost")
    );
}

#[tokio::test]
async fn roster_set_versioning_and_limits() {
    let t = TestServer::start(|c| {
        c.im.roster_max_items = 2;
        c.im.roster_max_name_length = 10;
    })
    .await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let set = |j: &str, name: &str, groups: &[&str]| {
        let mut item = minidom::Element::builder("item", ROSTER)
            .attr(n("jid"), j)
            .attr(n("name"), name);
        for g in groups {
            item = item.append(minidom::Element::builder("group", ROSTER).append(g.to_string()));
        }
        IqRequest::Set(
            minidom::Element::builder("query", ROSTER)
                .append(item)
                .build(),
        )
    };
    iq(
        &mut alice,
        None,
        set("x@localhost", "X", &["Friends", "Work"]),
    )
    .await
    .unwrap();
    let (ver, _) = roster(&mut alice).await;
    // An up-to-date version gets an empty result (RFC 6121 §2.6.3).
    let q = minidom::Element::builder("query", ROSTER)
        .attr(n("ver"), ver.clone())
        .build();
    assert_eq!(iq(&mut alice, None, IqRequest::Get(q)).await.unwrap(), None);
    iq(&mut alice, None, set("y@localhost", "Y", &[]))
        .await
        .unwrap();
    let (ver2, items) = roster(&mut alice).await;
    assert_ne!(ver, ver2);
    assert_eq!(items.len(), 2);
    // Limits and malformed sets are stanza errors.
    assert_eq!(
        iq(&mut alice, None, set("z@localhost", "Z", &[])).await,
        Err("ResourceConstraint".into())
    );
    assert_eq!(
        iq(&mut alice, None, set("x@localhost", "far too long", &[])).await,
        Err("NotAcceptable".into())
    );
    assert_eq!(
        iq(&mut alice, None, set("x@localhost", "X", &["a", "a"])).await,
        Err("BadRequest".into())
    );
    assert_eq!(
        iq(&mut alice, None, set("x@localhost/res", "X", &[])).await,
        Err("BadRequest".into())
    );
    // Someone else's roster is not readable.
    let q = minidom::Element::builder("query", ROSTER).build();
    assert_eq!(
        iq(&mut alice, Some("bob@localhost"), IqRequest::Get(q)).await,
        Err("Forbidden".into())
    );
}

#[tokio::test]
async fn offline_messages_survive_a_restart_and_respect_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let tweak = move |c: &mut xmppd::config::Config| {
        c.server.data_dir = keep.clone();
        c.im.offline_quota = 2;
    };
    let mut t = TestServer::start(tweak.clone()).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    for b in ["one", "two", "three"] {
        alice.send_stanza(chat("bob@localhost", b)).await.unwrap();
    }
    // The third is over the quota and comes back as an error.
    let m = next_message(&mut alice).await;
    assert_eq!(m.type_, MessageType::Error);
    let err = m.payloads.iter().find(|p| p.name() == "error").unwrap();
    assert!(
        err.children().any(|c| c.name() == "resource-constraint"),
        "{err:?}"
    );
    drop(alice);
    t.stop().await;

    // The same database again (SQLite in the same folder, or the same PostgreSQL database).
    let storage = t.config.storage.clone();
    let t = TestServer::start(move |c| {
        tweak(c);
        c.storage = storage;
    })
    .await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    go_online(&mut bob).await;
    assert_eq!(body(&next_message(&mut bob).await), "one");
    assert_eq!(body(&next_message(&mut bob).await), "two");
}

#[tokio::test]
async fn equal_priorities_and_directed_presence() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut one, _) = t.login("bob@localhost/one", "pw").await;
    let (mut two, _) = t.login("bob@localhost/two", "pw").await;
    go_online(&mut one).await;
    go_online(&mut two).await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    // Two resources of equal (highest) priority both get a message to the bare JID.
    alice
        .send_stanza(chat("bob@localhost", "both of you"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut one).await), "both of you");
    assert_eq!(body(&next_message(&mut two).await), "both of you");
    // Directed presence without any subscription reaches Bob's available resources, and is
    // followed by unavailable when Alice's session ends (RFC 6121 §4.6).
    alice
        .send_stanza(Stanza::Presence(
            Presence::available().with_to(jid("bob@localhost")),
        ))
        .await
        .unwrap();
    wait_for(&mut one, "directed presence", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    alice.send_end().await.unwrap();
    wait_for(&mut one, "unavailable after directed", |s| {
        is_presence(s, PresenceType::Unavailable, "alice@localhost")
    })
    .await;
}
