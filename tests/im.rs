//! The instant-messaging life cycle with real clients (tokio-xmpp): rosters, the subscription
//! handshake, presence, offline messages (also across a restart), carbons, vCard and private
//! storage, and the configured limits.

mod common;

use common::*;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{Client, IqRequest, IqResponse, Stanza};

const ROSTER: &str = "jabber:iq:roster";

/// An attribute name for minidom's builder.
fn n(s: &str) -> rxml::NcName {
    rxml::NcName::try_from(s).unwrap()
}

fn jid(s: &str) -> jid::Jid {
    jid::Jid::new(s).unwrap()
}

fn chat(to: &str, body: &str) -> Stanza {
    Stanza::Message(Message::chat(Some(jid(to))).with_body(Lang::default(), body.to_string()))
}

fn body(m: &Message) -> String {
    m.bodies.values().next().cloned().unwrap_or_default()
}

async fn iq(
    c: &mut Client,
    to: Option<&str>,
    req: IqRequest,
) -> Result<Option<minidom::Element>, String> {
    let token = c.send_iq(to.map(jid), req).await;
    match tokio::time::timeout(WAIT, token).await {
        Ok(Ok(IqResponse::Result(r))) => Ok(r),
        Ok(Ok(IqResponse::Error(e))) => Err(format!("{:?}", e.defined_condition)),
        other => panic!("iq failed: {other:?}"),
    }
}

/// The roster as (jid, subscription, ask) triples, and its version.
async fn roster(c: &mut Client) -> (String, Vec<(String, String, bool)>) {
    let q = minidom::Element::builder("query", ROSTER).build();
    let r = iq(c, None, IqRequest::Get(q))
        .await
        .unwrap()
        .expect("a roster query");
    let items = r
        .children()
        .map(|i| {
            (
                i.attr("jid").unwrap().to_string(),
                i.attr("subscription").unwrap().to_string(),
                i.attr("ask") == Some("subscribe"),
            )
        })
        .collect();
    (r.attr("ver").unwrap_or_default().to_string(), items)
}

async fn send_presence(c: &mut Client, kind: PresenceType, to: &str) {
    c.send_stanza(Stanza::Presence(Presence::new(kind).with_to(jid(to))))
        .await
        .unwrap();
}

/// Available presence, then a ping so that it has been processed.
async fn go_online(c: &mut Client) {
    c.send_stanza(Stanza::Presence(Presence::available()))
        .await
        .unwrap();
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(c, Some("localhost"), IqRequest::Get(ping))
        .await
        .unwrap();
}

/// Waits for a stanza matching `pred`, skipping others.
async fn wait_for(c: &mut Client, what: &str, pred: impl Fn(&Stanza) -> bool) -> Stanza {
    let fut = async {
        loop {
            let s = next_stanza(c).await;
            if pred(&s) {
                return s;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what}"))
}

fn is_presence(s: &Stanza, kind: PresenceType, from_bare: &str) -> bool {
    matches!(s, Stanza::Presence(p) if p.type_ == kind
        && p.from.as_ref().is_some_and(|f| f.to_bare().as_str() == from_bare))
}

fn is_push(s: &Stanza, contact: &str, subscription: &str) -> bool {
    let Stanza::Iq(iq) = s else { return false };
    let el: minidom::Element = iq.clone().into();
    el.attr("type") == Some("set")
        && el.get_child("query", ROSTER).is_some_and(|q| {
            q.children().any(|i| {
                i.attr("jid") == Some(contact) && i.attr("subscription") == Some(subscription)
            })
        })
}

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
        while store.count("localhost", "bob").await.unwrap() < 2 {
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
    // Delivered means removed; the headline was never stored.
    assert_eq!(store.count("localhost", "bob").await.unwrap(), 0);
}

#[tokio::test]
async fn presence_goes_unavailable_when_the_connection_drops() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    // Make them mutual contacts through the store, as after an earlier handshake.
    for (u, c) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        let mut item = xmppd::storage::RosterItem::new(c);
        item.subscription = xmppd::storage::Subscription::Both;
        t.server()
            .storage
            .rosters
            .put("localhost", u, &item)
            .await
            .unwrap();
    }
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

    let t = TestServer::start(tweak).await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    go_online(&mut bob).await;
    assert_eq!(body(&next_message(&mut bob).await), "one");
    assert_eq!(body(&next_message(&mut bob).await), "two");
}

