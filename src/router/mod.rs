//! The router: where a stanza goes (RFC 6120 §10, RFC 6121 §8.5). The route table
//! (`routes.rs`) says what a domain is: a served host, whose accounts' sessions are found in
//! the registry by the RFC 6121 rules here; a service with its own domain (file upload; group
//! chat next); or a remote domain (federation is to plug in there). What needs the modules'
//! knowledge (rosters, offline storage, blocking, iqs to the server) goes through [`Hooks`], the
//! one interface to `ext/`; what cannot be delivered goes back to its sender as an error.
//! Nothing is dropped silently except what the RFC says to ignore.

pub mod hooks;
pub mod origin;
pub mod requests;
pub mod routes;

use std::sync::{Arc, OnceLock, Weak};

use jid::{BareJid, FullJid, Jid};

pub use hooks::{HookFuture, Hooks, NoHooks, StanzaFuture};
pub use origin::Origin;
pub use routes::{Remote, Route, Routes, Service};

use crate::session::{Batch, DeliveryError, Registry, SessionHandle, SessionMsg};
use crate::stanza::shared::{Addressed, SharedStanza};
use crate::stanza::{ErrorCondition, error_reply};
use crate::xml::Element;

tokio::task_local! {
    /// Set while a stanza is routed again.
    static REROUTED: ();
}

/// Routes stanzas between sessions and the server.
pub struct Router {
    /// Bound sessions.
    pub registry: Arc<Registry>,
    hosts: Vec<String>,
    hooks: OnceLock<Arc<dyn Hooks>>,
    /// Federation, when it is on.
    remote: OnceLock<Arc<dyn Remote>>,
    /// Service domains.
    pub routes: Routes,
    /// Iqs the server sent and waits to have answered.
    pub requests: Arc<requests::Requests>,
    /// Itself, for work that outlives a routing call ([`Router::shared`]).
    me: Weak<Router>,
}

impl Router {
    /// A router for `hosts`.
    pub fn new(registry: Arc<Registry>, hosts: Vec<String>) -> Self {
        Self::with_self(registry, hosts, Weak::new())
    }

