//! Bad input gets the RFC 6120 §4.9 stream error, closes only that stream, and never disturbs
//! other users. Each configurable limit is exercised. Raw sockets: no client library sends this.

mod common;

use common::*;

fn stream_error(out: &str, condition: &str) -> bool {
    out.contains("<stream:error>")
        && out.contains(&format!(
            "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        ))
        && out.ends_with("</stream:stream>")
}

async fn expect_error(t: &TestServer, input: &str, condition: &str) {
    let mut raw = t.raw().await;
    raw.send(input).await;
    let out = raw.read_to_close().await;
    assert!(
        stream_error(&out, condition),
        "{input:?} → expected {condition}, got {out}"
    );
}

#[tokio::test]
async fn header_errors() {
    let t = TestServer::start(|_| {}).await;
    expect_error(
        &t,
        &HEADER.replace("'localhost'", "'example.org'"),
        "host-unknown",
    )
    .await;
    expect_error(
        &t,
        &HEADER.replace(
            "to='localhost' version='1.0'",
            "to='localhost' version='0.9'",
        ),
        "unsupported-version",
    )
    .await;
    expect_error(
        &t,
        &HEADER.replace("http://etherx.jabber.org/streams", "urn:wrong"),
        "invalid-namespace",
    )
    .await;
}

#[tokio::test]
async fn malformed_and_restricted_xml() {
    let t = TestServer::start(|_| {}).await;
    expect_error(
        &t,
        &format!("{HEADER}<message><body>x</message>"),
        "not-well-formed",
    )
    .await;
    expect_error(
        &t,
        &format!("{HEADER}<message a='1' a='2'/>"),
        "not-well-formed",
    )
    .await;
    expect_error(&t, &format!("{HEADER}<foo:bar/>"), "bad-namespace-prefix").await;
    // The "billion laughs": a DTD with entities is refused before any expansion.
    expect_error(
        &t,
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]>",
        "restricted-xml",
    )
    .await;
    expect_error(
        &t,
        &format!("{HEADER}<message><body>&lol2;</body></message>"),
        "restricted-xml",
    )
    .await;
    expect_error(&t, &format!("{HEADER}<!-- hi -->"), "restricted-xml").await;
    expect_error(&t, &format!("{HEADER}<?php evil()?>"), "restricted-xml").await;
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    raw.0
        .try_write(&[b'<', b'a', b'>', 0xff, 0xfe, b'<'])
        .unwrap();
    let out = raw.read_to_close().await;
    assert!(stream_error(&out, "unsupported-encoding"), "{out}");
}

#[tokio::test]
async fn stanzas_before_authentication_are_refused() {
    let t = TestServer::start(|_| {}).await;
    expect_error(
        &t,
        &format!("{HEADER}<message to='x@localhost'><body>spam</body></message>"),
        "not-authorized",
    )
    .await;
    expect_error(
        &t,
        &format!("{HEADER}<bogus xmlns='urn:x'/>"),
        "unsupported-stanza-type",
    )
    .await;
}

#[tokio::test]
async fn oversized_stanza_closes_only_that_stream() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.max_stanza_size = 4096;
    })
    .await;
    t.add_user("mallory", "pw").await;
    t.add_user("alice", "pw").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "a").await;
    let mut mallory = t.raw().await;
    mallory.login("mallory", "pw", "m").await;
    let big = "A".repeat(10_000);
    mallory
        .send(&format!(
            "<message to='alice@localhost/a'><body>{big}</body></message>"
        ))
        .await;
    let out = mallory.read_to_close().await;
    assert!(stream_error(&out, "policy-violation"), "{out}");
    // Alice is undisturbed: her session still answers, and she never got the oversized message.
    alice
        .send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let reply = alice.read_until("id='after'").await;
    assert!(!reply.contains("AAAA"), "{reply}");
    // Nesting is bounded too.
    let mut deep = t.raw().await;
    deep.login("mallory", "pw", "d").await;
    deep.send(&format!("<message>{}", "<a>".repeat(100))).await;
    assert!(stream_error(
        &deep.read_to_close().await,
        "policy-violation"
    ));
}

#[tokio::test]
async fn before_authentication_the_stanza_budget_is_small() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    // 20 KiB is over c2s.max_stanza_size_before_auth (16 KiB) ...
    let body = "B".repeat(20 * 1024);
    let mut anon = t.raw().await;
    anon.send(&format!(
        "{HEADER}<iq type='get' id='x'><query xmlns='jabber:iq:register'>{body}</query></iq>"
    ))
    .await;
    let out = anon.read_to_close().await;
    assert!(stream_error(&out, "policy-violation"), "{out}");
    // ... and fine once authenticated (c2s.max_stanza_size, 256 KiB).
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "a").await;
    alice
        .send(&format!(
            "<message to='alice@localhost/a' id='big'><body>{body}</body></message>"
        ))
        .await;
    let echo = alice.read_until("</message>").await;
    assert!(echo.contains(&body), "{}", &echo[..echo.len().min(300)]);
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_closed() {
    let t = TestServer::start(|c| c.c2s.auth_timeout_secs = 1).await;
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    let out = raw.read_to_close().await;
    assert!(stream_error(&out, "connection-timeout"), "{out}");
    // Also one that never even sends a header.
    let mut silent = t.raw().await;
    let out = silent.read_to_close().await;
    assert!(stream_error(&out, "connection-timeout"), "{out}");
}

