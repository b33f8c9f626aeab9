//! The router: where a stanza goes (RFC 6120 §10, RFC 6121 §8.5). Local sessions through the
//! registry, the server itself through the [`LocalHandler`] (the extension registrar), and an
//! error back to the sender for everything that cannot be delivered: nothing is dropped silently
//! except what the RFC says to ignore (presence to unavailable resources, errors).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use jid::{BareJid, FullJid, Jid};

use crate::session::{DeliveryError, Registry, SessionHandle, SessionMsg};
use crate::stanza::{ErrorCondition, error_reply};
use crate::xml::Element;

/// A boxed future of a handler.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Handles stanzas addressed to the server, and iqs addressed to an account's bare JID
/// (RFC 6120 §10.3.3: the server answers on the account's behalf).
pub trait LocalHandler: Send + Sync {
    /// Handles one stanza; replies go back through `router`.
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> HandlerFuture<'a>;
}

/// Routes stanzas between sessions and the server.
pub struct Router {
    /// Bound sessions.
    pub registry: Arc<Registry>,
    hosts: Vec<String>,
    local: OnceLock<Arc<dyn LocalHandler>>,
}

impl Router {
    /// A router for `hosts`.
    pub fn new(registry: Arc<Registry>, hosts: Vec<String>) -> Self {
        Router {
            registry,
            hosts,
            local: OnceLock::new(),
        }
    }

    /// Installs the handler for server-addressed stanzas (once, at start-up).
    pub fn set_local_handler(&self, h: Arc<dyn LocalHandler>) {
        let _ = self.local.set(h);
    }

    /// Whether `domain` is served here.
    pub fn is_local(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h == domain)
    }

    /// Routes a stanza whose `from` is already stamped.
    pub async fn route(&self, stanza: Element) {
        let to = match stanza.attr("to").map(Jid::new) {
            Some(Ok(j)) => j,
            Some(Err(_)) => return self.bounce(&stanza, ErrorCondition::JidMalformed),
            // No `to`: addressed to the sender's own account (RFC 6120 §10.3).
            None => match stanza.attr("from").map(Jid::new) {
                Some(Ok(from)) => Jid::from(from.to_bare()),
                _ => return,
            },
        };
        if !self.is_local(to.domain().as_str()) {
            // Federation (s2s) comes in its own issue; until then the sender learns at once.
            return self.bounce(&stanza, ErrorCondition::RemoteServerNotFound);
        }
        if to.node().is_none() {
            return self.to_server(stanza).await;
        }
        match to.try_into_full() {
            Ok(full) => self.to_full(stanza, full).await,
            Err(bare) => self.to_bare(stanza, bare).await,
        }
    }

    async fn to_server(&self, stanza: Element) {
        match self.local.get() {
            Some(h) => h.handle(self, stanza).await,
            None => self.bounce(&stanza, ErrorCondition::ServiceUnavailable),
        }
    }

    /// RFC 6121 §8.5.3: to a full JID.
    async fn to_full(&self, stanza: Element, to: FullJid) {
        if let Some(h) = self.registry.get(&to) {
            return self.deliver(&h, stanza);
        }
        match (stanza.name(), stanza.attr("type")) {
            // §8.5.3.2.1: normal, chat and headline messages fall back to the bare JID.
            ("message", None | Some("normal" | "chat" | "headline")) => {
                self.to_bare(stanza, to.to_bare()).await
            }
            // §8.5.3.2.2: iq to an unavailable resource.
            ("iq", Some("get" | "set")) => self.bounce(&stanza, ErrorCondition::ServiceUnavailable),
            // §8.5.3.2.1 groupchat, and anything else: an error unless it is one.
            ("message", _) => self.bounce(&stanza, ErrorCondition::ServiceUnavailable),
            // §8.5.3.2.3 presence, and iq results/errors: silently ignored.
            _ => {}
        }
    }

    /// RFC 6121 §8.5.2: to a bare JID of a local account.
    async fn to_bare(&self, stanza: Element, to: BareJid) {
        match stanza.name() {
            "message" => {
                let kind = stanza.attr("type").unwrap_or("normal");
                if kind == "error" {
                    return;
                }
                let mut targets = self.registry.available(&to);
                if kind == "groupchat" || targets.is_empty() {
                    // §8.5.2.1.1 groupchat to a bare JID; §8.5.2.2.1 no available resource.
                    // (Offline storage comes with the IM core and will take the second case.)
                    return self.bounce(&stanza, ErrorCondition::ServiceUnavailable);
                }
                if kind != "headline" {
                    // chat and normal: the resources of highest priority (§8.5.2.1.1).
                    let top = targets.iter().map(|t| t.1).max().unwrap_or(0);
                    targets.retain(|t| t.1 == top);
                }
                for (h, _) in &targets {
                    self.deliver(h, stanza.clone());
                }
            }
            // §8.5.2.1.3: the server answers iqs to a bare JID on the account's behalf.
            "iq" => self.to_server(stanza).await,
            // Presence to a bare JID: every available resource (§8.5.2.1.2); subscriptions
            // are handled by the roster extension when it exists.
            _ => {
                for (h, _) in self.registry.available(&to) {
                    self.deliver(&h, stanza.clone());
                }
            }
        }
    }

    /// Hands a stanza to one session; a full or vanished queue bounces it to its sender.
    pub fn deliver(&self, h: &SessionHandle, stanza: Element) {
        let probe = stanza.clone();
        match h.try_send(SessionMsg::Stanza(stanza)) {
            Ok(()) => {}
            Err(DeliveryError::Full) => self.bounce(&probe, ErrorCondition::ResourceConstraint),
            Err(DeliveryError::Closed) => self.bounce(&probe, ErrorCondition::ServiceUnavailable),
        }
    }

    /// Sends the error reply for `stanza` back to its sender (never for an error, §8.3.1).
    pub fn bounce(&self, stanza: &Element, condition: ErrorCondition) {
        let Some(reply) = error_reply(stanza, condition, None) else {
            return;
        };
        let Some(Ok(to)) = reply.attr("to").map(Jid::new) else {
            return;
        };
        // Errors go only to a session that exists now: an error about an error is never made.
        if let Ok(full) = to.try_into_full()
            && let Some(h) = self.registry.get(&full)
        {
            let _ = h.try_send(SessionMsg::Stanza(reply));
        }
    }
}
