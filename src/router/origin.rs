//! Where a stanza comes from decides the rules it passes before it is routed (RFC 6120 §8.1.2):
//! a client session's stanza has its `from` checked against the session and stamped, its iq
//! checked for shape, its presence handed to the presence logic and its message shown to the
//! account's other resources; a service's stanza carries the `from` the service gave it. A
//! remote server's is checked against its stream's authenticated domain pairs by the stream
//! itself (`s2s/incoming.rs`) and then routed as it is.

use jid::Jid;

use super::Router;
use crate::session::SessionHandle;
use crate::stanza::{ErrorCondition, check_iq, iq_result};
use crate::stream::{Condition, NS_BIND, NS_SESSION, StreamError};
use crate::xml::Element;

/// Who sends a stanza.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A bound client session (any transport).
    Client(&'a SessionHandle),
    /// A service of the route table.
    Service,
}

impl Router {
    /// Routes a stanza from `origin` after that origin's rules. An error is for the origin's
    /// stream: the stanza broke a rule that ends it (RFC 6120 §8.1.2.1, `invalid-from`).
    pub async fn route_from(&self, origin: Origin<'_>, stanza: Element) -> Result<(), StreamError> {
        match origin {
            Origin::Client(session) => self.client_stanza(session, stanza).await,
            Origin::Service => {
                self.route(stanza).await;
                Ok(())
            }
        }
    }

    async fn client_stanza(
        &self,
        session: &SessionHandle,
        mut el: Element,
    ) -> Result<(), StreamError> {
        let me = &session.jid;
        // RFC 6120 §8.1.2.1: a `from` must be the session's full JID or its bare JID.
        if let Some(from) = el.attr("from") {
            let ok = match Jid::new(from) {
                Ok(j) => {
                    j.to_bare() == me.to_bare() && j.resource().is_none_or(|r| r == me.resource())
                }
                Err(_) => false,
            };
            if !ok {
                return Err(StreamError::with_text(
                    Condition::InvalidFrom,
                    "'from' is not this session",
                ));
            }
        }
        el.set_attr("from", me.to_string());
        match el.name() {
            "iq" => {
                if let Err(c) = check_iq(&el) {
                    self.bounce(&el, c);
                    return Ok(());
                }
                let to_host = el.attr("to").is_none_or(|t| t == me.domain().as_str());
                if to_host && el.get_child("session", NS_SESSION).is_some() {
                    // The legacy session iq (RFC 3921 §3) is a no-op now.
                    self.route(iq_result(&el)).await;
                    return Ok(());
                }
                if el.get_child("bind", NS_BIND).is_some() {
                    // One resource per stream (RFC 6120 §7.1), refused as §7.6.2.2 says.
                    self.bounce(&el, ErrorCondition::NotAllowed);
                    return Ok(());
                }
            }
            "presence" => {
                self.hooks().presence_out(self, session, el).await;
                return Ok(());
            }
            // Shown to the account's other resources (carbons) first.
            "message" => self.hooks().message_sent(self, session, &el),
            _ => {}
        }
        let start = std::time::Instant::now();
        self.route(el).await;
        crate::metrics::routed(start.elapsed());
        Ok(())
    }
}
