//! Test harness: the real server in-process on 127.0.0.1:0 with a temporary SQLite database and
//! a test CA, real clients (tokio-xmpp), and a raw socket for input no client library would send.
#![allow(dead_code)]

pub mod archive;
pub mod bosh;
pub mod dns;
pub mod im;
pub mod muc;
pub mod pep;
pub mod raw_login;
pub mod s2s;
pub mod ws;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event};
use xmppd::config::Config;
use xmppd::server::Server;
use xmppd::stream::sasl::scram::ScramCredentials;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The test CA (trusted by the clients through SSL_CERT_FILE) and a leaf for `localhost`.
struct Pki {
    dir: PathBuf,
    /// The CA, to issue more leaves ([`leaf_certificate`]).
    ca: (rcgen::CertificateParams, String),
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap().keep();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "xmppd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = (ca_params.clone(), ca_key.serialize_pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        // localhost, and the two domains of the federation tests.
        let names = ["localhost", "a.test", "b.test"].map(String::from).to_vec();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        // rustls-native-certs (inside tokio-xmpp) reads only this file when it is set. Set once,
        // before any client exists, by whichever test gets here first.
        unsafe { std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem")) };
        Pki { dir, ca }
    })
}

/// A certificate from the test CA with these subjectAltNames: (certificate, key) files.
pub fn leaf_certificate(sans: Vec<rcgen::SanType>) -> (PathBuf, PathBuf) {
    use rcgen::{CertificateParams, Issuer, KeyPair};
    let (ca_params, ca_key) = &pki().ca;
    let issuer = Issuer::new(ca_params.clone(), KeyPair::from_pem(ca_key).unwrap());
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A running server with its temporary folder.
pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    /// The configuration it runs with.
    pub config: Config,
}

/// The configuration tests start from: loopback, port 0, the test certificate.
pub fn test_config(dir: &std::path::Path) -> Config {
    let pki = pki();
    let mut c = Config::default();
    c.server.data_dir = dir.to_path_buf();
    c.server.shutdown_timeout_secs = 5;
    c.c2s.listen = vec!["127.0.0.1:0".into()];
    c.c2s.tls_listen = vec!["127.0.0.1:0".into()];
    c.http.listen = vec!["127.0.0.1:0".into()];
    c.http.tls_listen = vec![];
    c.s2s.listen = vec!["127.0.0.1:0".into()];
    c.tls.cert_file = Some(pki.dir.join("cert.pem"));
    c.tls.key_file = Some(pki.dir.join("key.pem"));
    c
}

