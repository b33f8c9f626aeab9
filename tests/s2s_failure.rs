//! Federation under attack and failure: a peer that spoofs `from`, addresses a domain not
//! served here, speaks before authenticating or before TLS, or floods; a domain that does not
//! resolve, one that resolves but never answers; and SRV resolution (priority order and
//! fallback) against a DNS server on loopback.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::dns::{Zone, serve};
use common::im::chat;
use common::s2s::*;

fn b_addr(b: &common::TestServer) -> std::net::SocketAddr {
    b.server().s2s_addrs.plain[0]
}

/// `a.test` (with alice) finding `b.test` through a DNS server on loopback answering `zone`;
/// `b` reaches it back by a static route. `tweak` adjusts a's configuration.
async fn a_resolving_through(
    zone: Zone,
    b: &common::TestServer,
    tweak: impl FnOnce(&mut xmppd::config::Config) + Send + 'static,
) -> common::TestServer {
    let dns = serve(zone).await;
    let a = server("a.test", "127.0.0.1", move |c| {
        c.s2s.dns_servers = vec![dns.to_string()];
        tweak(c);
    })
    .await;
    a.add_user_at("a.test", "alice", "pw-alice").await;
    let b_s2s = b.server().s2s.clone().unwrap();
    b_s2s
        .resolver
        .set_static("a.test", &a.server().s2s_addrs.plain[0].to_string());
    a
}

/// What `b.test` answers (up to closing the stream) when a peer authenticated as `a.test`
/// sends `input`.
async fn authenticated_then(input: &str) -> String {
    let b = server("b.test", "127.0.0.2", |_| {}).await;
    let mut raw = RawS2s::authenticated(b_addr(&b), "a.test", "b.test").await;
    raw.send(input).await;
    raw.read_to_close().await
}

#[tokio::test]
async fn a_spoofed_from_ends_the_stream_with_invalid_from() {
    let got = authenticated_then(
        "<message from='mallory@evil.test' to='bob@b.test'><body>hi</body></message>",
    )
    .await;
    assert!(got.contains("<invalid-from"), "{got}");
}

#[tokio::test]
async fn a_stanza_to_a_domain_not_served_here_ends_the_stream_with_host_unknown() {
    let got = authenticated_then(
        "<message from='x@a.test' to='someone@elsewhere.test'><body>relay?</body></message>",
    )
    .await;
    assert!(got.contains("<host-unknown"), "{got}");
}

#[tokio::test]
async fn domains_piggybacked_on_one_stream_are_bounded() {
    // The test certificate is valid for localhost, a.test and b.test: each added domain is
    // proven at once (XEP-0344), so only s2s.max_domains_per_stream stops them.
    let b = server("b.test", "127.0.0.2", |c| c.s2s.max_domains_per_stream = 1).await;
    let mut raw = RawS2s::authenticated(b_addr(&b), "a.test", "b.test").await;
    raw.send("<db:result from='localhost' to='b.test'>00</db:result>")
        .await;
    let got = raw.read_to_close().await;
    assert!(got.contains("<policy-violation"), "{got}");
}

#[tokio::test]
async fn stanzas_before_authentication_or_before_tls_are_refused() {
    let b = server("b.test", "127.0.0.2", |_| {}).await;
    let mut raw = RawS2s::tls(b_addr(&b), "a.test", "b.test").await;
    raw.read_until("</stream:features>").await;
    raw.send("<message from='x@a.test' to='bob@b.test'><body>hi</body></message>")
        .await;
    let got = raw.read_to_close().await;
    assert!(got.contains("<not-authorized"), "{got}");
    let mut plain = RawS2s::plain(b_addr(&b), "a.test", "b.test").await;
    plain.read_until("</stream:features>").await;
    plain
        .send("<db:result from='a.test' to='b.test'>00</db:result>")
        .await;
    let got = plain.read_to_close().await;
    assert!(got.contains("<policy-violation"), "{got}");
}

