//! The reading half of a load-generator connection, and the writing half it shares.
//!
//! Two ways to read: [`Reader::next`] parses each top-level element with the server's own
//! parser (for negotiation and scenarios that look inside stanzas); [`Reader::next_raw`] only
//! finds where each top-level element ends and classifies it (its name, `type='error'`, a
//! `<subject>`, the stamp in a `<body>`), without building it. The second exists because a
//! room of 500 occupants delivers up to 200,000 messages a second to one load generator that
//! shares two cores with the server: a full parse of each was the benchmark's limit. It relies
//! on what every server sends on a client stream once it is negotiated (no comments, no CDATA,
//! no prefixed stanza names) and is only used there.
//!
//! With stream management on (XEP-0198), both ways count the stanzas received and answer the
//! server's `<r/>` with `<a h='…'/>` through the shared [`Writer`], so every session acks
//! whatever its scenario does with it (receive-only room occupants too).

use std::sync::Arc;

use anyhow::{Result, bail};
use memchr::memmem;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use xmppd::stream::NS_STREAMS as STREAMS;
use xmppd::xml::Element;
use xmppd::xml::parser::{Limits, StreamEvent, StreamParser};

use crate::conn::Io;
use crate::stats::stamp;

/// XEP-0198's namespace.
pub const NS_SM: &str = "urn:xmpp:sm:3";

/// The most one top-level element may take in the raw reader's buffer.
const MAX_RAW: usize = 4 << 20;

/// The writing half of a session, shared by the scenario and (with stream management) the
/// reader, which answers ack requests through it.
#[derive(Clone)]
pub struct Writer {
    io: Arc<tokio::sync::Mutex<WriteHalf<Box<dyn Io>>>>,
    /// Stream management is on: each stanza sent by [`Writer::stanza`] asks for an ack.
    sm: bool,
}

impl Writer {
    pub fn new(io: WriteHalf<Box<dyn Io>>, sm: bool) -> Self {
        Writer {
            io: Arc::new(tokio::sync::Mutex::new(io)),
            sm,
        }
    }

    /// Writes a whole string, and flushes it (a no-op on TCP; over WebSocket the message may
    /// otherwise wait in the library for the next write).
    pub async fn send(&self, s: &str) -> Result<()> {
        let mut io = self.io.lock().await;
        io.write_all(s.as_bytes()).await?;
        io.flush().await?;
        Ok(())
    }

    /// Sends a stanza; with stream management, an ack request follows it in the same write,
    /// as a mobile client that shows "received by the server" for each message does.
    pub async fn stanza(&self, s: &str) -> Result<()> {
        match self.sm {
            true => self.send(&format!("{s}<r xmlns='{NS_SM}'/>")).await,
            false => self.send(s).await,
        }
    }
}

/// Parses (or scans) the incoming stream.
pub struct Reader<R> {
    pub(crate) io: R,
    pub(crate) parser: StreamParser,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// Raw reading: where the scan goes on, and the depth there (0: between stanzas).
    scan: usize,
    depth: usize,
    /// Stream management: stanzas received since it was enabled, and where acks go.
    handled: Option<u32>,
    acks: Option<Writer>,
}

/// What kind of top-level element the raw reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Presence,
    Iq,
    Other,
}

/// One top-level element as the raw reader saw it.
#[derive(Debug)]
pub struct Raw {
    pub kind: Kind,
    /// The start tag says `type='error'`.
    pub error: bool,
    /// It has a `<subject>` (a room's subject ends a join).
    pub subject: bool,
    /// The step and send time of a scenario's message body, when it carries one.
    pub stamp: Option<(u64, u64)>,
}

