//! What a c2s session writes: stanzas (counted by XEP-0198 stream management) and nonzas,
//! buffered and written once per loop turn, with a bound on how long a write may stall on a
//! client that stopped reading (the slow-consumer rule).

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{C2s, Flow, notified, sm};
use crate::session::SessionMsg;
use crate::stream::{Condition, StreamError, random_id, response_header, write_top_level};
use crate::xml::Element;

/// Capacity of the output buffer kept between writes; a bigger one (after a burst) is freed.
const KEEP_OUT: usize = 4 * 1024;

impl C2s {
    /// Frees what a quiet session does not need between stanzas: the read buffer, the
    /// tokenizer's scratch buffers and empty output buffers. An idle TLS connection keeps
    /// ~18 KiB instead of ~28 (docs/benchmarks.md); the next bytes allocate them again.
    pub(super) fn release_idle(&mut self, read_buf: &mut Vec<u8>) {
        *read_buf = Vec::new();
        self.parser.release_temporaries();
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.raw_out.is_empty() {
            self.raw_out = Vec::new();
        }
    }

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
            // The shared bytes as they are, unless stream management must keep an element
            // or CSI may hold it.
            SessionMsg::Shared(a) if self.sm.is_none() && !self.csi.inactive => {
                a.write(&mut self.out);
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
                    write_top_level(&el, &mut self.out);
                    sm.sent_claimed(el, sm::now_ms(), Some(id));
                }
            }
            None => {
                for el in b.stanzas {
                    self.write_stanza(el);
                }
                let storage = self.shared.storage.clone();
                tokio::spawn(async move {
                    if let Err(e) = storage.offline.delete(&b.claimed).await {
                        tracing::error!("offline claims not deleted: {e}");
                    }
                });
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
        write_top_level(el, &mut self.out);
    }

    /// Writes a stanza; with stream management it is kept until the client acknowledges it.
    pub(super) fn send(&mut self, el: Element) {
        write_top_level(&el, &mut self.out);
        if let Some(sm) = self.sm.as_mut() {
            sm.sent(el, sm::now_ms());
        }
    }

    /// Queues a stream error and the closing tag; our header first if it was not sent
    /// (RFC 6120 §4.9.1.2).
    pub(super) fn write_stream_error(&mut self, e: &StreamError) {
        if !self.header_sent {
            let host = self.shared.config.default_host().to_string();
            response_header(&mut self.out, &host, None, &random_id());
            self.header_sent = true;
        }
        self.write(&e.to_element());
        self.out.extend_from_slice(b"</stream:stream>");
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.flush_within(&sm::Wires::default()).await
    }

    /// Writes what is buffered. A client that stops reading stalls the write: after
    /// `c2s.write_timeout_secs`, or as soon as its queue overflows meanwhile, this gives up
    /// with an error (RFC 6120 §4.9.3.17 resource-constraint is attempted on the way out).
    pub(super) async fn flush_within(&mut self, wires: &sm::Wires) -> std::io::Result<()> {
        if self.out.is_empty() && self.raw_out.is_empty() {
            return Ok(());
        }
        // What goes on the wire: as is, or (XEP-0138) after what was final before compression
        // started, deflated with a sync flush.
        let mut wire = match self.zlib.as_mut() {
            None if self.raw_out.is_empty() => std::mem::take(&mut self.out),
            None => {
                let mut w = std::mem::take(&mut self.raw_out);
                w.append(&mut self.out);
                w
            }
            Some(z) => {
                let mut w = std::mem::take(&mut self.raw_out);
                if !self.out.is_empty() {
                    w.extend(z.deflate(&self.out));
                }
                self.out.clear();
                w
            }
        };
        let limit = Duration::from_secs(self.shared.config.c2s.write_timeout_secs);
        let mut pos = 0;
        let stalled = {
            let deadline = tokio::time::sleep(limit);
            tokio::pin!(deadline);
            loop {
                if pos == wire.len() {
                    break self.conn.flush().await.err();
                }
                tokio::select! {
                    r = self.conn.write(&wire[pos..]) => match r {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => pos += n,
                        Err(e) => return Err(e),
                    },
                    _ = &mut deadline => break Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut, "the client stopped reading")),
                    _ = notified(&wires.full) => break Some(std::io::Error::other(
                        "the queue filled while the client was not reading")),
                }
            }
        };
        if let Some(e) = stalled {
            // Best effort: the rest and the stream error, in case the client wakes up.
            let mut rest = wire.split_off(pos);
            let mut end = Vec::new();
            let err = StreamError::with_text(Condition::ResourceConstraint, e.to_string());
            write_top_level(&err.to_element(), &mut end);
            end.extend_from_slice(b"</stream:stream>");
            match self.zlib.as_mut() {
                Some(z) => rest.extend(z.deflate(&end)),
                None => rest.extend(end),
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.write_all(&rest)).await;
            return Err(e);
        }
        // Keep the buffer for next time, unless a burst made it big (idle sessions stay small).
        if self.out.capacity() == 0 && wire.capacity() <= KEEP_OUT {
            wire.clear();
            self.out = wire;
        }
        Ok(())
    }
}
