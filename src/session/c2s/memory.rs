//! The session core on an in-memory transport: bytes in through a channel, bytes out through
//! another, the same XML stream as TCP (plain: no TLS, no compression). The fuzz target and its
//! replay under `cargo test` drive sessions this way, without sockets: a session per input,
//! thousands per second, with the server's real negotiation, routing and storage behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::driver::{Wire, drive, feed_stream};
use super::{C2s, Flow, Framing, Link, Shared, Wires};
use crate::xml::StreamParser;

/// A client's stream header.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// The client's end of an in-memory session.
pub struct Client {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Everything the server wrote so far.
    pub received: Vec<u8>,
}

impl Client {
    /// Sends bytes; false once the session is over.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        match &self.tx {
            Some(tx) => tx.send(bytes.to_vec()).await.is_ok(),
            None => false,
        }
    }

    /// Reads until what was received (since the last call) contains `needle`; what was read,
    /// or `None` when the session ended first or `wait` passed.
    pub async fn read_until(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let start = self.received.len();
        loop {
            let text = String::from_utf8_lossy(&self.received[start..]);
            if text.contains(needle) {
                let all = text.into_owned();
                return Some(all);
            }
            let chunk = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            self.received.extend_from_slice(&chunk);
        }
    }

    /// Opens a stream, authenticates with SCRAM-SHA-256 and binds `resource`; `None` if any
    /// step failed.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> Option<()> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD as B64;

        use crate::stream::sasl::scram::ScramHash;
        use crate::stream::sasl::scram_client::{SaltCache, ScramClient};
        let wait = Duration::from_secs(10);
        self.send(HEADER.as_bytes()).await;
        self.read_until("</stream:features>", wait).await?;
        let mut scram = ScramClient::new(ScramHash::Sha256, user, password).ok()?;
        let auth = format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            B64.encode(scram.first_message())
        );
        self.send(auth.as_bytes()).await;
        let ch = self.read_until("</challenge>", wait).await?;
        let start = ch.find("<challenge")?;
        let body = &ch[start..];
        let payload = &body[body.find('>')? + 1..body.find("</challenge>")?];
        let server_first = B64.decode(payload).ok()?;
        let last = scram
            .final_message(&server_first, &mut SaltCache::new())
            .ok()?;
        let response = format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(last)
        );
        self.send(response.as_bytes()).await;
        self.read_until("<success", wait).await?;
        self.send(HEADER.as_bytes()).await;
        self.read_until("</stream:features>", wait).await?;
        let bind = format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        );
        self.send(bind.as_bytes()).await;
        self.read_until("</iq>", wait)
            .await
            .filter(|r| r.contains("<jid>"))?;
        Some(())
    }

    /// Ends the client's side (as a TCP FIN) and waits up to `wait` for the session to end
    /// its own; whether it did.
    pub async fn close(&mut self, wait: Duration) -> bool {
        self.tx = None;
        let ended = async {
            while let Some(chunk) = self.rx.recv().await {
                self.received.extend_from_slice(&chunk);
            }
        };
        tokio::time::timeout(wait, ended).await.is_ok()
    }
}

/// Starts a session on an in-memory transport (as from `127.0.0.1`, not secure, so the
/// configuration must allow authentication without TLS to get past SASL).
pub fn connect(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) -> Client {
    let (tx, input) = mpsc::channel(16);
    let (output, rx) = mpsc::unbounded_channel();
    let link = Link::web(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        false,
        "memory",
    );
    let s = C2s::new(shared, link, Framing::Stream);
    let wire = Memory {
        parser: StreamParser::new(s.parser_limits()),
        input,
        output,
    };
    tokio::spawn(drive(s, wire, shutdown));
    Client {
        tx: Some(tx),
        rx,
        received: Vec::new(),
    }
}

/// The server's end.
struct Memory {
    input: mpsc::Receiver<Vec<u8>>,
    output: mpsc::UnboundedSender<Vec<u8>>,
    parser: StreamParser,
}

impl Wire for Memory {
    type Input = Vec<u8>;

    async fn read(&mut self) -> Option<Vec<u8>> {
        self.input.recv().await
    }

    async fn feed(&mut self, s: &mut C2s, bytes: Vec<u8>) -> Flow {
        feed_stream(&mut self.parser, s, &mut &bytes[..]).await
    }

    async fn flush(&mut self, s: &mut C2s, _: &Wires) -> std::io::Result<()> {
        if !s.output().is_empty() {
            let bytes = s.output().take();
            self.output
                .send(bytes)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }

    fn release_idle(&mut self) {
        self.parser.release_temporaries();
    }

    fn holds_buffer(&self) -> bool {
        false
    }

    async fn shutdown(&mut self, _: &mut C2s) {}
}
