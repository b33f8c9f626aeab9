//! RFC 6121 §2 Roster Management: get (with XEP-0237 versioning), set, remove, and roster
//! pushes to every interested resource. Presence and subscriptions, which change rosters too,
//! are in `presence.rs` and `subscription.rs`.

pub mod presence;
mod push;
mod subscription;

use crate::ext::hooks::{Closed, Flow, HookFut, PresenceIn, PresenceOut};
use std::sync::Arc;

use jid::{BareJid, Jid};

pub use push::push;

pub(crate) use super::account;
use super::{Ctx, IqFuture, IqHandler, Registrar, sender};
use crate::router::Router;
use crate::session::Flag;
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::storage::{RosterItem, StoreError};
use crate::xml::Element;

/// `jabber:iq:roster`
pub const NS: &str = "jabber:iq:roster";
/// Stream feature for roster versioning (RFC 6121 §2.6.1).
pub const NS_VER: &str = "urn:xmpp:features:rosterver";

/// The `<item/>` element of a roster item.
pub fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", NS)
        .with_attr("jid", item.contact.clone())
        .with_attr("subscription", item.subscription.as_str());
    if let Some(n) = &item.name {
        el.set_attr("name", n.clone());
    }
    if item.ask {
        el.set_attr("ask", "subscribe");
    }
    for g in &item.groups {
        el.append_child(Element::new("group", NS).with_text(g.clone()));
    }
    el
}

struct Roster;

fn store_err(iq: &Element, e: StoreError) -> Element {
    tracing::error!("roster storage: {e}");
    iq_error(iq, ErrorCondition::InternalServerError, None)
}

impl IqHandler for Roster {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some(from) = sender(iq) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            let me = from.to_bare();
            // Only the account itself may read or change its roster (RFC 6121 §2.1.5).
            if iq
                .attr("to")
                .is_some_and(|t| Jid::new(t).ok() != Some(Jid::from(me.clone())))
            {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            let Some(query) = iq.get_child("query", NS) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            let (host, user) = account(&me);
            match iq.attr("type") {
                Some("get") => {
                    if let Some(info) = router.registry.info(&from) {
                        router
                            .registry
                            .set_flag(&from, info.handle.id, interested(), true);
                    }
                    let (ver, items) = match ctx.storage.rosters.items(host, user).await {
                        Ok(x) => x,
                        Err(e) => return store_err(iq, e),
                    };
                    let ver = ver.to_string();
                    // RFC 6121 §2.6.3: an up-to-date client gets an empty result; the changes
                    // since then would come as pushes.
                    if query.attr("ver") == Some(ver.as_str()) {
                        return iq_result(iq);
                    }
                    let mut q = Element::new("query", NS).with_attr("ver", ver);
                    for item in &items {
                        q.append_child(item_element(item));
                    }
                    iq_result(iq).with_child(q)
                }
                Some("set") => set(ctx, router, iq, query, &me).await,
                _ => iq_error(iq, ErrorCondition::BadRequest, None),
            }
        })
    }
}

