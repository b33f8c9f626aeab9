//! Federation (RFC 6120 server-to-server, XEP-0178, XEP-0220): two servers in this process,
//! `a.test` on 127.0.0.1 and `b.test` on 127.0.0.2, each with a static route to the other, and
//! real clients (tokio-xmpp) on each. With the test CA trusted the servers authenticate with
//! SASL EXTERNAL; with a CA that signs neither certificate, by dialback.

mod common;

use common::im::{chat, iq};
use common::{TestServer, next_stanza};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::{Client, IqRequest, Stanza};
use xmppd::config::Config;

/// A CA that signed nothing the servers present: with it, no certificate validates.
fn stranger_ca() -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap().keep();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join("stranger.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

async fn server(host: &str, ip: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let (host, ip) = (host.to_string(), ip.to_string());
    TestServer::start(move |c| {
        c.server.hosts = vec![host];
        c.s2s.listen = vec![format!("{ip}:0")];
        c.s2s.ca_file = Some(TestServer::ca_file());
        c.s2s.connect_timeout_secs = 5;
        tweak(c);
    })
    .await
}

/// `a.test` and `b.test`, each routed to the other, with alice on one and bob on the other.
async fn pair(tweak: impl Fn(&mut Config) + Clone) -> (TestServer, TestServer) {
    let a = server("a.test", "127.0.0.1", tweak.clone()).await;
    let b = server("b.test", "127.0.0.2", tweak).await;
    link(&a, "a.test", &b, "b.test");
    a.add_user_at("a.test", "alice", "pw-alice").await;
    b.add_user_at("b.test", "bob", "pw-bob").await;
    (a, b)
}

/// Static routes both ways.
fn link(a: &TestServer, a_host: &str, b: &TestServer, b_host: &str) {
    let route = |s: &TestServer| s.server().s2s_addrs.plain[0].to_string();
    let s2s = |s: &TestServer| s.server().s2s.clone().unwrap();
    assert!(s2s(a).resolver.set_static(b_host, &route(b)));
    assert!(s2s(b).resolver.set_static(a_host, &route(a)));
}

/// The next message with a body: (from, body, type).
async fn next_message(c: &mut Client) -> (String, String, String) {
    loop {
        let s = next_stanza(c).await;
        let tokio_xmpp::Stanza::Message(m) = s else {
            continue;
        };
        let el: minidom::Element = m.into();
        let body = el
            .get_child("body", "jabber:client")
            .map(|b| b.text())
            .unwrap_or_default();
        let err = el
            .get_child("error", "jabber:client")
            .and_then(|e| e.children().next().map(|c| c.name().to_string()))
            .unwrap_or_default();
        return (
            el.attr("from").unwrap_or_default().to_string(),
            if err.is_empty() { body } else { err },
            el.attr("type").unwrap_or_default().to_string(),
        );
    }
}

/// Logs in and sends initial presence (answered: a ping to the own server follows it).
async fn online(s: &TestServer, jid: &str, pw: &str) -> (Client, String) {
    let (mut c, full) = s.login(jid, pw).await;
    c.send_stanza(Stanza::Presence(Presence::available()))
        .await
        .unwrap();
    let domain = jid.split('@').nth(1).unwrap();
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(&mut c, Some(domain), IqRequest::Get(ping))
        .await
        .unwrap();
    (c, full)
}

async fn chat_both_ways(a: &TestServer, b: &TestServer) {
    let (mut alice, alice_jid) = online(a, "alice@a.test", "pw-alice").await;
    let (mut bob, bob_jid) = online(b, "bob@b.test", "pw-bob").await;
    alice
        .send_stanza(chat("bob@b.test", "hello bob"))
        .await
        .unwrap();
    let (from, body, _) = next_message(&mut bob).await;
    assert_eq!(
        (from.as_str(), body.as_str()),
        (alice_jid.as_str(), "hello bob")
    );
    bob.send_stanza(chat(&alice_jid, "hello alice"))
        .await
        .unwrap();
    let (from, body, _) = next_message(&mut alice).await;
    assert_eq!(
        (from.as_str(), body.as_str()),
        (bob_jid.as_str(), "hello alice")
    );
}

fn method(s: &TestServer, remote: &str) -> Option<&'static str> {
    s.server().s2s.as_ref().unwrap().method_of(remote)
}

#[tokio::test]
async fn valid_certificates_authenticate_with_sasl_external_both_ways() {
    let (a, b) = pair(|_| {}).await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("external"));
    assert_eq!(method(&a, "b.test"), Some("external"));
}

#[tokio::test]
async fn untrusted_certificates_fall_back_to_dialback() {
    let ca = stranger_ca();
    let (a, b) = pair(move |c| c.s2s.ca_file = Some(ca.clone())).await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("dialback"));
    assert_eq!(method(&a, "b.test"), Some("dialback"));
}

#[tokio::test]
async fn untrusted_certificates_are_refused_when_valid_ones_are_required() {
    let ca = stranger_ca();
    let (a, _b) = pair(move |c| {
        c.s2s.ca_file = Some(ca.clone());
        c.s2s.require_valid_certificates = true;
    })
    .await;
    let (mut alice, _) = a.login("alice@a.test", "pw-alice").await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let (from, cond, kind) = next_message(&mut alice).await;
    assert_eq!(
        (from.as_str(), cond.as_str(), kind.as_str()),
        ("bob@b.test", "remote-server-not-found", "error")
    );
}
