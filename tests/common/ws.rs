//! A client for XMPP over WebSocket (RFC 7395) in tests: framing by tokio-tungstenite (written
//! by others), SCRAM by the `sasl` crate; each message the server sends is checked to be one
//! complete document that parses on its own (minidom).

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// `urn:ietf:params:xml:ns:xmpp-framing`
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// The client's `<open/>`.
pub const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/// One WebSocket connection.
pub struct Ws(pub WebSocketStream<MaybeTlsStream<TcpStream>>);

/// Connects to `/xmpp-websocket` with the `xmpp` subprotocol and these extra headers.
pub async fn connect_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{addr}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "xmpp".parse().unwrap());
    for (k, v) in headers {
        let name: tungstenite::http::HeaderName = k.parse().unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("WebSocket handshake timed out")?;
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("xmpp")
    );
    Ok(Ws(ws))
}

/// The HTTP status a refused handshake got.
pub fn refused_status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

impl Ws {
    /// Connects to the server's first plain HTTP listener.
    pub async fn connect(addr: SocketAddr) -> Ws {
        connect_with(addr, &[]).await.unwrap()
    }

    /// Sends one text message.
    pub async fn send(&mut self, text: &str) {
        self.0
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    /// The next text message, or `None` when the server closed the WebSocket. Each one must
    /// be one complete XML document with its namespaces declared (RFC 7395 §3.3.3).
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let m = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("no WebSocket message in time");
            match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.to_string();
                    if let Err(e) = t.parse::<minidom::Element>() {
                        panic!("not a standalone document ({e}): {t}");
                    }
                    return Some(t);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next text message; fails if the WebSocket closed.
    pub async fn recv(&mut self) -> String {
        self.next().await.expect("the server closed the WebSocket")
    }

    /// Messages until one contains `needle`; returns that one.
    pub async fn recv_until(&mut self, needle: &str) -> String {
        loop {
            let m = self.recv().await;
            if m.contains(needle) {
                return m;
            }
        }
    }

    /// Everything until the server closes the WebSocket, joined.
    pub async fn recv_to_close(&mut self) -> String {
        let mut all = String::new();
        while let Some(m) = self.next().await {
            all.push_str(&m);
        }
        all
    }

    /// Opens a stream; returns the features.
    pub async fn open(&mut self) -> String {
        self.send(OPEN).await;
        let open = self.recv().await;
        assert!(
            open.starts_with("<open") && open.contains(FRAMING),
            "{open}"
        );
        self.recv_until("features").await
    }

    /// SCRAM-SHA-256 with the `sasl` crate's client; returns the final answer.
    pub async fn authenticate(&mut self, user: &str, password: &str) -> String {
        use sasl::client::Mechanism;
        use sasl::client::mechanisms::Scram;
        use sasl::common::ChannelBinding;
        use sasl::common::scram::Sha256;
        let features = self.open().await;
        assert!(features.contains("SCRAM-SHA-256"), "{features}");
        let mut m = Scram::<Sha256>::new(user, password, ChannelBinding::None).unwrap();
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            B64.encode(m.initial())
        ))
        .await;
        let ch = self.recv().await;
        let resp = m
            .response(&B64.decode(super::inner_text(&ch, "challenge")).unwrap())
            .unwrap();
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(resp)
        ))
        .await;
        self.recv().await
    }

    /// Logs in and binds `resource`; returns the bound JID.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> String {
        let ok = self.authenticate(user, password).await;
        assert!(ok.contains("<success"), "{ok}");
        let features = self.open().await;
        assert!(
            features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
            "{features}"
        );
        self.send(&format!(
            "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let bound = self.recv_until("</iq>").await;
        super::inner_text(&bound, "jid").to_string()
    }
}
