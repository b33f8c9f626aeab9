//! Roster pushes (RFC 6121 §2.1.6): a changed item, sent to every interested resource.

use jid::BareJid;

use super::{NS, item_element};
use crate::router::Router;
use crate::stream::{NS_CLIENT, random_id};
use crate::xml::Element;

/// Pushes `item` (or its removal) with roster version `ver` to the user's interested resources.
pub fn push(
    router: &Router,
    user: &BareJid,
    item: &crate::storage::RosterItem,
    removed: bool,
    ver: i64,
) {
    let mut el = item_element(item);
    if removed {
        el = Element::new("item", NS)
            .with_attr("jid", item.contact.clone())
            .with_attr("subscription", "remove");
    }
    let query = Element::new("query", NS)
        .with_attr("ver", ver.to_string())
        .with_child(el);
    for s in router.registry.sessions(user) {
        if !s.has(super::interested()) {
            continue;
        }
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("push-{}", random_id()))
            .with_attr("from", user.to_string())
            .with_attr("to", s.handle.jid.to_string())
            .with_child(query.clone());
        router.deliver(&s.handle, iq);
    }
}
