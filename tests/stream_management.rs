//! XEP-0198 stream management against the real server, with raw sockets (the client side of
//! SM is what is under test here, so every byte is visible): acks both ways, resumption after a
//! dropped connection (exactly the unacknowledged stanzas, once), no presence storm while
//! detached, expiry into offline storage, takeover of a half-open connection, and the errors.

mod common;

use common::im::befriend;
use common::*;

const ENABLE_RESUME: &str = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>";

async fn server(tweak: impl FnOnce(&mut xmppd::config::Config)) -> TestServer {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        tweak(c);
    })
    .await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    befriend(&t, "alice", "bob").await;
    t
}

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{body}'><body>{body}</body></message>")
}

/// Bob, bound as bob@localhost/phone, with SM enabled (resumable if `resume`) and available.
/// Returns the connection, the resumption id, and the transcript since `<enabled/>`.
async fn bob_with_sm(t: &TestServer, resume: bool) -> (Raw, Option<String>, String) {
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    let enable = if resume {
        ENABLE_RESUME
    } else {
        "<enable xmlns='urn:xmpp:sm:3'/>"
    };
    bob.send(enable).await;
    let en = bob.read_tag("enabled").await;
    let id = attr_of(&en, "enabled", "id");
    assert_eq!(id.is_some(), resume, "{en}");
    if resume {
        let max = t.config.c2s.resume_timeout_secs.to_string();
        assert_eq!(attr_of(&en, "enabled", "max"), Some(max));
    }
    // Initial presence: the server reflects it to the session itself (RFC 6121 §4.2.2).
    bob.send("<presence/>").await;
    let seen = bob.read_until("<presence").await;
    let seen = seen[seen.find("<presence").unwrap()..].to_string();
    (bob, id, seen)
}

async fn alice_online(t: &TestServer) -> Raw {
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice.send("<presence/>").await;
    alice.read_until("bob@localhost/phone").await;
    alice
}

#[tokio::test]
async fn resumption_after_a_dropped_connection_delivers_each_message_once() {
    let t = server(|_| {}).await;
    let (mut bob, id, mut seen) = bob_with_sm(&t, true).await;
    let mut alice = alice_online(&t).await;
    alice.send(&chat("bob@localhost/phone", "m0")).await;
    seen += &bob.read_until("m0</body>").await;
    // What Bob handled; the server must not send any of it again.
    let h = count_stanzas(&seen);
    drop(bob);
    for i in 1..=5 {
        alice.send(&chat("bob@localhost", &format!("m{i}"))).await;
    }
    let mut bob = t.raw().await;
    let features = bob.authenticate("bob", "pw").await;
    assert!(features.contains("urn:xmpp:sm:3"), "{features}");
    bob.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='{h}'/>",
        id.unwrap()
    ))
    .await;
    let got = bob.read_until_n("</body>", 5).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    assert!(got.contains("<resumed"), "{got}");
    // Bob sent one stanza (his presence), and the server handled it.
    assert_eq!(attr_of(&got, "resumed", "h").as_deref(), Some("1"), "{got}");
    assert!(
        !got.contains("m0<"),
        "an acknowledged message came again: {got}"
    );
    for i in 1..=5 {
        assert_eq!(
            got.matches(&format!(">m{i}</body>")).count(),
            1,
            "m{i}: {got}"
        );
    }
    // The session is the same one: it can talk and ack as before.
    bob.send(&chat("alice@localhost", "back")).await;
    let seen_by_alice = alice.read_until("back</body>").await;
    assert!(
        !seen_by_alice.contains("unavailable"),
        "contacts saw the short disconnection: {seen_by_alice}"
    );
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = bob.read_tag("a").await;
    assert_eq!(attr_of(&a, "a", "h").as_deref(), Some("2"), "{a}");
}

#[tokio::test]
async fn expiry_sends_unavailable_and_stores_unacknowledged_messages_offline() {
    let t = server(|c| c.c2s.resume_timeout_secs = 1).await;
    let (bob, id, _) = bob_with_sm(&t, true).await;
    let mut alice = alice_online(&t).await;
    drop(bob);
    for i in 1..=5 {
        alice.send(&chat("bob@localhost", &format!("m{i}"))).await;
    }
    // At expiry, and not before, contacts learn that Bob left.
    let gone = alice.read_until("type='unavailable'").await;
    assert!(gone.contains("bob@localhost/phone"), "{gone}");
    assert!(!gone.contains("<error"), "nothing bounced: {gone}");
    // Too late to resume; the answer still says which of Bob's stanzas were handled.
    let mut late = t.raw().await;
    late.authenticate("bob", "pw").await;
    late.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
        id.unwrap()
    ))
    .await;
    let f = late.read_until("</failed>").await;
    assert!(f.contains("item-not-found"), "{f}");
    assert_eq!(attr_of(&f, "failed", "h").as_deref(), Some("1"), "{f}");
    // A new login gets all five from offline storage, once each.
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/>").await;
    let got = bob.read_until_n("</body>", 5).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    for i in 1..=5 {
        assert_eq!(
            got.matches(&format!(">m{i}</body>")).count(),
            1,
            "m{i}: {got}"
        );
    }
    assert!(got.contains("urn:xmpp:delay"), "{got}");
}

