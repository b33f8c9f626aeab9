//! IM features around the core, with real clients (tokio-xmpp): carbons, vCard and private
//! storage, version and time, blocking, client state indication.

mod common;

use common::im::*;
use common::*;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{IqRequest, Stanza};

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
    befriend(&t, "alice", "bob").await;
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
    befriend(&t, "alice", "bob").await;
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
    // Nothing reaches the inactive client meanwhile.
    bob.expect_silence(std::time::Duration::from_millis(300))
        .await;
    bob.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    bob.read_until(">four<").await;
}
