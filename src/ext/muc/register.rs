//! Registering a nickname with a room (XEP-0045 §7.10) and discovering it (§7.12): an account
//! asks the room for its registration form, submits the nickname it wants, and from then on
//! nobody else may enter (or change to) that nickname in the room. Registering in a room makes
//! the account a member (as on ejabberd and Prosody), so it may enter once the room becomes
//! members-only; `<remove/>` gives up the nickname and the membership that came with it.
//! Outcasts may not register, nor may strangers in a members-only room (only its members
//! may). Registrations count against `muc.max_affiliations`, as the memberships they give.

use jid::{BareJid, FullJid};

use super::room::Room;
use super::types::Affiliation;
use crate::router::Router;
use crate::stanza::{ErrorCondition, form, iq_error, iq_result};
use crate::xml::Element;

/// `jabber:iq:register`
pub const NS: &str = "jabber:iq:register";
/// The disco#info node naming the asker's registered nickname (§7.12).
pub const NODE: &str = "x-roomuser-item";
const FORM: &str = "http://jabber.org/protocol/muc#register";
const FIELD: &str = "muc#register_roomnick";
const NS_INFO: &str = crate::ext::disco::NS_INFO;

impl Room {
    /// Whether `nick` is registered by an account other than `bare`.
    pub(super) fn reserved_by_other(&self, nick: &str, bare: &BareJid) -> bool {
        self.registered
            .iter()
            .any(|(j, n)| n == nick && j != bare.as_str())
    }

    /// §7.12: disco#info on node `x-roomuser-item` names the asker's registered nickname.
    pub(super) fn reserved_nick(&self, from: &FullJid, iq: &Element) -> Element {
        let mut q = Element::new("query", NS_INFO).with_attr("node", NODE);
        if let Some(n) = self.registered.get(from.to_bare().as_str()) {
            q.append_child(
                Element::new("identity", NS_INFO)
                    .with_attr("category", "conference")
                    .with_attr("type", "text")
                    .with_attr("name", n.clone()),
            );
        }
        iq_result(iq).with_child(q)
    }

    /// Whether `bare` may register here.
    fn may_register(&self, bare: &BareJid) -> Result<Affiliation, ErrorCondition> {
        match self.affiliation(bare) {
            Affiliation::Outcast => Err(ErrorCondition::Forbidden),
            a if self.stored.config.members_only && a < Affiliation::Member => {
                Err(ErrorCondition::NotAllowed)
            }
            a => Ok(a),
        }
    }

    /// The registration form, or what the asker registered (`<registered/>`).
    pub(super) fn register_get(&self, from: &FullJid, iq: &Element) -> Element {
        let bare = from.to_bare();
        if let Err(c) = self.may_register(&bare) {
            return iq_error(iq, c, None);
        }
        let mut q = Element::new("query", NS);
        if let Some(n) = self.registered.get(bare.as_str()) {
            q.append_child(Element::new("registered", NS));
            q.append_child(Element::new("username", NS).with_text(n.clone()));
            return iq_result(iq).with_child(q);
        }
        let nick = form::field(FIELD, Some("text-single"), Some("Nickname"), &[])
            .with_child(Element::new("required", form::NS));
        q.append_child(
            Element::new("instructions", NS)
                .with_text("Register a nickname: nobody else may use it in this room."),
        );
        q.append_child(form::new("form", FORM).with_child(nick));
        iq_result(iq).with_child(q)
    }

    /// Registers the submitted nickname, or unregisters (`<remove/>`).
    pub(super) async fn register_set(
        &mut self,
        router: &Router,
        from: &FullJid,
        iq: &Element,
    ) -> Element {
        let bare = from.to_bare();
        let Some(q) = iq.get_child("query", NS) else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        if q.get_child("remove", NS).is_some() {
            return self.unregister(router, &bare, iq).await;
        }
        let before = match self.may_register(&bare) {
            Ok(a) => a,
            Err(c) => return iq_error(iq, c, None),
        };
        let Some(x) = q.get_child("x", form::NS) else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        if x.attr("type") == Some("cancel") {
            return iq_result(iq);
        }
        if form::form_type(x).is_some_and(|t| t != FORM) {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        }
        let nick = form::value(x, FIELD).unwrap_or_default();
        let nick = nick.trim();
        if nick.is_empty() {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        }
        if nick.len() > self.shared.config.muc.max_nick_length
            || FullJid::new(&format!("{}/{nick}", self.jid)).is_err()
        {
            return iq_error(iq, ErrorCondition::NotAcceptable, None);
        }
        let in_use = self.occupants.get(nick).is_some_and(|o| o.bare != bare);
        if in_use || self.reserved_by_other(nick, &bare) {
            return iq_error(iq, ErrorCondition::Conflict, None);
        }
        let joins = before == Affiliation::None;
        if joins && self.affiliations.len() >= self.shared.config.muc.max_affiliations {
            return iq_error(iq, ErrorCondition::ResourceConstraint, None);
        }
        let store = &self.shared.storage.muc;
        match store
            .set_nick(self.jid.as_str(), bare.as_str(), Some(nick))
            .await
        {
            Ok(true) => {}
            Ok(false) => return iq_error(iq, ErrorCondition::Conflict, None),
            Err(e) => {
                tracing::error!("registration in room {}: {e}", self.jid);
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            }
        }
        self.registered.insert(bare.to_string(), nick.to_string());
        if joins {
            if !self.set_affiliation(&bare, Affiliation::Member, "").await {
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            }
            self.affiliation_changed(router, &bare, before).await;
        }
        iq_result(iq)
    }

    /// Gives up the registered nickname, and the membership if that is what it had.
    async fn unregister(&mut self, router: &Router, bare: &BareJid, iq: &Element) -> Element {
        if !self.registered.contains_key(bare.as_str()) {
            return iq_error(iq, ErrorCondition::ItemNotFound, None);
        }
        let store = &self.shared.storage.muc;
        if let Err(e) = store.set_nick(self.jid.as_str(), bare.as_str(), None).await {
            tracing::error!("registration in room {}: {e}", self.jid);
            return iq_error(iq, ErrorCondition::InternalServerError, None);
        }
        self.registered.remove(bare.as_str());
        if self.affiliation(bare) == Affiliation::Member {
            if !self.set_affiliation(bare, Affiliation::None, "").await {
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            }
            self.affiliation_changed(router, bare, Affiliation::Member)
                .await;
        }
        iq_result(iq)
    }
}
