//! Per-account and per-session sizes that a client drives, bounded on every path: directed
//! presence recipients (`im.max_directed_presences`), roster items created by subscriptions
//! and pending subscription requests (`im.roster_max_items`).

mod common;

use common::im::*;
use common::*;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{Client, IqRequest, Stanza};

/// Whether `s` is a presence error from `from` with `condition`.
fn presence_error(s: &Stanza, from: &str, condition: &str) -> bool {
    let Stanza::Presence(p) = s else { return false };
    if p.type_ != PresenceType::Error || p.from.as_ref().map(|f| f.as_str()) != Some(from) {
        return false;
    }
    let el: minidom::Element = p.clone().into();
    el.get_child("error", "jabber:client")
        .is_some_and(|e| e.has_child(condition, "urn:ietf:params:xml:ns:xmpp-stanzas"))
}

/// Pings the server and asserts that no presence error came before the answer.
async fn no_presence_error_before_ping(c: &mut Client) {
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    let token = c
        .send_iq(Some(jid("localhost")), IqRequest::Get(ping))
        .await;
    let mut token = std::pin::pin!(token);
    loop {
        tokio::select! {
            r = &mut token => { r.unwrap(); return; }
            s = next_stanza(c) => {
                if let Stanza::Presence(p) = &s {
                    assert_ne!(p.type_, PresenceType::Error, "unexpected error: {s:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn directed_presence_recipients_are_capped() {
    let t = TestServer::start(|c| c.im.max_directed_presences = 2).await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    go_online(&mut alice).await;
    let directed = |to: &str, kind| Stanza::Presence(Presence::new(kind).with_to(jid(to)));
    for to in ["p1@localhost", "p2@localhost", "p2@localhost"] {
        alice
            .send_stanza(directed(to, PresenceType::None))
            .await
            .unwrap();
    }
    no_presence_error_before_ping(&mut alice).await;
    // A third recipient would not be remembered (so would never see the unavailable): refused.
    alice
        .send_stanza(directed("p3@localhost", PresenceType::None))
        .await
        .unwrap();
    wait_for(&mut alice, "policy-violation from p3", |s| {
        presence_error(s, "p3@localhost", "policy-violation")
    })
    .await;
    // Unavailable to one of them frees its place.
    alice
        .send_stanza(directed("p1@localhost", PresenceType::Unavailable))
        .await
        .unwrap();
    alice
        .send_stanza(directed("p3@localhost", PresenceType::None))
        .await
        .unwrap();
    no_presence_error_before_ping(&mut alice).await;
}

#[tokio::test]
async fn subscriptions_do_not_grow_a_roster_past_its_limit() {
    let t = TestServer::start(|c| c.im.roster_max_items = 2).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    // Any JID, existing or not, local or remote, used to create an item.
    send_presence(&mut alice, PresenceType::Subscribe, "nobody@localhost").await;
    send_presence(&mut alice, PresenceType::Subscribe, "bob@localhost").await;
    no_presence_error_before_ping(&mut alice).await;
    assert_eq!(roster(&mut alice).await.1.len(), 2);
    send_presence(&mut alice, PresenceType::Subscribe, "carol@example.org").await;
    wait_for(&mut alice, "resource-constraint", |s| {
        presence_error(s, "carol@example.org", "resource-constraint")
    })
    .await;
    // Pre-approval creates an item too.
    send_presence(&mut alice, PresenceType::Subscribed, "dave@localhost").await;
    wait_for(&mut alice, "resource-constraint", |s| {
        presence_error(s, "dave@localhost", "resource-constraint")
    })
    .await;
    let (_, items) = roster(&mut alice).await;
    assert_eq!(items.len(), 2, "{items:?}");
    // Subscribing again to a contact already in the roster is fine.
    send_presence(&mut alice, PresenceType::Subscribe, "bob@localhost").await;
    no_presence_error_before_ping(&mut alice).await;
}

#[tokio::test]
async fn pending_requests_are_capped() {
    let t = TestServer::start(|c| c.im.roster_max_items = 2).await;
    for u in ["alice", "s1", "s2", "s3"] {
        t.add_user(u, "pw").await;
    }
    for (i, u) in ["s1", "s2", "s3"].iter().enumerate() {
        let (mut c, _) = t.login(&format!("{u}@localhost/x"), "pw").await;
        send_presence(&mut c, PresenceType::Subscribe, "alice@localhost").await;
        if i < 2 {
            no_presence_error_before_ping(&mut c).await;
        } else {
            // Alice has two requests waiting: the third sender gets an error back.
            wait_for(&mut c, "resource-constraint", |s| {
                presence_error(s, "alice@localhost", "resource-constraint")
            })
            .await;
        }
    }
    let pending = t
        .server()
        .storage
        .rosters
        .pending("localhost", "alice")
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
}

#[tokio::test]
async fn private_xml_namespaces_are_capped() {
    let t = TestServer::start(|c| c.im.max_private_namespaces = 2).await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let set = |ns: &str| {
        IqRequest::Set(
            minidom::Element::builder("query", "jabber:iq:private")
                .append(minidom::Element::builder("data", ns).append("x"))
                .build(),
        )
    };
    for ns in ["urn:a", "urn:b", "urn:a"] {
        iq(&mut alice, None, set(ns)).await.unwrap();
    }
    assert_eq!(
        iq(&mut alice, None, set("urn:c")).await,
        Err("ResourceConstraint".into())
    );
    // Replacing an existing one is still fine.
    iq(&mut alice, None, set("urn:b")).await.unwrap();
}
