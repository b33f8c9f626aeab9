//! XEP-0077 In-Band Registration before login: a client creates an account on a stream that is
//! not authenticated yet (after TLS when TLS is required). Off unless `c2s.allow_registration`,
//! and limited per IP address (`limits.registrations_per_ip_per_hour`).

use jid::BareJid;

use super::{C2s, Flow};
use crate::stanza::{ErrorCondition, iq_result};
use crate::stream::sasl::scram::DEFAULT_ITERATIONS;
use crate::xml::Element;

/// `jabber:iq:register`
pub use crate::stanza::NS_REGISTER as NS;
/// The stream feature advertising it.
pub use crate::stanza::NS_REGISTER_FEATURE as NS_FEATURE;

impl C2s {
    /// Whether a pre-login registration may be attempted on this stream now.
    pub(super) fn registration_open(&self) -> bool {
        self.shared.config.c2s.allow_registration && self.sasl_allowed()
    }

    pub(super) async fn on_register(&mut self, iq: Element) -> Flow {
        let Some(q) = iq.get_child("query", NS) else {
            return self.reply_error(&iq, ErrorCondition::BadRequest);
        };
        match iq.attr("type") {
            Some("get") => {
                let form = Element::new("query", NS)
                    .with_child(
                        Element::new("instructions", NS)
                            .with_text("Choose a user name and password."),
                    )
                    .with_child(Element::new("username", NS))
                    .with_child(Element::new("password", NS));
                let reply = iq_result(&iq).with_child(form);
                self.write(&reply);
                Flow::Continue
            }
            Some("set") => {
                let user = q
                    .get_child("username", NS)
                    .map(|u| u.text())
                    .unwrap_or_default();
                let password = q
                    .get_child("password", NS)
                    .map(|p| p.text())
                    .unwrap_or_default();
                if user.is_empty() || password.is_empty() {
                    return self.reply_error(&iq, ErrorCondition::NotAcceptable);
                }
                let Ok(bare) = BareJid::new(&format!("{user}@{}", self.host)) else {
                    return self.reply_error(&iq, ErrorCondition::NotAcceptable);
                };
                let Some(node) = bare.node().map(|n| n.as_str().to_string()) else {
                    return self.reply_error(&iq, ErrorCondition::NotAcceptable);
                };
                if !self.shared.limits.take_registration(self.link.peer.ip()) {
                    return self.reply_error(&iq, ErrorCondition::PolicyViolation);
                }
                let Some(creds) = self
                    .shared
                    .new_credentials(password, DEFAULT_ITERATIONS)
                    .await
                else {
                    return self.reply_error(&iq, ErrorCondition::NotAcceptable);
                };
                match self
                    .shared
                    .storage
                    .accounts
                    .create(&self.host, &node, &creds)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(account = %bare, "registered in-band");
                        let reply = iq_result(&iq);
                        self.write(&reply);
                        Flow::Continue
                    }
                    Ok(false) => self.reply_error(&iq, ErrorCondition::Conflict),
                    Err(e) => {
                        tracing::error!("registration of {bare}: {e}");
                        self.reply_error(&iq, ErrorCondition::InternalServerError)
                    }
                }
            }
            _ => self.reply_error(&iq, ErrorCondition::BadRequest),
        }
    }
}
