//! The hook registry: each module declares, when it registers, the events it handles and with
//! which priority (as ejabberd's `gen_mod:start/2` adds hooks with a sequence number and
//! Prosody's `module:hook(event, handler, priority)`). Handlers of an event run from the
//! highest priority down; an async handler may change the event's stanza, take it (and so
//! handle it), or stop the event; what no handler took falls back to the RFC's baseline (the
//! router's defaults, `router::Hooks`). Observers (`sent`, `delivered`) run synchronously
//! on the routing path and only look.
//!
//! Adding a module: a folder in `ext/` with its `register(r: &mut Registrar)`, one line in
//! [`super::Registrar::with_defaults`], and if it stores anything its store trait, its SQL in
//! `storage/sql/`, its paired migrations and a conformance test.

use std::future::Future;
use std::pin::Pin;

use jid::BareJid;

use super::Ctx;
use crate::router::Router;
use crate::session::{SessionHandle, SessionInfo};
use crate::xml::Element;

/// Whether later handlers of an event run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next handler (and then the default).
    Next,
    /// Stop here: the event is handled.
    Stop,
}

/// What an async handler returns.
pub type HookFut<'a> = Pin<Box<dyn Future<Output = Flow> + Send + 'a>>;
/// An async handler of events `E`.
pub type Handler<E> = for<'a> fn(&'a Ctx, &'a Router, &'a mut E) -> HookFut<'a>;

/// The handlers of one event, highest priority first (equal priorities in registration order).
pub struct HookList<H> {
    hooks: Vec<(i32, &'static str, H)>,
}

impl<H> Default for HookList<H> {
    fn default() -> Self {
        HookList { hooks: Vec::new() }
    }
}

impl<H: Copy> HookList<H> {
    /// Adds `handler` of `module` at `priority`.
    pub fn add(&mut self, priority: i32, module: &'static str, handler: H) {
        let at = self
            .hooks
            .iter()
            .position(|h| h.0 < priority)
            .unwrap_or(self.hooks.len());
        self.hooks.insert(at, (priority, module, handler));
    }

    /// The modules, in the order they run.
    pub fn modules(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.1).collect()
    }

    /// The handlers, in order.
    pub fn handlers(&self) -> impl Iterator<Item = H> + '_ {
        self.hooks.iter().map(|h| h.2)
    }
}

impl<E: Send> HookList<Handler<E>> {
    /// Runs the handlers until one stops.
    pub async fn run(&self, ctx: &Ctx, router: &Router, e: &mut E) -> Flow {
        for h in self.handlers() {
            if h(ctx, router, e).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Next
    }
}

/// A stanza about to be routed (`from` stamped); a handler that stops it has answered its
/// sender as its protocol says (blocking).
pub struct Routing {
    /// The stanza; a handler may change it.
    pub stanza: Element,
}

/// A message about to be delivered to a local account's sessions, or stored for it: the last
/// moment to change it (an archive stamps its id) or stop it.
pub struct Delivering {
    /// The message.
    pub stanza: Element,
    /// The account.
    pub to: BareJid,
}

/// A bound session sent presence (broadcast, directed or subscription).
pub struct PresenceOut {
    /// The session.
    pub session: SessionHandle,
    /// The presence; the handler that routes it takes it.
    pub stanza: Option<Element>,
    /// What the presence changed for the session (set by the roster module).
    pub became: Became,
}

/// What a session's own presence changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Became {
    /// It was the session's initial presence.
    pub initial: bool,
    /// The session can now receive messages to the bare JID (available with a non-negative
    /// priority, RFC 6121 §8.5.2.1.1), and could not before.
    pub reachable: bool,
}

/// A presence addressed to a local account's bare JID.
pub struct PresenceIn {
    /// The presence; the handler that handles it takes it.
    pub stanza: Option<Element>,
    /// The account.
    pub to: BareJid,
}

/// A chat or normal message found no available resource (RFC 6121 §8.5.2.2).
pub struct Unrouted {
    /// The message; the handler that stores it takes it.
    pub stanza: Option<Element>,
    /// The account.
    pub to: BareJid,
}

/// A session ended.
pub struct Closed {
    /// Its state when it was unbound.
    pub last: SessionInfo,
}

