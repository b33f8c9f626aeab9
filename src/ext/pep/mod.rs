//! Personal eventing (XEP-0163) and the part of publish-subscribe (XEP-0060) it needs: every
//! account is a pubsub service (`pubsub/pep`) whose nodes are created by publishing, with
//! publish-options (XEP-0060 §7.1.5: `pubsub#access_model`, `persist_items`, `max_items`,
//! `notify_retract` create the node so, or are preconditions a different existing node fails
//! with `precondition-not-met`); retract, items (all, the newest n, by id), node configuration,
//! delete and purge by the owner. Notifications go to the owner's resources and to the
//! contacts subscribed to its presence, each session only for the nodes its entity
//! capabilities ask for with `+notify` (`caps.rs`: verified and cached); a session coming
//! online gets the last item of each node it wants (`notify.rs`).
//!
//! Avatars (XEP-0084), nicknames (XEP-0172), bookmarks (XEP-0402), OMEMO device lists and
//! bundles (XEP-0384) and private storage (XEP-0223) are such nodes; they need nothing more
//! from the server than this.
//!
//! Bounds: `pep.max_nodes` per account, `pep.max_items` per node, `pep.max_item_size` per item
//! and `pep.quota_bytes` per account (`resource-constraint` / `not-acceptable` past them).

pub mod avatar;
pub mod bookmarks;
pub mod caps;
pub mod notify;
mod ops;
pub mod remote;
pub mod server;
mod subscribe;

use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, Jid};

use super::hooks::{Flow, HookFut, PresenceOut};
use super::{Ctx, IqFuture, IqHandler, Registrar, account};
use crate::config::Config;
use crate::router::Router;
use crate::stanza::{ErrorCondition, error_reply_with, iq_error};
use crate::storage::pep::{Access, NodeConfig};
use crate::xml::Element;

/// `http://jabber.org/protocol/pubsub`
pub const NS: &str = "http://jabber.org/protocol/pubsub";
/// `http://jabber.org/protocol/pubsub#owner`
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// `http://jabber.org/protocol/pubsub#event`
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// `http://jabber.org/protocol/pubsub#errors`
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// The configuration of a node created without options (XEP-0163 §4.3: one item, presence
/// access, items kept).
pub const DEFAULT_NODE: NodeConfig = NodeConfig {
    access: Access::Presence,
    persist_items: true,
    max_items: 1,
    notify_retract: true,
};

/// An error with a pubsub-specific condition (XEP-0060 §7.1.3, e.g. `precondition-not-met`).
pub fn pubsub_error(iq: &Element, c: ErrorCondition, specific: &str) -> Element {
    error_reply_with(iq, c, Element::new(specific, NS_ERRORS))
        .unwrap_or_else(|| iq_error(iq, c, None))
}

/// Whether `requester` may see the items of `owner`'s node of `access`.
pub async fn may_see(ctx: &Ctx, owner: &BareJid, requester: &BareJid, access: Access) -> bool {
    if owner == requester {
        return true;
    }
    match access {
        Access::Open => true,
        Access::Whitelist => false,
        Access::Presence => {
            let (host, user) = account(owner);
            matches!(
                ctx.storage.rosters.item(host, user, requester.as_str()).await,
                Ok(Some(i)) if i.subscription.has_from()
            )
        }
    }
}

/// The nodes of `owner` that `requester` may see, by name (disco#items, XEP-0060 §5.2).
pub async fn visible_nodes(ctx: &Ctx, owner: &BareJid, requester: &BareJid) -> Vec<String> {
    let (host, user) = account(owner);
    let pep = &ctx.storage.pep;
    let mut out = Vec::new();
    let mut seen: Vec<(Access, bool)> = Vec::new();
    for name in pep.nodes(host, user).await.unwrap_or_default() {
        let Ok(Some(c)) = pep.node(host, user, &name).await else {
            continue;
        };
        let may = match seen.iter().find(|(a, _)| *a == c.access) {
            Some((_, m)) => *m,
            None => {
                let m = may_see(ctx, owner, requester, c.access).await;
                seen.push((c.access, m));
                m
            }
        };
        if may {
            out.push(name);
        }
    }
    out
}

struct Pep;

impl IqHandler for Pep {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some(from) = iq.attr("from").and_then(|f| Jid::new(f).ok()) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            let requester = from.to_bare();
            // No `to`: one's own account (XEP-0163 §3).
            let owner = match iq.attr("to").map(Jid::new) {
                None => requester.clone(),
                Some(Ok(j)) if j.node().is_some() => j.to_bare(),
                _ => return iq_error(iq, ErrorCondition::BadRequest, None),
            };
            let Some(caps) = ctx.state::<caps::Caps>() else {
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            };
            let op = ops::Op {
                ctx,
                router,
                caps: &caps,
                iq,
                owner: &owner,
                requester: &requester,
                publisher: from.to_string(),
            };
            op.run().await
        })
    }
}

