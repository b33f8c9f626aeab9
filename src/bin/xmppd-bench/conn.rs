//! One client connection of the load generator: TCP from a chosen source address, STARTTLS or
//! direct TLS, SASL (SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN), resource binding, and a split into a
//! reader that parses the stream and a writer that sends pre-serialised stanzas.
//!
//! It talks to any XMPP server. Certificates are not verified: the load generator only connects
//! to servers on 127.0.0.0/8 that the operator started for the benchmark.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use xmppd::stream::sasl::scram::ScramHash;
use xmppd::stream::sasl::scram_client::{SaltCache, ScramClient};
use xmppd::xml::Element;
use xmppd::xml::parser::StreamParser;

use crate::reader::{NS_SM, Reader, Writer, limits};

use xmppd::stanza::{NS_REGISTER_FEATURE, NS_STANZAS as STANZAS};
use xmppd::stream::sasl::NS as NS_SASL;
use xmppd::stream::{NS_BIND, NS_SESSION, NS_STREAMS as STREAMS, NS_TLS};

/// How TLS is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Plain TCP (only for servers that allow it).
    None,
    /// STARTTLS after the first stream header (RFC 6120 §5).
    Starttls,
    /// TLS from the first byte (XEP-0368), e.g. port 5223.
    Direct,
}

/// Which SASL mechanism to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    /// The strongest the server offers: SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN (over TLS).
    Auto,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "PLAIN")]
    Plain,
}

/// Where and how to connect; shared by all connections.
pub struct Target {
    pub addr: SocketAddr,
    pub domain: String,
    pub tls: TlsMode,
    /// WebSocket path, when the sessions run over WebSocket.
    pub ws: Option<String>,
    pub mech: Mech,
    pub user_pattern: String,
    pub password: String,
    pub sources: Vec<IpAddr>,
    pub tls_config: Arc<rustls::ClientConfig>,
    pub salts: std::sync::Mutex<SaltCache>,
    /// Enable stream management (XEP-0198) after binding, as mobile clients do.
    pub sm: bool,
}

impl Target {
    /// The localpart of user number `i` (`{}` in the pattern is replaced by `i`).
    pub fn user(&self, i: usize) -> String {
        self.user_pattern.replace("{}", &i.to_string())
    }

    /// The bare JID of user number `i`.
    pub fn jid(&self, i: usize) -> String {
        format!("{}@{}", self.user(i), self.domain)
    }

    /// The user number in a JID made by [`Target::jid`], if it is one.
    pub fn index_of(&self, jid: &str) -> Option<usize> {
        let local = jid.split('@').next()?;
        let (pre, post) = self.user_pattern.split_once("{}")?;
        local.strip_prefix(pre)?.strip_suffix(post)?.parse().ok()
    }
}

/// A TLS client configuration that accepts any certificate (loopback benchmarking only).
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Any byte stream: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection during negotiation: one object that reads and writes.
struct Negotiating {
    reader: Reader<Box<dyn Io>>,
}

impl Negotiating {
    async fn send(&mut self, s: &str) -> Result<()> {
        self.reader.io.write_all(s.as_bytes()).await?;
        // Over WebSocket a written message may wait in the library until flushed.
        self.reader.io.flush().await?;
        Ok(())
    }

    /// Opens a (new) stream and returns its features.
    async fn open(&mut self, domain: &str) -> Result<Element> {
        self.reader.parser = StreamParser::new(limits());
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' \
             xmlns='jabber:client' xmlns:stream='{STREAMS}'>"
        ))
        .await?;
        self.reader
            .wait_for("features", |e| e.is("features", STREAMS))
            .await
    }
}

/// A bound session, split in two halves.
pub struct Session {
    pub reader: Reader<ReadHalf<Box<dyn Io>>>,
    pub writer: Writer,
    pub index: usize,
}

