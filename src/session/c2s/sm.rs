//! XEP-0198 Stream Management on a c2s session: `<enable/>`, `<r/>`/`<a/>` both ways, and
//! resumption. The counters live in [`crate::stream::sm`]; this file moves a session from one
//! connection to another.
//!
//! A resumable session whose connection is lost stays bound and keeps its presence (so its
//! contacts see no offline/online storm) while its task waits, detached, for a `<resume/>`
//! (`park`). Stanzas for it are queued with the unacknowledged ones. A `<resume/>` on a new
//! connection asks the owning task (detached, or still attached to a half-dead connection) to
//! hand the session over; the new connection retransmits exactly what was not acknowledged.
//! When the timeout expires the session ends like any other: unavailable presence, and every
//! unacknowledged message re-routed (another resource, offline storage, or an error).

use std::time::{Duration, Instant};

use tracing::info;

use super::csi::Csi;
use super::{Bound, C2s, Flow, Phase};
use crate::session::SessionHandle;
use crate::session::resume::{Refusal, Requests, ResumeRequest};
use crate::stanza::NS_DELAY;
use crate::stream::sm::{self, StreamMgmt, TooHigh, parse_h};
use crate::stream::{Condition, StreamError, random_id};
use crate::xml::Element;

/// What a session carries from one connection to the next.
#[derive(Debug)]
pub struct Takeover {
    handle: SessionHandle,
    inbox: Option<crate::session::queue::Inbox>,
    resume: Option<Requests<Takeover>>,
    sm: StreamMgmt,
    csi: Csi,
}

/// A resumption request as the owning task receives it.
pub type Request = ResumeRequest<Takeover>;

/// Milliseconds since the epoch (the server's one clock helper).
pub(super) use crate::storage::now_ms;

impl C2s {
    /// `<enable/>`, `<r/>` and `<a/>` of a bound session.
    pub(super) async fn on_sm(&mut self, el: &Element) -> Flow {
        match el.name() {
            "enable" => self.on_enable(el),
            "r" => {
                if let Some(sm) = &self.sm {
                    let a = sm::ack(sm.inbound);
                    self.write(&a);
                }
                Flow::Continue
            }
            "a" => {
                let (Some(sm), Some(h)) = (self.sm.as_mut(), parse_h(el)) else {
                    return Flow::Continue;
                };
                match sm.ack(h) {
                    Ok(_) => {
                        let done = sm.take_acked_claims();
                        self.settle_claims(done, true).await;
                        Flow::Continue
                    }
                    Err(TooHigh { h, sent }) => Flow::Close(too_high(h, sent)),
                }
            }
            "resume" => {
                self.write(&sm::failed("unexpected-request", None));
                Flow::Continue
            }
            _ => Flow::Close(StreamError::with_text(
                Condition::UnsupportedStanzaType,
                format!("unexpected <{}/> in {}", el.name(), sm::NS),
            )),
        }
    }

    fn on_enable(&mut self, el: &Element) -> Flow {
        let config = &self.shared.config.c2s;
        let Phase::Bound(b) = &self.phase else {
            return Flow::Continue;
        };
        if !config.stream_management || self.sm.is_some() {
            self.write(&sm::failed("unexpected-request", None));
            return Flow::Continue;
        }
        let wants = matches!(el.attr("resume"), Some("true" | "1"));
        let mut enabled = Element::new("enabled", sm::NS);
        let id = if wants && config.resume_timeout_secs > 0 {
            let id = format!("{}{}", random_id(), random_id());
            let bare = b.handle.jid.to_bare();
            self.resume_rx = Some(self.shared.resumptions.register(id.clone(), bare));
            enabled.set_attr("id", id.clone());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", config.resume_timeout_secs.to_string());
            if !config.sm_location.is_empty() {
                // Where to reconnect for resumption (another node of a cluster).
                enabled.set_attr("location", config.sm_location.clone());
            }
            Some(id)
        } else {
            None
        };
        info!(jid = %b.handle.jid, resumable = id.is_some(), "stream management enabled");
        // Offline messages for this session are then claimed until acknowledged.
        self.shared.router.registry.set_flag(
            &b.handle.jid,
            b.handle.id,
            crate::session::Flag::ACKS,
            true,
        );
        self.write(&enabled);
        self.sm = Some(StreamMgmt::new(id));
        Flow::Continue
    }

    /// `<enable/>` or `<resume/>` before binding, or anything of SM's before authentication.
    pub(super) async fn on_sm_unbound(&mut self, el: &Element) -> Flow {
        match (&self.phase, el.name()) {
            (Phase::Authenticated(_), "resume") => self.on_resume(el).await,
            (_, "enable" | "resume") => {
                self.write(&sm::failed("unexpected-request", None));
                Flow::Continue
            }
            // `<r/>` and `<a/>` without SM enabled: nothing to count.
            _ => Flow::Continue,
        }
    }

