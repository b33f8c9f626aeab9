//! BOSH (XEP-0124/0206) with an HTTP client written by others (hyper's): login with SCRAM and a
//! chat with a TCP client (tokio-xmpp), a held request answered as soon as a stanza comes,
//! stanzas waiting for a late poll, `rid`s out of order, retransmitted, beyond the window; a client
//! that vanishes (inactivity: what was waiting goes to offline storage), terminate, and the
//! errors of requests that reach no session.

mod common;

use std::time::{Duration, Instant};

use common::bosh::{self, Bosh, HTTPBIND};
use common::im::{body, chat, go_online};
use common::*;

fn http(t: &TestServer) -> std::net::SocketAddr {
    t.server().http_addrs[0]
}

/// Alice on BOSH (available), bob on TCP (available).
async fn alice_on_bosh_and_bob(t: &TestServer) -> (Bosh, tokio_xmpp::Client) {
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = Bosh::login(http(t), "alice", "pw", "web").await;
    alice.send("<presence xmlns='jabber:client'/>").await;
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    go_online(&mut bob).await;
    (alice, bob)
}

/// Waits until only one session (bob's) is left: alice's BOSH session ended.
async fn until_alice_is_gone(t: &TestServer) {
    let deadline = Instant::now() + WAIT;
    while t.server().router.registry.len() > 1 {
        assert!(Instant::now() < deadline, "the BOSH session did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn login_and_chat_with_a_tcp_client() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (_, created) = Bosh::create(http(&t), 10, 1).await;
    // The creation answer: the session's attributes and the stream features (XEP-0206 §5).
    for attr in [
        "sid=",
        "wait='10'",
        "hold='1'",
        "requests='2'",
        "inactivity=",
        "xmpp:version='1.0'",
    ] {
        assert!(created.contains(attr), "{attr} in {created}");
    }
    assert!(created.contains("<stream:features"), "{created}");

    let (mut alice, me) = Bosh::login(http(&t), "alice", "pw", "web").await;
    assert_eq!(me, "alice@localhost/web");
    alice.send("<presence xmlns='jabber:client'/>").await;
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    go_online(&mut bob).await;

    // A held request (wait 10 s) is answered as soon as bob's message comes.
    let poll = alice.body("", "");
    let addr = http(&t);
    let held = tokio::spawn(async move {
        let start = Instant::now();
        let got = bosh::post(addr, poll).await;
        (got, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send_stanza(chat("alice@localhost/web", "hello over TCP"))
        .await
        .unwrap();
    let (got, took) = held.await.unwrap();
    assert!(
        got.contains("hello over TCP") || got.contains("<presence"),
        "{got}"
    );
    assert!(
        took < Duration::from_secs(9),
        "answered at once, not after wait: {took:?}"
    );
    let mut seen = got;
    while !seen.contains("hello over TCP") {
        seen = alice.send("").await;
    }
    assert!(seen.contains("xmlns='jabber:client'"), "{seen}");

    // A message to bob has no answer for alice: its request is held, as a browser's is, until
    // the next request (here the terminate, which carries the unavailable presence) comes.
    // Once authenticated, a body may be as large as a stanza (`c2s.max_stanza_size`), beyond
    // the 16 KiB of a session before authentication.
    let long = format!("hello over BOSH {}", "y".repeat(40_000));
    let say = alice.body(
        "",
        &format!(
            "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>{long}</body></message>"
        ),
    );
    let said = tokio::spawn(async move { bosh::post(addr, say).await });
    let m = next_message(&mut bob).await;
    assert_eq!(body(&m), long);
    assert_eq!(m.from.unwrap().to_string(), "alice@localhost/web");

    // Terminate: the session ends; every held request is answered.
    let b = alice.body(
        "type='terminate'",
        "<presence xmlns='jabber:client' type='unavailable'/>",
    );
    let bye = bosh::post(http(&t), b).await;
    assert!(bye.contains("type='terminate'"), "{bye}");
    assert!(said.await.unwrap().starts_with("<body"));
    let after = alice.send("").await;
    assert!(after.contains("condition='item-not-found'"), "{after}");
}

#[tokio::test]
async fn stanzas_wait_for_a_late_poll_and_rids_may_come_out_of_order() {
    let t = TestServer::start(|_| {}).await;
    let (mut alice, mut bob) = alice_on_bosh_and_bob(&t).await;
    // No request is held: bob's messages wait in the session's pool.
    for i in 0..3 {
        bob.send_stanza(chat("alice@localhost/web", &format!("late {i}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = alice.send("").await;
    while !got.contains("late 2") {
        got.push_str(&alice.send("").await);
    }
    for i in 0..3 {
        assert_eq!(got.matches(&format!(">late {i}<")).count(), 1, "{got}");
    }

    // rid n+1 before rid n: n+1 waits for n; both are answered.
    let first = alice.body(
        "",
        "<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let second = alice.body(
        "",
        "<iq xmlns='jabber:client' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let addr = http(&t);
    let s2 = second.clone();
    let late = tokio::spawn(async move { bosh::post(addr, s2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a1 = bosh::post(addr, first.clone()).await;
    let a2 = late.await.unwrap();
    let both = format!("{a1}{a2}");
    assert!(
        both.contains("id='p1'") && both.contains("id='p2'"),
        "{both}"
    );
    // A retransmitted rid gets the same answer again (§14.3), and nothing is done twice.
    let again = bosh::post(addr, first).await;
    assert_eq!(again, a1);

    // A rid beyond the window ends the session.
    alice.rid += 10;
    let far = alice.send("").await;
    assert!(far.contains("condition='item-not-found'"), "{far}");
}

#[tokio::test]
async fn a_vanished_client_ends_its_session_and_nothing_is_lost() {
    let t = TestServer::start(|c| c.http.bosh_inactivity_secs = 1).await;
    let (mut alice, mut bob) = alice_on_bosh_and_bob(&t).await;
    // Alice's browser is gone: no more requests. Bob's message waits in the pool...
    bob.send_stanza(chat("alice@localhost", "are you there?"))
        .await
        .unwrap();
    // ...until the session is over (inactivity), and then it is stored offline.
    until_alice_is_gone(&t).await;
    let (mut again, _) = t.login("alice@localhost", "pw").await;
    go_online(&mut again).await;
    let m = next_message(&mut again).await;
    assert_eq!(body(&m), "are you there?");
    // The old sid is gone.
    let after = alice.send("").await;
    assert!(after.contains("condition='item-not-found'"), "{after}");
}

#[tokio::test]
async fn requests_that_reach_no_session() {
    let t = TestServer::start(|c| c.http.bosh_origins = vec!["https://chat.example".into()]).await;
    let addr = http(&t);
    let unknown = bosh::post(
        addr,
        format!("<body xmlns='{HTTPBIND}' rid='5' sid='nope'/>"),
    )
    .await;
    assert!(unknown.contains("condition='item-not-found'"), "{unknown}");
    let host = bosh::post(
        addr,
        format!("<body xmlns='{HTTPBIND}' rid='5' to='elsewhere.example' wait='5' hold='1'/>"),
    )
    .await;
    assert!(host.contains("condition='host-unknown'"), "{host}");
    let bad = bosh::post(addr, "<nonsense/>".into()).await;
    assert!(bad.contains("condition='bad-request'"), "{bad}");
    // Before authentication a body is held to the small size (c2s.max_stanza_size_before_auth).
    let (mut b, _) = Bosh::create(addr, 5, 1).await;
    let big = b.body(
        "",
        &format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            "A".repeat(20_000)
        ),
    );
    let refused = bosh::post(addr, big).await;
    assert!(
        refused.contains("condition='policy-violation'"),
        "{refused}"
    );

    // CORS: the allowed origin gets its headers; another is refused.
    let pre = bosh::http(
        addr,
        "OPTIONS",
        &[("origin", "https://chat.example")],
        String::new(),
    )
    .await;
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.headers.get("access-control-allow-origin").unwrap(),
        "https://chat.example"
    );
    let evil = bosh::http(
        addr,
        "POST",
        &[("origin", "https://evil.example")],
        String::new(),
    )
    .await;
    assert_eq!(evil.status, 403);
}

#[tokio::test]
async fn a_client_that_never_polls_holds_a_bounded_pool_and_loses_nothing() {
    let t = TestServer::start(|c| c.c2s.session_queue_bytes = 16 * 1024).await;
    let (_alice, mut bob) = alice_on_bosh_and_bob(&t).await;
    // 40 KiB for a client that does not poll: past 16 KiB its session ends, as a TCP client
    // that stops reading, and what waited goes to offline storage; what its queue could not
    // take goes back to bob.
    let n = 40;
    for i in 0..n {
        let text = format!("{i:03} {}", "x".repeat(1000));
        bob.send_stanza(chat("alice@localhost/web", &text))
            .await
            .unwrap();
    }
    until_alice_is_gone(&t).await;
    // What the session's queue could not take came back to bob as errors, at once...
    let mut bounced = Vec::new();
    while let Ok(s) = tokio::time::timeout(Duration::from_millis(500), next_stanza(&mut bob)).await
    {
        if let tokio_xmpp::Stanza::Message(m) = s {
            assert_eq!(m.type_, tokio_xmpp::parsers::message::MessageType::Error);
            bounced.push(body(&m)[..3].to_string());
        }
    }
    // ...and the rest, what waited for a poll included, is stored for alice.
    let (mut again, _) = t.login("alice@localhost", "pw").await;
    // Available presence, without waiting on an iq behind 40 KiB of messages.
    again
        .send_stanza(tokio_xmpp::Stanza::Presence(
            tokio_xmpp::parsers::presence::Presence::available(),
        ))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n - bounced.len() {
        got.push(body(&next_message(&mut again).await)[..3].to_string());
    }
    // (Not necessarily in order: what arrives after the session is gone is stored while the
    // session's own leftovers are being stored, as on TCP.)
    let mut all: Vec<String> = got.iter().chain(&bounced).cloned().collect();
    all.sort();
    let want: Vec<String> = (0..n).map(|i| format!("{i:03}")).collect();
    assert_eq!(
        all, want,
        "every message once: delivered {got:?}, bounced {bounced:?}"
    );
}

#[tokio::test]
async fn a_polling_client_may_not_spin() {
    let t = TestServer::start(|_| {}).await;
    // hold='0': every request is answered at once, so empty ones must be `polling` apart.
    let (mut b, created) = Bosh::create(http(&t), 10, 0).await;
    assert!(
        created.contains("hold='0'") && created.contains("polling='2'"),
        "{created}"
    );
    let first = b.send("").await;
    assert!(!first.contains("terminate"), "{first}");
    let second = b.send("").await;
    assert!(second.contains("condition='policy-violation'"), "{second}");
    let after = b.send("").await;
    assert!(after.contains("condition='item-not-found'"), "{after}");
}
