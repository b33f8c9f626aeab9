//! Extensions: one module per feature. Each declares what it does in its `register`: iq
//! handlers by payload namespace, disco features, stream features, and hooks on the routing
//! events with a priority ([`hooks`]); [`Extensions`] is the router's [`Hooks`], dispatching
//! each event to the registered handlers. What modules share is the [`Ctx`] (storage,
//! configuration, the blocklist cache) and the router. Where one module needs another's
//! decision it calls it (presence fan-out asks `blocking`, roster pushes go through
//! `roster::push`); those are the only imports between modules.
//!
//! Everything not handled is answered with `service-unavailable` (RFC 6120 §8.4).

pub mod archive;
pub mod blocking;
pub mod carbons;
pub mod coalesce;
pub mod disco;
pub mod documents;
pub mod hooks;
pub mod inbox;
pub mod muc;
pub mod offline;
pub mod pep;
pub mod ping;
pub mod register;
pub mod roster;
pub mod version;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use jid::BareJid;

use crate::config::Config;
use crate::router::{HookFuture, Hooks, Router, StanzaFuture};
use crate::session::{SessionHandle, SessionInfo};
use crate::stanza::{ErrorCondition, error_reply, iq_error, is_error};
use crate::storage::Storage;
use crate::xml::Element;

/// What every extension may use.
pub struct Ctx {
    /// The stores.
    pub storage: Storage,
    /// The configuration.
    pub config: Arc<Config>,
    /// Blocklists (XEP-0191), cached per account; presence fan-out filters with them.
    pub blocks: Arc<blocking::Cache>,
    /// What modules keep for themselves (a cache), one value per type, set when they register.
    state: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Ctx {
    /// The state of type `T` a module registered ([`Registrar::state`]).
    pub fn state<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.state.get(&TypeId::of::<T>())?.clone().downcast().ok()
    }

    /// How much one account may keep in offline storage (`im.offline_quota`, `…_bytes`).
    pub fn offline_quota(&self) -> crate::storage::OfflineQuota {
        crate::storage::OfflineQuota {
            messages: self.config.im.offline_quota,
            bytes: self.config.im.offline_quota_bytes,
        }
    }
}

/// What an iq handler returns: the reply to send (a result or an error).
pub type IqFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Element> + Send + 'a>>;

/// What [`IqHandler::handle_opt`] returns: the reply, or `None` when the handler sent it.
pub type OptIqFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Element>> + Send + 'a>>;

/// An iq handler for one payload namespace.
pub trait IqHandler: Send + Sync {
    /// Answers `iq` (type get or set, `from` stamped; `to` absent means the sender's account).
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a>;

    /// Like `handle`, for handlers that sometimes send the reply themselves (and return `None`)
    /// because something must follow it in order.
    fn handle_opt<'a>(
        &'a self,
        ctx: &'a Ctx,
        router: &'a Router,
        iq: &'a Element,
    ) -> OptIqFuture<'a> {
        Box::pin(async move { Some(self.handle(ctx, router, iq).await) })
    }
}

/// What the modules registered: iq handlers, advertised features, stream features, hooks.
#[derive(Default)]
pub struct Registrar {
    iq: HashMap<String, Arc<dyn IqHandler>>,
    features: Vec<String>,
    stream_features: Vec<Element>,
    /// Identities (category, type) an account shows in disco#info besides `account/registered`.
    account_identities: Vec<(&'static str, &'static str)>,
    state: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// The routing events' handlers.
    pub hooks: hooks::HookTable,
}

impl Registrar {
    /// The extensions this build enables, as `config` turns them on.
    pub fn with_defaults(config: &Config) -> Self {
        let mut r = Registrar::default();
        if config.archive.enabled {
            archive::register(&mut r);
            if config.archive.inbox {
                inbox::register(&mut r);
            }
        }
        if config.pep.enabled {
            pep::register(&mut r, config);
        }
        ping::register(&mut r);
        blocking::register(&mut r);
        roster::register(&mut r);
        carbons::register(&mut r);
        documents::register(&mut r);
        version::register(&mut r);
        offline::register(&mut r);
        register::register(&mut r);
        // Last: disco lists what the others registered.
        disco::register(&mut r);
        r
    }

