//! Liveness (XEP-0199 §4.2): idle bound clients are pinged at half of `c2s.idle_timeout_secs`
//! and disconnected with `<connection-timeout/>` when they stay silent; answers and whitespace
//! keepalives count as traffic.

mod common;

use std::time::Duration;

use common::*;

async fn server(idle: u64) -> TestServer {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.idle_timeout_secs = idle;
    })
    .await;
    t.add_user("alice", "pw").await;
    t
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_disconnected() {
    let t = server(2).await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "quiet").await;
    let ping = raw.read_until("urn:xmpp:ping").await;
    assert!(
        ping.contains("type='get'") && ping.contains("to='alice@localhost/quiet'"),
        "{ping}"
    );
    let out = raw.read_to_close().await;
    assert!(
        out.contains("<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{out}"
    );
    // The session is gone from the registry.
    let jid = jid::FullJid::new("alice@localhost/quiet").unwrap();
    tokio::time::timeout(WAIT, async {
        while t.server().router.registry.get(&jid).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    // 4 s: a ping at 2 s leaves the client 2 s to answer, ample on a loaded machine.
    let t = server(4).await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "awake").await;
    // Three pings answered: well past the 4 s limit in total.
    for _ in 0..3 {
        let ping = raw.read_until("urn:xmpp:ping'/></iq>").await;
        assert!(!ping.contains("connection-timeout"), "{ping}");
        let start = ping.rfind("<iq").unwrap();
        let id_at = ping[start..].find("id='").unwrap() + start + 4;
        let id = &ping[id_at..id_at + ping[id_at..].find('\'').unwrap()];
        raw.send(&format!("<iq type='result' id='{id}' to='localhost'/>"))
            .await;
    }
    raw.send("<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let out = raw.read_until("id='still'").await;
    assert!(!out.contains("connection-timeout"), "{out}");
}

#[tokio::test]
async fn whitespace_keepalives_count_as_traffic() {
    // 4 s (a ping would come at 2 s); a space every 200 ms leaves a tenfold margin.
    let t = server(4).await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "ws").await;
    // A space every 200 ms for 5 s (bounded: 25 of them) keeps the session without pings.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for _ in 0..25 {
        tick.tick().await;
        raw.send(" ").await;
    }
    raw.send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let out = raw.read_until("id='after'").await;
    assert!(
        !out.contains("live-"),
        "the server pinged although whitespace kept arriving: {out}"
    );
    assert!(out.contains("type='result'"), "{out}");
}

/// A session quiet for a second frees its read buffer and the tokenizer's scratch buffers
/// (`QUIET` in `session/c2s`); reading must go on unchanged afterwards: over TLS, where rustls
/// may hold decrypted bytes, and in the middle of a stanza, where the tokenizer holds part of
/// a token. Sleeps exercise the path; nothing here measures time.
#[tokio::test]
async fn quiet_sessions_free_their_buffers_and_read_on_over_tls() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    // Full JIDs: neither sends presence, and a bare JID would go to offline storage.
    let (mut alice, alice_jid) = t.login("alice@localhost", "pw").await;
    let (mut bob, bob_jid) = t.login("bob@localhost", "pw").await;
    let holding = || {
        t.server()
            .read_buffers
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(
            holding(),
            0,
            "round {round}: quiet sessions keep their read buffers"
        );
        let body = format!("after a quiet second, round {round}");
        alice
            .send_stanza(common::im::chat(&bob_jid, &body))
            .await
            .unwrap();
        assert_eq!(common::im::body(&next_message(&mut bob).await), body);
        bob.send_stanza(common::im::chat(&alice_jid, "ok"))
            .await
            .unwrap();
        assert_eq!(common::im::body(&next_message(&mut alice).await), "ok");
        // Having just read, the sessions hold buffers again (counted once their turn ends).
        tokio::time::timeout(Duration::from_millis(500), async {
            while holding() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a session that just read holds a buffer");
    }
}

#[tokio::test]
async fn a_stanza_split_across_a_quiet_second_is_read_whole() {
    let t = server(300).await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "split").await;
    // Cut inside an attribute value and inside the text: both are tokens in progress.
    raw.send("<iq type='get' id='split-1").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    raw.send("'><query xmlns='jabber:iq:roster'/></iq><message to='alice@localhost/split' id='m1'><body>one half")
        .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    raw.send(" and the other</body></message>").await;
    let got = raw.read_until("</message>").await;
    assert!(
        got.contains("id='split-1'") && got.contains("type='result'"),
        "{got}"
    );
    assert!(got.contains("<body>one half and the other</body>"), "{got}");
}
