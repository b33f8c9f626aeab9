//! The names a server certificate may give its domain by (RFC 6120 §13.7.1.4, RFC 6125,
//! RFC 7590): besides a DNS-ID, an SRV-ID (`_xmpp-server.<domain>`) or an XmppAddr. `b.test`
//! presents a certificate of the test CA that names it in one way only; both servers require
//! valid certificates. alice (on `a.test`) pings the server `b.test` (XEP-0199): the ping goes
//! out on a stream to b whose certificate a validated, and the answer comes back on b's stream
//! to a, which a authenticated by SASL EXTERNAL with the same certificate. (No client logs in to
//! b: tokio-xmpp, as clients do, wants a DNS-ID for the domain it logs in to.)

mod common;

use common::im::iq;
use common::s2s::*;
use common::{TestServer, leaf_certificate};
use rcgen::SanType;
use tokio_xmpp::IqRequest;

const XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];
const DNS_SRV: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 7];

fn other(oid: [u64; 9], value: &str) -> SanType {
    SanType::OtherName((oid.to_vec(), value.into()))
}

/// `a.test` (the usual DNS-ID certificate) and `b.test` with a certificate naming only `sans`.
async fn strict_pair(sans: Vec<SanType>) -> (TestServer, TestServer) {
    let (cert, key) = leaf_certificate(sans);
    // One stream each way (no XEP-0288): a authenticates b's incoming stream too.
    let a = server("a.test", "127.0.0.1", |c| {
        c.s2s.require_valid_certificates = true;
        c.s2s.bidi = false;
    })
    .await;
    let b = server("b.test", "127.0.0.2", move |c| {
        c.s2s.require_valid_certificates = true;
        c.s2s.bidi = false;
        c.tls.cert_file = Some(cert);
        c.tls.key_file = Some(key);
    })
    .await;
    link(&a, "a.test", &b, "b.test");
    a.add_user_at("a.test", "alice", "pw-alice").await;
    (a, b)
}

/// alice pings the server `b.test`: Ok, or the error condition.
async fn alice_pings_b(a: &TestServer) -> Result<(), String> {
    let (mut alice, _) = a.login("alice@a.test", "pw-alice").await;
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(&mut alice, Some("b.test"), IqRequest::Get(ping))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn an_xmpp_addr_names_the_domain() {
    let (a, b) = strict_pair(vec![other(XMPP_ADDR, "b.test")]).await;
    assert_eq!(alice_pings_b(&a).await, Ok(()));
    assert_eq!(method(&a, "b.test"), Some("external"));
    assert_eq!(method(&b, "a.test"), Some("external"));
}

#[tokio::test]
async fn an_srv_id_names_the_domain() {
    let (a, _b) = strict_pair(vec![other(DNS_SRV, "_xmpp-server.b.test")]).await;
    assert_eq!(alice_pings_b(&a).await, Ok(()));
    assert_eq!(method(&a, "b.test"), Some("external"));
}

#[tokio::test]
async fn names_for_something_else_do_not_authenticate() {
    // Another domain's XmppAddr, the client service's SRV-ID, a wildcard one label too deep.
    let (a, _b) = strict_pair(vec![
        other(XMPP_ADDR, "c.test"),
        other(DNS_SRV, "_xmpp-client.b.test"),
        SanType::DnsName("*.b.test".try_into().unwrap()),
    ])
    .await;
    assert_eq!(
        alice_pings_b(&a).await,
        Err("RemoteServerNotFound".to_string())
    );
    assert_eq!(method(&a, "b.test"), None);
}