#[tokio::test]
async fn a_wrong_dialback_key_is_refused() {
    let ca = stranger_ca();
    let (a, b) = pair(move |c| c.s2s.ca_file = Some(ca.clone())).await;
    // The peer claims a.test over TLS whose certificate b does not trust: b asks a's
    // authoritative server, which does not know this key.
    let mut raw = RawS2s::tls(b_addr(&b), "a.test", "b.test").await;
    raw.read_until("</stream:features>").await;
    raw.send("<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let got = raw.read_to_close().await;
    assert!(got.contains("type='invalid'"), "{got}");
    drop(a);
}

#[tokio::test]
async fn an_oversized_stanza_is_a_policy_violation() {
    let b = server("b.test", "127.0.0.2", |c| c.s2s.max_stanza_size = 4096).await;
    let mut raw = RawS2s::authenticated(b_addr(&b), "a.test", "b.test").await;
    let big = "x".repeat(8192);
    raw.send(&format!(
        "<message from='x@a.test' to='bob@b.test'><body>{big}</body></message>"
    ))
    .await;
    let got = raw.read_to_close().await;
    assert!(got.contains("<policy-violation"), "{got}");
}

/// The error condition alice gets back for a message to `to`, and how long it took.
async fn bounce_of(a: &common::TestServer, to: &str) -> (String, Duration) {
    let (mut alice, _) = online(a, "alice@a.test", "pw-alice").await;
    let start = Instant::now();
    alice.send_stanza(chat(to, "anyone?")).await.unwrap();
    let (from, cond, kind) = next_message(&mut alice).await;
    assert_eq!((from.as_str(), kind.as_str()), (to, "error"));
    (cond, start.elapsed())
}

#[tokio::test]
async fn dead_domains_are_bounced_in_bounded_time() {
    let dns = serve(Zone::default()).await;
    let a = server("a.test", "127.0.0.1", move |c| {
        c.s2s.connect_timeout_secs = 2;
        c.s2s.dns_servers = vec![dns.to_string()];
    })
    .await;
    a.add_user_at("a.test", "alice", "pw-alice").await;
    // No such domain in DNS: at once.
    let (cond, took) = bounce_of(&a, "someone@nowhere.test").await;
    assert_eq!(cond, "remote-server-not-found");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // It resolves (a static route) but nothing listens: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s2s = a.server().s2s.clone().unwrap();
    s2s.resolver
        .set_static("refused.test", &format!("127.0.0.1:{port}"));
    let (cond, _) = bounce_of(&a, "someone@refused.test").await;
    assert_eq!(cond, "remote-server-timeout");
    // It accepts connections and never speaks: bounced after s2s.connect_timeout_secs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    s2s.resolver
        .set_static("silent.test", &silent.local_addr().unwrap().to_string());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let (cond, took) = bounce_of(&a, "someone@silent.test").await;
    assert_eq!(cond, "remote-server-timeout");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    holder.abort();
    // A blocked domain is never tried.
    let blocked = server("a.test", "127.0.0.1", |c| {
        c.s2s.blocked_domains = vec!["b.test".into()];
    })
    .await;
    blocked.add_user_at("a.test", "alice", "pw-alice").await;
    let (cond, _) = bounce_of(&blocked, "bob@b.test").await;
    assert_eq!(cond, "remote-server-not-found");
}

#[tokio::test]
async fn srv_records_are_tried_in_priority_order_with_fallback() {
    let b = server("b.test", "127.0.0.2", |_| {}).await;
    b.add_user_at("b.test", "bob", "pw-bob").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let b_port = b_addr(&b).port();
    // Priority 5 points nowhere; priority 10 is b; priority 20 would be a wrong place that is
    // never reached (a silent port: the test would time out there).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let zone = Zone::default()
        .srv(
            "_xmpp-server._tcp.b.test.",
            20,
            0,
            silent.local_addr().unwrap().port(),
            "wrong.b.test.",
        )
        .srv("_xmpp-server._tcp.b.test.", 5, 0, dead_port, "dead.b.test.")
        .srv("_xmpp-server._tcp.b.test.", 10, 0, b_port, "xmpp.b.test.")
        .a("dead.b.test.", Ipv4Addr::new(127, 0, 0, 1))
        .a("wrong.b.test.", Ipv4Addr::new(127, 0, 0, 1))
        .a("xmpp.b.test.", Ipv4Addr::new(127, 0, 0, 2));
    let a = a_resolving_through(zone, &b, |_| {}).await;
    chat_both_ways(&a, &b).await;
    drop(silent);
}

#[tokio::test]
async fn a_full_queue_for_a_remote_domain_bounces_with_resource_constraint() {
    // A remote that accepts and never answers holds the stream in negotiation: the queue
    // fills, and what does not fit comes back at once.
    let a = server("a.test", "127.0.0.1", |c| {
        c.s2s.queue = 5;
        c.s2s.connect_timeout_secs = 30;
    })
    .await;
    a.add_user_at("a.test", "alice", "pw-alice").await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.server()
        .s2s
        .clone()
        .unwrap()
        .resolver
        .set_static("slow.test", &silent.local_addr().unwrap().to_string());
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    for i in 0..8 {
        alice
            .send_stanza(chat("x@slow.test", &format!("m{i}")))
            .await
            .unwrap();
    }
    let mut bounced = Vec::new();
    while bounced.len() < 3 {
        let (from, cond, kind) = next_message(&mut alice).await;
        assert_eq!((from.as_str(), kind.as_str()), ("x@slow.test", "error"));
        bounced.push(cond);
    }
    assert!(
        bounced.iter().all(|c| c == "resource-constraint"),
        "{bounced:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn an_xmpps_server_record_means_direct_tls() {
    // XEP-0368: b.test announces only a direct-TLS port; a.test must speak TLS from the first
    // byte there (a plain stream header would not even reach XML).
    let b = server("b.test", "127.0.0.2", |c| {
        c.s2s.tls_listen = vec!["127.0.0.2:0".into()];
    })
    .await;
    b.add_user_at("b.test", "bob", "pw-bob").await;
    let direct = b.server().s2s_addrs.direct[0].port();
    let zone = Zone::default()
        .srv("_xmpps-server._tcp.b.test.", 0, 0, direct, "xmpps.b.test.")
        .a("xmpps.b.test.", Ipv4Addr::new(127, 0, 0, 2));
    let a = a_resolving_through(zone, &b, |_| {}).await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("external"));
}

/// A listener on `addr` whose accept queue is full: the kernel drops further connection
/// attempts, which hang as toward an address that does not answer. Kept alive by the caller.
async fn black_hole(
    addr: std::net::SocketAddr,
) -> (tokio::net::TcpListener, tokio::net::TcpStream) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(addr).unwrap();
    let l = sock.listen(0).unwrap();
    let filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The premise: one more connection does not complete.
    let probe = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(probe.is_err(), "the black hole answered");
    (l, filler)
}