    /// `<resume previd h/>`: takes the session over from its owning task (XEP-0198 §5).
    async fn on_resume(&mut self, el: &Element) -> Flow {
        let Phase::Authenticated(bare) = &self.phase else {
            return Flow::Continue;
        };
        let bare = bare.clone();
        let (Some(previd), Some(h)) = (el.attr("previd"), parse_h(el)) else {
            self.write(&sm::failed("bad-request", None));
            return Flow::Continue;
        };
        let got = self.shared.resumptions.take_over(previd, &bare, h).await;
        let t = match got {
            Some(Ok(t)) => t,
            Some(Err(Refusal::BadAck)) => {
                self.write(&sm::failed("undefined-condition", None));
                return Flow::Continue;
            }
            Some(Err(Refusal::NotFound)) | None => {
                let h = self.shared.resumptions.expired_h(previd, &bare);
                self.write(&sm::failed("item-not-found", h));
                return Flow::Continue;
            }
        };
        info!(jid = %t.handle.jid, "session resumed");
        let mut sm = t.sm;
        sm.reset_request();
        let resumed = Element::new("resumed", sm::NS)
            .with_attr("previd", previd.to_string())
            .with_attr("h", sm.inbound.to_string());
        self.write(&resumed);
        // Exactly what the client did not acknowledge, in order (XEP-0198 §5).
        let host = self.host.clone();
        for u in sm.unacked() {
            let mut st = u.stanza.to_element();
            if st.name() == "message" && st.get_child("delay", NS_DELAY).is_none() {
                st.append_child(crate::stanza::delay(&host, u.at_ms));
            }
            self.write(&st);
        }
        self.sm = Some(sm);
        self.csi = t.csi;
        self.inbox = t.inbox;
        self.resume_rx = t.resume;
        self.phase = Phase::Bound(Bound { handle: t.handle });
        Flow::Continue
    }

    /// Answers a resumption request: hands this session over (the caller then drops its
    /// connection) or says why not.
    /// `inbox` and `resume` are the channels the driver listens on: they go with the session.
    pub(super) fn hand_over(
        &mut self,
        req: Request,
        inbox: &mut Option<crate::session::queue::Inbox>,
        resume: &mut Option<Requests<Takeover>>,
    ) -> bool {
        let Phase::Bound(b) = &self.phase else {
            let _ = req.reply.send(Err(Refusal::NotFound));
            return false;
        };
        let Some(sm) = self.sm.as_mut() else {
            let _ = req.reply.send(Err(Refusal::NotFound));
            return false;
        };
        if req.bare != b.handle.jid.to_bare() {
            let _ = req.reply.send(Err(Refusal::NotFound));
            return false;
        }
        if sm.ack(req.h).is_err() {
            let _ = req.reply.send(Err(Refusal::BadAck));
            return false;
        }
        // Claims acknowledged here travel with the state and are settled at the new
        // connection's next `<a/>`.
        let t = Takeover {
            handle: b.handle.clone(),
            inbox: inbox.take(),
            resume: resume.take(),
            sm: std::mem::take(sm),
            csi: std::mem::take(&mut self.csi),
        };
        match req.reply.send(Ok(t)) {
            Ok(()) => {
                self.sm = None;
                self.phase = Phase::Unauthenticated;
                true
            }
            Err(Ok(t)) => {
                // The new connection gave up waiting: keep the session.
                *inbox = t.inbox;
                *resume = t.resume;
                self.sm = Some(t.sm);
                self.csi = t.csi;
                false
            }
            Err(Err(_)) => false,
        }
    }

    /// More unacknowledged stanzas than `c2s.max_unacked`, or more bytes of them than
    /// `c2s.max_unacked_bytes`: the client is not keeping up.
    pub(super) fn unacked_over_limit(&self) -> bool {
        let c = &self.shared.config.c2s;
        self.sm
            .as_ref()
            .is_some_and(|s| s.pending() > c.max_unacked || s.pending_bytes() > c.max_unacked_bytes)
    }

    /// Whether a lost connection leaves this session waiting for a resumption.
    pub(super) fn resumable(&self) -> bool {
        matches!(self.phase, Phase::Bound(_)) && self.sm.as_ref().is_some_and(|s| s.id.is_some())
    }

    /// Sends `<r/>` when enough stanzas went unacknowledged (XEP-0198 §4).
    pub(super) fn maybe_request_ack(&mut self) {
        let c = &self.shared.config.c2s;
        let (every, after) = (c.ack_request_every, c.ack_request_after_secs as i64 * 1000);
        if let Some(sm) = self.sm.as_mut()
            && sm.should_request(every, now_ms(), after)
        {
            sm.requested();
            self.write(&sm::request());
        }
    }

    /// When the oldest unacknowledged stanza becomes old enough for an `<r/>`.
    pub(super) fn ack_due(&self) -> Option<Instant> {
        let sm = self.sm.as_ref().filter(|s| !s.request_out())?;
        let oldest = sm.oldest_ms()?;
        let after = self.shared.config.c2s.ack_request_after_secs as i64 * 1000;
        let wait = (oldest + after - now_ms()).max(0) as u64;
        Some(Instant::now() + Duration::from_millis(wait))
    }
}

/// The stream error for an `<a/>` beyond what was sent (XEP-0198 §4).
fn too_high(h: u32, sent: u32) -> StreamError {
    StreamError::with_text(
        Condition::UndefinedCondition,
        format!("you acknowledged {h} stanzas but {sent} were sent"),
    )
    .with_app(
        Element::new("handled-count-too-high", sm::NS)
            .with_attr("h", h.to_string())
            .with_attr("send-count", sent.to_string()),
    )
}
