//! PEP for contacts on other servers (XEP-0163 §4 across federation). Their clients make
//! themselves known the way local ones do, by presence: an available presence from a remote
//! full JID to a local account, sent by a contact in the account's roster and with entity
//! capabilities, is remembered with the client's verified `+notify` features (asked of the
//! client through its server, as for local sessions, when the hash is new); its unavailable
//! presence forgets it. Events of the account's nodes then go, through federation, to the
//! remembered resources that want them and may see the node (subscribed to the account's
//! presence, checked at each event); a resource newly seen (or whose capabilities changed) gets
//! the last item of each node it wants, as Prosody's `mod_pep` does. Contacts whose server
//! tells nothing of their resources get nothing pushed; they can still fetch items.
//!
//! Bounds: `pep.remote_resources_bytes` in all (each entry counts its JID's bytes and a fixed
//! overhead, and so does each capabilities question in flight: one at a time per account and
//! resource) and `pep.remote_resources_per_contact` per account and contact; past either, a
//! resource is not remembered (a debug line says so).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use jid::{BareJid, FullJid};

use super::caps::{self, Caps, Features};
use super::notify::event;
use crate::ext::hooks::{Flow, HookFut, PresenceIn};
use crate::ext::{Ctx, account};
use crate::router::Router;
use crate::storage::pep::Access;
use crate::xml::Element;

/// What an entry costs besides its JID's bytes (map slots, the `Arc` of its features).
const ENTRY_OVERHEAD: usize = 96;

/// The remote resources that follow local accounts' nodes.
pub struct RemoteResources {
    inner: Mutex<Inner>,
    max_bytes: usize,
    per_contact: usize,
}

#[derive(Default)]
struct Inner {
    /// Account → remote resource → its `+notify` features.
    by_owner: HashMap<BareJid, HashMap<FullJid, Features>>,
    /// (account, remote resource) whose capabilities are being asked now: one question at a
    /// time each, counted in `bytes` too.
    learning: HashSet<(BareJid, FullJid)>,
    bytes: usize,
}

fn cost(full: &FullJid) -> usize {
    full.as_str().len() + ENTRY_OVERHEAD
}

impl RemoteResources {
    /// At most `max_bytes` in all and `per_contact` resources per account and contact.
    pub fn new(max_bytes: usize, per_contact: usize) -> Self {
        RemoteResources {
            inner: Mutex::new(Inner::default()),
            max_bytes,
            per_contact,
        }
    }

    /// Remembers `full` with `features` for `owner`. `Some(true)` when it is new or its
    /// features changed, `Some(false)` when nothing changed, `None` past the bounds.
    pub fn set(&self, owner: &BareJid, full: &FullJid, features: Features) -> Option<bool> {
        let mut guard = self.inner.lock().ok()?;
        let inner = &mut *guard;
        let resources = inner.by_owner.entry(owner.clone()).or_default();
        if let Some(f) = resources.get_mut(full) {
            let changed = *f != features;
            *f = features;
            return Some(changed);
        }
        let bare = full.to_bare();
        let of_contact = resources.keys().filter(|r| r.to_bare() == bare).count();
        let c = cost(full);
        if of_contact >= self.per_contact || inner.bytes + c > self.max_bytes {
            if resources.is_empty() {
                inner.by_owner.remove(owner);
            }
            tracing::debug!(%owner, %full, "remote PEP resources full: not remembered");
            return None;
        }
        resources.insert(full.clone(), features);
        inner.bytes += c;
        Some(true)
    }

