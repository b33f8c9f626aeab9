//! The events the router and the sessions raise, which the extensions answer (Prosody's
//! "events as the API"): the router's one narrow interface to the modules. Defined here so
//! that `ext/` depends on the router, never the reverse; `ext/hooks.rs` dispatches each event
//! to the handlers the modules registered, by priority. Each method's default is the RFC's
//! baseline, which also applies when no module handled the event.

use std::future::Future;
use std::pin::Pin;

use jid::BareJid;

use super::Router;
use crate::session::{SessionHandle, SessionInfo};
use crate::xml::Element;

/// A boxed future of a hook.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// A boxed future of a hook that may keep (and change) a stanza or stop it (`None`).
pub type StanzaFuture<'a> = Pin<Box<dyn Future<Output = Option<Element>> + Send + 'a>>;

/// What the extensions do with routing events. Every method has a default that keeps the
/// RFC's baseline behaviour, so a server without extensions still routes correctly.
pub trait Hooks: Send + Sync {
    /// A stanza addressed to the server itself, or an iq to an account's bare JID
    /// (RFC 6120 §10.3.3: the server answers on the account's behalf).
    fn local<'a>(&'a self, router: &'a Router, stanza: Element) -> HookFuture<'a> {
        Box::pin(async move {
            router.bounce(&stanza, crate::stanza::ErrorCondition::ServiceUnavailable)
        })
    }

    /// A stanza about to be routed: returned (maybe changed) to go on, or `None` when a
    /// module stopped it and answered the sender as its protocol says (blocking).
    fn filter<'a>(&'a self, router: &'a Router, stanza: Element) -> StanzaFuture<'a> {
        let _ = router;
        Box::pin(async { Some(stanza) })
    }

    /// A message about to be delivered to (or stored for) local account `to`: returned,
    /// maybe changed (an archive stamps its id), or `None` when a module took it.
    fn delivering<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: &'a BareJid,
    ) -> StanzaFuture<'a> {
        let _ = (router, to);
        Box::pin(async { Some(stanza) })
    }

    /// Stream features the modules add once a client is authenticated (roster versioning…).
    fn stream_features(&self) -> &[Element] {
        &[]
    }

    /// A bound session sent a presence stanza (broadcast, directed or subscription); `from`
    /// is stamped. The default routes it.
    fn presence_out<'a>(
        &'a self,
        router: &'a Router,
        session: &'a SessionHandle,
        stanza: Element,
    ) -> HookFuture<'a> {
        let _ = session;
        Box::pin(router.route(stanza))
    }

    /// A presence addressed to a local account's bare JID (subscriptions, probes, directed
    /// presence). The default delivers it to every available resource.
    fn presence_in<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        Box::pin(async move { router.deliver_to_available(&stanza, &to) })
    }

    /// A normal or chat message found no available resource (RFC 6121 §8.5.2.2). The default
    /// bounces it; offline storage overrides this.
    fn message_unrouted<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
        to: BareJid,
    ) -> HookFuture<'a> {
        let _ = to;
        Box::pin(async move {
            router.bounce(&stanza, crate::stanza::ErrorCondition::ServiceUnavailable)
        })
    }

    /// A bound session is about to send a message (for sent carbons).
    fn message_sent(&self, router: &Router, session: &SessionHandle, stanza: &Element) {
        let _ = (router, session, stanza);
    }

    /// A message was handed to the sessions `delivered` of `to` (for received carbons).
    fn message_delivered(
        &self,
        router: &Router,
        stanza: &Element,
        to: &BareJid,
        delivered: &[u64],
    ) {
        let _ = (router, stanza, to, delivered);
    }

    /// A session ended; `last` is its state when it was unbound.
    fn session_closed<'a>(&'a self, router: &'a Router, last: SessionInfo) -> HookFuture<'a> {
        let _ = (router, last);
        Box::pin(async {})
    }
}

/// Hooks with only the defaults (a router without extensions).
pub struct NoHooks;

impl Hooks for NoHooks {}
