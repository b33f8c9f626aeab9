//! Logging in with a client library written by others (tokio-xmpp): STARTTLS and direct TLS,
//! SCRAM with channel binding, plain SCRAM where TLS is not required, wrong passwords, binding.

mod common;

use common::*;
use sasl::common::{ChannelBinding, Credentials};
use tokio_xmpp::connect::{
    DnsConfig, ServerConnector, StartTlsServerConnector, TcpServerConnector,
};
use tokio_xmpp::error::AuthError;
use tokio_xmpp::parsers::sasl::DefinedCondition;
use tokio_xmpp::xmlstream::Timeouts;

#[tokio::test]
async fn starttls_scram_plus_login_and_bind() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "wonderland").await;
    let (client, jid) = t.login("alice@localhost/laptop", "wonderland").await;
    assert_eq!(jid, "alice@localhost/laptop");
    // The session is registered under the bound JID.
    let full = jid::FullJid::new(&jid).unwrap();
    assert!(t.server().router.registry.get(&full).is_some());
    client.send_end().await.unwrap();
    // SCRAM-SHA-256-PLUS was negotiated, with tls-exporter (TLS 1.3): the same login with the
    // binding data altered is refused, as a relayed login would be; with it intact it passes.
    let c = StartTlsServerConnector::from(DnsConfig::addr(&format!("127.0.0.1:{}", t.port)));
    let mut kind = None;
    let r = sasl_binding(c.clone(), "alice@localhost", "wonderland", |b| {
        kind = Some(
            format!("{b:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
        match b {
            ChannelBinding::TlsExporter(mut d) => {
                d[0] ^= 0xff;
                ChannelBinding::TlsExporter(d)
            }
            other => other,
        }
    })
    .await;
    assert_eq!(kind.as_deref(), Some("TlsExporter"));
    match r {
        Err(tokio_xmpp::Error::Auth(AuthError::Fail(DefinedCondition::NotAuthorized))) => {}
        other => panic!("an altered channel binding must be refused, got {other:?}"),
    }
    sasl_with(c, "alice@localhost", "wonderland").await.unwrap();
}

#[tokio::test]
async fn direct_tls_login_with_server_generated_resource() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("bob", "builder").await;
    let (_client, jid) = t.login_direct_tls("bob@localhost", "builder").await;
    let full = jid::FullJid::new(&jid).unwrap();
    assert_eq!(full.to_bare().as_str(), "bob@localhost");
    assert!(!full.resource().as_str().is_empty());
}

/// Drives tokio-xmpp's own connector and SASL client, returning the SASL outcome.
async fn sasl_with<C: ServerConnector>(
    c: C,
    jid: &str,
    password: &str,
) -> Result<(), tokio_xmpp::Error> {
    sasl_binding(c, jid, password, |b| b).await
}

/// As [`sasl_with`], with the channel binding the connector found passed through `tamper`.
async fn sasl_binding<C: ServerConnector>(
    c: C,
    jid: &str,
    password: &str,
    tamper: impl FnOnce(ChannelBinding) -> ChannelBinding,
) -> Result<(), tokio_xmpp::Error> {
    let jid = jid::Jid::new(jid).unwrap();
    let (pending, binding) = c
        .connect(&jid, "jabber:client", Timeouts::default())
        .await?;
    let binding = tamper(binding);
    let (features, stream) = pending.recv_features().await?;
    let creds = Credentials::default()
        .with_username(jid.node().unwrap().as_str())
        .with_password(password)
        .with_channel_binding(binding);
    tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_not_authorized() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "wonderland").await;
    let c = StartTlsServerConnector::from(DnsConfig::addr(&format!("127.0.0.1:{}", t.port)));
    for (user, pw) in [("alice@localhost", "wrong"), ("nobody@localhost", "x")] {
        match sasl_with(c.clone(), user, pw).await {
            Err(tokio_xmpp::Error::Auth(AuthError::Fail(DefinedCondition::NotAuthorized))) => {}
            other => panic!("{user}: expected not-authorized, got {other:?}"),
        }
    }
    sasl_with(c, "alice@localhost", "wonderland").await.unwrap();
}

