//! XEP-0030 Service Discovery, server side: disco#info lists exactly the features the enabled
//! extensions registered; disco#items on a host lists its service domains (the route table).

use std::sync::Arc;

use super::{Ctx, IqFuture, IqHandler, Registrar};
use crate::router::Router;
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::xml::Element;

/// `http://jabber.org/protocol/disco#info`
pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
/// `http://jabber.org/protocol/disco#items`
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";

struct Disco {
    features: Vec<String>,
    account_identities: Vec<(&'static str, &'static str)>,
}

impl IqHandler for Disco {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some(q) = iq.children().next() else {
                return iq_result(iq);
            };
            let to_server = iq.attr("to").is_some_and(|t| !t.contains('@'));
            if iq.attr("type") != Some("get") || q.attr("node").is_some() {
                return iq_error(iq, ErrorCondition::ItemNotFound, None);
            }
            let mut query = Element::new("query", q.namespace().clone());
            if q.ns() == NS_INFO {
                if to_server {
                    query.append_child(
                        Element::new("identity", NS_INFO)
                            .with_attr("category", "server")
                            .with_attr("type", "im")
                            .with_attr("name", "xmppd"),
                    );
                } else {
                    // An account (XEP-0030 §3.1 with the RFC 6121 account identity).
                    query.append_child(
                        Element::new("identity", NS_INFO)
                            .with_attr("category", "account")
                            .with_attr("type", "registered"),
                    );
                    for (category, kind) in &self.account_identities {
                        query.append_child(
                            Element::new("identity", NS_INFO)
                                .with_attr("category", *category)
                                .with_attr("type", *kind),
                        );
                    }
                }
                for f in &self.features {
                    query
                        .append_child(Element::new("feature", NS_INFO).with_attr("var", f.clone()));
                }
            }
            if q.ns() == NS_ITEMS && !to_server && ctx.config.pep.enabled {
                // An account's items: the PEP nodes the asker may see (XEP-0060 §5.2).
                let requester = super::sender(iq).map(|j| j.to_bare());
                let owner = match iq.attr("to") {
                    Some(t) => jid::BareJid::new(t).ok(),
                    None => requester.clone(),
                };
                if let (Some(owner), Some(requester)) = (owner, requester) {
                    for node in super::pep::visible_nodes(ctx, &owner, &requester).await {
                        query.append_child(
                            Element::new("item", NS_ITEMS)
                                .with_attr("jid", owner.to_string())
                                .with_attr("node", node),
                        );
                    }
                }
            }
            if q.ns() == NS_ITEMS
                && to_server
                && let Some(host) = iq.attr("to")
            {
                for (domain, name) in router.routes.under(host) {
                    query.append_child(
                        Element::new("item", NS_ITEMS)
                            .with_attr("jid", domain)
                            .with_attr("name", name),
                    );
                }
            }
            iq_result(iq).with_child(query)
        })
    }
}

/// Registers disco#info and disco#items (call after the other extensions registered features).
pub fn register(r: &mut Registrar) {
    r.feature(NS_INFO);
    r.feature(NS_ITEMS);
    let d = Arc::new(Disco {
        features: r.features(),
        account_identities: r.account_identities(),
    });
    r.iq(NS_INFO, d.clone());
    r.iq(NS_ITEMS, d);
}
