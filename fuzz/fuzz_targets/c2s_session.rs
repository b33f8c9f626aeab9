//! Fuzzes the c2s negotiation state machine and the bound session through the real server:
//! one in-process server (SQLite in a temporary folder, plain TCP allowed), one loopback
//! connection per input. The first byte picks where the input starts: at the stream header
//! (header, STARTTLS, SASL, registration, bind) or, after this harness logged in with
//! SCRAM-SHA-256 and bound a resource, as stanzas and nonzas (SM, CSI) of a session.
//! A panic anywhere in the server aborts (libFuzzer's panic hook); a session that does not end
//! after the client closed is reported as a hang.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use sasl::client::Mechanism;
use sasl::client::mechanisms::Scram;
use sasl::common::ChannelBinding;
use sasl::common::scram::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

struct Env {
    rt: Runtime,
    port: u16,
    _dir: tempfile::TempDir,
    /// Kept (not forgotten) so that the leak checker at exit sees it as reachable.
    _server: xmppd::server::Server,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = xmppd::config::Config::default();
        c.server.data_dir = dir.path().to_path_buf();
        c.server.log = "off".into();
        c.c2s.listen = vec!["127.0.0.1:0".into()];
        c.c2s.tls_listen = vec![];
        c.http.listen = vec![];
        c.http.tls_listen = vec![];
        c.c2s.require_tls = false;
        c.c2s.allow_registration = true;
        c.c2s.resume_timeout_secs = 1;
        c.limits.connections_per_ip_per_minute = 1_000_000;
        c.limits.auth_failures_per_ip_per_minute = 1_000_000;
        c.limits.registrations_per_ip_per_hour = 1_000_000;
        c.limits.max_connections_per_ip = 10_000;
        let server = rt.block_on(async {
            let s = xmppd::server::Server::start(c).await.unwrap();
            let creds = xmppd::stream::sasl::scram::ScramCredentials::new_set("pw", 4096).unwrap();
            s.storage.accounts.create("localhost", "alice", &creds).await.unwrap();
            s.storage.accounts.create("localhost", "bob", &creds).await.unwrap();
            s
        });
        let port = server.c2s_addrs[0].port();
        Env {
            rt,
            port,
            _dir: dir,
            _server: server,
        }
    })
}

async fn read_until(s: &mut TcpStream, needle: &str) -> Option<String> {
    let mut acc = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        acc.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&acc);
        if text.contains(needle) {
            return Some(text.into_owned());
        }
    }
}

fn inner<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let start = s.find(&format!("<{name}"))?;
    let body = &s[start..];
    let open = body.find('>')? + 1;
    let close = body.find(&format!("</{name}>"))?;
    Some(&body[open..close])
}

/// Logs in as alice with SCRAM-SHA-256 and binds; `None` if the server refused.
async fn login(s: &mut TcpStream) -> Option<()> {
    s.write_all(HEADER.as_bytes()).await.ok()?;
    read_until(s, "</stream:features>").await?;
    let mut m = Scram::<Sha256>::new("alice", "pw", ChannelBinding::None).ok()?;
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode(m.initial())
    );
    s.write_all(auth.as_bytes()).await.ok()?;
    let ch = read_until(s, "</challenge>").await?;
    let resp = m.response(&B64.decode(inner(&ch, "challenge")?).ok()?).ok()?;
    let r = format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(resp)
    );
    s.write_all(r.as_bytes()).await.ok()?;
    read_until(s, "<success").await?;
    s.write_all(HEADER.as_bytes()).await.ok()?;
    read_until(s, "</stream:features>").await?;
    s.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .ok()?;
    read_until(s, "</iq>").await?;
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let env = env();
    env.rt.block_on(async {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", env.port)).await else {
            return;
        };
        if mode & 1 == 1 && login(&mut s).await.is_none() {
            return;
        }
        if s.write_all(body).await.is_err() {
            return;
        }
        let _ = s.shutdown().await;
        // The server must end the stream once the client is gone.
        let mut sink = Vec::new();
        if tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink))
            .await
            .is_err()
        {
            panic!("the server did not close the connection after the client did");
        }
    });
});
