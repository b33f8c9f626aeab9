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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Instrument, info_span};

use super::{Conn, HttpState};
use crate::session::c2s::driver::{Wire, drive, queue_full};
use crate::session::c2s::{C2s, Flow, Framing, Link, NS_FRAMING, Shared, Wires};
use crate::stream::{Condition, NS_STREAMS, StreamError, random_id};
use crate::xml::{Element, StreamEvent, StreamHeader, StreamParser};

/// What the parser is primed with: the namespaces a TCP stream header would declare.
const PRIMER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";
/// Initial read buffer of a WebSocket (tungstenite's default is 128 KiB per connection).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes of outgoing frames buffered before they are written to the socket.
const WRITE_BUFFER: usize = 4 * 1024;
/// What may be read beyond one message's bound: the library reads ahead one buffer, and frame
/// headers.
const READ_SLACK: usize = READ_BUFFER + 64;

/// The socket under a WebSocket session.
type Socket = WebSocketStream<Budget<TokioIo<hyper::upgrade::Upgraded>>>;

/// Where the client is, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client's address (a trusted proxy's `X-Forwarded-For` applied).
    pub addr: SocketAddr,
    /// Whether the client's path is encrypted or private: HTTPS, a loopback connection, or a
    /// trusted proxy that says it received HTTPS.
    pub secure: bool,
}

fn refuse(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

/// `GET /xmpp-websocket`: the opening handshake (RFC 6455 §4.2) for the `xmpp` subprotocol
/// (RFC 7395 §3.1), then a session on the upgraded connection. The handshake is done here
/// rather than by a framework's extractor so that the connection can be wrapped in a
/// [`Budget`]: what a peer makes the server read for one message is bounded by the session's
/// phase (16 KiB before authentication), not only by the library's fixed message limit.
pub async fn upgrade(state: Arc<HttpState>, conn: Arc<Conn>, mut req: Request) -> Response {
    let config = &state.c2s.config;
    if !config.http.websocket {
        return StatusCode::NOT_FOUND.into_response();
    }
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket upgrade is expected here\n",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut r = refuse(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing\n");
    };
    // RFC 7395 §3.1: the subprotocol must be `xmpp`.
    if !has(header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol 'xmpp' is required (RFC 7395)\n",
        );
    }
    // A page from another site must not open sessions with its visitors' browsers unless
    // allowed; clients that are not browsers send no Origin.
    let origins = &config.http.websocket_origins;
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origins.is_empty()
        && !origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
    {
        return refuse(StatusCode::FORBIDDEN, "this Origin may not connect\n");
    }
    let client = conn.client(&state.proxies, headers);
    // The session takes over the connection's slot; behind a proxy, its client's too.
    let mut guard = None;
    if state.proxies.trusts(conn.peer.ip()) {
        match state.c2s.limits.admit_forwarded(client.addr.ip()) {
            Ok(g) => guard = Some(g),
            Err(why) => {
                tracing::debug!(client = %client.addr, ?why, "WebSocket refused by limits");
                return refuse(StatusCode::TOO_MANY_REQUESTS, "too many connections\n");
            }
        }
    }
    if let Some(c) = conn.take_guard() {
        guard = Some(match guard {
            Some(g) => c.join(g),
            None => c,
        });
    }
    let upgrading = hyper::upgrade::on(&mut req);
    let (shared, shutdown, alive) = (
        state.c2s.clone(),
        state.shutdown.clone(),
        state.alive.clone(),
    );
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let span = info_span!("ws", id = %random_id(), peer = %client.addr);
        let open = crate::metrics::open("websocket");
        run(shared, upgraded, client, shutdown)
            .instrument(span)
            .await;
        drop((guard, open, alive));
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("xmpp"),
    );
    r
}

async fn run(
    shared: Arc<Shared>,
    upgraded: hyper::upgrade::Upgraded,
    client: Client,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let link = Link::web(client.addr, client.secure, "websocket");
    let s = C2s::new(shared.clone(), link, Framing::Messages);
    // A message is at most one stanza (RFC 7395 §3.3.3); the budget bounds it by phase.
    let max = shared.config.c2s.max_stanza_size;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max);
    config.max_frame_size = Some(max);
    config.read_buffer_size = READ_BUFFER;
    config.write_buffer_size = WRITE_BUFFER;
    let io = Budget {
        io: TokioIo::new(upgraded),
        left: s.parser_limits().max_stanza_size + READ_SLACK,
        scratch: Vec::new(),
    };
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let wire = Ws {
        parser: primed(&s),
        shared,
        socket,
        dirty: false,
    };
    drive(s, wire, shutdown).await;
}

/// The upgraded connection, with a bound on what may be read before the next message is
/// complete: the session's stanza size for its phase, plus what the library reads ahead.
pub struct Budget<IO> {
    io: IO,
    left: usize,
    scratch: Vec<u8>,
}

impl<IO> Budget<IO> {
    /// Whether the budget is spent (the peer sent more than one message may hold).
    fn spent(&self) -> bool {
        self.left == 0
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Budget<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(Err(std::io::Error::other("message budget spent")));
        }
        if buf.remaining() <= this.left {
            let before = buf.filled().len();
            std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            this.left -= buf.filled().len() - before;
            return Poll::Ready(Ok(()));
        }
        // Near the bound: read no more than what is left.
        this.scratch.resize(this.left, 0);
        let mut tmp = ReadBuf::new(&mut this.scratch);
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, &mut tmp))?;
        let n = tmp.filled().len();
        buf.put_slice(&this.scratch[..n]);
        this.left -= n;
        this.scratch = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Budget<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
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
    socket: Socket,
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
        match self.socket.next().await {
            Some(Ok(Message::Close(_))) | None => None,
            Some(Ok(m)) => Some(Input::Message(m)),
            // Over the library's message limit, or over the phase's budget: refused with a
            // stream error, not a silent drop.
            Some(Err(WsError::Capacity(_))) => Some(Input::TooBig),
            Some(Err(_)) if self.socket.get_ref().spent() => Some(Input::TooBig),
            // A broken connection (a resumable session waits for its client).
            Some(Err(_)) => None,
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
        let flow = match msg {
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
        };
        // The next message may read as much as the session's phase allows (more once
        // authenticated).
        self.socket.get_mut().left = s.parser_limits().max_stanza_size + READ_SLACK;
        flow
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
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close(None)).await;
    }
}