/// A bound session is about to send this message (observers: carbons).
pub type Sent = fn(&Ctx, &Router, &SessionHandle, &Element);
/// A message was handed to these sessions of an account (observers: carbons).
pub type Delivered = fn(&Ctx, &Router, &Element, &BareJid, &[u64]);

/// Every event's handlers.
#[derive(Default)]
pub struct HookTable {
    /// Before routing.
    pub routing: HookList<Handler<Routing>>,
    /// Before delivery or storage of a message to a local account.
    pub delivering: HookList<Handler<Delivering>>,
    /// A session's outbound presence.
    pub presence_out: HookList<Handler<PresenceOut>>,
    /// Inbound presence to an account.
    pub presence_in: HookList<Handler<PresenceIn>>,
    /// A message without an available resource.
    pub unrouted: HookList<Handler<Unrouted>>,
    /// A session ended.
    pub closed: HookList<Handler<Closed>>,
    /// A session sends a message.
    pub sent: HookList<Sent>,
    /// A message was delivered.
    pub delivered: HookList<Delivered>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ext::{Extensions, Registrar};
    use crate::session::{Registry, SessionMsg};

    fn noop<'a>(_: &'a Ctx, _: &'a Router, _: &'a mut Routing) -> HookFut<'a> {
        Box::pin(async { Flow::Next })
    }

    #[test]
    fn handlers_run_by_priority_then_registration_order() {
        let mut l: HookList<Handler<Routing>> = HookList::default();
        l.add(0, "b", noop);
        l.add(10, "a", noop);
        l.add(0, "c", noop);
        l.add(-5, "d", noop);
        assert_eq!(l.modules(), ["a", "b", "c", "d"]);
    }

    /// An archive-like module: stamps every message before delivery.
    fn stamp<'a>(_: &'a Ctx, _: &'a Router, e: &'a mut Delivering) -> HookFut<'a> {
        Box::pin(async move {
            e.stanza
                .append_child(Element::new("stanza-id", "urn:xmpp:sid:0").with_attr("id", "1"));
            Flow::Next
        })
    }

    /// A filter that stops messages whose body says "spam", before routing.
    fn no_spam<'a>(_: &'a Ctx, _: &'a Router, e: &'a mut Routing) -> HookFut<'a> {
        Box::pin(async move {
            match e.stanza.get_child("body", crate::stream::NS_CLIENT) {
                Some(b) if b.text() == "spam" => Flow::Stop,
                _ => Flow::Next,
            }
        })
    }

    #[tokio::test]
    async fn a_module_changes_a_message_before_delivery_and_another_stops_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        let config = Arc::new(config);
        let storage = crate::storage::Storage::open(&config).await.unwrap();
        let mut r = Registrar::with_defaults(&config);
        r.hooks.delivering.add(0, "archive", stamp);
        r.hooks.routing.add(50, "spam", no_spam);
        let router = Router::new(Arc::new(Registry::new()), vec!["localhost".into()]);
        router.set_hooks(Arc::new(Extensions::with(r, storage, config)));
        let bob = jid::FullJid::new("bob@localhost/x").unwrap();
        let (tx, mut rx) = crate::session::queue::inbox(10, 1 << 20);
        let policy = crate::config::ResourceConflict::KickOld;
        let crate::session::BindOutcome::Bound { .. } = router.registry.bind(bob, tx, policy)
        else {
            panic!("bind");
        };
        let msg = |body: &str| {
            Element::new("message", crate::stream::NS_CLIENT)
                .with_attr("from", "alice@localhost/y")
                .with_attr("to", "bob@localhost/x")
                .with_attr("type", "chat")
                .with_child(Element::new("body", crate::stream::NS_CLIENT).with_text(body))
        };
        router.route(msg("spam")).await;
        router.route(msg("hello")).await;
        let Some(SessionMsg::Stanza(got)) = rx.try_recv() else {
            panic!("one message delivered");
        };
        assert_eq!(
            got.get_child("body", crate::stream::NS_CLIENT)
                .unwrap()
                .text(),
            "hello"
        );
        assert!(
            got.get_child("stanza-id", "urn:xmpp:sid:0").is_some(),
            "stamped"
        );
        assert!(rx.try_recv().is_none(), "the spam was stopped");
    }
}