    /// Marks `full`'s capabilities as being asked for `owner`; false if they already are, or
    /// past the bounds (a peer that repeats presence faster than its client answers makes no
    /// more work nor memory than one question).
    pub fn begin_learning(&self, owner: &BareJid, full: &FullJid) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        let c = cost(full);
        if inner.bytes + c > self.max_bytes {
            return false;
        }
        if !inner.learning.insert((owner.clone(), full.clone())) {
            return false;
        }
        inner.bytes += c;
        true
    }

    /// The question [`RemoteResources::begin_learning`] marked is over.
    pub fn end_learning(&self, owner: &BareJid, full: &FullJid) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.learning.remove(&(owner.clone(), full.clone()))
        {
            inner.bytes -= cost(full);
        }
    }

    /// Forgets `full` for `owner`.
    pub fn forget(&self, owner: &BareJid, full: &FullJid) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let inner = &mut *guard;
        let Some(resources) = inner.by_owner.get_mut(owner) else {
            return;
        };
        if resources.remove(full).is_some() {
            inner.bytes -= cost(full);
        }
        if resources.is_empty() {
            inner.by_owner.remove(owner);
        }
    }

    /// The remembered resources of `owner`'s contacts in `contacts` that want `node`.
    pub fn wanting(&self, owner: &BareJid, node: &str, contacts: &[BareJid]) -> Vec<FullJid> {
        let want = format!("{node}+notify");
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let Some(resources) = inner.by_owner.get(owner) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(full, f)| f.contains(&want) && contacts.contains(&full.to_bare()))
            .map(|(full, _)| full.clone())
            .collect()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }
}

/// Sends `owner`'s event `inner` on `node` to the remembered remote resources of `contacts`
/// (its remote contacts that may see the node) that want it.
pub fn broadcast(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    node: &str,
    contacts: &[BareJid],
    inner: &Element,
) {
    if contacts.is_empty() {
        return;
    }
    let Some(remote) = ctx.state::<RemoteResources>() else {
        return;
    };
    let targets = remote.wanting(owner, node, contacts);
    if targets.is_empty() {
        return;
    }
    let msg = event(owner.as_str(), inner.clone());
    for to in targets {
        let mut m = msg.clone();
        m.set_attr("to", to.to_string());
        router.send_to_session(m);
    }
}

/// Presence from another server's client to a local account: remembered, or forgotten.
pub fn on_presence_in<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut PresenceIn) -> HookFut<'a> {
    Box::pin(async move {
        let Some(stanza) = e.stanza.as_ref() else {
            return Flow::Next;
        };
        let Some(from) = stanza.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return Flow::Next;
        };
        if router.is_local(from.domain().as_str()) {
            return Flow::Next;
        }
        let (Some(remote), Some(caps)) = (ctx.state::<RemoteResources>(), ctx.state::<Caps>())
        else {
            return Flow::Next;
        };
        let owner = e.to.clone();
        match stanza.attr("type") {
            None => {}
            Some("unavailable") => {
                remote.forget(&owner, &from);
                return Flow::Next;
            }
            _ => return Flow::Next,
        }
        // Any contact in the roster is remembered, whatever the subscription says now: a
        // contact's presence often arrives while the subscriptions are still being agreed, and
        // is not sent again when they are. Who may see a node is checked at each event.
        let (host, user) = account(&owner);
        let subscription = match ctx
            .storage
            .rosters
            .item(host, user, from.to_bare().as_str())
            .await
        {
            Ok(Some(i)) => i.subscription,
            _ => {
                remote.forget(&owner, &from);
                return Flow::Next;
            }
        };
        if caps::of(stanza).is_none() {
            remote.forget(&owner, &from);
            return Flow::Next;
        }
        let Some(router) = router.arc() else {
            return Flow::Next;
        };
        let storage = ctx.storage.clone();
        if let Some(features) = caps.features(stanza) {
            // Known capabilities: remembered now; only the last items go on in a task.
            if remote.set(&owner, &from, features.clone()) == Some(true) && subscription.has_from()
            {
                tokio::spawn(async move {
                    last_items(&storage, &router, &owner, &from, &features).await;
                });
            }
            return Flow::Next;
        }
        if !remote.begin_learning(&owner, &from) {
            return Flow::Next;
        }
        // Not awaited: the client's answer to a capabilities question comes in on the stream
        // this presence came by, which must go on being read. The task keeps only the `<c/>`.
        let presence = match stanza.get_child("c", caps::NS_CAPS) {
            Some(c) => Element::new("presence", crate::stream::NS_CLIENT).with_child(c.clone()),
            None => return Flow::Next,
        };
        tokio::spawn(async move {
            let host = owner.domain().to_string();
            let learnt = caps.learn(&router, &host, &from, &presence).await;
            remote.end_learning(&owner, &from);
            let Some(features) = learnt else {
                return;
            };
            if remote.set(&owner, &from, features.clone()) == Some(true) && subscription.has_from()
            {
                last_items(&storage, &router, &owner, &from, &features).await;
            }
        });
        Flow::Next
    })
}