impl TestServer {
    /// Starts a server; `tweak` adjusts the configuration first.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        // RUST_LOG=xmppd=debug shows the server's log in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        // XMPPD_TEST_BACKEND=postgres runs the same tests on PostgreSQL, each server on a
        // database of its own (so tests running in parallel do not share accounts).
        if std::env::var("XMPPD_TEST_BACKEND").as_deref() == Ok("postgres") {
            config.storage.backend = xmppd::config::Backend::Postgres;
            config.storage.url = fresh_postgres_database().await;
        }
        tweak(&mut config);
        let server = Server::start(config.clone()).await.unwrap();
        TestServer {
            port: server.c2s_addrs[0].port(),
            tls_port: server.tls_addrs[0].port(),
            server: Some(server),
            dir,
            config,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Creates an account (as `xmppd adduser` does).
    pub async fn add_user(&self, user: &str, password: &str) {
        self.add_user_at("localhost", user, password).await
    }

    /// Creates an account on `host` (one of the server's hosts).
    pub async fn add_user_at(&self, host: &str, user: &str, password: &str) {
        let creds = ScramCredentials::new_set(password, 4096).unwrap();
        assert!(
            self.server()
                .storage
                .accounts
                .create(host, user, &creds)
                .await
                .unwrap()
        );
    }

    /// The test CA's certificate file.
    pub fn ca_file() -> PathBuf {
        pki().dir.join("ca.pem")
    }

    /// Logs in with tokio-xmpp over STARTTLS and waits until the session is bound.
    pub async fn login(&self, jid: &str, password: &str) -> (Client, String) {
        let client = Client::new_starttls(
            jid::Jid::new(jid).unwrap(),
            password,
            DnsConfig::addr(&format!("127.0.0.1:{}", self.port)),
            Timeouts::default(),
        );
        online(client).await
    }

    /// Logs in over direct TLS (XEP-0368).
    pub async fn login_direct_tls(&self, jid: &str, password: &str) -> (Client, String) {
        let client = Client::new_direct_tls_with_config(
            jid::Jid::new(jid).unwrap(),
            password,
            DnsConfig::addr(&format!("127.0.0.1:{}", self.tls_port)),
            Timeouts::default(),
        );
        online(client).await
    }

    /// Runs one SQL statement on this server's database (SQLite or PostgreSQL), behind the
    /// server's back: for tests that break the database.
    pub async fn execute(&self, sql: &'static str) {
        use sqlx::Connection;
        if self.config.storage.backend == xmppd::config::Backend::Postgres {
            let mut c = sqlx::PgConnection::connect(&self.config.storage.url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let path = self.dir.path().join("xmppd.sqlite");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }

    /// A raw TCP connection to the STARTTLS port.
    pub async fn raw(&self) -> Raw {
        Raw(TcpStream::connect(("127.0.0.1", self.port)).await.unwrap())
    }

    /// Stops the server and starts it again on the same data (new ports).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Server::start(self.config.clone()).await.unwrap();
        self.port = server.c2s_addrs[0].port();
        self.tls_port = server.tls_addrs[0].port();
        self.server = Some(server);
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Creates an empty database on the server at XMPPD_TEST_POSTGRES_URL; returns its URL.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let url = std::env::var("XMPPD_TEST_POSTGRES_URL")
        .expect("XMPPD_TEST_POSTGRES_URL for the postgres backend");
    let name = format!(
        "xmppd_test_{}",
        xmppd::stream::random_id()
            .to_lowercase()
            .replace(['-', '_'], "")
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Waits for the client's `Online` event; returns the bound JID.
pub async fn online(mut client: Client) -> (Client, String) {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await {
            Ok(Some(Event::Online { bound_jid, .. })) => return (client, bound_jid.to_string()),
            Ok(Some(Event::Disconnected(e))) => panic!("disconnected before online: {e}"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client stream ended"),
            Err(_) => panic!("no Online event within {WAIT:?}"),
        }
    }
}

/// The next stanza a client receives (skipping non-stanza events).
pub async fn next_stanza(client: &mut Client) -> tokio_xmpp::Stanza {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await {
            Ok(Some(Event::Stanza(s))) => return s,
            Ok(Some(Event::Disconnected(e))) => panic!("disconnected: {e}"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client stream ended"),
            Err(_) => panic!("no stanza within {WAIT:?}"),
        }
    }
}

/// A raw socket speaking bytes.
pub struct Raw(pub TcpStream);

impl Raw {
    pub async fn send(&mut self, s: &str) {
        self.0.write_all(s.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` appears; returns everything read. Fails the test if the server
    /// closes the stream (or the read fails) first: a test that expects a close reads with
    /// [`Raw::read_to_close`].
    pub async fn read_until(&mut self, needle: &str) -> String {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let fut = async {
            loop {
                match self.0.read(&mut buf).await {
                    Ok(0) => return Err("the server closed the stream"),
                    Ok(n) => acc.extend_from_slice(&buf[..n]),
                    Err(_) => return Err("the read failed"),
                }
                if String::from_utf8_lossy(&acc).contains(needle) {
                    return Ok(());
                }
            }
        };
        let r = tokio::time::timeout(WAIT, fut)
            .await
            .expect("read_until timed out");
        let got = String::from_utf8_lossy(&acc).into_owned();
        if let Err(why) = r {
            panic!("{why} before {needle:?}; read: {got}");
        }
        got
    }

    /// Acknowledges (XEP-0198) every stanza in `received`, the whole transcript since stream
    /// management was enabled or resumed with `h='0'`, and waits until the server has handled
    /// the ack (a ping answered after it).
    pub async fn ack_all(&mut self, received: &str) {
        let h = count_stanzas(received);
        self.send(&format!(
            "<a xmlns='urn:xmpp:sm:3' h='{h}'/><iq type='get' id='acked'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
        self.read_until("id='acked'").await;
    }

    /// Reads until `needle` appears (`Some`) or the server closes the stream (`None`), for
    /// tests where either answer is expected.
    pub async fn read_until_or_close(&mut self, needle: &str) -> Option<String> {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let fut = async {
            loop {
                match self.0.read(&mut buf).await {
                    Ok(n) if n > 0 => acc.extend_from_slice(&buf[..n]),
                    _ => return false,
                }
                if String::from_utf8_lossy(&acc).contains(needle) {
                    return true;
                }
            }
        };
        let found = tokio::time::timeout(WAIT, fut)
            .await
            .expect("read_until_or_close timed out");
        found.then(|| String::from_utf8_lossy(&acc).into_owned())
    }

    /// Reads for `grace` and asserts that no stanza (no duplicate) arrives; stream-management
    /// nonzas (`<r/>`) may. The stream must stay open. For "exactly once" checks.
    pub async fn expect_silence(&mut self, grace: Duration) {
        let mut buf = [0u8; 4096];
        let until = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(until, self.0.read(&mut buf)).await {
                Err(_) => return,
                Ok(Ok(0)) => panic!("the server closed the stream"),
                Ok(Ok(n)) => {
                    let got = String::from_utf8_lossy(&buf[..n]);
                    assert_eq!(count_stanzas(&got), 0, "unexpected: {got}");
                }
                Ok(Err(e)) => panic!("read failed: {e}"),
            }
        }
    }

    /// Reads until the server closes the connection; returns everything read.
    pub async fn read_to_close(&mut self) -> String {
        let mut acc = Vec::new();
        let fut = self.0.read_to_end(&mut acc);
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("server did not close")
            .ok();
        String::from_utf8_lossy(&acc).into_owned()
    }
}

/// A client stream header for `localhost`.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// The text content of the first `<name ...>…</name>` in `s`.
pub fn inner_text<'a>(s: &'a str, name: &str) -> &'a str {
    let start = s.find(&format!("<{name}")).expect(name);
    let body = &s[start..];
    let open_end = body.find('>').unwrap() + 1;
    if body[..open_end].ends_with("/>") {
        return "";
    }
    let close = body.find(&format!("</{name}>")).unwrap();
    &body[open_end..close]
}

impl Raw {
    /// Logs in over plain TCP (needs `c2s.require_tls = false`) with SCRAM-SHA-256 done by the
    /// `sasl` crate's client, and binds `resource`. Returns the bound JID, or the whole bind
    /// reply when it holds no JID (an error).
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> String {
        self.authenticate(user, password).await;
        self.send(&format!(
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let bound = self.read_until("</iq>").await;
        if bound.contains("<jid>") {
            inner_text(&bound, "jid").to_string()
        } else {
            bound
        }
    }
}

impl Raw {
    /// Authenticates (SCRAM-SHA-256, plain TCP) and restarts the stream, without binding;
    /// returns the features of the new stream.
    pub async fn authenticate(&mut self, user: &str, password: &str) -> String {
        let ok = self.login_attempt(user, password).await;
        assert!(ok.contains("<success"), "login failed: {ok}");
        self.send(HEADER).await;
        self.read_until("</stream:features>").await
    }

    /// Reads until the start tag of `<name …>` is complete; returns everything read.
    pub async fn read_tag(&mut self, name: &str) -> String {
        let open = format!("<{name}");
        let mut acc = String::new();
        loop {
            acc += &self.read_until(&open).await;
            let Some(i) = acc.find(&open) else {
                panic!("no <{name}> before the end: {acc}")
            };
            if acc[i..].contains('>') {
                return acc;
            }
            acc += &self.read_until(">").await;
            if acc[i..].contains('>') {
                return acc;
            }
        }
    }

    /// Reads until `needle` has been seen `n` times in what this call read; fails the test if
    /// the stream ends first.
    pub async fn read_until_n(&mut self, needle: &str, n: usize) -> String {
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let fut = async {
            loop {
                let got = String::from_utf8_lossy(&acc).matches(needle).count();
                if got >= n {
                    return true;
                }
                match self.0.read(&mut buf).await {
                    Ok(k) if k > 0 => acc.extend_from_slice(&buf[..k]),
                    _ => return false,
                }
            }
        };
        let complete = tokio::time::timeout(WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("read_until_n({needle}, {n}) timed out"));
        let got = String::from_utf8_lossy(&acc).into_owned();
        assert!(complete, "the stream ended before {n} × {needle:?}: {got}");
        got
    }
}

/// The value of attribute `attr` of the first `<el …>` in `s`.
pub fn attr_of(s: &str, el: &str, attr: &str) -> Option<String> {
    let start = s
        .find(&format!("<{el} "))
        .or_else(|| s.find(&format!("<{el}/")))?;
    let tag = &s[start..start + s[start..].find('>')?];
    for q in ['\'', '"'] {
        let pat = format!(" {attr}={q}");
        if let Some(i) = tag.find(&pat) {
            let v = &tag[i + pat.len()..];
            return Some(v[..v.find(q)?].to_string());
        }
    }
    None
}

/// Stanzas (top-level message, presence and iq elements) in a transcript without nesting.
pub fn count_stanzas(s: &str) -> usize {
    ["<message ", "<message>", "<presence", "<iq "]
        .iter()
        .map(|p| s.matches(p).count())
        .sum()
}

/// The next message a client receives, skipping presence and iq stanzas.
pub async fn next_message(client: &mut Client) -> tokio_xmpp::parsers::message::Message {
    loop {
        if let tokio_xmpp::Stanza::Message(m) = next_stanza(client).await {
            return m;
        }
    }
}
