//! What the server publishes and retracts on an account's own nodes by itself, when it
//! converts between a document an older client writes (a vCard's photo, bookmarks in private
//! XML) and the PEP nodes newer clients follow (`avatar.rs`, `bookmarks.rs`). The account's
//! limits hold as for a client's publish (`pep.max_nodes`, `pep.max_item_size`,
//! `pep.quota_bytes`), and its audience is notified the same way. These never convert back:
//! only what a client sends does.

use jid::BareJid;

use super::NS_EVENT;
use super::caps::Caps;
use super::notify::{broadcast, items_event};
use crate::ext::{Ctx, account};
use crate::router::Router;
use crate::storage::pep::{NodeConfig, PepItem};
use crate::xml::{Element, Limits, parse_fragment};

/// Why the server did not publish.
#[derive(Debug)]
pub enum Refused {
    /// A limit of the account (nodes, item size, quota).
    Limit(&'static str),
    /// The store failed.
    Store(crate::storage::StoreError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Limit(l) => write!(f, "over {l}"),
            Refused::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<crate::storage::StoreError> for Refused {
    fn from(e: crate::storage::StoreError) -> Self {
        Refused::Store(e)
    }
}

/// Stores `item` in `owner`'s `node` (configured `config`) and notifies its audience: the
/// last step of every publish, a client's or the server's.
pub async fn commit(
    ctx: &Ctx,
    router: &Router,
    caps: &Caps,
    owner: &BareJid,
    node: &str,
    config: NodeConfig,
    item: &PepItem,
) -> Result<(), crate::storage::StoreError> {
    let (host, user) = account(owner);
    let keep = if config.persist_items {
        config.max_items
    } else {
        1
    };
    ctx.storage
        .pep
        .publish(host, user, node, item, keep)
        .await?;
    let event = items_event(node, item);
    broadcast(ctx, router, caps, owner, node, config.access, event).await;
    Ok(())
}

/// Publishes `payload` as item `id` of `owner`'s `node`, made with `defaults` if it does not
/// exist yet (an existing node keeps its configuration). `max_items` of a new node is at
/// least what `defaults` asks, within `pep.max_items`.
pub async fn publish(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    node: &str,
    id: &str,
    payload: &Element,
    defaults: NodeConfig,
) -> Result<(), Refused> {
    let cfg = &ctx.config.pep;
    let Some(caps) = ctx.state::<Caps>() else {
        return Ok(());
    };
    let xml = payload.to_string_in("");
    if xml.len() > cfg.max_item_size {
        return Err(Refused::Limit("pep.max_item_size"));
    }
    let (host, user) = account(owner);
    let pep = &ctx.storage.pep;
    let config = match pep.node(host, user, node).await? {
        Some(c) => c,
        None => {
            if pep.nodes(host, user).await?.len() >= cfg.max_nodes {
                return Err(Refused::Limit("pep.max_nodes"));
            }
            let c = NodeConfig {
                max_items: defaults.max_items.min(cfg.max_items),
                ..defaults
            };
            pep.save_node(host, user, node, &c).await?;
            c
        }
    };
    if pep
        .bytes(host, user)
        .await?
        .saturating_add(xml.len() as u64)
        > cfg.quota_bytes
    {
        return Err(Refused::Limit("pep.quota_bytes"));
    }
    let item = PepItem {
        id: id.to_string(),
        publisher: owner.to_string(),
        ts_ms: crate::storage::now_ms(),
        xml,
    };
    commit(ctx, router, &caps, owner, node, config, &item).await?;
    Ok(())
}

/// Retracts item `id` of `owner`'s `node`, notifying as the node is configured to.
pub async fn retract(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    node: &str,
    id: &str,
) -> Result<(), Refused> {
    let (host, user) = account(owner);
    let Some(config) = ctx.storage.pep.node(host, user, node).await? else {
        return Ok(());
    };
    if ctx.storage.pep.retract(host, user, node, id).await?
        && config.notify_retract
        && let Some(caps) = ctx.state::<Caps>()
    {
        let ev = Element::new("items", NS_EVENT)
            .with_attr("node", node)
            .with_child(Element::new("retract", NS_EVENT).with_attr("id", id));
        broadcast(ctx, router, &caps, owner, node, config.access, ev).await;
    }
    Ok(())
}

/// The items of `owner`'s `node` (at most `pep.max_items`), as (id, payload).
pub async fn items(ctx: &Ctx, owner: &BareJid, node: &str) -> Vec<(String, Element)> {
    let (host, user) = account(owner);
    let max = ctx.config.pep.max_items as usize;
    match ctx.storage.pep.items(host, user, node, max, &[]).await {
        Ok(items) => items
            .into_iter()
            .filter_map(|i| Some((i.id, parse_fragment(&i.xml, Limits::stored()).ok()?)))
            .collect(),
        Err(e) => {
            tracing::error!("pep of {owner}: {e}");
            Vec::new()
        }
    }
}

/// Logs a conversion that could not be made (the client's own write stands).
pub fn log(owner: &BareJid, what: &str, r: Result<(), Refused>) {
    if let Err(e) = r {
        tracing::warn!("{what} of {owner} not converted: {e}");
    }
}