    /// A router for `hosts` that can hand out references to itself ([`Router::arc`]).
    pub fn shared(registry: Arc<Registry>, hosts: Vec<String>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self::with_self(registry, hosts, me.clone()))
    }

    fn with_self(registry: Arc<Registry>, hosts: Vec<String>, me: Weak<Router>) -> Self {
        Router {
            registry,
            hosts,
            hooks: OnceLock::new(),
            remote: OnceLock::new(),
            routes: Routes::default(),
            requests: Arc::default(),
            me,
        }
    }

    /// The router itself, for a task that goes on after the call that started it (`None`
    /// once the server is gone, or for a router not made by [`Router::shared`]).
    pub fn arc(&self) -> Option<Arc<Router>> {
        self.me.upgrade()
    }

    /// Installs the extensions' hooks (once, at start-up).
    pub fn set_hooks(&self, h: Arc<dyn Hooks>) {
        let _ = self.hooks.set(h);
    }

    /// Installs federation (once, at start-up).
    pub fn set_remote(&self, r: Arc<dyn Remote>) {
        let _ = self.remote.set(r);
    }

    /// Hands a stanza to another server (federation), or bounces it when federation is off.
    pub fn to_remote(&self, stanza: Element) {
        match self.remote.get() {
            Some(r) => r.send(self, stanza),
            None => self.bounce(&stanza, ErrorCondition::RemoteServerNotFound),
        }
    }

    /// The installed hooks.
    pub fn hooks(&self) -> &dyn Hooks {
        match self.hooks.get() {
            Some(h) => h.as_ref(),
            None => &NoHooks,
        }
    }

    /// Whether `domain` is served here.
    pub fn is_local(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h == domain)
    }

    /// Where stanzas for `domain` go.
    pub fn route_of(&self, domain: &str) -> Route {
        if self.is_local(domain) {
            return Route::Local;
        }
        match self.routes.service(domain) {
            Some(s) => Route::Service(s),
            None => Route::Remote,
        }
    }

    /// Routes again a stanza that was routed once and could not be written (its session
    /// ended): the modules that act once per stanza (the archive, which stored and stamped it
    /// the first time) see [`Router::rerouted`] and leave it as it is.
    pub async fn route_again(&self, stanza: Element) {
        REROUTED.scope((), self.route(stanza)).await
    }

    /// Whether the stanza being routed now is routed again ([`Router::route_again`]).
    pub fn rerouted() -> bool {
        REROUTED.try_with(|_| ()).is_ok()
    }

    /// Routes a stanza whose `from` is already stamped.
    pub async fn route(&self, stanza: Element) {
        let Some(stanza) = self.hooks().filter(self, stanza).await else {
            return;
        };
        let to = match stanza.attr("to").map(Jid::new) {
            Some(Ok(j)) => j,
            Some(Err(_)) => return self.bounce(&stanza, ErrorCondition::JidMalformed),
            // No `to`: addressed to the sender's own account (RFC 6120 §10.3).
            None => match stanza.attr("from").map(Jid::new) {
                Some(Ok(from)) => Jid::from(from.to_bare()),
                _ => return,
            },
        };
        match self.route_of(to.domain().as_str()) {
            Route::Local => {}
            Route::Service(s) => return s.handle(self, stanza).await,
            Route::Remote => return self.to_remote(stanza),
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
        if stanza.name() == "iq"
            && matches!(stanza.attr("type"), Some("result" | "error"))
            && self.requests.answer(&stanza)
        {
            return;
        }
        self.hooks().local(self, stanza).await
    }

    /// RFC 6121 §8.5.3: to a full JID.
    async fn to_full(&self, stanza: Element, to: FullJid) {
        // Subscription requests and answers are about accounts, not resources (RFC 6121 §3).
        if stanza.name() == "presence" && is_subscription(&stanza) {
            return self.hooks().presence_in(self, stanza, to.to_bare()).await;
        }
        if let Some(h) = self.registry.get(&to) {
            let id = h.id;
            let is_message = stanza.name() == "message";
            let stanza = match is_message {
                true => match self.hooks().delivering(self, stanza, &to.to_bare()).await {
                    Some(s) => s,
                    None => return,
                },
                false => stanza,
            };
            let copy = is_message.then(|| stanza.clone());
            if self.deliver(&h, stanza)
                && let Some(m) = copy
            {
                self.hooks()
                    .message_delivered(self, &m, &to.to_bare(), &[id]);
            }
            return;
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
                let kind = stanza.attr("type");
                let headline = kind == Some("headline");
                if kind == Some("error") {
                    return;
                }
                if kind == Some("groupchat") {
                    // §8.5.2.1.1: groupchat to a bare JID.
                    return self.bounce(&stanza, ErrorCondition::ServiceUnavailable);
                }
                let Some(stanza) = self.hooks().delivering(self, stanza, &to).await else {
                    return;
                };
                let mut targets = self.registry.available(&to);
                if targets.is_empty() {
                    // §8.5.2.2.1: chat and normal go to offline storage or back as an error;
                    // a headline is ignored, or kept coalesced (the hooks decide).
                    self.hooks().message_unrouted(self, stanza, to).await;
                    return;
                }
                if !headline {
                    // chat and normal: the resources of highest priority (§8.5.2.1.1).
                    let top = targets.iter().map(|t| t.1).max().unwrap_or(0);
                    targets.retain(|t| t.1 == top);
                }
                let mut delivered = Vec::with_capacity(targets.len());
                for (h, _) in &targets {
                    if self.deliver(h, stanza.clone()) {
                        delivered.push(h.id);
                    }
                }
                if !delivered.is_empty() {
                    self.hooks()
                        .message_delivered(self, &stanza, &to, &delivered);
                }
            }
            // §8.5.2.1.3: the server answers iqs to a bare JID on the account's behalf.
            "iq" => self.to_server(stanza).await,
            // Presence to a bare JID: subscriptions, probes and directed presence (§8.5.2.1.2).
            _ => self.hooks().presence_in(self, stanza, to).await,
        }
    }

    /// Delivers a stanza to every available resource of `to` (directed presence to a bare JID).
    pub fn deliver_to_available(&self, stanza: &Element, to: &BareJid) {
        for (h, _) in self.registry.available(to) {
            self.deliver(&h, stanza.clone());
        }
    }

    /// `stanza`, serialised once, addressed `to` (a normalised local bare JID, e.g. a stored
    /// roster contact) for each of its available resources; nothing to do when none is online,
    /// which is most contacts of a large roster.
    pub fn deliver_addressed(&self, stanza: &Arc<SharedStanza>, to: &str) {
        for (h, _) in self.registry.available_str(to) {
            let a = Addressed {
                shared: stanza.clone(),
                to: to.to_string(),
            };
            if let Err((why, m)) = h.try_send(SessionMsg::Shared(Box::new(a))) {
                self.undeliverable(why, m);
            }
        }
    }

    /// Sends the current presence of each available resource of local account `owner` (or, with
    /// `unavailable`, an unavailable presence from each) to the account `to` (local or remote).
    pub fn send_presence_of(&self, owner: &BareJid, to: &BareJid, unavailable: bool) {
        for s in self.registry.sessions(owner) {
            let Some(p) = &s.presence else { continue };
            let mut p = if unavailable {
                Element::new("presence", crate::stream::NS_CLIENT).with_attr("type", "unavailable")
            } else {
                (**p).clone()
            };
            p.set_attr("from", s.handle.jid.to_string());
            p.set_attr("to", to.to_string());
            match self.route_of(to.domain().as_str()) {
                Route::Remote => self.to_remote(p),
                _ => self.deliver_to_available(&p, to),
            }
        }
    }

    /// Hands a stanza to one session; a full or vanished queue bounces it to its sender.
    /// Returns whether it was queued.
    pub fn deliver(&self, h: &SessionHandle, stanza: Element) -> bool {
        match h.try_send(SessionMsg::Stanza(Box::new(stanza))) {
            Ok(()) => true,
            Err((why, m)) => {
                self.undeliverable(why, m);
                false
            }
        }
    }

    /// A message a session's queue did not take: its stanzas bounce to their senders.
    fn undeliverable(&self, why: DeliveryError, m: SessionMsg) {
        let c = match why {
            DeliveryError::Full => ErrorCondition::ResourceConstraint,
            DeliveryError::Closed => ErrorCondition::ServiceUnavailable,
        };
        for stanza in m.into_stanzas() {
            self.bounce(&stanza, c);
        }
    }

    /// Hands stanzas to one session as one queue entry; gives them back if it cannot take them.
    pub fn deliver_batch(&self, h: &SessionHandle, batch: Batch) -> Result<(), Batch> {
        match h.try_send(SessionMsg::Batch(Box::new(batch))) {
            Ok(()) => Ok(()),
            Err((_, SessionMsg::Batch(b))) => Err(*b),
            Err(_) => Err(Batch::default()),
        }
    }

    /// Sends the error reply for `stanza` back to its sender (never for an error, §8.3.1).
    pub fn bounce(&self, stanza: &Element, condition: ErrorCondition) {
        crate::metrics::stanza_error(condition.parts().0);
        if let Some(reply) = error_reply(stanza, condition, None) {
            self.send_to_session(reply);
        }
    }

    /// Writes a server-made stanza (an error reply) straight to the session named by its `to`,
    /// or to every session of a bare `to` (subscription presences are sent from bare JIDs),
    /// if any exists now; one for another server's entity goes there: an error about an
    /// undeliverable error is never made.
    pub fn send_to_session(&self, stanza: Element) {
        let Some(Ok(to)) = stanza.attr("to").map(Jid::new) else {
            return;
        };
        if let Route::Remote = self.route_of(to.domain().as_str()) {
            if let Some(r) = self.remote.get() {
                r.send(self, stanza);
            }
            return;
        }
        match to.try_into_full() {
            Ok(full) => {
                if let Some(h) = self.registry.get(&full) {
                    let _ = h.try_send(SessionMsg::Stanza(Box::new(stanza)));
                }
            }
            Err(bare) => {
                for s in self.registry.sessions(&bare) {
                    let _ = s
                        .handle
                        .try_send(SessionMsg::Stanza(Box::new(stanza.clone())));
                }
            }
        }
    }
}

/// Whether a presence is a subscription request or answer (RFC 6121 §3).
pub fn is_subscription(p: &Element) -> bool {
    matches!(
        p.attr("type"),
        Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")
    )
}
