//! Stanzas of a bound c2s session: `from` checked and stamped (RFC 6120 §8.1.2.1), the session's
//! own presence recorded (RFC 6121 §4.2, §4.7.2.3), then routed. And the session's end.

use jid::Jid;

use super::{C2s, Flow, Phase};
use crate::router::Router;
use crate::session::SessionHandle;
use crate::stanza::{ErrorCondition, check_iq, iq_result, is_stanza};
use crate::stream::{Condition, NS_BIND, NS_SESSION, StreamError};
use crate::xml::Element;

/// `urn:xmpp:carbons:2`: copies are not re-routed.
const CARBONS: &str = "urn:xmpp:carbons:2";

impl C2s {
    pub(super) async fn on_bound_element(&mut self, el: Element) -> Flow {
        if el.ns() == crate::stream::sm::NS {
            return self.on_sm(&el).await;
        }
        let counted = is_stanza(&el);
        if counted {
            crate::metrics::stanza_in(el.name());
        }
        let flow = self.on_bound_stanza(el).await;
        // XEP-0198 §4: `h` counts stanzas handled, after routing (an offline store is done).
        if counted && let Some(sm) = self.sm.as_mut() {
            sm.received();
        }
        flow
    }

    async fn on_bound_stanza(&mut self, mut el: Element) -> Flow {
        let Phase::Bound(b) = &self.phase else {
            return Flow::Continue;
        };
        let handle = b.handle.clone();
        let me = handle.jid.clone();
        if el.ns() == super::csi::NS && matches!(el.name(), "active" | "inactive") {
            self.on_csi(&el);
            return Flow::Continue;
        }
        if !is_stanza(&el) {
            if matches!(el.name(), "message" | "presence" | "iq") {
                return Flow::Close(StreamError::new(Condition::InvalidNamespace));
            }
            return Flow::Close(StreamError::with_text(
                Condition::UnsupportedStanzaType,
                format!("unexpected <{}/> in {}", el.name(), el.ns()),
            ));
        }
        // RFC 6120 §8.1.2.1: a `from` must be the session's full JID or its bare JID.
        if let Some(from) = el.attr("from") {
            let ok = match Jid::new(from) {
                Ok(j) => {
                    j.to_bare() == me.to_bare() && j.resource().is_none_or(|r| r == me.resource())
                }
                Err(_) => false,
            };
            if !ok {
                return Flow::Close(StreamError::with_text(
                    Condition::InvalidFrom,
                    "'from' is not this session",
                ));
            }
        }
        el.set_attr("from", me.to_string());
        match el.name() {
            "iq" => {
                if let Err(c) = check_iq(&el) {
                    return self.reply_error(&el, c);
                }
                let to_me = el.attr("to").is_none_or(|t| t == self.host);
                if to_me && el.get_child("session", NS_SESSION).is_some() {
                    // The legacy session iq (RFC 3921 §3) is a no-op now.
                    let reply = iq_result(&el);
                    self.send(reply);
                    return Flow::Continue;
                }
                if el.get_child("bind", NS_BIND).is_some() {
                    // One resource per stream (RFC 6120 §7.1), refused as §7.6.2.2 says.
                    return self.reply_error(&el, ErrorCondition::NotAllowed);
                }
            }
            "presence" => {
                let router = &self.shared.router;
                router.hooks().presence_out(router, &handle, el).await;
                return Flow::Continue;
            }
            _ => show_to_own_resources(&self.shared.router, &handle, &el),
        }
        let start = std::time::Instant::now();
        self.shared.router.route(el).await;
        crate::metrics::routed(start.elapsed());
        Flow::Continue
    }

    /// The session ends: unbind, then re-route what the client did not acknowledge (XEP-0198
    /// §5) and what was still queued for it, so each stanza goes to another resource, to
    /// offline storage, or back to its sender as an error (nothing is lost silently).
    pub(super) async fn close(&mut self, rx: Option<crate::session::queue::Inbox>) {
        let Phase::Bound(b) = &self.phase else { return };
        let handle = b.handle.clone();
        let router = self.shared.router.clone();
        if let Some(last) = router.registry.unbind(&handle.jid, handle.id) {
            router.hooks().session_closed(&router, last).await;
        }
        if let Some(sm) = self.sm.as_mut() {
            if let Some(id) = &sm.id {
                self.shared.resumptions.expire(id, sm.inbound);
            }
            let unacked = sm.take_unacked();
            if !unacked.is_empty() {
                tracing::debug!(n = unacked.len(), "re-routing unacknowledged stanzas");
            }
            // Claimed offline messages go back to storage as they are (still stored there).
            let mut claims = Vec::new();
            for u in unacked {
                match u.claim {
                    Some(id) => claims.push(id),
                    None => reroute(&router, u.stanza).await,
                }
            }
            self.settle_claims(claims, false).await;
        }
        for el in std::mem::take(&mut self.undelivered) {
            reroute(&router, el).await;
        }
        for el in self.csi.take_held() {
            reroute(&router, el).await;
        }
        if let Some(mut rx) = rx {
            rx.close();
            while let Some(msg) = rx.try_recv() {
                match msg {
                    // Claimed offline messages never written: back to storage as they are.
                    crate::session::SessionMsg::Batch(b) if !b.claimed.is_empty() => {
                        self.settle_claims(b.claimed, false).await
                    }
                    msg => {
                        for el in msg.into_stanzas() {
                            reroute(&router, el).await;
                        }
                    }
                }
            }
        }
        self.phase = Phase::Unauthenticated;
        tracing::info!(jid = %handle.jid, "session closed");
    }
}

impl C2s {
    /// A stanza written for the client that its transport could not hand over (a BOSH
    /// session that ended with an answer still waiting for a request): routed again at close,
    /// before what is still queued, unless stream management keeps it among the
    /// unacknowledged.
    pub fn undelivered(&mut self, el: Element) {
        if self.sm.is_none() && is_stanza(&el) {
            self.undelivered.push(el);
        }
    }
}

/// Routes a stanza again after its session ended. Carbon copies are not: the account's other
/// resources had their own copy, and storing one offline would show the message twice.
async fn reroute(router: &Router, el: Element) {
    let carbon = el.name() == "message"
        && el
            .children()
            .any(|c| c.ns() == CARBONS && matches!(c.name(), "received" | "sent"));
    if !carbon {
        router.route(el).await;
    }
}

/// Messages a session sends are shown to its account's other resources (carbons) first.
fn show_to_own_resources(router: &Router, session: &SessionHandle, el: &Element) {
    if el.name() == "message" {
        router.hooks().message_sent(router, session, el);
    }
}
