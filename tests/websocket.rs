//! XMPP over WebSocket (RFC 7395): a client with a WebSocket library written by others
//! (tokio-tungstenite) logs in with SCRAM and chats with a TCP client (tokio-xmpp); the
//! framing (`<open/>`, `<close/>`, one standalone element per message), the handshake rules
//! (subprotocol, Origin), the size bound, stream management resumed across a new WebSocket,
//! and the per-IP limits behind a trusted proxy.

mod common;

use common::im::{body, chat, go_online};
use common::ws::{self, Ws};
use common::*;

const MSG_NS: &str = "xmlns='jabber:client'";

fn http(t: &TestServer) -> std::net::SocketAddr {
    t.server().http_addrs[0]
}

#[tokio::test]
async fn login_and_chat_with_a_tcp_client() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut alice = Ws::connect(http(&t)).await;
    // A loopback connection is private: SCRAM is offered without TLS; no STARTTLS and no
    // compression (neither exists on a WebSocket).
    let features = alice.open().await;
    assert!(
        features.contains("<stream:features xmlns:stream="),
        "{features}"
    );
    assert!(!features.contains("starttls"), "{features}");
    alice.send(ws::OPEN).await; // a second <open/> restarts nothing before auth: answered again
    let _ = alice.recv_until("features").await;
    drop(alice);

    let mut alice = Ws::connect(http(&t)).await;
    let me = alice.login("alice", "pw", "web").await;
    assert_eq!(me, "alice@localhost/web");
    alice.send("<presence xmlns='jabber:client'/>").await;
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    go_online(&mut bob).await;

    bob.send_stanza(chat("alice@localhost/web", "hello over TCP"))
        .await
        .unwrap();
    let got = alice.recv_until("<message").await;
    assert!(got.starts_with("<message"), "{got}");
    assert!(
        got.contains(MSG_NS),
        "each stanza declares its namespace: {got}"
    );
    assert!(got.contains("hello over TCP"), "{got}");

    alice
        .send("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hello over WebSocket</body></message>")
        .await;
    let m = next_message(&mut bob).await;
    assert_eq!(body(&m), "hello over WebSocket");
    assert_eq!(m.from.unwrap().to_string(), "alice@localhost/web");

    // <close/> is answered with <close/>, then the WebSocket closes (RFC 7395 §3.6).
    alice
        .send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    let rest = alice.recv_to_close().await;
    assert!(
        rest.ends_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        "{rest}"
    );
}

#[tokio::test]
async fn the_handshake_needs_the_xmpp_subprotocol_and_an_allowed_origin() {
    let t = TestServer::start(|c| {
        c.http.websocket_origins = vec!["https://chat.example".into()];
    })
    .await;
    // No subprotocol: refused before any XMPP.
    let addr = http(&t);
    let e = tokio_tungstenite::connect_async(format!("ws://{addr}/xmpp-websocket"))
        .await
        .expect_err("a handshake without the xmpp subprotocol must fail");
    assert_eq!(ws::refused_status(e), 400);
    // A browser page from elsewhere: 403. From the allowed origin, or a non-browser: served.
    let e = ws::connect_with(addr, &[("origin", "https://evil.example")])
        .await
        .err()
        .unwrap_or_else(|| panic!("a foreign origin must be refused"));
    assert_eq!(ws::refused_status(e), 403);
    let mut ok = ws::connect_with(addr, &[("origin", "https://chat.example")])
        .await
        .unwrap();
    assert!(ok.open().await.contains("SCRAM-SHA-256"));
    let mut ok = Ws::connect(addr).await;
    assert!(ok.open().await.contains("SCRAM-SHA-256"));
}

