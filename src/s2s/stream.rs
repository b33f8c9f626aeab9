//! One server-to-server XML stream over TCP, before and after TLS, for either direction: reads
//! stream events with the configured size limits, writes our header and top-level elements.
//!
//! Stanzas inside the server are in `jabber:client`; on a server stream they are in
//! `jabber:server` (RFC 6120 §4.8.3). Both are the stream's default namespace, so a stanza is
//! written without a namespace declaration (it takes the stream's) and one that is read is
//! moved to `jabber:client` before it is routed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::stream::{NS_CLIENT, NS_STREAMS, StreamError, write_top_level};
use crate::xml::escape::escape_attr;
use crate::xml::{Element, Limits, StreamEvent, StreamParser, XmlError};

/// `jabber:server`
pub const NS_SERVER: &str = "jabber:server";
/// `jabber:server:dialback` (XEP-0220)
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// `urn:xmpp:features:dialback`: dialback offered as a stream feature (XEP-0220 §2.4).
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// `urn:xmpp:bidi`: the request for a bidirectional stream (XEP-0288 §2.2).
pub const NS_BIDI: &str = "urn:xmpp:bidi";
/// `urn:xmpp:features:bidi`: bidirectional streams offered (XEP-0288 §2.1).
pub const NS_BIDI_FEATURE: &str = "urn:xmpp:features:bidi";

/// How long one write may take before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size.
const READ_BUF: usize = 4096;

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    /// The socket failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer's XML broke the rules.
    #[error("{0}")]
    Xml(#[from] XmlError),
    /// The peer closed the stream (`</stream:stream>`).
    #[error("the peer closed the stream")]
    Closed,
}

/// The byte stream: plain TCP, or TLS over it (either side of the handshake).
pub enum Io {
    /// Before TLS.
    Plain(TcpStream),
    /// After TLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// While the handshake owns the socket.
    Gone,
}

/// One server stream.
pub struct S2sStream {
    /// The socket.
    pub io: Io,
    /// The peer offered stream management (XEP-0198) after authentication.
    pub sm_offered: bool,
    /// The stream is bidirectional (XEP-0288): we asked for it, the peer offered it.
    pub bidi: bool,
    parser: StreamParser,
    limits: Limits,
    /// Bytes read and not parsed yet.
    data: Vec<u8>,
    pos: usize,
    rbuf: Box<[u8; READ_BUF]>,
}

impl S2sStream {
    /// A stream over `io` with `limits` on what the peer sends.
    pub fn new(io: Io, limits: Limits) -> Self {
        S2sStream {
            io,
            sm_offered: false,
            bidi: false,
            parser: StreamParser::new(limits),
            limits,
            data: Vec::new(),
            pos: 0,
            rbuf: Box::new([0; READ_BUF]),
        }
    }

    /// Starts parsing a new stream (after TLS or SASL, RFC 6120 §4.3.3); what was read and not
    /// parsed is dropped (it came before the restart: STARTTLS command injection).
    pub fn restart(&mut self) {
        self.parser = StreamParser::new(self.limits);
        self.data.clear();
        self.pos = 0;
    }

    /// Whether TLS is up.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// The peer's certificate chain, leaf first (empty without TLS or without one).
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        let certs = match &self.io {
            Io::Tls(t) => match t.as_ref() {
                TlsStream::Client(c) => c.get_ref().1.peer_certificates(),
                TlsStream::Server(s) => s.get_ref().1.peer_certificates(),
            },
            _ => None,
        };
        certs
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default()
    }

    /// The next stream event. Cancel-safe: bytes already read stay for the next call.
    pub async fn next(&mut self) -> Result<StreamEvent, StreamEnd> {
        loop {
            if self.pos < self.data.len() {
                let mut input = &self.data[self.pos..];
                let ev = self.parser.next(&mut input)?;
                self.pos = self.data.len() - input.len();
                match ev {
                    Some(StreamEvent::End) => return Err(StreamEnd::Closed),
                    Some(ev) => return Ok(ev),
                    None => {}
                }
            }
            self.data.clear();
            self.pos = 0;
            let n = match &mut self.io {
                Io::Plain(t) => t.read(&mut self.rbuf[..]).await?,
                Io::Tls(t) => t.read(&mut self.rbuf[..]).await?,
                Io::Gone => 0,
            };
            if n == 0 {
                return Err(StreamEnd::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.data.extend_from_slice(&self.rbuf[..n]);
        }
    }

    /// The next top-level element (a header here is a protocol error of the peer's).
    pub async fn element(&mut self) -> Result<Element, StreamEnd> {
        match self.next().await? {
            StreamEvent::Element(e) => Ok(e),
            _ => Err(StreamEnd::Xml(XmlError::NotWellFormed(
                "a second stream header".into(),
            ))),
        }
    }

    /// Writes bytes, bounded in time.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let w = async {
            match &mut self.io {
                Io::Plain(t) => t.write_all(bytes).await,
                Io::Tls(t) => {
                    t.write_all(bytes).await?;
                    t.flush().await
                }
                Io::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, w).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes one top-level element.
    pub async fn send(&mut self, el: &Element) -> std::io::Result<()> {
        let mut out = Vec::new();
        write_top_level(el, &mut out);
        self.write_raw(&out).await
    }

    /// Writes our stream header (RFC 6120 §4.7, with the dialback namespace, XEP-0220 §2.1).
    pub async fn header(
        &mut self,
        from: Option<&str>,
        to: Option<&str>,
        id: Option<&str>,
    ) -> std::io::Result<()> {
        let mut out = Vec::new();
        header(&mut out, from, to, id);
        self.write_raw(&out).await
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9).
    pub async fn fail(&mut self, e: &StreamError) {
        let mut out = Vec::new();
        write_top_level(&e.to_element(), &mut out);
        out.extend_from_slice(b"</stream:stream>");
        let _ = self.write_raw(&out).await;
        self.close().await;
    }

    /// Closes our side: `</stream:stream>`, then the socket.
    pub async fn close(&mut self) {
        let _ = self.write_raw(b"</stream:stream>").await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            match &mut self.io {
                Io::Plain(t) => t.shutdown().await,
                Io::Tls(t) => t.shutdown().await,
                Io::Gone => Ok(()),
            }
        })
        .await;
        self.io = Io::Gone;
    }
}

/// A server stream header.
pub fn header(out: &mut Vec<u8>, from: Option<&str>, to: Option<&str>, id: Option<&str>) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    out.extend_from_slice(NS_SERVER.as_bytes());
    out.extend_from_slice(b"' xmlns:stream='");
    out.extend_from_slice(NS_STREAMS.as_bytes());
    out.extend_from_slice(b"' xmlns:db='");
    out.extend_from_slice(NS_DIALBACK.as_bytes());
    out.extend_from_slice(b"' version='1.0'");
    for (k, v) in [("from", from), ("to", to), ("id", id)] {
        if let Some(v) = v {
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr(v, out);
            out.push(b'\'');
        }
    }
    out.push(b'>');
}

/// A stanza read on a server stream, moved into the namespace the router knows.
pub fn into_client_ns(mut el: Element) -> Element {
    el.rename_ns(NS_SERVER, NS_CLIENT);
    el
}

/// Whether `el` is a stanza of a server stream.
pub fn is_server_stanza(el: &Element) -> bool {
    el.ns() == NS_SERVER && matches!(el.name(), "message" | "presence" | "iq")
}