/// A roster set (RFC 6121 §2.3, §2.4, §2.5).
async fn set(ctx: &Ctx, router: &Router, iq: &Element, query: &Element, me: &BareJid) -> Element {
    let items: Vec<&Element> = query.children().filter(|c| c.is("item", NS)).collect();
    let [item] = items[..] else {
        return iq_error(iq, ErrorCondition::BadRequest, Some("exactly one item"));
    };
    let contact = match item.attr("jid").map(Jid::new) {
        Some(Ok(j)) if j.resource().is_none() => j.to_bare(),
        Some(Ok(_)) => {
            return iq_error(
                iq,
                ErrorCondition::BadRequest,
                Some("roster items are bare JIDs"),
            );
        }
        _ => return iq_error(iq, ErrorCondition::JidMalformed, None),
    };
    let (host, user) = account(me);
    let limits = &ctx.config.im;
    if item.attr("subscription") == Some("remove") {
        return match subscription::remove_item(ctx, router, me, &contact).await {
            Ok(true) => iq_result(iq),
            Ok(false) => iq_error(iq, ErrorCondition::ItemNotFound, None),
            Err(e) => store_err(iq, e),
        };
    }
    let name = item
        .attr("name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if name
        .as_ref()
        .is_some_and(|n| n.len() > limits.roster_max_name_length)
    {
        return iq_error(iq, ErrorCondition::NotAcceptable, Some("name too long"));
    }
    let mut groups: Vec<String> = Vec::new();
    for g in item.children().filter(|c| c.is("group", NS)) {
        let g = g.text();
        if g.is_empty() || groups.contains(&g) {
            return iq_error(
                iq,
                ErrorCondition::BadRequest,
                Some("empty or repeated group"),
            );
        }
        if g.len() > limits.roster_max_name_length {
            return iq_error(
                iq,
                ErrorCondition::NotAcceptable,
                Some("group name too long"),
            );
        }
        groups.push(g);
    }
    if groups.len() > limits.roster_max_groups {
        return iq_error(iq, ErrorCondition::NotAcceptable, Some("too many groups"));
    }
    groups.sort();
    let contact_s = contact.to_string();
    let existing = match ctx.storage.rosters.item(host, user, &contact_s).await {
        Ok(x) => x,
        Err(e) => return store_err(iq, e),
    };
    let mut new = match existing {
        Some(i) => i,
        None => {
            match ctx.storage.rosters.count(host, user).await {
                Ok(n) if n >= limits.roster_max_items => {
                    return iq_error(
                        iq,
                        ErrorCondition::ResourceConstraint,
                        Some("the roster is full"),
                    );
                }
                Ok(_) => {}
                Err(e) => return store_err(iq, e),
            }
            RosterItem::new(contact_s)
        }
    };
    // Subscription state and `ask` are the server's; a client only sets name and groups.
    new.name = name;
    new.groups = groups;
    match ctx.storage.rosters.put(host, user, &new).await {
        Ok(ver) => {
            push(router, me, &new, false, ver);
            iq_result(iq)
        }
        Err(e) => store_err(iq, e),
    }
}

/// Registers the roster handler.
/// Sessions that requested the roster get roster pushes (RFC 6121 §2.1.6).
pub(crate) fn interested() -> Flag {
    static FLAG: std::sync::OnceLock<Flag> = std::sync::OnceLock::new();
    *FLAG.get_or_init(|| Flag::named("roster"))
}

pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Roster));
    // Roster versioning (RFC 6121 §2.6.1).
    r.stream_feature(crate::xml::Element::new("ver", NS_VER));
    r.hooks.presence_out.add(0, "roster", on_presence_out);
    r.hooks.presence_in.add(0, "roster", on_presence_in);
    r.hooks.closed.add(0, "roster", on_closed);
}

/// A session's presence: broadcast, directed or a subscription; then, at initial presence,
/// the subscription requests that waited (presence goes to every available resource, whatever
/// its priority).
fn on_presence_out<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut PresenceOut) -> HookFut<'a> {
    Box::pin(async move {
        let Some(stanza) = e.stanza.take() else {
            return Flow::Next;
        };
        e.became = presence::outbound(ctx, router, &e.session, stanza).await;
        if e.became.initial {
            presence::deliver_pending_requests(ctx, router, &e.session).await;
        }
        Flow::Next
    })
}

fn on_presence_in<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut PresenceIn) -> HookFut<'a> {
    Box::pin(async move {
        if let Some(stanza) = e.stanza.take() {
            presence::inbound(ctx, router, stanza, e.to.clone()).await;
        }
        Flow::Stop
    })
}

fn on_closed<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Closed) -> HookFut<'a> {
    Box::pin(async move {
        presence::session_closed(ctx, router, e.last.clone()).await;
        Flow::Next
    })
}
