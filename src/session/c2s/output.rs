//! What a c2s session writes: stanzas (counted by XEP-0198 stream management) and nonzas, into
//! an [`Output`] that the transport's driver takes once per loop turn. The output knows the
//! framing: one XML stream (TCP, RFC 6120 §4) or one complete element per message (WebSocket,
//! RFC 7395 §3.3.3), so the session code never writes a stream tag itself.

use super::{C2s, Flow, sm};
use crate::session::SessionMsg;
use crate::stanza::shared::Addressed;
use crate::stream::{StreamError, random_id, write_top_level_as};
use crate::xml::Element;
use crate::xml::escape::escape_attr;

/// `urn:ietf:params:xml:ns:xmpp-framing` (RFC 7395 §3.3.1)
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Capacity of the output buffer kept between writes; a bigger one (after a burst) is freed.
const KEEP_OUT: usize = 4 * 1024;

/// How the session's output is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One XML stream: `<stream:stream>` … `</stream:stream>` (RFC 6120 §4).
    Stream,
    /// One complete element per message: `<open/>` … `<close/>` (RFC 7395 §3.3).
    Messages,
}

/// What one message of [`Framing::Messages`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Our stream header (`<open/>`).
    Header,
    /// A stanza or nonza.
    Element,
    /// The end of our stream (`<close/>`).
    Close,
}

/// Bytes waiting to be written, and (for [`Framing::Messages`]) where each message ends.
#[derive(Debug)]
pub struct Output {
    framing: Framing,
    buf: Vec<u8>,
    ends: Vec<(usize, Part)>,
}

impl Output {
    /// An empty output with this framing.
    pub fn new(framing: Framing) -> Self {
        Output {
            framing,
            buf: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn end_message(&mut self, part: Part) {
        if self.framing == Framing::Messages {
            self.ends.push((self.buf.len(), part));
        }
    }

    /// Our stream header (RFC 6120 §4.7; RFC 7395 §3.3.2), with a fresh random `id`.
    pub fn header(&mut self, from: &str, to: Option<&str>) {
        let id = random_id();
        match self.framing {
            Framing::Stream => crate::stream::response_header(&mut self.buf, from, to, &id),
            Framing::Messages => {
                self.buf.extend_from_slice(b"<open xmlns='");
                self.buf.extend_from_slice(NS_FRAMING.as_bytes());
                self.buf
                    .extend_from_slice(b"' version='1.0' xml:lang='en' from='");
                escape_attr(from, &mut self.buf);
                self.buf.extend_from_slice(b"' id='");
                escape_attr(&id, &mut self.buf);
                if let Some(to) = to {
                    self.buf.extend_from_slice(b"' to='");
                    escape_attr(to, &mut self.buf);
                }
                self.buf.extend_from_slice(b"'/>");
            }
        }
        self.end_message(Part::Header);
    }

    /// A top-level element.
    pub fn element(&mut self, el: &Element) {
        write_top_level_as(el, &mut self.buf, self.framing == Framing::Messages);
        self.end_message(Part::Element);
    }

    /// A shared stanza for one recipient ([`crate::stanza::shared`]).
    pub fn shared(&mut self, a: &Addressed) {
        a.write_as(&mut self.buf, self.framing == Framing::Messages);
        self.end_message(Part::Element);
    }

    /// The end of our stream.
    pub fn close(&mut self) {
        match self.framing {
            Framing::Stream => self.buf.extend_from_slice(b"</stream:stream>"),
            Framing::Messages => {
                self.buf.extend_from_slice(b"<close xmlns='");
                self.buf.extend_from_slice(NS_FRAMING.as_bytes());
                self.buf.extend_from_slice(b"'/>");
            }
        }
        self.end_message(Part::Close);
    }

    /// Takes the bytes (of a stream) to write.
    pub fn take(&mut self) -> Vec<u8> {
        self.ends.clear();
        std::mem::take(&mut self.buf)
    }

    /// Takes the messages to write, each one complete element.
    pub fn take_messages(&mut self) -> Vec<(Part, Vec<u8>)> {
        let mut start = 0;
        let mut messages = Vec::with_capacity(self.ends.len());
        for (end, part) in self.ends.drain(..) {
            messages.push((part, self.buf[start..end].to_vec()));
            start = end;
        }
        self.buf.clear();
        messages
    }

    /// Gives back a written buffer to reuse, unless a burst made it big (idle sessions stay
    /// small).
    pub fn reuse(&mut self, mut written: Vec<u8>) {
        if self.buf.capacity() == 0 && written.capacity() <= KEEP_OUT {
            written.clear();
            self.buf = written;
        }
    }

    /// Frees an empty buffer (a quiet session).
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
            self.ends = Vec::new();
        }
    }
}

