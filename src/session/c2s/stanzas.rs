//! Stanzas of a bound c2s session: nonzas (CSI) handled here, stanzas handed to the router as
//! the client's (`router::origin` checks and stamps `from`, RFC 6120 §8.1.2.1). And the
//! session's end: every stanza it still holds re-routed.

use super::{C2s, Flow, Phase};
use crate::router::Router;
use crate::stanza::is_stanza;
use crate::stream::{Condition, StreamError};
use crate::xml::Element;

use crate::stanza::NS_CARBONS as CARBONS;

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

    async fn on_bound_stanza(&mut self, el: Element) -> Flow {
        let Phase::Bound(b) = &self.phase else {
            return Flow::Continue;
        };
        let handle = b.handle.clone();
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
        // The rules of a client's stanzas are the router's (`router::origin`).
        let origin = crate::router::Origin::Client(&handle);
        match self.shared.router.route_from(origin, el).await {
            Ok(()) => Flow::Continue,
            Err(e) => Flow::Close(e),
        }
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
                    None => reroute(&router, u.stanza.into_element()).await,
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
        router.route_again(el).await;
    }
}
