//! The load generator over WebSocket (RFC 7395): the WebSocket (tokio-tungstenite) wrapped as
//! a byte stream, so that every scenario runs unchanged. What the scenarios write is parsed
//! into elements and sent one per message (`<stream:stream>` as `<open/>`, `</stream:stream>`
//! as `<close/>`, each stanza with its namespace declared); what comes back is turned into an
//! XML stream again for their reader.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use anyhow::{Context as _, Result};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use xmppd::stream::write_top_level_as;
use xmppd::xml::parser::{Limits, StreamEvent, StreamParser};

use crate::conn::Io;

use xmppd::session::c2s::NS_FRAMING as FRAMING;
/// What an `<open/>` from the server becomes for the scenarios' stream parser.
const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// A WebSocket as an XML byte stream.
pub struct WsIo {
    ws: WebSocketStream<Box<dyn Io>>,
    /// What was received, as stream bytes, not yet read.
    inbound: Vec<u8>,
    pos: usize,
    /// What the scenario wrote, parsed.
    parser: StreamParser,
    /// Messages waiting to be sent.
    outbound: VecDeque<Message>,
}

/// Opens the WebSocket (`path`, subprotocol `xmpp`) over `io`.
pub async fn connect(io: Box<dyn Io>, host: &str, path: &str) -> Result<WsIo> {
    let mut req = format!("ws://{host}{path}").into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "xmpp".parse()?);
    // Frames go to the socket as they are sent, not when 128 KiB have gathered.
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.write_buffer_size = 0;
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, io, Some(config))
        .await
        .context("WebSocket handshake")?;
    Ok(WsIo {
        ws,
        inbound: Vec::new(),
        pos: 0,
        parser: parser(),
        outbound: VecDeque::new(),
    })
}

fn parser() -> StreamParser {
    StreamParser::new(Limits {
        max_stanza_size: 4 << 20,
        max_stanza_memory: 64 << 20,
        ..Limits::default()
    })
}

/// One message of the server as stream bytes.
fn inbound(text: &str) -> Vec<u8> {
    if text.starts_with("<open") {
        HEADER.to_vec()
    } else if text.starts_with("<close") {
        b"</stream:stream>".to_vec()
    } else {
        text.as_bytes().to_vec()
    }
}

impl WsIo {
    /// Hands queued messages to the WebSocket as far as it takes them.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outbound.is_empty() {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
            if let Some(m) = self.outbound.pop_front() {
                Pin::new(&mut self.ws)
                    .start_send(m)
                    .map_err(io::Error::other)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Parses what a scenario wrote into messages.
    fn frame(&mut self, mut data: &[u8]) -> io::Result<()> {
        // A new stream (after SASL): a new parser.
        if data.starts_with(b"<?xml") || data.starts_with(b"<stream:stream") {
            self.parser = parser();
        }
        loop {
            let text = match self.parser.next(&mut data).map_err(io::Error::other)? {
                None => return Ok(()),
                Some(StreamEvent::Header(h)) => format!(
                    "<open xmlns='{FRAMING}' to='{}' version='1.0'/>",
                    h.attr("to").unwrap_or_default()
                ),
                Some(StreamEvent::Element(el)) => {
                    let mut out = Vec::new();
                    write_top_level_as(&el, &mut out, true);
                    String::from_utf8(out).map_err(io::Error::other)?
                }
                Some(StreamEvent::End) => format!("<close xmlns='{FRAMING}'/>"),
            };
            self.outbound.push_back(Message::Text(text.into()));
        }
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.inbound.len() {
                let n = buf.remaining().min(this.inbound.len() - this.pos);
                buf.put_slice(&this.inbound[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                Some(Ok(Message::Text(t))) => {
                    this.inbound = inbound(t.as_str());
                    this.pos = 0;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        this.frame(data)?;
        // Send now; what the socket does not take yet goes at the next write or flush.
        if this.drain(cx)?.is_ready() {
            let _ = Pin::new(&mut this.ws).poll_flush(cx);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}