impl C2s {
    /// A message from the rest of the server.
    pub(super) fn on_msg(&mut self, msg: SessionMsg) -> Flow {
        match &msg {
            SessionMsg::Stanza(el) => crate::metrics::stanzas_out(el.name(), 1),
            SessionMsg::Batch(b) => crate::metrics::stanzas_out("message", b.stanzas.len() as u64),
            SessionMsg::Shared(a) => crate::metrics::stanzas_out(a.shared.stanza().name(), 1),
            SessionMsg::Close(_) => {}
        }
        match msg {
            SessionMsg::Stanza(el) => {
                self.write_stanza(*el);
                Flow::Continue
            }
            SessionMsg::Batch(b) => {
                let b = *b;
                if b.claimed.is_empty() {
                    for el in b.stanzas {
                        self.write_stanza(el);
                    }
                } else {
                    self.write_claimed(b);
                }
                Flow::Continue
            }
            // The shared bytes as they are (stream management keeps the shared copy, not an
            // element), unless CSI may hold it.
            SessionMsg::Shared(a) if !self.csi.inactive => {
                self.out.shared(&a);
                if let Some(sm) = self.sm.as_mut() {
                    sm.sent(*a, sm::now_ms());
                }
                Flow::Continue
            }
            SessionMsg::Shared(a) => {
                self.write_stanza(a.element());
                Flow::Continue
            }
            SessionMsg::Close(e) => Flow::Close(*e),
        }
    }

    /// Writes claimed offline messages: kept with their claims until the client acknowledges
    /// them (XEP-0198). Without stream management (not expected: claims are made for sessions
    /// that have it) they are deleted once written.
    fn write_claimed(&mut self, b: crate::session::Batch) {
        match self.sm.as_mut() {
            Some(sm) => {
                for (el, id) in b.stanzas.into_iter().zip(b.claimed) {
                    self.out.element(&el);
                    sm.sent_claimed(el, sm::now_ms(), Some(id));
                }
            }
            None => {
                for el in b.stanzas {
                    self.write_stanza(el);
                }
                self.shared.forget_claims(b.claimed);
            }
        }
    }

    /// Deletes claimed offline messages (`acked`) or gives them back to storage. Awaited, so
    /// that what the client sends after its `<a/>` is handled once they are gone. A failure
    /// leaves them claimed until the next start (delivered again, never lost) and is logged.
    pub(super) async fn settle_claims(&self, ids: Vec<i64>, acked: bool) {
        if ids.is_empty() {
            return;
        }
        let offline = &self.shared.storage.offline;
        let r = if acked {
            offline.delete(&ids).await
        } else {
            offline.release(&ids).await
        };
        if let Err(e) = r {
            tracing::error!(n = ids.len(), acked, "offline claims not settled: {e}");
        }
    }

    /// Writes a nonza (features, SASL, SM elements, stream errors): not counted by XEP-0198.
    pub(super) fn write(&mut self, el: &Element) {
        self.out.element(el);
    }

    /// Writes a stanza; with stream management it is kept until the client acknowledges it.
    pub(super) fn send(&mut self, el: Element) {
        self.out.element(&el);
        if let Some(sm) = self.sm.as_mut() {
            sm.sent(el, sm::now_ms());
        }
    }

    /// Queues a stream error and the closing tag; our header first if it was not sent
    /// (RFC 6120 §4.9.1.2).
    pub(super) fn write_stream_error(&mut self, e: &StreamError) {
        self.ensure_header();
        self.write(&e.to_element());
        self.out.close();
    }

    /// Queues the end of our stream (the client ended its own), our header first if needed.
    pub(super) fn write_end(&mut self) {
        self.ensure_header();
        self.out.close();
    }

    fn ensure_header(&mut self) {
        if !self.header_sent {
            let host = self.shared.config.default_host().to_string();
            self.out.header(&host, None);
            self.header_sent = true;
        }
    }
}
