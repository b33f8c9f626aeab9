//! XEP-0198 Stream Management, sans-IO: the counters of one stream and the queue of stanzas
//! sent but not yet acknowledged. The c2s session (`session::c2s::sm`) feeds it and acts on
//! what it returns; nothing here knows about sockets or clocks (times are passed in).
//!
//! Counters are `u32` and wrap at 2^32 (XEP-0198 §4): all arithmetic is wrapping, and an
//! acknowledgement is read as "how far past the last one", so a wrap is not an error.

use std::collections::VecDeque;

use crate::stanza::shared::Addressed;
use crate::xml::Element;

/// `urn:xmpp:sm:3`
pub const NS: &str = "urn:xmpp:sm:3";

/// A stanza as it is kept: an element, or the shared serialisation of a fan-out with this
/// recipient's `to` (so that a session with stream management writes the shared bytes as
/// well, and makes an element only if it must send the stanza again or re-route it).
#[derive(Debug, Clone)]
pub enum Kept {
    Element(Element),
    Shared(Addressed),
}

impl Kept {
    /// What it holds in memory, in bytes.
    pub fn cost(&self) -> usize {
        match self {
            Kept::Element(e) => e.deep_cost(),
            Kept::Shared(a) => a.bytes(),
        }
    }

    /// The stanza as an element of its own.
    pub fn into_element(self) -> Element {
        match self {
            Kept::Element(e) => e,
            Kept::Shared(a) => a.element(),
        }
    }

    /// A copy of the stanza as an element.
    pub fn to_element(&self) -> Element {
        match self {
            Kept::Element(e) => e.clone(),
            Kept::Shared(a) => a.element(),
        }
    }
}

impl From<Element> for Kept {
    fn from(e: Element) -> Self {
        Kept::Element(e)
    }
}

impl From<Addressed> for Kept {
    fn from(a: Addressed) -> Self {
        Kept::Shared(a)
    }
}

/// A stanza sent to the client and kept until it is acknowledged.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// The stanza as it was written.
    pub stanza: Kept,
    /// When it was queued (ms since the epoch), for `<delay/>` on retransmission.
    pub at_ms: i64,
    /// Its id in offline storage when it is a claimed offline message: deleted there once
    /// acknowledged, given back if the session ends first.
    pub claim: Option<i64>,
}

/// The client acknowledged more stanzas than were sent (XEP-0198 §4, `handled-count-too-high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooHigh {
    /// The `h` the client sent.
    pub h: u32,
    /// What we had sent.
    pub sent: u32,
}

/// The state of stream management on one session.
#[derive(Debug, Default)]
pub struct StreamMgmt {
    /// The resumption id, when the client asked for resumption and it was granted.
    pub id: Option<String>,
    /// Stanzas received from the client and handled (the `h` we send), mod 2^32.
    pub inbound: u32,
    /// The last `h` the client acknowledged.
    acked: u32,
    /// Sent and not acknowledged, oldest first.
    queue: VecDeque<Unacked>,
    /// What the queued stanzas hold in memory ([`Kept::cost`]).
    queued_bytes: usize,
    /// Claimed offline messages the client acknowledged, to delete from storage.
    acked_claims: Vec<i64>,
    /// An `<r/>` is out and not answered.
    requested: bool,
    /// Stanzas queued since the last `<r/>`.
    since_request: u32,
}

impl StreamMgmt {
    /// Stream management enabled now, resumable under `id` if given.
    pub fn new(id: Option<String>) -> Self {
        StreamMgmt {
            id,
            ..Default::default()
        }
    }

    /// Counts one stanza received from the client.
    pub fn received(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }

    /// Records a stanza as sent (or queued for a detached client).
    pub fn sent(&mut self, stanza: impl Into<Kept>, at_ms: i64) {
        self.sent_claimed(stanza, at_ms, None);
    }

    /// Records a stanza as sent, with its offline-storage claim if it is one.
    pub fn sent_claimed(&mut self, stanza: impl Into<Kept>, at_ms: i64, claim: Option<i64>) {
        let stanza = stanza.into();
        self.queued_bytes += stanza.cost();
        self.queue.push_back(Unacked {
            stanza,
            at_ms,
            claim,
        });
        self.since_request = self.since_request.saturating_add(1);
    }

    /// Stanzas sent so far (mod 2^32).
    pub fn sent_count(&self) -> u32 {
        self.acked.wrapping_add(self.queue.len() as u32)
    }

