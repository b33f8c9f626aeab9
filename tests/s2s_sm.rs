//! Stream management on server streams (XEP-0198): a stanza written to a remote server that
//! breaks the stream before acknowledging it is sent again on a new stream, not lost. The
//! remote server here is played by hand (TLS with the test certificate for `b.test`, SASL
//! EXTERNAL, `<sm/>` offered) so that it can drop the first stream at the worst moment.

mod common;

use std::sync::Arc;

use common::im::chat;
use common::s2s::*;
use tokio::net::TcpListener;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='b.test'";

fn acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pki = common::TestServer::ca_file()
        .parent()
        .unwrap()
        .to_path_buf();
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
/// (`sm`: offered and enabled); returns the stream.
async fn accept_as_b(l: &TcpListener, sm: bool) -> RawS2s {
    let (tcp, _) = l.accept().await.unwrap();
    let mut r = RawS2s(Box::new(tcp));
    r.read_until("<stream:stream").await;
    r.send(&format!("{HEADER} id='s1'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")).await;
    r.read_until("<starttls").await;
    r.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let tls = acceptor().accept(r.0).await.unwrap();
    let mut r = RawS2s(Box::new(tls));
    r.read_until("<stream:stream").await;
    r.send(&format!("{HEADER} id='s2'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>")).await;
    r.read_until("<auth").await;
    r.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    r.read_until("<stream:stream").await;
    let offer = if sm {
        "<sm xmlns='urn:xmpp:sm:3'/>"
    } else {
        ""
    };
    r.send(&format!(
        "{HEADER} id='s3'><stream:features>{offer}</stream:features>"
    ))
    .await;
    if sm {
        r.read_until("<enable").await;
        r.send("<enabled xmlns='urn:xmpp:sm:3'/>").await;
    }
    r
}

/// `a.test` with alice online, its route to `b.test` pointing at a listener the test plays.
async fn a_routed_to_a_hand_played_b() -> (common::TestServer, TcpListener, tokio_xmpp::Client) {
    let a = server("a.test", "127.0.0.1", |_| {}).await;
    a.add_user_at("a.test", "alice", "pw-alice").await;
    let l = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let s2s = a.server().s2s.clone().unwrap();
    assert!(
        s2s.resolver
            .set_static("b.test", &l.local_addr().unwrap().to_string())
    );
    let (alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    (a, l, alice)
}

#[tokio::test]
async fn an_unacknowledged_stanza_is_sent_again_on_a_new_stream() {
    let (_a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    // The first stream takes m1, is asked for an ack, and breaks without giving one.
    let mut first = accept_as_b(&l, true).await;
    let got = first.read_until("<r xmlns='urn:xmpp:sm:3'").await;
    assert!(got.contains(">m1<"), "{got}");
    drop(first);
    // a.test makes a new stream and sends m1 again; acknowledged this time.
    let mut second = accept_as_b(&l, true).await;
    let got = second.read_until("<r xmlns='urn:xmpp:sm:3'").await;
    assert!(got.contains(">m1<"), "m1 sent again: {got}");
    second.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    // Nothing came back to alice: m1 was neither bounced nor lost.
    alice.send_stanza(chat("bob@b.test", "m2")).await.unwrap();
    let got = second.read_until(">m2<").await;
    assert!(!got.contains(">m1<"), "m1 only once after its ack: {got}");
}

#[tokio::test]
async fn without_stream_management_a_stanza_the_socket_took_is_not_sent_twice() {
    let (_a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let mut first = accept_as_b(&l, false).await;
    let got = first.read_until(">m1<").await;
    assert!(
        !got.contains("<r "),
        "no ack requested without stream management: {got}"
    );
    drop(first);
    // The next message makes a new stream, which carries it alone.
    alice.send_stanza(chat("bob@b.test", "m2")).await.unwrap();
    let mut second = accept_as_b(&l, false).await;
    let got = second.read_until(">m2<").await;
    assert!(!got.contains(">m1<"), "{got}");
}