    /// Registers an iq handler for payloads in `ns`.
    pub fn iq(&mut self, ns: &str, h: Arc<dyn IqHandler>) {
        self.iq.insert(ns.to_string(), h);
    }

    /// Advertises a disco#info feature.
    pub fn feature(&mut self, var: &str) {
        if !self.features.iter().any(|f| f == var) {
            self.features.push(var.to_string());
        }
    }

    /// Keeps a module's state (one value per type), for its handlers through [`Ctx::state`].
    pub fn state<T: Any + Send + Sync>(&mut self, v: Arc<T>) {
        self.state.insert(TypeId::of::<T>(), v);
    }

    /// Adds an identity to every account's disco#info (XEP-0163: `pubsub/pep`).
    pub fn account_identity(&mut self, category: &'static str, kind: &'static str) {
        self.account_identities.push((category, kind));
    }

    /// The identities accounts show besides `account/registered`.
    pub fn account_identities(&self) -> Vec<(&'static str, &'static str)> {
        self.account_identities.clone()
    }

    /// Adds a stream feature offered once a client is authenticated (RFC 6120 §4.3.2).
    pub fn stream_feature(&mut self, el: Element) {
        self.stream_features.push(el);
    }

    /// The advertised features, sorted.
    pub fn features(&self) -> Vec<String> {
        let mut f = self.features.clone();
        f.sort();
        f
    }
}

/// The extensions, answering the router's hooks.
pub struct Extensions {
    registrar: Registrar,
    ctx: Ctx,
}

impl Extensions {
    /// The default extensions over `storage`.
    pub fn new(storage: Storage, config: Arc<Config>) -> Self {
        Self::with(Registrar::with_defaults(&config), storage, config)
    }

    /// The extensions `registrar` holds.
    pub fn with(mut registrar: Registrar, storage: Storage, config: Arc<Config>) -> Self {
        let blocks = Arc::new(blocking::Cache::default());
        let state = std::mem::take(&mut registrar.state);
        Extensions {
            registrar,
            ctx: Ctx {
                storage,
                config,
                blocks,
                state,
            },
        }
    }
}

/// An iq about the sender's own account (its archive, its inbox): the sender's bare JID and
/// the payload; `forbidden` when it is addressed to another account, `bad-request` when it
/// has no sender or no payload.
pub(crate) fn own_request(iq: &Element) -> Result<(BareJid, &Element), Element> {
    let bare = |a: Option<&str>| a.and_then(|a| jid::Jid::new(a).ok()).map(|j| j.to_bare());
    let Some(me) = bare(iq.attr("from")) else {
        return Err(iq_error(iq, ErrorCondition::BadRequest, None));
    };
    if iq
        .attr("to")
        .is_some_and(|t| bare(Some(t)).as_ref() != Some(&me))
    {
        return Err(iq_error(iq, ErrorCondition::Forbidden, None));
    }
    match iq.children().next() {
        Some(el) => Ok((me, el)),
        None => Err(iq_error(iq, ErrorCondition::BadRequest, None)),
    }
}

/// (host, localpart) of an account's bare JID.
pub(crate) fn account(j: &BareJid) -> (&str, &str) {
    (
        j.domain().as_str(),
        j.node().map(|n| n.as_str()).unwrap_or_default(),
    )
}

/// (host, user) of a normalised bare JID given as a string (a stored roster contact); the
/// user is empty for a domain JID.
pub(crate) fn account_str(j: &str) -> (&str, &str) {
    match j.split_once('@') {
        Some((user, host)) => (host, user),
        None => (j, ""),
    }
}

/// `from` of a stanza as a full JID (always stamped by the session).
pub(crate) fn sender(stanza: &Element) -> Option<jid::FullJid> {
    stanza.attr("from").and_then(|f| jid::FullJid::new(f).ok())
}

