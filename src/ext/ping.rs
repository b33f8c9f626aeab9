//! XEP-0199 XMPP Ping: the server answers pings addressed to it or to an account.

use std::sync::Arc;

use super::{Ctx, IqFuture, IqHandler, Registrar};
use crate::router::Router;
use crate::stanza::iq_result;
use crate::xml::Element;

/// `urn:xmpp:ping`
pub const NS: &str = "urn:xmpp:ping";

struct Ping;

impl IqHandler for Ping {
    fn handle<'a>(&'a self, _ctx: &'a Ctx, _router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move { iq_result(iq) })
    }
}

/// Registers the handler and the feature.
pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Ping));
    r.feature(NS);
}
