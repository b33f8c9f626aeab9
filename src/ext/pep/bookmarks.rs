//! Bookmarks in every form a client may use, kept in step: PEP Native Bookmarks (XEP-0402,
//! node `urn:xmpp:bookmarks:1`, one item per room, what Conversations, Dino, Gajim and
//! Converse.js use today), and the older XEP-0048 `<storage xmlns='storage:bookmarks'/>` both in
//! private XML storage (XEP-0049) and in the PEP node `storage:bookmarks` (XEP-0411). A client
//! writing one form sees its change in the others, and each node's audience (the account's own
//! devices: all these nodes are `whitelist`) is notified (XEP-0402 `#compat`, XEP-0411).
//!
//! What converts: each room's JID, name, autojoin, nick and password, for the first
//! `pep.max_items` rooms (what one node keeps). XEP-0048's `<url/>` bookmarks have no XEP-0402
//! form: they stay in the older form only. XEP-0402's
//! `<extensions/>` stay on an item as long as the older form does not change that room.

use jid::BareJid;

use super::server;
use crate::ext::{Ctx, account};
use crate::router::Router;
use crate::storage::pep::{Access, NodeConfig};
use crate::xml::{Element, Limits, parse_fragment};

/// `urn:xmpp:bookmarks:1` (XEP-0402), the node and the namespace.
pub const NODE: &str = "urn:xmpp:bookmarks:1";
/// `storage:bookmarks` (XEP-0048), the PEP node, the private XML namespace and the element's.
pub const LEGACY: &str = "storage:bookmarks";
/// `urn:xmpp:bookmarks-conversion:0` (XEP-0411)
pub const NS_CONVERSION: &str = "urn:xmpp:bookmarks-conversion:0";

/// One room's bookmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub jid: String,
    pub name: Option<String>,
    pub autojoin: bool,
    pub nick: Option<String>,
    pub password: Option<String>,
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1"))
}

fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns)
        .map(Element::text)
        .filter(|t| !t.is_empty())
}

impl Bookmark {
    /// From an XEP-0402 item (its id is the room's JID).
    fn from_item(id: &str, c: &Element) -> Option<Bookmark> {
        if !c.is("conference", NODE) {
            return None;
        }
        Some(Bookmark {
            jid: id.to_string(),
            name: c.attr("name").map(str::to_string),
            autojoin: truthy(c.attr("autojoin")),
            nick: child_text(c, "nick", NODE),
            password: child_text(c, "password", NODE),
        })
    }

    /// From an XEP-0048 `<conference/>`.
    fn from_legacy(c: &Element) -> Option<Bookmark> {
        let jid = BareJid::new(c.attr("jid")?).ok()?;
        Some(Bookmark {
            jid: jid.to_string(),
            name: c.attr("name").map(str::to_string),
            autojoin: truthy(c.attr("autojoin")),
            nick: child_text(c, "nick", LEGACY),
            password: child_text(c, "password", LEGACY),
        })
    }

    /// As an XEP-0402 item's payload.
    fn to_item(&self) -> Element {
        self.element(NODE, None)
    }

    /// As an XEP-0048 `<conference/>`.
    fn to_legacy(&self) -> Element {
        self.element(LEGACY, Some(&self.jid))
    }

    /// `<conference/>` in `ns`, naming the room by a `jid` attribute when given.
    fn element(&self, ns: &'static str, jid: Option<&str>) -> Element {
        let mut c = Element::new("conference", ns);
        if let Some(j) = jid {
            c.set_attr("jid", j);
        }
        c.set_attr("autojoin", if self.autojoin { "true" } else { "false" });
        if let Some(n) = &self.name {
            c.set_attr("name", n.clone());
        }
        for (name, v) in [("nick", &self.nick), ("password", &self.password)] {
            if let Some(v) = v {
                c.append_child(Element::new(name, ns).with_text(v.clone()));
            }
        }
        c
    }
}

/// XEP-0402's node configuration (§5: only the owner, as many items as allowed).
fn node_config(ctx: &Ctx) -> NodeConfig {
    NodeConfig {
        access: Access::Whitelist,
        persist_items: true,
        max_items: ctx.config.pep.max_items,
        notify_retract: true,
    }
}

