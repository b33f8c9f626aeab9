//! Bidirectional server streams (XEP-0288): one connection carries stanzas both ways, where
//! RFC 6120 would use one per direction.
//!
//! - **Initiating** (`connect.rs`, `outgoing.rs`): when the peer offers
//!   `<bidi xmlns='urn:xmpp:features:bidi'/>` after TLS we send `<bidi xmlns='urn:xmpp:bidi'/>`
//!   before authenticating, and then accept on our outgoing stream `local → remote` the
//!   stanzas of the inverse pair only (from `remote`, to `local`: §2.2, what the peer is
//!   authenticated for there), checked as on an incoming stream ([`check_reverse`]). With
//!   stream management the peer may ask us to acknowledge them.
//! - **Receiving** (`incoming/`): we offer the feature, and once a pair is authenticated on a
//!   stream that asked for it, the stream becomes our outgoing route for the inverse pair,
//!   unless we have one already ([`Reverse`]). The same bounded queue as an outgoing stream's
//!   feeds it; with stream management (the peer enabled it) we ask for acknowledgements of what
//!   we send, and when the stream ends what was not acknowledged (or not written) goes back
//!   through the router: on a new outgoing stream, else bounced.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jid::Jid;
use tokio::sync::mpsc;

use super::stream::S2sStream;
use super::{Outbound, S2s};
use crate::stanza::ErrorCondition;
use crate::stream::sm::{self, StreamMgmt};
use crate::stream::{Condition, StreamError};
use crate::xml::Element;

/// Stanzas written at once.
const BATCH: usize = 64;

/// The domain of a stanza's `from` or `to`, lower-cased.
pub fn domain_of(e: &Element, attr: &str) -> Option<String> {
    e.attr(attr)
        .and_then(|j| Jid::new(j).ok())
        .map(|j| j.domain().as_str().to_ascii_lowercase())
}

/// Whether the peer may send `e` on our stream `local → remote`: from `remote`, to `local`.
pub fn check_reverse(e: &Element, local: &str, remote: &str) -> Result<(), StreamError> {
    let (Some(from), Some(to)) = (domain_of(e, "from"), domain_of(e, "to")) else {
        return Err(StreamError::with_text(
            Condition::ImproperAddressing,
            "a stanza needs a valid 'from' and 'to'",
        ));
    };
    if from != remote {
        return Err(StreamError::with_text(
            Condition::InvalidFrom,
            format!("only {remote} may send on this stream"),
        ));
    }
    if to != local {
        return Err(StreamError::with_text(
            Condition::HostUnknown,
            format!("only {local} is reached on this stream"),
        ));
    }
    Ok(())
}

/// The sending half of an incoming bidirectional stream.
pub struct Reverse {
    tx: mpsc::Sender<Element>,
    rx: mpsc::Receiver<Element>,
    bytes: Arc<AtomicUsize>,
    id: u64,
    /// The pairs (local, remote) it is the outgoing route of.
    pairs: Vec<(String, String)>,
    /// Acknowledgements of what we send, once the peer enabled stream management.
    sm: Option<StreamMgmt>,
    /// What a failed write may not have delivered (without stream management).
    unsent: Vec<Element>,
}

impl Reverse {
    /// An unused sending half, its queue bounded as an outgoing stream's.
    pub fn new(s2s: &S2s) -> Reverse {
        let (tx, rx) = mpsc::channel(s2s.config.s2s.queue.max(1));
        Reverse {
            tx,
            rx,
            bytes: Arc::new(AtomicUsize::new(0)),
            id: s2s.next_id.fetch_add(1, Ordering::Relaxed),
            pairs: Vec::new(),
            sm: None,
            unsent: Vec::new(),
        }
    }

    /// Becomes the outgoing route of `local → remote`, unless that pair has one (or the pool
    /// is full); whether it did.
    pub fn adopt(&mut self, s2s: &S2s, local: &str, remote: &str) -> bool {
        let key = (local.to_string(), remote.to_string());
        let mut pool = s2s.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.contains_key(&key) || pool.len() >= s2s.config.s2s.max_outgoing {
            return false;
        }
        let out = Outbound {
            tx: self.tx.clone(),
            bytes: self.bytes.clone(),
            id: self.id,
        };
        pool.insert(key.clone(), out);
        self.pairs.push(key);
        true
    }

    /// Whether more may be written before the peer acknowledges what it has.
    pub fn has_room(&self, s2s: &S2s) -> bool {
        self.sm.as_ref().is_none_or(|sm| {
            sm.pending() < s2s.config.s2s.queue && sm.pending_bytes() < s2s.config.s2s.queue_bytes
        })
    }

    /// The next queued stanza (never ready while it routes nothing).
    pub async fn next(&mut self) -> Option<Element> {
        if self.pairs.is_empty() {
            return std::future::pending().await;
        }
        self.rx.recv().await
    }

    /// Writes `first` and what else is queued; `acks`: the peer enabled stream management, so
    /// what is written is kept until acknowledged. On failure, what may not have arrived is
    /// kept for [`Reverse::finish`].
    pub async fn write(&mut self, st: &mut S2sStream, first: Element, acks: bool) -> bool {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let cost: usize = batch.iter().map(Element::deep_cost).sum();
        self.bytes.fetch_sub(cost, Ordering::Relaxed);
        let mut out = Vec::new();
        for e in &batch {
            crate::stream::write_top_level(e, &mut out);
        }
        let n = batch.len() as u64;
        if acks && self.sm.is_none() {
            self.sm = Some(StreamMgmt::new(None));
        }
        let lost = match &mut self.sm {
            Some(sm) => {
                let now = crate::storage::now_ms();
                for e in batch {
                    sm.sent(e, now);
                }
                crate::stream::write_top_level(&sm::request(), &mut out);
                Vec::new()
            }
            None => batch,
        };
        if st.write_raw(&out).await.is_err() {
            // Kept for `finish` (the unacknowledged are in `sm`).
            self.unsent = lost;
            return false;
        }
        crate::metrics::s2s_stanzas("out", n);
        true
    }

    /// The peer acknowledged `h` of our stanzas; false when that cannot be.
    pub fn ack(&mut self, h: u32) -> bool {
        match &mut self.sm {
            Some(sm) => sm.ack(h).is_ok(),
            None => true,
        }
    }

    /// The stream ended: it stops being a route, and what waits in its queue or was not
    /// acknowledged goes back through the router (a new outgoing stream, or a bounce).
    pub fn finish(mut self, s2s: &Arc<S2s>) {
        if self.pairs.is_empty() {
            return;
        }
        for (local, remote) in &self.pairs {
            s2s.forget(local, remote, self.id);
        }
        self.rx.close();
        let mut left: Vec<Element> = std::mem::take(&mut self.unsent);
        if let Some(sm) = &mut self.sm {
            left.extend(
                sm.take_unacked()
                    .into_iter()
                    .map(|u| u.stanza.into_element()),
            );
        }
        while let Ok(e) = self.rx.try_recv() {
            self.bytes.fetch_sub(e.deep_cost(), Ordering::Relaxed);
            left.push(e);
        }
        let Some(router) = s2s.router.upgrade() else {
            return;
        };
        let shutting_down = *s2s.shutdown.borrow();
        for e in left {
            match (shutting_down, domain_of(&e, "from"), domain_of(&e, "to")) {
                (false, Some(local), Some(remote)) => s2s.enqueue(&router, e, local, remote),
                _ => router.bounce(&e, ErrorCondition::RemoteServerTimeout),
            }
        }
    }
}