#[tokio::test]
async fn errors_are_stream_errors_in_the_framing() {
    let t = TestServer::start(|c| c.c2s.max_stanza_size = 4096).await;
    t.add_user("alice", "pw").await;
    // A stanza before authentication: <not-authorized/>, then <close/> and the end.
    let mut c = Ws::connect(http(&t)).await;
    c.open().await;
    c.send("<message xmlns='jabber:client' to='x@localhost'><body>hi</body></message>")
        .await;
    let out = c.recv_to_close().await;
    assert!(out.contains("<stream:error xmlns:stream="), "{out}");
    assert!(out.contains("not-authorized"), "{out}");
    assert!(
        out.ends_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        "{out}"
    );

    // A message over the size bound: <policy-violation/>, not a silent drop.
    let mut c = Ws::connect(http(&t)).await;
    c.login("alice", "pw", "big").await;
    let big = format!(
        "<message xmlns='jabber:client' to='alice@localhost'><body>{}</body></message>",
        "x".repeat(8192)
    );
    c.send(&big).await;
    let out = c.recv_to_close().await;
    assert!(out.contains("policy-violation"), "{out}");

    // Binary messages are not XMPP (RFC 7395 §3.2).
    let mut c = Ws::connect(http(&t)).await;
    c.open().await;
    use futures_util::SinkExt;
    c.0.send(tokio_tungstenite::tungstenite::Message::Binary(
        b"<presence/>".to_vec().into(),
    ))
    .await
    .unwrap();
    let out = c.recv_to_close().await;
    assert!(out.contains("unsupported-encoding"), "{out}");

    // Not well-formed: <not-well-formed/>.
    let mut c = Ws::connect(http(&t)).await;
    c.open().await;
    c.send("<presence xmlns='jabber:client'><x></presence>")
        .await;
    let out = c.recv_to_close().await;
    assert!(
        out.contains("not-well-formed") || out.contains("bad-format"),
        "{out}"
    );
}

#[tokio::test]
async fn stream_management_resumes_on_a_new_websocket() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut a = Ws::connect(http(&t)).await;
    a.login("alice", "pw", "web").await;
    a.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = a.recv_until("enabled").await;
    let id = attr_of(&enabled, "enabled", "id").expect("a resumption id");
    a.send("<presence xmlns='jabber:client'/>").await;
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    bob.send_stanza(chat("alice@localhost/web", "one"))
        .await
        .unwrap();
    assert!(a.recv_until("<message").await.contains("one"));
    // The WebSocket dies without <close/> (the TCP connection is dropped).
    drop(a);
    bob.send_stanza(chat("alice@localhost/web", "two"))
        .await
        .unwrap();

    let mut a = Ws::connect(http(&t)).await;
    let ok = a.authenticate("alice", "pw").await;
    assert!(ok.contains("<success"), "{ok}");
    a.open().await;
    a.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ))
    .await;
    let resumed = a.recv_until("resumed").await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    // Exactly what was not acknowledged, in order: "one" again, then "two".
    let first = a.recv_until("<message").await;
    assert!(first.contains(">one<"), "{first}");
    let second = a.recv_until("<message").await;
    assert!(second.contains(">two<"), "{second}");
    // The session is the same: bob still reaches it.
    bob.send_stanza(chat("alice@localhost/web", "three"))
        .await
        .unwrap();
    assert!(a.recv_until("<message").await.contains(">three<"));
}

#[tokio::test]
async fn per_ip_limits_apply_to_the_client_behind_a_trusted_proxy() {
    let t = TestServer::start(|c| {
        c.limits.max_connections_per_ip = 2;
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let addr = http(&t);
    let a = [("x-forwarded-for", "198.51.100.7")];
    let b = [("x-forwarded-for", "198.51.100.8")];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut w = ws::connect_with(addr, &a).await.unwrap();
        w.open().await;
        held.push(w);
    }
    // A third from the same client is refused; another client behind the proxy is not, and
    // the proxy's own address is not counted per IP.
    let e = ws::connect_with(addr, &a)
        .await
        .err()
        .unwrap_or_else(|| panic!("over the limit"));
    assert_eq!(ws::refused_status(e), 429);
    for _ in 0..2 {
        let mut w = ws::connect_with(addr, &b).await.unwrap();
        w.open().await;
        held.push(w);
    }
    drop(held);

    // Without a trusted proxy the header is anyone's to forge: ignored, the peer is counted.
    let t = TestServer::start(|c| c.limits.max_connections_per_ip = 2).await;
    let addr = http(&t);
    let mut held = Vec::new();
    for xff in ["198.51.100.1", "198.51.100.2"] {
        let mut w = ws::connect_with(addr, &[("x-forwarded-for", xff)])
            .await
            .unwrap();
        w.open().await;
        held.push(w);
    }
    assert!(
        ws::connect_with(addr, &[("x-forwarded-for", "198.51.100.3")])
            .await
            .is_err()
    );
}
