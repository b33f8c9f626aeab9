//! Messages between live sessions (RFC 6121 §8.5) with tokio-xmpp clients: full JID, bare JID
//! by priority, errors for unavailable and unknown recipients, and iqs the server answers.

mod common;

use common::*;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::{Client, IqRequest, IqResponse, Stanza};

fn chat(to: &str, body: &str) -> Stanza {
    Stanza::Message(
        Message::chat(Some(jid::Jid::new(to).unwrap()))
            .with_body(Lang::default(), body.to_string()),
    )
}

fn body(m: &Message) -> Option<String> {
    m.bodies.values().next().cloned()
}

/// Sends presence, then a ping; when the ping is answered the server has processed the presence.
async fn go_online(c: &mut Client, priority: i8) {
    c.send_stanza(Stanza::Presence(
        Presence::available().with_priority(priority),
    ))
    .await
    .unwrap();
    ping(c).await;
}

async fn ping(c: &mut Client) {
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    let token = c
        .send_iq(
            Some(jid::Jid::new("localhost").unwrap()),
            IqRequest::Get(ping),
        )
        .await;
    match tokio::time::timeout(WAIT, token).await {
        Ok(Ok(IqResponse::Result(_))) => {}
        other => panic!("ping failed: {other:?}"),
    }
}

#[tokio::test]
async fn full_jid_between_two_resources_of_one_account() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    let (mut a, _) = t.login("alice@localhost/a", "pw").await;
    let (mut b, _) = t.login("alice@localhost/b", "pw").await;
    // A full JID reaches its resource even before it sent presence (RFC 6121 §8.5.3.1).
    a.send_stanza(chat("alice@localhost/b", "hello b"))
        .await
        .unwrap();
    let got = next_message(&mut b).await;
    assert_eq!(body(&got).as_deref(), Some("hello b"));
    let m = got;
    assert_eq!(
        m.from.unwrap().to_string(),
        "alice@localhost/a",
        "from is stamped by the server"
    );
    b.send_stanza(chat("alice@localhost/a", "hello a"))
        .await
        .unwrap();
    assert_eq!(
        body(&next_message(&mut a).await).as_deref(),
        Some("hello a")
    );
}

#[tokio::test]
async fn bare_jid_goes_to_the_highest_priority_resource() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let (mut low, _) = t.login("bob@localhost/low", "pw").await;
    let (mut high, _) = t.login("bob@localhost/high", "pw").await;
    go_online(&mut low, 1).await;
    go_online(&mut high, 10).await;
    alice
        .send_stanza(chat("bob@localhost", "to the bare JID"))
        .await
        .unwrap();
    assert_eq!(
        body(&next_message(&mut high).await).as_deref(),
        Some("to the bare JID")
    );
    // Then the lower-priority resource proves it got nothing: the next stanza it sees is the
    // one sent to it directly afterwards.
    alice
        .send_stanza(chat("bob@localhost/low", "direct"))
        .await
        .unwrap();
    assert_eq!(
        body(&next_message(&mut low).await).as_deref(),
        Some("direct")
    );
}