#[tokio::test]
async fn failed_attempts_are_bounded_per_connection() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.max_auth_attempts = 2;
    })
    .await;
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    raw.read_until("</stream:features>").await;
    for _ in 0..2 {
        raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='NOPE'>=</auth>")
            .await;
    }
    let out = raw.read_to_close().await;
    assert_eq!(out.matches("<invalid-mechanism/>").count(), 2, "{out}");
    assert!(stream_error(&out, "policy-violation"), "{out}");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_ip() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.limits.auth_failures_per_ip_per_minute = 2;
    })
    .await;
    t.add_user("alice", "right").await;
    for _ in 0..2 {
        let mut raw = t.raw().await;
        let out = raw.login_attempt("alice", "wrong").await;
        assert!(out.contains("<not-authorized/>"), "{out}");
    }
    // The budget is spent: even the right password is refused for now.
    let mut raw = t.raw().await;
    let out = raw.login_attempt("alice", "right").await;
    assert!(out.contains("<temporary-auth-failure/>"), "{out}");
}

#[tokio::test]
async fn connection_limits() {
    let t = TestServer::start(|c| c.limits.max_connections_per_ip = 2).await;
    let mut a = t.raw().await;
    let mut b = t.raw().await;
    a.send(HEADER).await;
    b.send(HEADER).await;
    a.read_until("</stream:features>").await;
    b.read_until("</stream:features>").await;
    let mut c = t.raw().await;
    let out = c.read_to_close().await;
    assert!(stream_error(&out, "policy-violation"), "{out}");
    drop(a);
    // A slot frees up when a connection ends (retry until the server has seen the close; a
    // refused attempt is closed with the stream error).
    let out = tokio::time::timeout(WAIT, async {
        loop {
            let mut d = t.raw().await;
            d.send(HEADER).await;
            if let Some(out) = d.read_until_or_close("</stream:features>").await {
                return out;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(!out.contains("<stream:error>"), "{out}");

    let t = TestServer::start(|c| c.limits.connections_per_ip_per_minute = 1).await;
    let mut first = t.raw().await;
    first.send(HEADER).await;
    first.read_until("</stream:features>").await;
    let mut second = t.raw().await;
    assert!(stream_error(
        &second.read_to_close().await,
        "policy-violation"
    ));
}

#[tokio::test]
async fn graceful_shutdown_sends_system_shutdown() {
    let mut t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    let mut bound = t.raw().await;
    bound.login("alice", "pw", "a").await;
    let mut unauth = t.raw().await;
    unauth.send(HEADER).await;
    unauth.read_until("</stream:features>").await;
    t.stop().await;
    assert!(stream_error(
        &bound.read_to_close().await,
        "system-shutdown"
    ));
    assert!(stream_error(
        &unauth.read_to_close().await,
        "system-shutdown"
    ));
}

#[tokio::test]
async fn spoofed_from_is_a_stream_error() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "a").await;
    raw.send("<message from='bob@localhost/x' to='alice@localhost'><body>x</body></message>")
        .await;
    assert!(stream_error(&raw.read_to_close().await, "invalid-from"));
}

#[tokio::test]
async fn stanza_errors_keep_the_stream_open() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    let mut raw = t.raw().await;
    raw.login("alice", "pw", "a").await;
    // The legacy session iq (RFC 3921) is tolerated: an empty result.
    raw.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    let out = raw.read_until("id='s1'").await;
    assert!(out.contains("type='result'"), "{out}");
    // An iq get with two payloads, an iq with an unknown type, a bad JID: stanza errors only.
    raw.send("<iq type='get' id='two' to='localhost'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>")
        .await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("id='two'") && out.contains("<bad-request"),
        "{out}"
    );
    raw.send("<iq type='fetch' id='t'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("id='t'") && out.contains("<bad-request"),
        "{out}"
    );
    raw.send("<message to='a@b@c' id='m'><body>x</body></message>")
        .await;
    let out = raw.read_until("</message>").await;
    assert!(out.contains("<jid-malformed"), "{out}");
    // A second bind on a bound stream is not allowed.
    raw.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("id='b2'") && out.contains("<not-allowed"),
        "{out}"
    );
    // Still open and working.
    raw.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let out = raw.read_until("id='p'").await;
    assert!(out.contains("type='result'"), "{out}");
    // An error stanza is never answered with an error: the ping after it is the next reply.
    raw.send("<message to='nobody@localhost' type='error' id='e'/><iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let out = raw.read_until("id='p2'").await;
    assert!(!out.contains("id='e'"), "{out}");
}
