//! XEP-0092 Software Version and XEP-0202 Entity Time, answered for the server itself.

use std::sync::Arc;

use super::{Ctx, IqFuture, IqHandler, Registrar};
use crate::router::Router;
use crate::stanza::{ErrorCondition, datetime, iq_error, iq_result};
use crate::storage::now_ms;
use crate::xml::Element;

/// `jabber:iq:version`
pub const NS_VERSION: &str = "jabber:iq:version";
/// `urn:xmpp:time`
pub const NS_TIME: &str = "urn:xmpp:time";

struct Info;

impl IqHandler for Info {
    fn handle<'a>(&'a self, _ctx: &'a Ctx, _router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            // Only the server answers for itself; an account's clients answer for themselves.
            let to_server = iq
                .attr("to")
                .is_some_and(|t| !t.contains('@') && !t.contains('/'));
            if !to_server || iq.attr("type") != Some("get") {
                return iq_error(iq, ErrorCondition::ServiceUnavailable, None);
            }
            let q = iq
                .children()
                .next()
                .map(|c| c.ns().to_string())
                .unwrap_or_default();
            let payload = if q == NS_VERSION {
                Element::new("query", NS_VERSION)
                    .with_child(Element::new("name", NS_VERSION).with_text("xmppd"))
                    .with_child(
                        Element::new("version", NS_VERSION).with_text(env!("CARGO_PKG_VERSION")),
                    )
            } else {
                Element::new("time", NS_TIME)
                    .with_child(Element::new("tzo", NS_TIME).with_text("+00:00"))
                    .with_child(Element::new("utc", NS_TIME).with_text(datetime(now_ms())))
            };
            iq_result(iq).with_child(payload)
        })
    }
}

/// Registers both.
pub fn register(r: &mut Registrar) {
    r.iq(NS_VERSION, Arc::new(Info));
    r.feature(NS_VERSION);
    r.iq(NS_TIME, Arc::new(Info));
    r.feature(NS_TIME);
}