#[tokio::test]
async fn resuming_takes_over_a_half_open_connection() {
    let t = server(|_| {}).await;
    let (mut old, id, _) = bob_with_sm(&t, true).await;
    let mut bob = t.raw().await;
    bob.authenticate("bob", "pw").await;
    bob.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='1'/>",
        id.unwrap()
    ))
    .await;
    let r = bob.read_until("<resumed").await;
    assert!(r.contains("<resumed"), "{r}");
    let closed = old.read_to_close().await;
    assert!(closed.contains("<conflict"), "{closed}");
    // Messages reach the new connection.
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice.send(&chat("bob@localhost/phone", "hi")).await;
    bob.read_until("hi</body>").await;
}

#[tokio::test]
async fn acks_requests_and_their_errors() {
    let t = server(|_| {}).await;
    // SM before binding is refused (XEP-0198 §3).
    let mut early = t.raw().await;
    early.authenticate("bob", "pw").await;
    early.send(ENABLE_RESUME).await;
    let f = early.read_until("</failed>").await;
    assert!(f.contains("unexpected-request"), "{f}");

    let (mut bob, id, _) = bob_with_sm(&t, true).await;
    bob.send(ENABLE_RESUME).await;
    let f = bob.read_until("</failed>").await;
    assert!(f.contains("unexpected-request"), "enabled twice: {f}");
    // The server asks for an ack after `c2s.ack_request_every` (5) stanzas.
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    for i in 0..5 {
        alice
            .send(&chat("bob@localhost/phone", &format!("n{i}")))
            .await;
    }
    // Bob's reflected presence was the first of the five: the request follows n3 at the
    // earliest (later if the writes were batched).
    let got = bob.read_until("<r xmlns='urn:xmpp:sm:3'/>").await;
    assert!(got.contains("n3</body>"), "{got}");

    // Another account cannot take Bob's session, nor can an unknown id be resumed.
    let mut mallory = t.raw().await;
    mallory.authenticate("alice", "pw").await;
    mallory
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
            id.as_deref().unwrap()
        ))
        .await;
    let f = mallory.read_until("</failed>").await;
    assert!(f.contains("item-not-found"), "{f}");
    assert!(attr_of(&f, "failed", "h").is_none(), "{f}");

    // Acknowledging more than was sent ends the stream (XEP-0198 §4).
    bob.send("<a xmlns='urn:xmpp:sm:3' h='4000'/>").await;
    let closed = bob.read_to_close().await;
    assert!(closed.contains("undefined-condition"), "{closed}");
    assert!(closed.contains("handled-count-too-high"), "{closed}");
}