pub fn limits() -> Limits {
    Limits {
        max_stanza_size: 4 << 20,
        max_stanza_memory: 64 << 20,
        max_depth: 64,
        ..Limits::default()
    }
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader {
            io,
            parser: StreamParser::new(limits()),
            buf: vec![0; 4096],
            pos: 0,
            len: 0,
            scan: 0,
            depth: 0,
            handled: None,
            acks: None,
        }
    }

    /// The same reader over the read half of its connection, and the write half.
    pub fn split(self) -> (Reader<ReadHalf<R>>, WriteHalf<R>)
    where
        R: AsyncWrite,
    {
        let (io, w) = tokio::io::split(self.io);
        let r = Reader {
            io,
            parser: self.parser,
            buf: self.buf,
            pos: self.pos,
            len: self.len,
            scan: self.pos,
            depth: 0,
            handled: self.handled,
            acks: self.acks,
        };
        (r, w)
    }

    /// From now on, count stanzas and answer `<r/>` through `w` (after `<enabled/>`).
    pub fn enable_acks(&mut self, w: Writer) {
        self.handled = Some(0);
        self.acks = Some(w);
    }

    /// Answers an ack request (what is awaited holds no borrow of the reader, which is not
    /// `Sync`).
    fn ack(&self) -> impl Future<Output = Result<()>> + use<R> {
        let due = match (self.handled, &self.acks) {
            (Some(h), Some(w)) => Some((w.clone(), format!("<a xmlns='{NS_SM}' h='{h}'/>"))),
            _ => None,
        };
        async move {
            match due {
                Some((w, a)) => w.send(&a).await,
                None => Ok(()),
            }
        }
    }

    fn count(&mut self) {
        if let Some(h) = &mut self.handled {
            *h = h.wrapping_add(1);
        }
    }

    /// The next top-level element; an error when the stream ends or breaks. Ack requests
    /// are answered here (with stream management on) and not returned.
    pub async fn next(&mut self) -> Result<Element> {
        loop {
            while self.pos < self.len {
                let mut input = &self.buf[self.pos..self.len];
                let ev = self.parser.next(&mut input)?;
                self.pos = self.len - input.len();
                match ev {
                    Some(StreamEvent::Element(e)) if e.is("error", STREAMS) => {
                        bail!("stream error: {}", e.to_string_in(""))
                    }
                    Some(StreamEvent::Element(e)) if e.ns() == NS_SM && self.acks.is_some() => {
                        if e.name() == "r" {
                            self.ack().await?;
                        }
                    }
                    Some(StreamEvent::Element(e)) => {
                        if matches!(e.name(), "message" | "presence" | "iq") {
                            self.count();
                        }
                        // Between stanzas: the raw reader may take over from here.
                        (self.scan, self.depth) = (self.pos, 0);
                        return Ok(e);
                    }
                    Some(StreamEvent::End) => bail!("the server closed the stream"),
                    Some(StreamEvent::Header(_)) | None => {}
                }
            }
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            (self.pos, self.len) = (0, n);
        }
    }

    /// The next element that satisfies `pick`, dropping anything else.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Element) -> bool,
    ) -> Result<Element> {
        loop {
            let e = self
                .next()
                .await
                .map_err(|e| e.context(format!("waiting for {what}")))?;
            if pick(&e) {
                return Ok(e);
            }
        }
    }

    /// The next top-level stanza, scanned rather than parsed (see the module's text); ack
    /// requests are answered here. Use it only after the last [`Reader::next`].
    pub async fn next_raw(&mut self) -> Result<Raw> {
        loop {
            if let Some((a, b)) = self.scan_one()? {
                let raw = classify(&self.buf[a..b])?;
                match raw {
                    Some(r) => {
                        if r.kind != Kind::Other {
                            self.count();
                        }
                        return Ok(r);
                    }
                    None => self.ack().await?,
                }
                continue;
            }
            // Keep the unfinished element, at the front of the buffer.
            self.buf.copy_within(self.pos..self.len, 0);
            (self.len, self.scan, self.pos) = (self.len - self.pos, self.scan - self.pos, 0);
            if self.len == self.buf.len() {
                if self.len >= MAX_RAW {
                    bail!("a stanza of more than {MAX_RAW} bytes");
                }
                self.buf.resize(self.len * 2, 0);
            }
            let n = self.io.read(&mut self.buf[self.len..]).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.len += n;
        }
    }

    /// The bounds of the next complete top-level element in the buffer, if there is one.
    fn scan_one(&mut self) -> Result<Option<(usize, usize)>> {
        loop {
            let Some(i) = memchr::memchr(b'<', &self.buf[self.scan..self.len]) else {
                self.scan = self.len;
                if self.depth == 0 {
                    self.pos = self.len;
                }
                return Ok(None);
            };
            let lt = self.scan + i;
            if self.depth == 0 {
                self.pos = lt;
            }
            let Some(end) = tag_end(&self.buf[lt..self.len]) else {
                self.scan = lt;
                return Ok(None);
            };
            self.scan = lt + end + 1;
            let tag = &self.buf[lt..self.scan];
            match tag.get(1) {
                Some(b'/') if self.depth == 0 => bail!("the server closed the stream"),
                Some(b'/') => self.depth -= 1,
                Some(b'?' | b'!') => continue,
                _ if tag.len() >= 3 && tag[tag.len() - 2] == b'/' => {}
                _ => self.depth += 1,
            }
            if self.depth == 0 {
                return Ok(Some((self.pos, self.scan)));
            }
        }
    }
}

/// Where the tag that `b` starts with ends (the index of its `>`), quotes respected.
fn tag_end(b: &[u8]) -> Option<usize> {
    let mut quote = 0u8;
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            _ if quote != 0 && c == quote => quote = 0,
            _ if quote != 0 => {}
            b'\'' | b'"' => quote = c,
            b'>' => return Some(i),
            _ => {}
        }
    }
    None
}