#[tokio::test]
async fn carbons_copy_sent_and_received_messages() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut desk, _) = t.login("alice@localhost/desk", "pw").await;
    let (mut phone, _) = t.login("alice@localhost/phone", "pw").await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    let enable = minidom::Element::builder("enable", "urn:xmpp:carbons:2").build();
    iq(&mut desk, None, IqRequest::Set(enable)).await.unwrap();
    // Bob writes to Alice's phone: her desk gets a <received/> copy.
    bob.send_stanza(chat("alice@localhost/phone", "hi phone"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut phone).await), "hi phone");
    let m = next_message(&mut desk).await;
    let received = m
        .payloads
        .iter()
        .find(|p| p.name() == "received")
        .expect("a received carbon");
    assert_eq!(received.ns(), "urn:xmpp:carbons:2");
    let inner = received
        .get_child("forwarded", "urn:xmpp:forward:0")
        .unwrap()
        .get_child("message", "jabber:client")
        .unwrap();
    assert_eq!(
        inner.get_child("body", "jabber:client").unwrap().text(),
        "hi phone"
    );
    // The phone answers: the desk gets a <sent/> copy; Bob gets the message.
    phone
        .send_stanza(chat("bob@localhost/b", "hi bob"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut bob).await), "hi bob");
    let m = next_message(&mut desk).await;
    assert!(m.payloads.iter().any(|p| p.name() == "sent"), "{m:?}");
    // A private message is not copied: the next thing the desk sees is the plain one after it.
    let mut private = Message::chat(Some(jid("alice@localhost/phone")))
        .with_body(Lang::default(), "secret".into());
    private
        .payloads
        .push(minidom::Element::builder("private", "urn:xmpp:carbons:2").build());
    bob.send_stanza(Stanza::Message(private)).await.unwrap();
    bob.send_stanza(chat("alice@localhost/desk", "plain"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut desk).await), "plain");
}

