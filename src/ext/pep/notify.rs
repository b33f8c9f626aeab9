//! Who hears of a node (XEP-0163 §4, §6): the owner's own resources and, unless the node is
//! the owner's alone (`whitelist`), the resources of contacts subscribed to the owner's
//! presence; of those, only the sessions whose entity capabilities say `<node>+notify`. An
//! event is serialised once for all of them. When a session comes online it gets the last
//! item of each node it may see and wants, its own account's and its contacts'. Entities
//! that subscribed to a node by name (XEP-0060 §6.1) hear of it too, whatever their
//! capabilities, as long as they may still see it. Contacts on other servers are reached
//! through federation (`remote.rs`).

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};

use super::NS_EVENT;
use super::caps::Caps;
use crate::ext::{Ctx, account, blocking};
use crate::router::Router;
use crate::session::{Registry, SessionMsg};
use crate::stanza::shared::{Addressed, SharedStanza};
use crate::storage::Storage;
use crate::storage::pep::{Access, NodeConfig, PepItem};
use crate::xml::{Element, Limits, parse_fragment};

/// `<message from=owner type=headline><event>inner</event></message>`.
pub fn event(owner: &str, inner: Element) -> Element {
    Element::new("message", crate::stream::NS_CLIENT)
        .with_attr("from", owner)
        .with_attr("type", "headline")
        .with_child(Element::new("event", NS_EVENT).with_child(inner))
}

/// `<items node><item id publisher>payload</item></items>` for one item.
pub fn items_event(node: &str, item: &PepItem) -> Element {
    let mut it = Element::new("item", NS_EVENT).with_attr("id", item.id.clone());
    if !item.publisher.is_empty() {
        it.set_attr("publisher", item.publisher.clone());
    }
    if let Ok(payload) = parse_fragment(&item.xml, Limits::stored()) {
        it.append_child(payload);
    }
    Element::new("items", NS_EVENT)
        .with_attr("node", node)
        .with_child(it)
}

/// Sends `msg` to the sessions of `accounts` that are available and want `node`, then to
/// the available sessions named by `subscribers` (a bare JID: each of its sessions) that did
/// not get it already.
fn send(
    registry: &Registry,
    caps: &Caps,
    accounts: &[BareJid],
    subscribers: &[Jid],
    node: &str,
    msg: Element,
) {
    let shared = SharedStanza::new(msg);
    let mut sent: Vec<FullJid> = Vec::new();
    let mut deliver = |s: &crate::session::SessionInfo| {
        if sent.contains(&s.handle.jid) {
            return;
        }
        let a = Addressed {
            shared: shared.clone(),
            to: s.handle.jid.to_string(),
        };
        // A notification that does not fit a full queue is not retried: the node's state is
        // what a client fetches again (XEP-0060 §7.2); the slow session's own overflow
        // handling applies to what follows.
        let _ = s.handle.try_send(SessionMsg::Shared(Box::new(a)));
        sent.push(s.handle.jid.clone());
    };
    for bare in accounts {
        for s in registry.sessions(bare) {
            if s.presence.as_ref().is_some_and(|p| caps.wants(p, node)) {
                deliver(&s);
            }
        }
    }
    for j in subscribers {
        for s in registry.sessions(&j.to_bare()) {
            let named = j.resource().is_none_or(|r| s.handle.jid.resource() == r);
            if named && s.presence.is_some() {
                deliver(&s);
            }
        }
    }
}

/// The explicit subscribers of `owner`'s `node` that may see it (XEP-0060 §6.1).
pub async fn subscribers(ctx: &Ctx, owner: &BareJid, node: &str, access: Access) -> Vec<Jid> {
    let (host, user) = account(owner);
    let jids = match ctx.storage.pep.subscribers(host, user, node).await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("subscribers of {owner}'s {node}: {e}");
            return Vec::new();
        }
    };
    let mut v = Vec::new();
    for j in jids.iter().filter_map(|j| Jid::new(j).ok()) {
        // Access is checked at each event: a contact removed since no longer hears of it.
        if super::may_see(ctx, owner, &j.to_bare(), access).await {
            v.push(j);
        }
    }
    v
}

/// Who hears of `owner`'s node of `access`: the owner and its local contacts subscribed to its
/// presence (accounts), and its contacts on other servers so subscribed; none it has blocked
/// (nor that blocked it).
pub struct Audience {
    /// Local accounts, the owner first.
    pub local: Vec<BareJid>,
    /// Contacts on other servers.
    pub remote: Vec<BareJid>,
}

