//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: the handshake (subprotocol `xmpp`,
//! the Origin policy, the message size bound) and the [`Wire`] that carries a c2s session.
//!
//! Every message is one complete element (§3.3.3): `<open/>` and `<close/>` in the framing
//! namespace instead of the stream tags, stanzas with their namespace declared. What a client
//! sends is fed to one parser per stream, opened with a stream header of our own, so that the
//! limits of a TCP stream (size, memory, depth, attributes) apply to every message unchanged;
//! the session core is the TCP one. A resumable session (XEP-0198) survives a dropped
//! WebSocket and is resumed on a new one, or on TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tracing::{Instrument, info_span};

use super::HttpState;
use crate::session::c2s::driver::{Wire, drive, queue_full};
use crate::session::c2s::{C2s, Flow, Framing, Link, NS_FRAMING, Shared, Wires};
use crate::stream::{Condition, NS_STREAMS, StreamError, random_id};
use crate::transport::ConnGuard;
use crate::xml::{Element, StreamEvent, StreamHeader, StreamParser};

/// What the parser is primed with: the namespaces a TCP stream header would declare.
const PRIMER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";
/// Initial read buffer of a WebSocket (tungstenite's default is 128 KiB per connection).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes of outgoing frames buffered before they are written to the socket.
const WRITE_BUFFER: usize = 4 * 1024;

/// Where the client is, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client's address (a trusted proxy's `X-Forwarded-For` applied).
    pub addr: SocketAddr,
    /// Whether the client's path is encrypted or private: HTTPS, a loopback connection, or a
    /// trusted proxy that says it received HTTPS.
    pub secure: bool,
}

/// `GET /xmpp-websocket` with an upgrade.
pub async fn upgrade(
    state: Arc<HttpState>,
    client: Client,
    guard: Option<ConnGuard>,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let config = &state.c2s.config;
    if !config.http.websocket {
        return StatusCode::NOT_FOUND.into_response();
    }
    // RFC 7395 §3.1: the subprotocol must be `xmpp`.
    let offered = ws
        .requested_protocols()
        .any(|p| p.as_bytes().eq_ignore_ascii_case(b"xmpp"));
    if !offered {
        return (
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol 'xmpp' is required (RFC 7395)\n",
        )
            .into_response();
    }
    // A page from another site must not open sessions with its visitors' browsers unless
    // allowed; clients that are not browsers send no Origin.
    let origins = &config.http.websocket_origins;
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origins.is_empty()
        && !origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
    {
        return (StatusCode::FORBIDDEN, "this Origin may not connect\n").into_response();
    }
    // A message is at most one stanza (RFC 7395 §3.3.3).
    let max = config.c2s.max_stanza_size;
    let shared = state.c2s.clone();
    let shutdown = state.shutdown.clone();
    let alive = state.alive.clone();
    ws.protocols(["xmpp"])
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let span = info_span!("ws", id = %random_id(), peer = %client.addr);
            let open = crate::metrics::open("websocket");
            run(shared, socket, client, shutdown).instrument(span).await;
            drop((guard, open, alive));
        })
}

async fn run(
    shared: Arc<Shared>,
    socket: WebSocket,
    client: Client,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let link = Link::web(client.addr, client.secure, "websocket");
    let s = C2s::new(shared.clone(), link, Framing::Messages);
    let wire = Ws {
        parser: primed(&s),
        shared,
        socket,
        dirty: false,
    };
    drive(s, wire, shutdown).await;
}

/// A parser for a new stream, past the primer.
fn primed(s: &C2s) -> StreamParser {
    let mut p = StreamParser::new(s.parser_limits());
    let mut primer = PRIMER;
    let _ = p.next(&mut primer);
    p
}

/// One WebSocket under a session.
pub struct Ws {
    shared: Arc<Shared>,
    socket: WebSocket,
    parser: StreamParser,
    /// Input came since the parser's scratch buffers were last freed.
    dirty: bool,
}

