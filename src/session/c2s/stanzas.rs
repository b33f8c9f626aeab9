//! Stanzas of a bound c2s session: `from` checked and stamped (RFC 6120 §8.1.2.1), the session's
//! own presence recorded (RFC 6121 §4.2, §4.7.2.3), then routed. And the session's end.

use jid::Jid;
use tokio::sync::mpsc;

use super::{C2s, Flow, Phase};
use crate::session::SessionMsg;
use crate::stanza::{ErrorCondition, check_iq, iq_result, is_stanza};
use crate::stream::{Condition, NS_BIND, NS_CLIENT, NS_SESSION, StreamError};
use crate::xml::Element;

impl C2s {
    pub(super) async fn on_bound_element(&mut self, mut el: Element) -> Flow {
        let Phase::Bound(b) = &self.phase else {
            return Flow::Continue;
        };
        let (me, id) = (b.handle.jid.clone(), b.handle.id);
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
                    self.write(&reply);
                    return Flow::Continue;
                }
                if el.get_child("bind", NS_BIND).is_some() {
                    // One resource per stream (RFC 6120 §7.7.2.? ).
                    return self.reply_error(&el, ErrorCondition::NotAllowed);
                }
            }
            "presence" if el.attr("to").is_none() => {
                self.own_presence(&el, &me, id);
                return Flow::Continue;
            }
            _ => {}
        }
        self.shared.router.route(el).await;
        Flow::Continue
    }

    /// Broadcast presence (no `to`): availability and priority of this session.
    /// Fan-out to contacts comes with the roster (IM core).
    fn own_presence(&mut self, el: &Element, me: &jid::FullJid, id: u64) {
        let (available, priority) = match el.attr("type") {
            None => {
                let p = el
                    .get_child("priority", NS_CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0);
                (true, p)
            }
            Some("unavailable") => (false, 0),
            // Subscription types without `to` are meaningless (RFC 6121 §3): ignored.
            _ => return,
        };
        self.shared
            .router
            .registry
            .set_presence(me, id, available, priority);
    }

    /// The session ends: unbind, then re-route what was still queued for it, so each stanza
    /// goes to another resource, or back to its sender as an error (nothing is lost silently).
    pub(super) async fn close(&mut self, rx: Option<mpsc::Receiver<SessionMsg>>) {
        let Phase::Bound(b) = &self.phase else { return };
        let handle = b.handle.clone();
        self.shared.router.registry.unbind(&handle.jid, handle.id);
        if let Some(mut rx) = rx {
            rx.close();
            while let Ok(SessionMsg::Stanza(el)) = rx.try_recv() {
                self.shared.router.route(el).await;
            }
        }
        tracing::info!(jid = %handle.jid, "session closed");
    }
}