/// The last item of each of `owner`'s nodes that `to` (a remote contact's resource subscribed
/// to `owner`'s presence) may see and wants, with its delay stamp.
async fn last_items(
    storage: &crate::storage::Storage,
    router: &Router,
    owner: &BareJid,
    to: &FullJid,
    features: &Features,
) {
    for (node, config, item) in super::notify::last_items(storage, owner).await {
        if config.access == Access::Whitelist || !features.contains(&format!("{node}+notify")) {
            continue;
        }
        router.send_to_session(super::notify::last_item_event(
            owner,
            &node,
            &item,
            to.as_str(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    fn features(f: &[&str]) -> Features {
        Arc::new(f.iter().map(|s| s.to_string()).collect::<HashSet<_>>())
    }

    fn full(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    #[test]
    fn a_flood_of_resources_stops_at_the_bounds() {
        let owner = BareJid::new("alice@a.test").unwrap();
        let nick = features(&["nick+notify"]);
        // Per contact: a remote server that makes up resources for one contact.
        let r = RemoteResources::new(1 << 20, 4);
        let mut kept = 0;
        for i in 0..1000 {
            if r.set(&owner, &full(&format!("bob@b.test/r{i}")), nick.clone()) == Some(true) {
                kept += 1;
            }
        }
        assert_eq!(kept, 4);
        assert_eq!(r.bytes(), 4 * (cost(&full("bob@b.test/r0"))));
        // In bytes: many contacts, each within its own bound, stop at the total.
        let r = RemoteResources::new(10 * cost(&full("u000@b.test/r")), 4);
        for i in 0..1000 {
            r.set(&owner, &full(&format!("u{i:03}@b.test/r")), nick.clone());
        }
        assert_eq!(r.bytes(), 10 * cost(&full("u000@b.test/r")));
        assert_eq!(
            r.wanting(&owner, "nick", &[BareJid::new("u005@b.test").unwrap()])
                .len(),
            1
        );
        assert!(
            r.wanting(&owner, "nick", &[BareJid::new("u500@b.test").unwrap()])
                .is_empty()
        );
        // Forgetting gives the room back.
        r.forget(&owner, &full("u005@b.test/r"));
        assert_eq!(r.bytes(), 9 * cost(&full("u000@b.test/r")));
        assert_eq!(
            r.set(&owner, &full("u500@b.test/r"), nick.clone()),
            Some(true)
        );
        // One capabilities question at a time per (account, resource), counted in bytes.
        let r = RemoteResources::new(1 << 20, 4);
        let bob = full("bob@b.test/r");
        assert!(r.begin_learning(&owner, &bob));
        assert!(!r.begin_learning(&owner, &bob));
        assert_eq!(r.bytes(), cost(&bob));
        r.end_learning(&owner, &bob);
        assert_eq!(r.bytes(), 0);
        assert!(r.begin_learning(&owner, &bob));
        // 0 bytes: nothing is remembered.
        let off = RemoteResources::new(0, 16);
        assert_eq!(off.set(&owner, &full("bob@b.test/r"), nick), None);
        assert_eq!(off.bytes(), 0);
    }

    #[test]
    fn changed_capabilities_count_as_new_and_only_wanted_nodes_match() {
        let owner = BareJid::new("alice@a.test").unwrap();
        let bob = full("bob@b.test/phone");
        let contacts = [bob.to_bare()];
        let r = RemoteResources::new(1 << 20, 4);
        assert_eq!(r.set(&owner, &bob, features(&["nick+notify"])), Some(true));
        assert_eq!(r.set(&owner, &bob, features(&["nick+notify"])), Some(false));
        assert_eq!(
            r.wanting(&owner, "nick", &contacts),
            std::slice::from_ref(&bob)
        );
        assert!(r.wanting(&owner, "mood", &contacts).is_empty());
        // Not a contact that may see the node (any more): not sent to.
        assert!(r.wanting(&owner, "nick", &[]).is_empty());
        assert_eq!(r.set(&owner, &bob, features(&["mood+notify"])), Some(true));
        assert!(r.wanting(&owner, "nick", &contacts).is_empty());
        r.forget(&owner, &bob);
        assert_eq!(r.bytes(), 0);
    }
}