impl Hooks for Extensions {
    fn local<'a>(&'a self, router: &'a Router, stanza: Element) -> HookFuture<'a> {
        Box::pin(async move {
            if stanza.name() != "iq" {
                // Messages to the server itself: nothing handles them (RFC 6121 §8.5.1).
                if stanza.name() == "message" {
                    router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
                }
                return;
            }
            if is_error(&stanza) || stanza.attr("type") == Some("result") {
                return;
            }
            let handler = stanza
                .children()
                .next()
                .and_then(|p| self.registrar.iq.get(p.ns()));
            let reply = match handler {
                Some(h) => match h.handle_opt(&self.ctx, router, &stanza).await {
                    Some(r) => r,
                    None => return,
                },
                None => match error_reply(&stanza, ErrorCondition::ServiceUnavailable, None) {
                    Some(r) => r,
                    None => return,
                },
            };
            router.route(reply).await;
        })
    }

    fn filter<'a>(&'a self, router: &'a Router, stanza: Element) -> StanzaFuture<'a> {
        Box::pin(async move {
            let mut e = hooks::Routing { stanza };
            let flow = self
                .registrar
                .hooks
                .routing
                .run(&self.ctx, router, &mut e)
                .await;
            (flow == hooks::Flow::Next).then_some(e.stanza)
        })
    }

    fn delivering<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: &'a BareJid,
    ) -> StanzaFuture<'a> {
        Box::pin(async move {
            let list = &self.registrar.hooks.delivering;
            let mut e = hooks::Delivering {
                stanza,
                to: to.clone(),
            };
            let flow = list.run(&self.ctx, router, &mut e).await;
            (flow == hooks::Flow::Next).then_some(e.stanza)
        })
    }

    fn stream_features(&self) -> &[Element] {
        &self.registrar.stream_features
    }

    fn presence_out<'a>(
        &'a self,
        router: &'a Router,
        session: &'a SessionHandle,
        stanza: Element,
    ) -> HookFuture<'a> {
        Box::pin(async move {
            let mut e = hooks::PresenceOut {
                session: session.clone(),
                stanza: Some(stanza),
                became: hooks::Became::default(),
            };
            let list = &self.registrar.hooks.presence_out;
            list.run(&self.ctx, router, &mut e).await;
            if let Some(s) = e.stanza {
                router.route(s).await;
            }
        })
    }

    fn presence_in<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        Box::pin(async move {
            let mut e = hooks::PresenceIn {
                stanza: Some(stanza),
                to,
            };
            let list = &self.registrar.hooks.presence_in;
            list.run(&self.ctx, router, &mut e).await;
            if let Some(s) = e.stanza {
                router.deliver_to_available(&s, &e.to);
            }
        })
    }

    fn message_unrouted<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        Box::pin(async move {
            let mut e = hooks::Unrouted {
                stanza: Some(stanza),
                to,
            };
            let list = &self.registrar.hooks.unrouted;
            list.run(&self.ctx, router, &mut e).await;
            if let Some(s) = e.stanza {
                router.bounce(&s, ErrorCondition::ServiceUnavailable);
            }
        })
    }

    fn message_sent(&self, router: &Router, session: &SessionHandle, stanza: &Element) {
        for h in self.registrar.hooks.sent.handlers() {
            h(&self.ctx, router, session, stanza);
        }
    }

    fn message_delivered(
        &self,
        router: &Router,
        stanza: &Element,
        to: &BareJid,
        delivered: &[u64],
    ) {
        for h in self.registrar.hooks.delivered.handlers() {
            h(&self.ctx, router, stanza, to, delivered);
        }
    }

    fn session_closed<'a>(&'a self, router: &'a Router, last: SessionInfo) -> HookFuture<'a> {
        Box::pin(async move {
            let mut e = hooks::Closed { last };
            let list = &self.registrar.hooks.closed;
            list.run(&self.ctx, router, &mut e).await;
        })
    }
}