/// A client of `owner` published `payload` as item `id` of `node` (`None`: retracted it):
/// the conversions to the forms older clients read (vCard avatars, XEP-0048 bookmarks).
async fn published(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    node: &str,
    id: &str,
    payload: Option<&Element>,
) {
    match (node, payload) {
        (avatar::NODE_METADATA, Some(p)) => avatar::metadata_published(ctx, owner, p).await,
        (bookmarks::NODE, p) => bookmarks::native_changed(ctx, router, owner, id, p).await,
        (bookmarks::LEGACY, Some(p)) => bookmarks::legacy_set(ctx, router, owner, p, true).await,
        _ => {}
    }
}

/// A session's presence: its capabilities are learnt (asked once per unknown hash), and on
/// its initial presence it gets the last items it is owed.
fn on_presence_out<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut PresenceOut) -> HookFut<'a> {
    Box::pin(async move {
        let session = e.session.jid.clone();
        let Some(presence) = router.registry.info(&session).and_then(|i| i.presence) else {
            return Flow::Next;
        };
        let Some(caps) = ctx.state::<caps::Caps>() else {
            return Flow::Next;
        };
        // Without capabilities a client follows nothing (there is no other way to ask).
        if caps::of(&presence).is_none() {
            return Flow::Next;
        }
        let known = caps.features(&presence).is_some();
        if known && !e.became.initial {
            return Flow::Next;
        }
        let backlog = if e.became.initial {
            let me = session.to_bare();
            let mut sources = vec![me.clone()];
            let (host, user) = account(&me);
            if let Ok(r) = ctx.storage.rosters.items_shared(host, user).await {
                for item in blocking_filtered(ctx, router, &session, &r.1).await {
                    sources.push(item);
                }
            }
            Some(notify::Backlog {
                session: session.clone(),
                presence: presence.clone(),
                sources,
            })
        } else {
            None
        };
        // Not awaited here: the client's answer to the capabilities question comes through
        // this very session, which must go on reading.
        let Some(router) = router.arc() else {
            return Flow::Next;
        };
        let storage = ctx.storage.clone();
        let host = session.domain().to_string();
        tokio::spawn(async move {
            if caps
                .learn(&router, &host, &session, &presence)
                .await
                .is_some()
                && let Some(b) = backlog
            {
                b.send(&storage, &router.registry, &caps).await;
            }
        });
        Flow::Next
    })
}

/// The local contacts whose presence `session`'s account receives (`to`/`both`), not blocked
/// either way.
async fn blocking_filtered(
    ctx: &Ctx,
    router: &Router,
    session: &jid::FullJid,
    items: &[crate::storage::RosterItem],
) -> Vec<BareJid> {
    let mut v = Vec::new();
    for item in super::blocking::presence_peers(ctx, router, session, items).await {
        let local = router.is_local(super::account_str(&item.contact).0);
        if item.subscription.has_to()
            && local
            && let Ok(j) = BareJid::new(&item.contact)
        {
            v.push(j);
        }
    }
    v
}

/// Registers PEP: the pubsub iqs on accounts, the account identity and features, the caps
/// cache and the presence hook (after the roster's, which records the presence).
pub fn register(r: &mut Registrar, config: &Config) {
    let pep = Arc::new(Pep);
    r.iq(NS, pep.clone());
    r.iq(NS_OWNER, pep);
    r.account_identity("pubsub", "pep");
    for f in [
        "access-open",
        "access-presence",
        "access-whitelist",
        "auto-create",
        "config-node",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "item-ids",
        "last-published",
        "multi-items",
        "persistent-items",
        "publish",
        "publish-options",
        "purge-nodes",
        "retract-items",
        "retrieve-items",
        "retrieve-subscriptions",
        "subscribe",
    ] {
        r.feature(&format!("{NS}#{f}"));
    }
    r.feature(NS);
    for f in [
        avatar::NS_CONVERSION,
        bookmarks::NS_CONVERSION,
        "urn:xmpp:bookmarks:1#compat",
        "urn:xmpp:bookmarks:1#compat-pep",
    ] {
        r.feature(f);
    }
    r.state(Arc::new(avatar::Hashes::new(config.storage.roster_cache)));
    r.hooks
        .presence_out
        .add(10, "avatar", avatar::on_presence_out);
    r.state(Arc::new(caps::Caps::new(
        config.pep.caps_cache,
        Duration::from_secs(config.pep.caps_timeout_secs.max(1)),
    )));
    r.hooks.presence_out.add(-10, "pep", on_presence_out);
    r.state(Arc::new(remote::RemoteResources::new(
        config.pep.remote_resources_bytes,
        config.pep.remote_resources_per_contact,
    )));
    // Before the roster's handler, which takes the presence.
    r.hooks.presence_in.add(10, "pep", remote::on_presence_in);
}