    /// The offline-storage claims acknowledged since the last call (to delete).
    pub fn take_acked_claims(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.acked_claims)
    }

    /// Unacknowledged stanzas.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// What the unacknowledged stanzas hold in memory, in bytes.
    pub fn pending_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// When the oldest unacknowledged stanza was queued.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.queue.front().map(|u| u.at_ms)
    }

    /// The client handled `h` stanzas in all: drops those from the queue. Returns how many were
    /// newly acknowledged.
    pub fn ack(&mut self, h: u32) -> Result<usize, TooHigh> {
        let n = h.wrapping_sub(self.acked) as usize;
        if n > self.queue.len() {
            return Err(TooHigh {
                h,
                sent: self.sent_count(),
            });
        }
        for u in self.queue.drain(..n) {
            self.queued_bytes -= u.stanza.cost();
            self.acked_claims.extend(u.claim);
        }
        self.acked = h;
        self.requested = false;
        Ok(n)
    }

    /// Whether to send `<r/>` now: something is unacknowledged, no request is out, and either
    /// `every` stanzas were queued since the last one or the oldest is older than `after_ms`.
    pub fn should_request(&self, every: u32, now_ms: i64, after_ms: i64) -> bool {
        if self.requested || self.queue.is_empty() {
            return false;
        }
        self.since_request >= every || self.oldest_ms().is_some_and(|t| now_ms - t >= after_ms)
    }

    /// Whether an `<r/>` is out and not answered.
    pub fn request_out(&self) -> bool {
        self.requested
    }

    /// Notes that `<r/>` was sent.
    pub fn requested(&mut self) {
        self.requested = true;
        self.since_request = 0;
    }

    /// Forgets an outstanding request (a new connection after resumption).
    pub fn reset_request(&mut self) {
        self.requested = false;
    }

    /// The unacknowledged stanzas, oldest first (for retransmission).
    pub fn unacked(&self) -> impl Iterator<Item = &Unacked> {
        self.queue.iter()
    }

    /// Takes every unacknowledged stanza out (the session ends; they are re-routed).
    pub fn take_unacked(&mut self) -> Vec<Unacked> {
        self.acked = self.sent_count();
        self.queued_bytes = 0;
        self.queue.drain(..).collect()
    }
}

/// `<a h='…'/>`
pub fn ack(h: u32) -> Element {
    Element::new("a", NS).with_attr("h", h.to_string())
}

/// `<r/>`
pub fn request() -> Element {
    Element::new("r", NS)
}

/// `<failed/>` with a stanza error condition (XEP-0198 §3, §5), and `h` when it is known.
pub fn failed(condition: &str, h: Option<u32>) -> Element {
    let mut f = Element::new("failed", NS).with_child(Element::new(
        condition,
        "urn:ietf:params:xml:ns:xmpp-stanzas",
    ));
    if let Some(h) = h {
        f.set_attr("h", h.to_string());
    }
    f
}

/// Parses the `h` attribute of `<a/>` or `<resume/>`.
pub fn parse_h(el: &Element) -> Option<u32> {
    el.attr("h")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(i: u32) -> Element {
        Element::new("message", "jabber:client").with_attr("id", i.to_string())
    }

    #[test]
    fn acks_drop_exactly_the_handled_stanzas() {
        let mut sm = StreamMgmt::new(None);
        for i in 0..5 {
            sm.sent(st(i), 0);
        }
        assert_eq!(sm.ack(2), Ok(2));
        assert_eq!(sm.pending(), 3);
        let first = sm.unacked().next().unwrap().stanza.to_element();
        assert_eq!(first.attr("id"), Some("2"));
        // The same h again acknowledges nothing new.
        assert_eq!(sm.ack(2), Ok(0));
        assert_eq!(sm.ack(6), Err(TooHigh { h: 6, sent: 5 }));
        assert_eq!(sm.ack(5), Ok(3));
        assert_eq!(sm.pending(), 0);
    }

    #[test]
    fn counters_wrap_at_2_pow_32() {
        let mut sm = StreamMgmt::new(None);
        sm.acked = u32::MAX - 1;
        sm.inbound = u32::MAX;
        sm.received();
        assert_eq!(sm.inbound, 0);
        for i in 0..4 {
            sm.sent(st(i), 0);
        }
        assert_eq!(sm.sent_count(), 2);
        // h wrapped past zero: three handled.
        assert_eq!(sm.ack(1), Ok(3));
        assert_eq!(sm.pending(), 1);
        assert!(sm.ack(u32::MAX - 1).is_err(), "going backwards is too high");
    }

    #[test]
    fn requests_after_count_or_age_one_at_a_time() {
        let mut sm = StreamMgmt::new(None);
        assert!(!sm.should_request(2, 0, 1000));
        sm.sent(st(0), 0);
        assert!(!sm.should_request(2, 10, 1000));
        assert!(sm.should_request(2, 1000, 1000), "old enough");
        sm.sent(st(1), 0);
        assert!(sm.should_request(2, 10, 1000), "enough stanzas");
        sm.requested();
        sm.sent(st(2), 0);
        sm.sent(st(3), 0);
        assert!(!sm.should_request(2, 5000, 1000), "one request at a time");
        sm.ack(1).unwrap();
        assert!(sm.should_request(2, 10, 1000));
    }
}