impl Ws {
    async fn on_text(&mut self, s: &mut C2s, mut data: &[u8]) -> Flow {
        loop {
            let ev = match self.parser.next(&mut data) {
                Ok(Some(ev)) => ev,
                Ok(None) => return Flow::Continue,
                Err(e) => return Flow::Close(e.into()),
            };
            let flow = match ev {
                StreamEvent::Element(el) if el.ns() == NS_FRAMING => match el.name() {
                    "open" => s.on_event(StreamEvent::Header(open_header(el))).await,
                    "close" => Flow::End,
                    _ => Flow::Close(StreamError::with_text(
                        Condition::UnsupportedStanzaType,
                        format!("unexpected <{}/> in {NS_FRAMING}", el.name()),
                    )),
                },
                ev => s.on_event(ev).await,
            };
            match flow {
                Flow::Continue => {}
                // After SASL the client opens a new stream with `<open/>` (RFC 7395 §3.5).
                Flow::Restart => {
                    self.parser = primed(s);
                    s.restart(None);
                }
                other => return other,
            }
        }
    }
}

/// `<open/>` as the stream header it stands for (RFC 7395 §3.3.2).
fn open_header(open: Element) -> StreamHeader {
    StreamHeader {
        ns: NS_STREAMS.into(),
        name: "stream".into(),
        attrs: open
            .attrs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// What a read gives.
pub enum Input {
    /// A message.
    Message(Message),
    /// A message over `c2s.max_stanza_size` (not read).
    TooBig,
}

impl Wire for Ws {
    type Input = Input;

    async fn read(&mut self) -> Option<Input> {
        match self.socket.recv().await {
            Some(Ok(Message::Close(_))) | None => None,
            Some(Ok(m)) => Some(Input::Message(m)),
            Some(Err(e)) => {
                let e = e.into_inner();
                match e.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
                    Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) => Some(Input::TooBig),
                    // A broken connection (a resumable session waits for its client).
                    _ => None,
                }
            }
        }
    }

    async fn feed(&mut self, s: &mut C2s, input: Input) -> Flow {
        let msg = match input {
            Input::Message(m) => m,
            // RFC 6120 §4.9.3.18, as on TCP.
            Input::TooBig => {
                return Flow::Close(StreamError::with_text(
                    Condition::PolicyViolation,
                    "the stanza is too large",
                ));
            }
        };
        match msg {
            Message::Text(t) => {
                self.dirty = true;
                self.on_text(s, t.as_bytes()).await
            }
            // RFC 7395 §3.2: XMPP goes in text messages only.
            Message::Binary(_) => Flow::Close(StreamError::with_text(
                Condition::UnsupportedEncoding,
                "XMPP over WebSocket uses text messages",
            )),
            // tungstenite answers pings itself; a pong shows the client is there.
            _ => Flow::Continue,
        }
    }

    async fn flush(&mut self, s: &mut C2s, wires: &Wires) -> std::io::Result<()> {
        if s.output().is_empty() {
            return Ok(());
        }
        let messages = s.output().take_messages();
        let limit = Duration::from_secs(self.shared.config.c2s.write_timeout_secs);
        let send = async {
            for (_, m) in messages {
                let text = String::from_utf8(m)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                self.socket.feed(Message::Text(text.into())).await?;
            }
            self.socket.flush().await
        };
        let r = tokio::select! {
            r = send => r.map_err(std::io::Error::other),
            _ = tokio::time::sleep(limit) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut, "the client stopped reading")),
            _ = queue_full(wires) => Err(std::io::Error::other(
                "the queue filled while the client was not reading")),
        };
        r
    }

    fn release_idle(&mut self) {
        self.parser.release_temporaries();
        self.dirty = false;
    }

    fn holds_buffer(&self) -> bool {
        self.dirty
    }

    /// After our `<close/>` (or when the client is gone): the WebSocket's closing handshake
    /// (RFC 7395 §3.6).
    async fn shutdown(&mut self, _: &mut C2s) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close()).await;
    }
}