/// What a complete top-level element is; `None` for a stream management ack request.
/// A stream error is an error.
fn classify(el: &[u8]) -> Result<Option<Raw>> {
    let name_end = el
        .iter()
        .position(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(el.len());
    let name = &el[1..name_end];
    let start = &el[..tag_end(el).unwrap_or(el.len() - 1) + 1];
    let kind = match name {
        b"message" => Kind::Message,
        b"presence" => Kind::Presence,
        b"iq" => Kind::Iq,
        b"r" if memmem::find(start, NS_SM.as_bytes()).is_some() => return Ok(None),
        b"stream:error" => bail!("stream error: {}", String::from_utf8_lossy(el)),
        _ => Kind::Other,
    };
    let error = memmem::find(start, b"type='error'").is_some()
        || memmem::find(start, b"type=\"error\"").is_some();
    let mut raw = Raw {
        kind,
        error,
        subject: false,
        stamp: None,
    };
    if kind == Kind::Message {
        raw.subject = memmem::find(el, b"<subject").is_some();
        raw.stamp = body(el).and_then(|b| stamp(std::str::from_utf8(b).ok()?));
    }
    Ok(Some(raw))
}

/// The text of a message's `<body>` (as sent: scenario bodies need no unescaping).
fn body(el: &[u8]) -> Option<&[u8]> {
    let at = memmem::find(el, b"<body")?;
    let open = at + tag_end(&el[at..])?;
    if el[open - 1] == b'/' {
        return None;
    }
    let len = memmem::find(&el[open + 1..], b"</body>")?;
    Some(&el[open + 1..open + 1 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[&[u8]]) -> (Vec<Raw>, String) {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let chunks: Vec<Vec<u8>> = input.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            for c in chunks {
                a.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut r = Reader::new(b);
        r.buf = vec![0; 16];
        let mut out = Vec::new();
        let end = loop {
            match r.next_raw().await {
                Ok(x) => out.push(x),
                Err(e) => break e.to_string(),
            }
        };
        (out, end)
    }

    #[tokio::test]
    async fn stanzas_split_anywhere_are_found_and_classified() {
        let stream: &[u8] =
            b" <message from='r@c/x' type='groupchat'><body>3 1234</body></message>\
            <presence type=\"error\" from='a>b'><x/></presence><iq type='result' id='1'/>\
            <message><subject>hi</subject></message><message><body/></message>\
            </stream:stream>";
        for cut in [1, 3, 7, 40, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
            let (got, end) = all(&chunks).await;
            assert_eq!(got.len(), 5, "cut {cut}: {got:?}");
            assert_eq!(got[0].kind, Kind::Message);
            assert_eq!(got[0].stamp, Some((3, 1234)));
            assert!(!got[0].error && !got[0].subject);
            assert_eq!(got[1].kind, Kind::Presence);
            assert!(got[1].error);
            assert_eq!(got[2].kind, Kind::Iq);
            assert!(got[3].subject && got[3].stamp.is_none());
            assert!(got[4].stamp.is_none());
            assert!(end.contains("closed the stream"), "{end}");
        }
        let (got, end) = all(&[b"<iq/><stream:error><conflict/></stream:error>"]).await;
        assert_eq!(got.len(), 1);
        assert!(
            end.contains("stream error") && end.contains("conflict"),
            "{end}"
        );
    }

    #[tokio::test]
    async fn with_stream_management_ack_requests_are_answered_with_the_count() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(Box::new(client) as Box<dyn Io>);
        let mut reader = Reader::new(r);
        reader.enable_acks(Writer::new(w, true));
        server
            .write_all(
                b"<message><body>1 2</body></message><a xmlns='urn:xmpp:sm:3' h='1'/>\
                  <presence/><r xmlns='urn:xmpp:sm:3'/><iq type='get' id='p'/>",
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(reader.next_raw().await.unwrap().kind);
        }
        assert_eq!(got, [Kind::Message, Kind::Other, Kind::Presence, Kind::Iq]);
        let mut answer = vec![0; 64];
        let n = server.read(&mut answer).await.unwrap();
        assert_eq!(&answer[..n], b"<a xmlns='urn:xmpp:sm:3' h='2'/>");
    }

    #[tokio::test]
    async fn the_raw_reader_takes_over_where_the_parser_stopped() {
        let (mut server, client) = tokio::io::duplex(1 << 16);
        let mut r = Reader::new(client);
        server
            .write_all(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><iq type='result' id='x'/><presence/>")
            .await
            .unwrap();
        assert_eq!(r.next().await.unwrap().name(), "iq");
        let p = r.next_raw().await.unwrap();
        assert_eq!(p.kind, Kind::Presence);
        server
            .write_all(b"<message><body>5 6</body></message>")
            .await
            .unwrap();
        let m = r.next_raw().await.unwrap();
        assert_eq!((m.kind, m.stamp), (Kind::Message, Some((5, 6))));
    }
}
