//! XEP-0280 Message Carbons: sessions that enable carbons get a copy of the chat messages
//! their account sends from other resources (`<sent/>`) and receives on other resources
//! (`<received/>`), wrapped in XEP-0297 forwarding.

use std::sync::Arc;

use jid::BareJid;

use super::{Ctx, IqFuture, IqHandler, Registrar, sender};
use crate::router::Router;
use crate::session::{Flag, SessionHandle, bare_str};
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// `urn:xmpp:carbons:2`
pub use crate::stanza::NS_CARBONS as NS;
/// XEP-0297 Stanza Forwarding.
pub use crate::stanza::NS_FORWARD;

/// Whether a message is copied (XEP-0280 §6): chat, or normal with a body; not private, not
/// `<no-copy/>`, not already a carbon.
fn eligible(m: &Element) -> bool {
    let kind_ok = match m.attr("type") {
        Some("chat") => true,
        None | Some("normal") => m.get_child("body", NS_CLIENT).is_some(),
        _ => false,
    };
    kind_ok
        && m.get_child("private", NS).is_none()
        && m.get_child("no-copy", super::offline::NS_HINTS).is_none()
        && m.get_child("received", NS).is_none()
        && m.get_child("sent", NS).is_none()
}

fn wrap(kind: &str, account: &BareJid, to: &SessionHandle, m: &Element) -> Element {
    Element::new("message", NS_CLIENT)
        .with_attr("from", account.to_string())
        .with_attr("to", to.jid.to_string())
        .with_attr("type", m.attr("type").unwrap_or("normal"))
        .with_child(
            Element::new(kind, NS)
                .with_child(Element::new("forwarded", NS_FORWARD).with_child(m.clone())),
        )
}

/// `session` sent `m`: its other carbons-enabled resources get a `<sent/>` copy.
pub fn sent(router: &Router, session: &SessionHandle, m: &Element) {
    if !eligible(m) {
        return;
    }
    let targets = router
        .registry
        .flagged(bare_str(&session.jid), enabled(), &[session.id]);
    if targets.is_empty() {
        return;
    }
    let me = session.jid.to_bare();
    for h in targets {
        router.deliver(&h, wrap("sent", &me, &h, m));
    }
}

/// `m` was delivered to sessions `delivered` of `to`: its other carbons-enabled resources get a
/// `<received/>` copy.
pub fn received(router: &Router, m: &Element, to: &BareJid, delivered: &[u64]) {
    if !eligible(m) {
        return;
    }
    for h in router.registry.flagged(to.as_str(), enabled(), delivered) {
        router.deliver(&h, wrap("received", to, &h, m));
    }
}

struct Carbons;

impl IqHandler for Carbons {
    fn handle<'a>(&'a self, _ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let on = iq.get_child("enable", NS).is_some();
            let off = iq.get_child("disable", NS).is_some();
            let (Some(from), Some("set"), true) = (sender(iq), iq.attr("type"), on || off) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            if iq.attr("to").is_some_and(|t| t != from.to_bare().as_str()) {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            if let Some(info) = router.registry.info(&from) {
                router
                    .registry
                    .set_flag(&from, info.handle.id, enabled(), on);
            }
            iq_result(iq)
        })
    }
}

/// Registers the handler and the feature.
/// Sessions that enabled carbons (XEP-0280 §4).
pub(crate) fn enabled() -> Flag {
    static FLAG: std::sync::OnceLock<Flag> = std::sync::OnceLock::new();
    *FLAG.get_or_init(|| Flag::named("carbons"))
}

pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Carbons));
    r.feature(NS);
    r.hooks.sent.add(0, "carbons", |_, router, session, m| {
        sent(router, session, m)
    });
    r.hooks
        .delivered
        .add(0, "carbons", |_, router, m, to, ids| {
            received(router, m, to, ids)
        });
}