#[tokio::test]
async fn an_address_that_does_not_answer_is_overtaken_by_the_next_one() {
    // Happy Eyeballs (RFC 8305): b.test's SRV target has two addresses, the first of which
    // never answers. Without overlapping attempts, the first would hold the connection for its
    // whole attempt (10 s), past a.test's connect timeout (5 s here): alice's message would
    // bounce. With them, the second starts a quarter second later and carries it.
    let b = server("b.test", "127.0.0.2", |_| {}).await;
    b.add_user_at("b.test", "bob", "pw-bob").await;
    let port = b_addr(&b).port();
    let hole = black_hole(std::net::SocketAddr::from(([127, 0, 0, 5], port))).await;
    let zone = Zone::default()
        .srv("_xmpp-server._tcp.b.test.", 0, 0, port, "xmpp.b.test.")
        .a("xmpp.b.test.", Ipv4Addr::new(127, 0, 0, 5))
        .a("xmpp.b.test.", Ipv4Addr::new(127, 0, 0, 2));
    let a = a_resolving_through(zone, &b, |c| c.s2s.connect_timeout_secs = 5).await;
    let (mut bob, _) = online(&b, "bob@b.test", "pw-bob").await;
    let (mut alice, alice_jid) = online(&a, "alice@a.test", "pw-alice").await;
    alice
        .send_stanza(chat("bob@b.test", "past the dead address"))
        .await
        .unwrap();
    let (from, _) = message_with(&mut bob, "past the dead address").await;
    assert_eq!(from, alice_jid);
    drop(hole);
}