/// The account's private XML `storage:bookmarks`, if any.
async fn private(ctx: &Ctx, owner: &BareJid) -> Option<Element> {
    let (host, user) = account(owner);
    match ctx
        .storage
        .documents
        .get(host, user, "private", LEGACY)
        .await
    {
        Ok(Some(xml)) => parse_fragment(&xml, Limits::stored()).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::error!("bookmarks of {owner}: {e}");
            None
        }
    }
}

/// The XEP-0402 bookmarks, as (item id, bookmark).
async fn native(ctx: &Ctx, owner: &BareJid) -> Vec<Bookmark> {
    server::items(ctx, owner, NODE)
        .await
        .iter()
        .filter_map(|(id, c)| Bookmark::from_item(id, c))
        .collect()
}

/// `<storage/>` with `bookmarks`, keeping the `<url/>`s (and anything else but conferences) of
/// `old`.
fn legacy_of(bookmarks: &[Bookmark], old: Option<&Element>) -> Element {
    let mut s = Element::new("storage", LEGACY);
    for b in bookmarks {
        s.append_child(b.to_legacy());
    }
    for c in old.into_iter().flat_map(|o| o.children()) {
        if !c.is("conference", LEGACY) {
            s.append_child(c.clone());
        }
    }
    s
}

/// Writes the older form `storage` to private XML (unless it came from there) and to the PEP
/// node `storage:bookmarks` (unless it came from there).
async fn write_legacy(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    storage: &Element,
    from_private: bool,
    from_pep: bool,
) {
    if !from_private {
        let xml = storage.to_string_in("");
        let (host, user) = account(owner);
        if xml.len() > ctx.config.im.max_document_size {
            tracing::warn!("bookmarks of {owner} not in private XML: im.max_document_size");
        } else if let Err(e) = ctx
            .storage
            .documents
            .set(host, user, "private", LEGACY, &xml)
            .await
        {
            tracing::error!("bookmarks of {owner}: {e}");
        }
    }
    if !from_pep {
        let config = NodeConfig {
            max_items: 1,
            ..node_config(ctx)
        };
        let r = server::publish(ctx, router, owner, LEGACY, "current", storage, config).await;
        server::log(owner, "bookmarks", r);
    }
}

/// A client published item `id` (`conference`) to the XEP-0402 node, or retracted it
/// (`None`): the older forms follow.
pub async fn native_changed(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    id: &str,
    conference: Option<&Element>,
) {
    let old = private(ctx, owner).await;
    let mut list: Vec<Bookmark> = old
        .iter()
        .flat_map(|o| o.children())
        .filter_map(Bookmark::from_legacy)
        .filter(|b| b.jid != id)
        .collect();
    if let Some(b) = conference.and_then(|c| Bookmark::from_item(id, c)) {
        list.push(b);
    }
    let storage = legacy_of(&list, old.as_ref());
    write_legacy(ctx, router, owner, &storage, false, false).await;
}

/// A client wrote the older form `storage` (to private XML, or to the PEP node when
/// `from_pep`): the other older place and the XEP-0402 items follow, item by item (only the
/// rooms that changed are published, those gone are retracted).
pub async fn legacy_set(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    storage: &Element,
    from_pep: bool,
) {
    if !storage.is("storage", LEGACY) {
        return;
    }
    write_legacy(ctx, router, owner, storage, !from_pep, from_pep).await;
    // A node keeps `pep.max_items` items: rooms past that stay in the older form only.
    let wanted: Vec<Bookmark> = storage
        .children()
        .filter_map(Bookmark::from_legacy)
        .take(ctx.config.pep.max_items as usize)
        .collect();
    let have = native(ctx, owner).await;
    for b in &wanted {
        if have.iter().any(|h| h == b) {
            continue;
        }
        let item = b.to_item();
        let r = server::publish(ctx, router, owner, NODE, &b.jid, &item, node_config(ctx)).await;
        server::log(owner, "bookmarks", r);
    }
    for h in have
        .iter()
        .filter(|h| !wanted.iter().any(|w| w.jid == h.jid))
    {
        server::log(
            owner,
            "bookmarks",
            server::retract(ctx, router, owner, NODE, &h.jid).await,
        );
    }
}

/// What a client reading private XML `storage:bookmarks` gets when it was never written
/// there: the XEP-0402 bookmarks in the older form (XEP-0411 §5).
pub async fn legacy_view(ctx: &Ctx, owner: &BareJid) -> Option<Element> {
    let list = native(ctx, owner).await;
    (!list.is_empty()).then(|| legacy_of(&list, None))
}
