//! Subscriptions by name (XEP-0060 §6.1, §6.2, §5.6): besides the contacts that follow an
//! account's nodes through their capabilities (XEP-0163), anyone who may see a node may
//! subscribe to it with its own JID (bare: all its available sessions; full: that one), as
//! OMEMO clients do for people who are not their contacts (room members). At most
//! `pep.max_subscribers` per node; the subscriptions go with the node and with the account.

use super::NS;
use super::ops::{Op, Reply};
use crate::ext::account;
use crate::stanza::{ErrorCondition, iq_result};
use crate::xml::Element;

impl Op<'_> {
    /// `<subscribe/>` (`on`) or `<unsubscribe/>`: the requester's own JID, bare or full.
    pub(super) async fn subscribe(&self, action: &Element, node: &str, on: bool) -> Reply {
        let iq = self.iq;
        let jid = action.attr("jid").and_then(|j| jid::Jid::new(j).ok());
        let Some(jid) = jid.filter(|j| j.to_bare() == *self.requester) else {
            return Err(super::pubsub_error(
                iq,
                ErrorCondition::BadRequest,
                "invalid-jid",
            ));
        };
        let (host, user) = account(self.owner);
        let pep = &self.ctx.storage.pep;
        if !on {
            self.node(node).await?;
            return match pep.unsubscribe(host, user, node, jid.as_str()).await {
                Ok(true) => Ok(iq_result(iq)),
                Ok(false) => Err(super::pubsub_error(
                    iq,
                    ErrorCondition::UnexpectedRequest,
                    "not-subscribed",
                )),
                Err(e) => Err(self.failed(e)),
            };
        }
        self.visible(node).await?;
        let max = self.ctx.config.pep.max_subscribers;
        match pep.subscribe(host, user, node, jid.as_str(), max).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(super::pubsub_error(
                    iq,
                    ErrorCondition::PolicyViolation,
                    "too-many-subscriptions",
                ));
            }
            Err(e) => return Err(self.failed(e)),
        }
        Ok(iq_result(iq).with_child(
            Element::new("pubsub", NS).with_child(
                Element::new("subscription", NS)
                    .with_attr("node", node)
                    .with_attr("jid", jid.to_string())
                    .with_attr("subscription", "subscribed"),
            ),
        ))
    }

    /// The requester's subscriptions to the owner's nodes (of `node` only, if given).
    pub(super) async fn subscriptions(&self, node: Option<&str>) -> Element {
        let (host, user) = account(self.owner);
        let subs = match self
            .ctx
            .storage
            .pep
            .subscriptions(host, user, self.requester.as_str())
            .await
        {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        let mut list = Element::new("subscriptions", NS);
        if let Some(n) = node {
            list.set_attr("node", n);
        }
        for (n, jid) in subs
            .into_iter()
            .filter(|(n, _)| node.is_none_or(|w| w == n))
        {
            list.append_child(
                Element::new("subscription", NS)
                    .with_attr("node", n)
                    .with_attr("jid", jid)
                    .with_attr("subscription", "subscribed"),
            );
        }
        iq_result(self.iq).with_child(Element::new("pubsub", NS).with_child(list))
    }
}
