//! Extensions: one module per feature. Iq handlers register by payload namespace with the
//! [`Registrar`]; routing events arrive through [`Extensions`], the router's [`Hooks`], which
//! hands each event to the modules that care, in a fixed order. What modules share is the
//! [`Ctx`] (storage, configuration, the blocklist cache) and the router; where one needs
//! another's decision it calls it directly (presence fan-out asks `blocking`, roster pushes go
//! through `roster::push`), which a hook registry with priorities is to replace.
//!
//! Everything not handled is answered with `service-unavailable` (RFC 6120 §8.4).

pub mod blocking;
pub mod carbons;
pub mod disco;
pub mod documents;
pub mod offline;
pub mod ping;
pub mod register;
pub mod roster;
pub mod version;

use std::collections::HashMap;
use std::sync::Arc;

use jid::BareJid;

use crate::config::Config;
use crate::router::{BoolFuture, HookFuture, Hooks, Router};
use crate::session::{SessionHandle, SessionInfo};
use crate::stanza::{ErrorCondition, error_reply, is_error};
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
}

impl Ctx {
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

/// The table of iq handlers and advertised features.
#[derive(Default)]
pub struct Registrar {
    iq: HashMap<String, Arc<dyn IqHandler>>,
    features: Vec<String>,
}

impl Registrar {
    /// The extensions this build enables; `blocks` is shared with the routing check.
    pub fn with_defaults(blocks: Arc<blocking::Cache>) -> Self {
        let mut r = Registrar::default();
        ping::register(&mut r);
        blocking::register(&mut r, blocks);
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
    blocks: Arc<blocking::Cache>,
}

impl Extensions {
    /// The default extensions over `storage`.
    pub fn new(storage: Storage, config: Arc<Config>) -> Self {
        let blocks = Arc::new(blocking::Cache::default());
        Extensions {
            registrar: Registrar::with_defaults(blocks.clone()),
            ctx: Ctx {
                storage,
                config,
                blocks: blocks.clone(),
            },
            blocks,
        }
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

    fn allowed<'a>(&'a self, router: &'a Router, stanza: &'a Element) -> BoolFuture<'a> {
        Box::pin(blocking::allowed(&self.ctx, &self.blocks, router, stanza))
    }

    fn presence_out<'a>(
        &'a self,
        router: &'a Router,
        session: &'a SessionHandle,
        stanza: Element,
    ) -> HookFuture<'a> {
        Box::pin(async move {
            let became = roster::presence::outbound(&self.ctx, router, session, stanza).await;
            if became.initial {
                // Initial presence: subscription requests that waited come now (presence goes
                // to every available resource, whatever its priority).
                roster::presence::deliver_pending_requests(&self.ctx, router, session).await;
            }
            if became.reachable {
                // Messages to the bare JID that waited: only for a non-negative priority.
                offline::deliver(&self.ctx, router, session).await;
            }
        })
    }

    fn presence_in<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        Box::pin(roster::presence::inbound(&self.ctx, router, stanza, to))
    }

    fn message_unrouted<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        Box::pin(offline::store_or_bounce(&self.ctx, router, stanza, to))
    }

    fn message_sent(&self, router: &Router, session: &SessionHandle, stanza: &Element) {
        carbons::sent(router, session, stanza);
    }

    fn message_delivered(
        &self,
        router: &Router,
        stanza: &Element,
        to: &BareJid,
        delivered: &[u64],
    ) {
        carbons::received(router, stanza, to, delivered);
    }

    fn session_closed<'a>(&'a self, router: &'a Router, last: SessionInfo) -> HookFuture<'a> {
        Box::pin(roster::presence::session_closed(&self.ctx, router, last))
    }
}