#[tokio::test]
async fn vcard_and_private_storage() {
    let t = TestServer::start(|c| c.im.max_document_size = 2048).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    let vcard = |name: &str| {
        minidom::Element::builder("vCard", "vcard-temp")
            .append(minidom::Element::builder("FN", "vcard-temp").append(name.to_string()))
            .build()
    };
    iq(&mut alice, None, IqRequest::Set(vcard("Alice A.")))
        .await
        .unwrap();
    // Anyone can read it; only Alice can write it.
    let got = iq(
        &mut bob,
        Some("alice@localhost"),
        IqRequest::Get(minidom::Element::builder("vCard", "vcard-temp").build()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        got.get_child("FN", "vcard-temp").unwrap().text(),
        "Alice A."
    );
    assert_eq!(
        iq(
            &mut bob,
            Some("alice@localhost"),
            IqRequest::Set(vcard("x"))
        )
        .await,
        Err("Forbidden".into())
    );
    assert_eq!(
        iq(&mut alice, None, IqRequest::Set(vcard(&"x".repeat(4000)))).await,
        Err("NotAcceptable".into())
    );
    // Private storage: per account, per namespace.
    let private = |inner: minidom::Element| {
        minidom::Element::builder("query", "jabber:iq:private")
            .append(inner)
            .build()
    };
    let bookmarks = minidom::Element::builder("storage", "storage:bookmarks")
        .append(
            minidom::Element::builder("conference", "storage:bookmarks")
                .attr(n("jid"), "room@muc.localhost"),
        )
        .build();
    iq(&mut alice, None, IqRequest::Set(private(bookmarks)))
        .await
        .unwrap();
    let got = iq(
        &mut alice,
        None,
        IqRequest::Get(private(
            minidom::Element::builder("storage", "storage:bookmarks").build(),
        )),
    )
    .await
    .unwrap()
    .unwrap();
    let storage = got.get_child("storage", "storage:bookmarks").unwrap();
    assert_eq!(
        storage.children().next().unwrap().attr("jid"),
        Some("room@muc.localhost")
    );
    let theirs = iq(
        &mut bob,
        None,
        IqRequest::Get(private(
            minidom::Element::builder("storage", "storage:bookmarks").build(),
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        theirs
            .get_child("storage", "storage:bookmarks")
            .unwrap()
            .children()
            .count(),
        0
    );
    assert_eq!(
        iq(
            &mut alice,
            None,
            IqRequest::Set(private(
                minidom::Element::builder("x", "jabber:client").build()
            ))
        )
        .await,
        Err("NotAcceptable".into())
    );
    // Version and time of the server.
    let v = iq(
        &mut alice,
        Some("localhost"),
        IqRequest::Get(minidom::Element::builder("query", "jabber:iq:version").build()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        v.get_child("name", "jabber:iq:version").unwrap().text(),
        "xmppd"
    );
    let tm = iq(
        &mut alice,
        Some("localhost"),
        IqRequest::Get(minidom::Element::builder("time", "urn:xmpp:time").build()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        tm.get_child("utc", "urn:xmpp:time")
            .unwrap()
            .text()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn blocking_and_unblocking() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    for (u, c) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        let mut item = xmppd::storage::RosterItem::new(c);
        item.subscription = xmppd::storage::Subscription::Both;
        t.server()
            .storage
            .rosters
            .put("localhost", u, &item)
            .await
            .unwrap();
    }
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let (mut bob, _) = t.login("bob@localhost/b", "pw").await;
    go_online(&mut bob).await;
    go_online(&mut alice).await;
    wait_for(&mut bob, "alice online", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    let blocklist = || minidom::Element::builder("blocklist", "urn:xmpp:blocking").build();
    let list = iq(&mut alice, None, IqRequest::Get(blocklist()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.children().count(), 0);

    let block = minidom::Element::builder("block", "urn:xmpp:blocking")
        .append(
            minidom::Element::builder("item", "urn:xmpp:blocking").attr(n("jid"), "bob@localhost"),
        )
        .build();
    iq(&mut alice, None, IqRequest::Set(block)).await.unwrap();
    // Bob sees Alice go offline; Alice (who asked for the list) gets the push.
    wait_for(&mut bob, "alice unavailable", |s| {
        is_presence(s, PresenceType::Unavailable, "alice@localhost")
    })
    .await;
    wait_for(&mut alice, "block push", |s| {
        let Stanza::Iq(i) = s else { return false };
        let el: minidom::Element = i.clone().into();
        el.get_child("block", "urn:xmpp:blocking").is_some()
    })
    .await;
    let list = iq(&mut alice, None, IqRequest::Get(blocklist()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        list.children().next().unwrap().attr("jid"),
        Some("bob@localhost")
    );

    // A later presence change of Alice's does not reach Bob: the next presence Bob sees from
    // her is the one after the unblock (checked below).
    for prio in [5, 7] {
        alice
            .send_stanza(Stanza::Presence(Presence::available().with_priority(prio)))
            .await
            .unwrap();
    }
    // Bob's message is refused; Alice's to Bob is refused with <blocked/>.
    bob.send_stanza(chat("alice@localhost", "hello?"))
        .await
        .unwrap();
    let m = next_message(&mut bob).await;
    assert_eq!(m.type_, MessageType::Error);
    alice
        .send_stanza(chat("bob@localhost/b", "psst"))
        .await
        .unwrap();
    let m = next_message(&mut alice).await;
    assert_eq!(m.type_, MessageType::Error);
    let err = m.payloads.iter().find(|p| p.name() == "error").unwrap();
    assert!(
        err.children()
            .any(|c| c.name() == "blocked" && c.ns() == "urn:xmpp:blocking:errors"),
        "{err:?}"
    );

    // Unblock everyone: Bob sees Alice again and can write to her.
    let unblock = minidom::Element::builder("unblock", "urn:xmpp:blocking").build();
    iq(&mut alice, None, IqRequest::Set(unblock)).await.unwrap();
    let back = wait_for(&mut bob, "alice back", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    let Stanza::Presence(p) = back else {
        unreachable!()
    };
    // After the unblock Bob gets Alice's current presence (priority 7); had the presences sent
    // while blocked leaked, the first one he saw would carry priority 5.
    assert_eq!(p.priority.0, 7, "a presence sent while blocked reached Bob");
    bob.send_stanza(chat("alice@localhost", "there you are"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut alice).await), "there you are");
}

#[tokio::test]
async fn client_state_indication_holds_and_coalesces_presence() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    for (u, c) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        let mut item = xmppd::storage::RosterItem::new(c);
        item.subscription = xmppd::storage::Subscription::Both;
        t.server()
            .storage
            .rosters
            .put("localhost", u, &item)
            .await
            .unwrap();
    }
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send("<presence/><inactive xmlns='urn:xmpp:csi:0'/>")
        .await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "a").await;
    alice
        .send(
            "<presence><status>one</status></presence><presence><status>two</status></presence>\
             <presence><status>three</status></presence>\
             <message to='bob@localhost/phone' type='chat'><body>wake up</body></message>",
        )
        .await;
    let out = bob.read_until("wake up").await;
    assert!(
        !out.contains(">one<") && !out.contains(">two<"),
        "held presences were not coalesced: {out}"
    );
    let three = out
        .find(">three<")
        .expect("the latest presence is flushed before the message");
    assert!(three < out.find("wake up").unwrap(), "{out}");
    // Held again while inactive; <active/> flushes it.
    alice
        .send("<presence><status>four</status></presence>")
        .await;
    alice
        .send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.read_until("id='sync'").await;
    bob.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    let out = bob.read_until(">four<").await;
    assert!(out.contains(">four<"));
}
