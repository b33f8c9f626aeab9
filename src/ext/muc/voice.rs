//! Voice requests (XEP-0045 §7.13, §8.6): a visitor of a moderated room asks for voice with a
//! `muc#request` form; the room passes it to the moderators as a form to approve; a moderator
//! who submits it with `muc#request_allow` true makes the visitor a participant.

use jid::FullJid;

use super::room::Room;
use super::types::Role;
use crate::router::Router;
use crate::stanza::{ErrorCondition, form};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// `http://jabber.org/protocol/muc#request`
pub const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";

/// The `muc#request` form of a message, if it carries one.
pub fn request_form(m: &Element) -> Option<&Element> {
    m.children()
        .find(|x| x.is("x", form::NS) && form::form_type(x).as_deref() == Some(NS_REQUEST))
}

impl Room {
    /// A `muc#request` form from an occupant: a visitor's request, or a moderator's answer.
    pub async fn voice(&mut self, router: &Router, from: &FullJid, m: &Element, x: &Element) {
        let Some(o) = self.occupant_of(from) else {
            return self.refuse(router, m, ErrorCondition::NotAcceptable).await;
        };
        let (nick, role) = (o.nick.clone(), o.role);
        if x.attr("type") == Some("submit") && role == Role::Moderator {
            // §8.6: the approval names the visitor by nickname.
            let allow = form::boolean(x, "muc#request_allow") == Some(Ok(true));
            let target = form::value(x, "muc#roomnick").unwrap_or_default();
            if allow
                && self
                    .occupants
                    .get(&target)
                    .is_some_and(|t| t.role == Role::Visitor)
            {
                self.apply_role(router, &target, Role::Participant).await;
            }
            return;
        }
        if role != Role::Visitor {
            // Only a visitor asks for voice; anyone else already has it (or may not ask).
            return self.refuse(router, m, ErrorCondition::NotAcceptable).await;
        }
        let ask = form::new("form", NS_REQUEST)
            .with_child(form::field(
                "muc#role",
                Some("list-single"),
                Some("Requested role"),
                &["participant"],
            ))
            .with_child(form::field(
                "muc#jid",
                Some("jid-single"),
                Some("User ID"),
                &[from.to_bare().as_str()],
            ))
            .with_child(form::field(
                "muc#roomnick",
                Some("text-single"),
                Some("Room nickname"),
                &[&nick],
            ))
            .with_child(form::field(
                "muc#request_allow",
                Some("boolean"),
                Some("Grant voice to this person?"),
                &["false"],
            ));
        let out = Element::new("message", NS_CLIENT)
            .with_attr("from", self.jid.to_string())
            .with_child(ask);
        let moderators: Vec<FullJid> = self
            .occupants
            .values()
            .filter(|o| o.role == Role::Moderator)
            .flat_map(|o| o.sessions.iter().map(|s| s.jid.clone()))
            .collect();
        for to in moderators {
            router
                .route(out.clone().with_attr("to", to.to_string()))
                .await;
        }
    }
}