#[tokio::test]
async fn unacknowledged_messages_of_a_closed_session_go_offline() {
    let t = server(|_| {}).await;
    let (mut bob, _, _) = bob_with_sm(&t, false).await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice.send(&chat("bob@localhost/phone", "u1")).await;
    alice.send(&chat("bob@localhost/phone", "u2")).await;
    // Bob's client receives them and dies before acknowledging.
    bob.read_until("u2</body>").await;
    drop(bob);
    // Alice learns nothing went wrong: the messages wait offline.
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/>").await;
    let got = bob.read_until_n("</body>", 2).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    assert!(
        got.contains("u1</body>") && got.contains("u2</body>"),
        "{got}"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_stores_unacknowledged_and_queued_messages() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let tweak = move |c: &mut xmppd::config::Config| c.server.data_dir = keep.clone();
    let mut t = server(tweak.clone()).await;
    let (mut bob, _, _) = bob_with_sm(&t, true).await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    for i in 1..=3 {
        alice.send(&chat("bob@localhost", &format!("s{i}"))).await;
    }
    bob.read_until("s3</body>").await;
    t.stop().await;
    let closed = bob.read_to_close().await;
    assert!(closed.contains("system-shutdown"), "{closed}");

    let storage = t.config.storage.clone();
    let t = TestServer::start(move |c| {
        c.c2s.require_tls = false;
        tweak(c);
        c.storage = storage;
    })
    .await;
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/>").await;
    let got = bob.read_until_n("</body>", 3).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    for i in 1..=3 {
        assert_eq!(
            got.matches(&format!(">s{i}</body>")).count(),
            1,
            "s{i}: {got}"
        );
    }
}

#[tokio::test]
async fn stream_management_can_be_turned_off() {
    let t = server(|c| c.c2s.stream_management = false).await;
    let mut bob = t.raw().await;
    let features = bob.authenticate("bob", "pw").await;
    assert!(!features.contains("urn:xmpp:sm:3"), "{features}");
}

#[tokio::test]
async fn location_and_ack_requests_by_age() {
    let t = server(|c| {
        c.c2s.sm_location = "node2.example.net:5222".into();
        c.c2s.ack_request_after_secs = 1;
    })
    .await;
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send(ENABLE_RESUME).await;
    let en = bob.read_tag("enabled").await;
    assert_eq!(
        attr_of(&en, "enabled", "location").as_deref(),
        Some("node2.example.net:5222"),
        "{en}"
    );
    // One stanza, fewer than ack_request_every: the request comes when it is a second old.
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice.send(&chat("bob@localhost/phone", "lonely")).await;
    let got = bob.read_until("<r xmlns='urn:xmpp:sm:3'/>").await;
    assert!(got.contains("lonely</body>"), "{got}");
    bob.send("<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>")
        .await;
    let a = bob.read_tag("a").await;
    assert_eq!(attr_of(&a, "a", "h").as_deref(), Some("0"), "{a}");
}

/// Offline messages handed to a session with stream management stay stored (claimed) until
/// acknowledged: through a resumption they are resent and then deleted by the ack; when the
/// session expires instead they are given back, neither lost nor stored twice.
#[tokio::test]
async fn claimed_offline_messages_through_resumption_and_expiry() {
    for expire in [false, true] {
        let t = server(|c| c.c2s.resume_timeout_secs = if expire { 1 } else { 300 }).await;
        let offline = |t: &TestServer| {
            let o = t.server().storage.offline.clone();
            async move { o.count("localhost", "bob").await.unwrap() }
        };
        let mut alice = t.raw().await;
        alice.login("alice", "pw", "pc").await;
        for i in 0..3 {
            alice.send(&chat("bob@localhost", &format!("o{i}"))).await;
        }
        alice
            .send("<iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        alice.read_until("id='s'").await;
        assert_eq!(offline(&t).await, 3);
        let (mut bob, id, mut seen) = bob_with_sm(&t, true).await;
        let missing = 3 - seen.matches("</body>").count();
        if missing > 0 {
            seen += &bob.read_until_n("</body>", missing).await;
        }
        // Delivered but not acknowledged: still stored.
        assert_eq!(offline(&t).await, 3, "{seen}");
        drop(bob);
        if expire {
            let phone = jid::FullJid::new("bob@localhost/phone").unwrap();
            tokio::time::timeout(WAIT, async {
                while t.server().router.registry.get(&phone).is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap();
            // Given back, not stored again: three, as before.
            assert_eq!(offline(&t).await, 3);
            let mut laptop = t.raw().await;
            laptop.login("bob", "pw", "laptop").await;
            laptop.send("<presence/>").await;
            let got = laptop.read_until_n("</body>", 3).await;
            laptop
                .expect_silence(std::time::Duration::from_millis(300))
                .await;
            for i in 0..3 {
                assert_eq!(got.matches(&format!(">o{i}</body>")).count(), 1, "{got}");
            }
            continue;
        }
        // Resumed with nothing handled: all of it comes again, once; the ack deletes them.
        let mut bob = t.raw().await;
        bob.authenticate("bob", "pw").await;
        bob.send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
            id.unwrap()
        ))
        .await;
        let got = bob.read_until_n("</body>", 3).await;
        assert!(got.contains("<resumed"), "{got}");
        bob.ack_all(&got).await;
        assert_eq!(offline(&t).await, 0, "acknowledged, so deleted: {got}");
    }
}

/// A room's message reaches an occupant with stream management as the shared serialisation
/// (kept unacknowledged as such); when the connection drops before the ack, resumption sends
/// it again as an element of its own: the occupant's `to`, the room's stanza id, a delay.
#[tokio::test]
async fn a_room_message_kept_for_an_occupant_with_sm_comes_again_on_resumption() {
    let t = server(|_| {}).await;
    let room = "sm-room@conference.localhost";
    let (mut bob, id, mut seen) = bob_with_sm(&t, true).await;
    let mut alice = alice_online(&t).await;
    alice
        .send(&format!(
            "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    alice.read_until("status code='201'").await;
    alice
        .send(&format!(
            "<iq type='set' id='c' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ))
        .await;
    alice.read_until("id='c'").await;
    bob.send(&format!(
        "<presence to='{room}/bob'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    ))
    .await;
    seen += &bob.read_until("</subject>").await;
    let h = count_stanzas(&seen);
    alice
        .send(&format!(
            "<message to='{room}' type='groupchat' id='g1'><body>to all</body></message>"
        ))
        .await;
    let first = bob.read_until("to all</body>").await;
    assert!(first.contains("to='bob@localhost/phone'"), "{first}");
    drop(bob);
    let mut bob = t.raw().await;
    bob.authenticate("bob", "pw").await;
    bob.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='{h}'/>",
        id.unwrap()
    ))
    .await;
    let again = bob.read_until("to all</body>").await;
    assert!(again.contains("<resumed"), "{again}");
    let msg = &again[again.rfind("<message").unwrap()..];
    assert_eq!(
        attr_of(msg, "message", "to").as_deref(),
        Some("bob@localhost/phone"),
        "{msg}"
    );
    assert_eq!(
        attr_of(msg, "message", "from").as_deref(),
        Some(&*format!("{room}/alice")),
        "{msg}"
    );
    assert!(
        msg.contains("urn:xmpp:sid:0") && msg.contains("urn:xmpp:delay"),
        "{msg}"
    );
    bob.expect_silence(std::time::Duration::from_millis(300))
        .await;
}