/// Connects, secures the stream as `target.tls` says, and returns the first features.
async fn connect(target: &Target, index: usize) -> Result<(Negotiating, Element)> {
    let src = target.sources[index % target.sources.len()];
    let sock = match src {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sock.bind(SocketAddr::new(src, 0))?;
    let tcp = sock.connect(target.addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(target.domain.clone())?;
    let connector = TlsConnector::from(target.tls_config.clone());
    let mut io: Box<dyn Io> = match target.tls {
        TlsMode::Direct => Box::new(connector.connect(name.clone(), tcp).await?),
        _ => Box::new(tcp),
    };
    if let Some(path) = &target.ws {
        if target.tls == TlsMode::Starttls {
            bail!("a WebSocket has no STARTTLS: use --tls none or --tls direct");
        }
        let host = format!("{}:{}", target.domain, target.addr.port());
        io = Box::new(crate::ws::connect(io, &host, path).await?);
    }
    let mut n = Negotiating {
        reader: Reader::new(io),
    };
    let mut features = n.open(&target.domain).await?;
    if target.tls == TlsMode::Starttls {
        if features.get_child("starttls", NS_TLS).is_none() {
            bail!("the server does not offer STARTTLS");
        }
        n.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await?;
        let r = n.reader.wait_for("proceed", |e| e.ns() == NS_TLS).await?;
        if r.name() != "proceed" {
            bail!("STARTTLS refused");
        }
        let Negotiating { reader } = n;
        let tls = connector.connect(name, reader.io).await?;
        n = Negotiating {
            reader: Reader::new(Box::new(tls)),
        };
        features = n.open(&target.domain).await?;
    }
    Ok((n, features))
}

fn pick_mech(target: &Target, features: &Element) -> Result<Mech> {
    let offered: Vec<String> = features
        .get_child("mechanisms", NS_SASL)
        .map(|m| m.children().map(|c| c.text()).collect())
        .unwrap_or_default();
    let has = |m: &str| offered.iter().any(|o| o == m);
    let want = match target.mech {
        Mech::Auto if has("SCRAM-SHA-256") => Mech::ScramSha256,
        Mech::Auto if has("SCRAM-SHA-1") => Mech::ScramSha1,
        Mech::Auto => Mech::Plain,
        m => m,
    };
    let name = mech_name(want);
    match has(name) {
        true => Ok(want),
        false => bail!("the server does not offer {name} (offers {offered:?})"),
    }
}

/// The SASL name of a mechanism.
pub fn mech_name(m: Mech) -> &'static str {
    match m {
        Mech::ScramSha256 => "SCRAM-SHA-256",
        Mech::ScramSha1 => "SCRAM-SHA-1",
        Mech::Plain | Mech::Auto => "PLAIN",
    }
}

async fn authenticate(n: &mut Negotiating, target: &Target, user: &str, mech: Mech) -> Result<()> {
    let hash = match mech {
        Mech::ScramSha256 => Some(ScramHash::Sha256),
        Mech::ScramSha1 => Some(ScramHash::Sha1),
        _ => None,
    };
    let Some(hash) = hash else {
        let blob = B64.encode(format!("\0{user}\0{}", target.password));
        n.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{blob}</auth>"
        ))
        .await?;
        return sasl_outcome(n).await.map(|_| ());
    };
    let mut client = ScramClient::new(hash, user, &target.password)?;
    let first = B64.encode(client.first_message());
    let name = mech_name(mech);
    n.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='{name}'>{first}</auth>"
    ))
    .await?;
    let ch = n
        .reader
        .wait_for("challenge", |e| e.ns() == NS_SASL)
        .await?;
    if ch.name() != "challenge" {
        bail!("authentication failed for {user}: {}", ch.to_string_in(""));
    }
    let server_first = B64.decode(ch.text().trim())?;
    let fin = {
        let mut salts = target
            .salts
            .lock()
            .map_err(|_| anyhow!("salt cache poisoned"))?;
        client.final_message(&server_first, &mut salts)?
    };
    n.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        B64.encode(fin)
    ))
    .await?;
    let done = sasl_outcome(n).await?;
    client.verify(&B64.decode(done.trim())?)?;
    Ok(())
}

/// Waits for `<success/>`; returns its text (additional data).
async fn sasl_outcome(n: &mut Negotiating) -> Result<String> {
    let e = n
        .reader
        .wait_for("SASL outcome", |e| e.ns() == NS_SASL)
        .await?;
    match e.name() {
        "success" => Ok(e.text()),
        _ => bail!("authentication failed: {}", e.to_string_in("")),
    }
}

/// Logs user `index` in and binds resource `bench`; with `presence`, also fetches the roster
/// and sends initial presence, as a client does.
pub async fn login(target: &Target, index: usize, presence: bool) -> Result<Session> {
    let (mut n, features) = connect(target, index).await?;
    let mech = pick_mech(target, &features)?;
    authenticate(&mut n, target, &target.user(index), mech).await?;
    let features = n.open(&target.domain).await?;
    n.send(&format!(
        "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>bench</resource></bind></iq>"
    ))
    .await?;
    n.reader
        .wait_for("bind result", |e| e.attr("id") == Some("bind"))
        .await?;
    let session = features.get_child("session", NS_SESSION);
    if session.is_some_and(|s| s.children().all(|c| c.name() != "optional")) {
        n.send(&format!(
            "<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>"
        ))
        .await?;
        n.reader
            .wait_for("session result", |e| e.attr("id") == Some("sess"))
            .await?;
    }
    let Negotiating { reader } = n;
    let (mut reader, w) = reader.split();
    let writer = Writer::new(w, target.sm);
    if target.sm {
        if features.get_child("sm", NS_SM).is_none() {
            bail!("the server does not offer stream management ({NS_SM})");
        }
        writer
            .send(&format!("<enable xmlns='{NS_SM}' resume='true'/>"))
            .await?;
        let e = reader.wait_for("enabled", |e| e.ns() == NS_SM).await?;
        if e.name() != "enabled" {
            bail!("stream management refused: {}", e.to_string_in(""));
        }
        reader.enable_acks(writer.clone());
    }
    if presence {
        writer
            .send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
            .await?;
        reader
            .wait_for("roster", |e| e.attr("id") == Some("roster"))
            .await?;
        writer.send("<presence/>").await?;
    }
    Ok(Session {
        reader,
        writer,
        index,
    })
}

/// Creates account `index` with in-band registration (XEP-0077) on a new connection.
/// An account that already exists counts as created.
pub async fn register(target: &Target, index: usize) -> Result<()> {
    let (mut n, features) = connect(target, index).await?;
    if features
        .get_child("register", NS_REGISTER_FEATURE)
        .is_none()
    {
        bail!("the server does not offer in-band registration");
    }
    n.send(&format!(
        "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{}</username>\
         <password>{}</password></query></iq>",
        target.user(index),
        target.password
    ))
    .await?;
    let r = n
        .reader
        .wait_for("register result", |e| e.attr("id") == Some("reg"))
        .await?;
    let conflict = r
        .children()
        .any(|e| e.get_child("conflict", STANZAS).is_some());
    n.send("</stream:stream>").await?;
    match r.attr("type") {
        Some("result") => Ok(()),
        _ if conflict => Ok(()),
        _ => bail!(
            "registration of {} failed: {}",
            target.user(index),
            r.to_string_in("")
        ),
    }
}
