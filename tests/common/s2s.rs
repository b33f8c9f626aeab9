//! Helpers for the federation tests: two servers (`a.test` on 127.0.0.1, `b.test` on
//! 127.0.0.2) routed to each other, clients on each, and a raw server stream for what no
//! well-behaved server would send.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::{Client, IqRequest, Stanza};
use xmppd::config::Config;

use super::im::{chat, iq};
use super::{TestServer, WAIT, next_stanza};

/// A CA that signs nothing the servers present: with it, no certificate validates.
pub fn stranger_ca() -> std::path::PathBuf {
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

pub async fn server(host: &str, ip: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
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
pub async fn pair(tweak: impl Fn(&mut Config) + Clone) -> (TestServer, TestServer) {
    let a = server("a.test", "127.0.0.1", tweak.clone()).await;
    let b = server("b.test", "127.0.0.2", tweak).await;
    link(&a, "a.test", &b, "b.test");
    a.add_user_at("a.test", "alice", "pw-alice").await;
    b.add_user_at("b.test", "bob", "pw-bob").await;
    (a, b)
}

/// Static routes both ways.
pub fn link(a: &TestServer, a_host: &str, b: &TestServer, b_host: &str) {
    let route = |s: &TestServer| s.server().s2s_addrs.plain[0].to_string();
    let s2s = |s: &TestServer| s.server().s2s.clone().unwrap();
    assert!(s2s(a).resolver.set_static(b_host, &route(b)));
    assert!(s2s(b).resolver.set_static(a_host, &route(a)));
}

/// The next message with a body: (from, body, type).
pub async fn next_message(c: &mut Client) -> (String, String, String) {
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
pub async fn online(s: &TestServer, jid: &str, pw: &str) -> (Client, String) {
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

/// alice (on `a`) and bob (on `b`) exchange a message each way (`tag` tells this exchange
/// from an earlier one whose messages may be delivered again, from offline storage).
pub async fn chat_both_ways_tagged(a: &TestServer, b: &TestServer, tag: &str) {
    let (mut alice, alice_jid) = online(a, "alice@a.test", "pw-alice").await;
    let (mut bob, bob_jid) = online(b, "bob@b.test", "pw-bob").await;
    let (to_bob, to_alice) = (format!("hello bob {tag}"), format!("hello alice {tag}"));
    alice
        .send_stanza(chat("bob@b.test", &to_bob))
        .await
        .unwrap();
    let (from, _) = message_with(&mut bob, &to_bob).await;
    assert_eq!(from, alice_jid);
    bob.send_stanza(chat(&alice_jid, &to_alice)).await.unwrap();
    let (from, _) = message_with(&mut alice, &to_alice).await;
    assert_eq!(from, bob_jid);
}

pub async fn chat_both_ways(a: &TestServer, b: &TestServer) {
    chat_both_ways_tagged(a, b, "").await
}

/// The next message whose body is `body` (skipping others): (from, type).
pub async fn message_with(c: &mut Client, body: &str) -> (String, String) {
    loop {
        let (from, got, kind) = next_message(c).await;
        if got == body {
            return (from, kind);
        }
    }
}

pub fn method(s: &TestServer, remote: &str) -> Option<&'static str> {
    s.server().s2s.as_ref().unwrap().method_of(remote)
}

/// Any byte stream.
pub trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// A server stream spoken by hand.
pub struct RawS2s(pub Box<dyn Wire>);

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'";

impl RawS2s {
    /// A TCP connection to `addr` with our header sent.
    pub async fn plain(addr: std::net::SocketAddr, from: &str, to: &str) -> RawS2s {
        let mut r = RawS2s(Box::new(TcpStream::connect(addr).await.unwrap()));
        r.header(from, to).await;
        r
    }

    /// The stream after STARTTLS (presenting the test certificate, valid for `a.test` and
    /// `b.test`), not authenticated.
    pub async fn tls(addr: std::net::SocketAddr, from: &str, to: &str) -> RawS2s {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut r = RawS2s::plain(addr, from, to).await;
        r.read_until("</stream:features>").await;
        r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        r.read_until("<proceed").await;
        let pki = TestServer::ca_file().parent().unwrap().to_path_buf();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.join("cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(pki.join("key.pem")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = connector
            .connect(ServerName::try_from(to.to_string()).unwrap(), r.0)
            .await
            .unwrap();
        let mut r = RawS2s(Box::new(tls));
        r.header(from, to).await;
        r
    }

    /// Authenticated as `from` with SASL EXTERNAL, the stream restarted.
    pub async fn authenticated(addr: std::net::SocketAddr, from: &str, to: &str) -> RawS2s {
        use base64::Engine;
        let mut r = RawS2s::tls(addr, from, to).await;
        r.read_until("</stream:features>").await;
        let b64 = base64::engine::general_purpose::STANDARD.encode(from);
        r.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{b64}</auth>"
        ))
        .await;
        r.read_until("<success").await;
        r.header(from, to).await;
        r.read_until("features").await;
        r
    }

    pub async fn header(&mut self, from: &str, to: &str) {
        self.send(&format!("{HEADER} from='{from}' to='{to}'>"))
            .await;
    }

    pub async fn send(&mut self, s: &str) {
        self.0.write_all(s.as_bytes()).await.unwrap();
        self.0.flush().await.unwrap();
    }

    pub async fn read_until(&mut self, needle: &str) -> String {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let fut = async {
            loop {
                let n = self.0.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "closed before {needle:?}: {}",
                    String::from_utf8_lossy(&acc)
                );
                acc.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&acc).contains(needle) {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("read_until timed out");
        String::from_utf8_lossy(&acc).into_owned()
    }

    /// Everything until the server closes the connection.
    pub async fn read_to_close(&mut self) -> String {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let fut = async {
            loop {
                match self.0.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => acc.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("the server did not close");
        String::from_utf8_lossy(&acc).into_owned()
    }
}

const B_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='b.test'";

pub fn acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pki = TestServer::ca_file().parent().unwrap().to_path_buf();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Plays `b.test` for one incoming stream from `a.test` up to stream management enabled
/// (`sm`: offered and enabled); `bidi`: bidirectional streams offered (XEP-0288), and asked
/// for. Returns the stream.
pub async fn accept_as_b(l: &tokio::net::TcpListener, sm: bool, bidi: bool) -> RawS2s {
    let (tcp, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .expect("no stream came")
        .unwrap();
    let mut r = RawS2s(Box::new(tcp));
    r.read_until("<stream:stream").await;
    r.send(&format!("{B_HEADER} id='s1'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")).await;
    r.read_until("<starttls").await;
    r.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let tls = acceptor().accept(r.0).await.unwrap();
    let mut r = RawS2s(Box::new(tls));
    r.read_until("<stream:stream").await;
    let offer = if bidi {
        "<bidi xmlns='urn:xmpp:features:bidi'/>"
    } else {
        ""
    };
    r.send(&format!("{B_HEADER} id='s2'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>{offer}</stream:features>")).await;
    let got = r.read_until("<auth").await;
    assert_eq!(got.contains("<bidi xmlns='urn:xmpp:bidi'"), bidi, "{got}");
    r.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    r.read_until("<stream:stream").await;
    let offer = if sm {
        "<sm xmlns='urn:xmpp:sm:3'/>"
    } else {
        ""
    };
    r.send(&format!(
        "{B_HEADER} id='s3'><stream:features>{offer}</stream:features>"
    ))
    .await;
    if sm {
        r.read_until("<enable").await;
        r.send("<enabled xmlns='urn:xmpp:sm:3'/>").await;
    }
    r
}

/// `a.test` with alice online, its route to `b.test` pointing at a listener the test plays.
pub async fn a_routed_to_a_hand_played_b() -> (TestServer, tokio::net::TcpListener, Client) {
    let a = server("a.test", "127.0.0.1", |_| {}).await;
    a.add_user_at("a.test", "alice", "pw-alice").await;
    let l = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let s2s = a.server().s2s.clone().unwrap();
    assert!(
        s2s.resolver
            .set_static("b.test", &l.local_addr().unwrap().to_string())
    );
    let (alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    (a, l, alice)
}

/// After a stream to the hand-played `b.test` broke with alice's `m1` unacknowledged: `a.test`
/// makes a new stream on `l` and sends `m1` again; once acknowledged it is not sent a third
/// time (alice's next message comes alone).
pub async fn m1_comes_again_on_a_new_stream(l: &tokio::net::TcpListener, alice: &mut Client) {
    let mut second = accept_as_b(l, true, false).await;
    let got = second.read_until("<r xmlns='urn:xmpp:sm:3'").await;
    assert!(got.contains(">m1<"), "m1 sent again: {got}");
    second.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    alice
        .send_stanza(super::im::chat("bob@b.test", "m2"))
        .await
        .unwrap();
    let got = second.read_until(">m2<").await;
    assert!(!got.contains(">m1<"), "m1 only once after its ack: {got}");
}