#[tokio::test]
async fn scram_without_tls_when_allowed_and_never_plain() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("carol", "pw").await;
    // tokio-xmpp over plain TCP: no channel binding, so SCRAM-SHA-256 with the `n` gs2 flag.
    let c = TcpServerConnector::from(DnsConfig::addr(&format!("127.0.0.1:{}", t.port)));
    sasl_with(c, "carol@localhost", "pw").await.unwrap();
    // PLAIN is neither offered nor accepted without TLS.
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    let features = raw.read_until("</stream:features>").await;
    assert!(
        features.contains("<mechanism>SCRAM-SHA-256</mechanism>"),
        "{features}"
    );
    assert!(!features.contains("PLAIN"), "{features}");
    assert!(!features.contains("-PLUS"), "{features}");
    raw.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGNhcm9sAHB3</auth>",
    )
    .await;
    let reply = raw.read_until("</failure>").await;
    assert!(reply.contains("<invalid-mechanism/>"), "{reply}");
}

#[tokio::test]
async fn features_over_tls_offer_plus_and_plain() {
    let t = TestServer::start(|_| {}).await;
    // Before TLS only STARTTLS (required) is offered, and no SASL.
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    let features = raw.read_until("</stream:features>").await;
    assert!(
        features
            .contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
    );
    assert!(!features.contains("mechanism"), "{features}");
    // SASL before TLS is refused with encryption-required.
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hLHI9eA==</auth>")
        .await;
    let reply = raw.read_until("</failure>").await;
    assert!(reply.contains("<encryption-required/>"), "{reply}");
}

#[tokio::test]
async fn resource_conflict_kicks_the_old_session() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("dave", "pw").await;
    let mut first = t.raw().await;
    assert_eq!(
        first.login("dave", "pw", "phone").await,
        "dave@localhost/phone"
    );
    let mut second = t.raw().await;
    assert_eq!(
        second.login("dave", "pw", "phone").await,
        "dave@localhost/phone"
    );
    let closed = first.read_to_close().await;
    assert!(
        closed.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{closed}"
    );
    assert!(closed.ends_with("</stream:stream>"), "{closed}");
    // The new session holds the resource and works.
    second
        .send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = second.read_until("id='p1'").await;
    assert!(
        pong.contains("id='p1'") && pong.contains("type='result'"),
        "{pong}"
    );
}

#[tokio::test]
async fn resource_conflict_refuse_policy() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.resource_conflict = xmppd::config::ResourceConflict::Refuse;
    })
    .await;
    t.add_user("fred", "pw").await;
    let mut first = t.raw().await;
    first.login("fred", "pw", "r").await;
    let mut second = t.raw().await;
    let res = second.login("fred", "pw", "r").await;
    assert!(
        res.contains("type='error'")
            && res.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{res}"
    );
}

#[tokio::test]
async fn resource_conflict_random_policy() {
    let t =
        TestServer::start(|c| c.c2s.resource_conflict = xmppd::config::ResourceConflict::Random)
            .await;
    t.add_user("erin", "pw").await;
    let (_a, jid1) = t.login("erin@localhost/desk", "pw").await;
    let (_b, jid2) = t.login("erin@localhost/desk", "pw").await;
    assert_eq!(jid1, "erin@localhost/desk");
    assert!(jid2.starts_with("erin@localhost/desk-"), "{jid2}");
}

/// One SASL PLAIN attempt over direct TLS; how long the server took to refuse it.
async fn plain_failure_takes(t: &TestServer, user: &str, password: &str) -> std::time::Duration {
    use base64::Engine;
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The test CA (common's pki sets SSL_CERT_FILE to it before any server starts).
    let ca = std::env::var("SSL_CERT_FILE").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", t.tls_port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let read_until = async |tls: &mut tokio_rustls::client::TlsStream<_>, needle: &str| {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&acc).contains(needle) {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {needle}");
            acc.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&acc).into_owned()
    };
    tls.write_all(HEADER.as_bytes()).await.unwrap();
    let features = read_until(&mut tls, "</stream:features>").await;
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let start = std::time::Instant::now();
    tls.write_all(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let reply = read_until(&mut tls, "</failure>").await;
    assert!(reply.contains("<not-authorized/>"), "{reply}");
    start.elapsed()
}

/// PLAIN against an unknown account does the same key derivation as against a real one, so
/// the time a failure takes does not tell which accounts exist. (A ratio with a wide margin,
/// not a duration: before, an unknown user was refused some 50 times faster.)
#[tokio::test]
async fn plain_failures_of_unknown_users_cost_the_same() {
    let t = TestServer::start(|c| c.limits.auth_failures_per_ip_per_minute = 100).await;
    t.add_user("alice", "wonderland").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        known.push(plain_failure_takes(&t, "alice", "wrong").await);
        unknown.push(plain_failure_takes(&t, "nobody", "wrong").await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2], unknown[2]);
    assert!(
        u * 4 >= k,
        "an unknown user is refused in {u:?}, a real one in {k:?}: timing reveals accounts"
    );
}