/// The [`Audience`] of `owner`'s node of `access`.
pub async fn audience(ctx: &Ctx, router: &Router, owner: &BareJid, access: Access) -> Audience {
    let mut v = Audience {
        local: vec![owner.clone()],
        remote: Vec::new(),
    };
    if access == Access::Whitelist {
        return v;
    }
    let (host, user) = account(owner);
    let roster = match ctx.storage.rosters.items_shared(host, user).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("roster of {owner}: {e}");
            return v;
        }
    };
    // The blocklists are checked as for presence; a full JID of the owner stands for it.
    let Ok(me) = FullJid::new(&format!("{owner}/pep")) else {
        return v;
    };
    for item in blocking::presence_peers(ctx, router, &me, &roster.1).await {
        if !item.subscription.has_from() {
            continue;
        }
        let Ok(j) = BareJid::new(&item.contact) else {
            continue;
        };
        match router.is_local(j.domain().as_str()) {
            true => v.local.push(j),
            false => v.remote.push(j),
        }
    }
    v
}

/// Notifies `owner`'s audience of an event on `node` (`inner` is what `<event/>` holds).
pub async fn broadcast(
    ctx: &Ctx,
    router: &Router,
    caps: &Caps,
    owner: &BareJid,
    node: &str,
    access: Access,
    inner: Element,
) {
    let subscribers = subscribers(ctx, owner, node, access).await;
    broadcast_to(ctx, router, caps, owner, node, access, inner, &subscribers).await;
}

/// [`broadcast`] with the node's subscribers read before (a node being deleted loses them).
#[allow(clippy::too_many_arguments)]
pub async fn broadcast_to(
    ctx: &Ctx,
    router: &Router,
    caps: &Caps,
    owner: &BareJid,
    node: &str,
    access: Access,
    inner: Element,
    subscribers: &[Jid],
) {
    let audience = audience(ctx, router, owner, access).await;
    super::remote::broadcast(ctx, router, owner, node, &audience.remote, &inner);
    // Explicit subscribers on other servers (XEP-0060 §6.1), not reached above.
    let mut far: Vec<&Jid> = subscribers
        .iter()
        .filter(|j| !router.is_local(j.domain().as_str()))
        .collect();
    far.dedup();
    if !far.is_empty() {
        let msg = event(owner.as_str(), inner.clone());
        for j in far {
            let mut m = msg.clone();
            m.set_attr("to", j.to_string());
            router.send_to_session(m);
        }
    }
    send(
        &router.registry,
        caps,
        &audience.local,
        subscribers,
        node,
        event(owner.as_str(), inner),
    );
}

/// What a session coming online is owed: the last item of each node of `sources` (its own
/// account first, then the contacts whose presence it receives) that it may see and wants.
pub struct Backlog {
    /// The session.
    pub session: FullJid,
    /// Its presence (with its capabilities).
    pub presence: Arc<Element>,
    /// The accounts whose nodes it may see: its own, then its contacts'.
    pub sources: Vec<BareJid>,
}

impl Backlog {
    /// Sends the last items, once the session's capabilities are known.
    pub async fn send(self, storage: &Storage, registry: &Registry, caps: &Caps) {
        let Some(h) = registry.get(&self.session) else {
            return;
        };
        let me = self.session.to_bare();
        for source in &self.sources {
            for (node, config, item) in last_items(storage, source).await {
                let allowed = source == &me || config.access != Access::Whitelist;
                if !allowed || !caps.wants(&self.presence, &node) {
                    continue;
                }
                let m = last_item_event(source, &node, &item, self.session.as_str());
                let _ = h.try_send(SessionMsg::Stanza(Box::new(m)));
            }
        }
    }
}

/// The last item of each of `owner`'s nodes (none, logged, if the store fails).
pub async fn last_items(storage: &Storage, owner: &BareJid) -> Vec<(String, NodeConfig, PepItem)> {
    let (host, user) = account(owner);
    match storage.pep.last_items(host, user).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("last items of {owner}: {e}");
            Vec::new()
        }
    }
}

/// `owner`'s last item of `node` as an event to `to`, stamped with when it was published.
pub fn last_item_event(owner: &BareJid, node: &str, item: &PepItem, to: &str) -> Element {
    let mut m = event(owner.as_str(), items_event(node, item));
    m.set_attr("to", to);
    m.append_child(crate::stanza::delay(owner.as_str(), item.ts_ms));
    m
}