#[tokio::test]
async fn undeliverable_messages_come_back_as_errors() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    // Nobody does not exist; a groupchat message has no room; a remote domain has no
    // federation yet. Each comes back to the sender as an error with the right condition.
    // (Bob, who exists, gets his messages stored offline: see tests/im.rs.)
    for (to, condition) in [
        ("nobody@localhost", "service-unavailable"),
        ("groupie@localhost/x", "service-unavailable"),
        ("someone@remote.example", "remote-server-not-found"),
    ] {
        alice.send_stanza(chat(to, "are you there?")).await.unwrap();
        let m = next_message(&mut alice).await;
        assert_eq!(m.type_, MessageType::Error, "to {to}");
        assert_eq!(m.from.unwrap().to_string(), to);
        let err = m
            .payloads
            .iter()
            .find(|p| p.name() == "error")
            .expect("an <error/> child");
        assert!(
            err.children().any(|c| c.name() == condition),
            "to {to}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_server_answers_iqs() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    ping(&mut alice).await;
    // disco#info lists exactly the registered features.
    let q = minidom::Element::builder("query", "http://jabber.org/protocol/disco#info").build();
    let token = alice
        .send_iq(Some(jid::Jid::new("localhost").unwrap()), IqRequest::Get(q))
        .await;
    let Ok(Ok(IqResponse::Result(Some(info)))) = tokio::time::timeout(WAIT, token).await else {
        panic!("disco#info failed")
    };
    let features: Vec<String> = info
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var").map(str::to_string))
        .collect();
    assert!(
        features.contains(&"urn:xmpp:ping".to_string()),
        "{features:?}"
    );
    assert!(features.contains(&"http://jabber.org/protocol/disco#info".to_string()));
    // An iq nobody handles gets service-unavailable (RFC 6120 §8.4).
    let q = minidom::Element::builder("query", "urn:example:unknown").build();
    let token = alice
        .send_iq(Some(jid::Jid::new("localhost").unwrap()), IqRequest::Get(q))
        .await;
    match tokio::time::timeout(WAIT, token).await {
        Ok(Ok(IqResponse::Error(e))) => {
            assert_eq!(
                e.defined_condition,
                tokio_xmpp::parsers::stanza_error::DefinedCondition::ServiceUnavailable
            )
        }
        other => panic!("expected service-unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn queued_stanzas_of_a_closing_session_are_rerouted() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    let (mut bob1, _) = t.login("bob@localhost/one", "pw").await;
    let (bob2, _) = t.login("bob@localhost/two", "pw").await;
    go_online(&mut bob1, 0).await;
    // bob/two goes away; messages to it fall back to bob's bare JID (RFC 6121 §8.5.3.2.1).
    bob2.send_end().await.unwrap();
    let gone = jid::FullJid::new("bob@localhost/two").unwrap();
    tokio::time::timeout(WAIT, async {
        while t.server().router.registry.get(&gone).is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    alice
        .send_stanza(chat("bob@localhost/two", "late"))
        .await
        .unwrap();
    assert_eq!(
        body(&next_message(&mut bob1).await).as_deref(),
        Some("late")
    );
}

/// RFC 6121 §8.5.2.1.1 and XEP-0160: a message to the bare JID while the only resource has a
/// negative priority is stored, and stays stored while the priority is negative; it comes
/// (once, with a delay stamp) when the resource raises its priority. Repeated, with the
/// initial presence racing the store, because the hand-over was once seen in one of two runs.
#[tokio::test]
async fn negative_priority_keeps_offline_messages_until_it_is_raised() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    for round in 0..15 {
        let mut bob = t.raw().await;
        bob.login("bob", "pw", &format!("r{round}")).await;
        let msg = format!(
            "<message to='bob@localhost' type='chat' id='n{round}'><body>n{round}</body></message>"
        );
        // Alternate which comes first: the message (stored, then the initial presence) or the
        // presence (so the message races nothing but is stored as the resource is negative).
        if round % 2 == 0 {
            alice.send(&msg).await;
            alice
                .send("<iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>")
                .await;
            alice.read_until("id='s'").await;
            bob.send("<presence><priority>-1</priority></presence>")
                .await;
        } else {
            bob.send("<presence><priority>-1</priority></presence>")
                .await;
            alice.send(&msg).await;
        }
        bob.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        let early = bob.read_until("id='p'").await;
        assert!(
            !early.contains("</body>"),
            "round {round}: delivered at priority -1: {early}"
        );
        bob.expect_silence(std::time::Duration::from_millis(200))
            .await;
        bob.send("<presence><priority>1</priority></presence>")
            .await;
        let got = bob.read_until(&format!("n{round}</body>")).await;
        assert!(got.contains("urn:xmpp:delay"), "round {round}: {got}");
        bob.expect_silence(std::time::Duration::from_millis(200))
            .await;
        bob.send("</stream:stream>").await;
        bob.read_to_close().await;
    }
}
