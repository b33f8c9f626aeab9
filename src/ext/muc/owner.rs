//! The owner's side of a room (XEP-0045 §10, `muc#owner`): the configuration form
//! (`muc#roomconfig`, XEP-0004), instant rooms, destruction with an alternate venue; and what
//! the room says about itself (disco#info with `muc#roominfo`, disco#items: its occupants, the
//! list clients of large rooms pull).

use jid::FullJid;

use super::room::Room;
use super::types::{Affiliation, Role};
use super::{NS, NS_INFO, NS_ITEMS, NS_OWNER, NS_SID, NS_USER};
use crate::router::Router;
use crate::stanza::{ErrorCondition, form, iq_error, iq_result, rsm};
use crate::storage::muc::{AllowPm, RoomConfig, Whois};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

const CONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
const INFO: &str = "http://jabber.org/protocol/muc#roominfo";

impl Room {
    /// §10.2: the configuration form, for owners.
    pub fn owner_get(&self, from: &FullJid, iq: &Element) -> Element {
        if self.affiliation(&from.to_bare()) != Affiliation::Owner {
            return iq_error(iq, ErrorCondition::Forbidden, None);
        }
        let c = &self.stored.config;
        let b = |v: bool| if v { "1" } else { "0" };
        let max = c.max_users.to_string();
        let hist = c.history_length.to_string();
        let pm = c.allow_pm.as_str();
        let whois = c.whois.as_str();
        let mut bcast = vec![];
        for r in [Role::Moderator, Role::Participant, Role::Visitor] {
            if c.presence_broadcast & r.bit() != 0 {
                bcast.push(r.as_str());
            }
        }
        let x = form::new("form", CONFIG)
            .with_child(form::field(
                "muc#roomconfig_roomname",
                Some("text-single"),
                Some("Name"),
                &[&c.title],
            ))
            .with_child(form::field(
                "muc#roomconfig_roomdesc",
                Some("text-single"),
                Some("Description"),
                &[&c.description],
            ))
            .with_child(form::field(
                "muc#roomconfig_persistentroom",
                Some("boolean"),
                Some("Persistent"),
                &[b(c.persistent)],
            ))
            .with_child(form::field(
                "muc#roomconfig_publicroom",
                Some("boolean"),
                Some("Listed in the directory"),
                &[b(c.public)],
            ))
            .with_child(form::field(
                "muc#roomconfig_membersonly",
                Some("boolean"),
                Some("Members only"),
                &[b(c.members_only)],
            ))
            .with_child(form::field(
                "muc#roomconfig_moderatedroom",
                Some("boolean"),
                Some("Moderated"),
                &[b(c.moderated)],
            ))
            .with_child(form::field(
                "muc#roomconfig_passwordprotectedroom",
                Some("boolean"),
                Some("Password protected"),
                &[b(!c.password.is_empty())],
            ))
            .with_child(form::field(
                "muc#roomconfig_roomsecret",
                Some("text-private"),
                Some("Password"),
                &[&c.password],
            ))
            .with_child(form::field(
                "muc#roomconfig_maxusers",
                Some("text-single"),
                Some("Maximum occupants"),
                &[&max],
            ))
            .with_child(form::list(
                "muc#roomconfig_whois",
                "list-single",
                "Who may see real JIDs",
                &[whois],
                &[("moderators", "Moderators"), ("anyone", "Anyone")],
            ))
            .with_child(form::field(
                "muc#maxhistoryfetch",
                Some("text-single"),
                Some("Messages of history"),
                &[&hist],
            ))
            .with_child(form::list(
                "muc#roomconfig_allowpm",
                "list-single",
                "Who may send private messages",
                &[pm],
                &[
                    ("anyone", "Anyone"),
                    ("participants", "Participants"),
                    ("moderators", "Moderators"),
                    ("none", "Nobody"),
                ],
            ))
            .with_child(form::field(
                "muc#roomconfig_allowinvites",
                Some("boolean"),
                Some("Occupants may invite"),
                &[b(c.allow_invites)],
            ))
            .with_child(form::field(
                "muc#roomconfig_changesubject",
                Some("boolean"),
                Some("Occupants may change the subject"),
                &[b(c.change_subject)],
            ))
            .with_child(form::list(
                "muc#roomconfig_presencebroadcast",
                "list-multi",
                "Roles whose presence is broadcast",
                &bcast,
                &[
                    ("moderator", "Moderator"),
                    ("participant", "Participant"),
                    ("visitor", "Visitor"),
                ],
            ));
        let [owners, admins] = self.list_fields();
        let x = x.with_child(owners).with_child(admins);
        iq_result(iq).with_child(Element::new("query", NS_OWNER).with_child(x))
    }

    /// §10.1.2, §10.2, §10.9: a submitted (or cancelled) configuration, or a destruction;
    /// answers itself (the result goes before the notifications it causes).
    pub async fn owner_set(&mut self, router: &Router, from: &FullJid, iq: &Element) {
        if self.affiliation(&from.to_bare()) != Affiliation::Owner {
            return router
                .route(iq_error(iq, ErrorCondition::Forbidden, None))
                .await;
        }
        let Some(q) = iq.children().next() else {
            return router
                .route(iq_error(iq, ErrorCondition::BadRequest, None))
                .await;
        };
        if let Some(d) = q.get_child("destroy", NS_OWNER) {
            self.destroy(router, d).await;
            return router.route(iq_result(iq)).await;
        }
        let Some(x) = q.get_child("x", form::NS) else {
            return router
                .route(iq_error(iq, ErrorCondition::BadRequest, None))
                .await;
        };
        match x.attr("type") {
            Some("cancel") => {
                if self.locked {
                    // §10.1.3: cancelling the first configuration destroys the room.
                    self.destroy(router, &Element::new("destroy", NS_OWNER))
                        .await;
                }
                return router.route(iq_result(iq)).await;
            }
            Some("submit") => {}
            _ => {
                return router
                    .route(iq_error(iq, ErrorCondition::BadRequest, None))
                    .await;
            }
        }
        let (config, lists) = match self
            .configured(x)
            .and_then(|c| Ok((c, self.list_changes(x)?)))
        {
            Ok(c) => c,
            Err(why) => {
                let e = iq_error(iq, ErrorCondition::NotAcceptable, Some(why));
                return router.route(e).await;
            }
        };
        let before = std::mem::replace(&mut self.stored.config, config);
        let stored = match self.save().await {
            true => self.store_list_changes(lists).await,
            false => None,
        };
        let Some(changed) = stored else {
            self.stored.config = before;
            // The form is refused whole: its configuration goes back too.
            let _ = self.save().await;
            return router
                .route(iq_error(iq, ErrorCondition::InternalServerError, None))
                .await;
        };
        let was_locked = std::mem::replace(&mut self.locked, false);
        router.route(iq_result(iq)).await;
        self.config_changed(router, &before, was_locked).await;
        self.lists_changed(router, changed).await;
    }

    /// The configuration a submitted form asks for; fields not in it keep their values.
    fn configured(&self, x: &Element) -> Result<RoomConfig, &'static str> {
        let mut c = self.stored.config.clone();
        let limits = &self.shared.config.muc;
        let flag = |var: &str, v: &mut bool| -> Result<(), &'static str> {
            match form::boolean(x, var) {
                Some(Ok(b)) => *v = b,
                Some(Err(())) => return Err("a boolean field is not 0 or 1"),
                None => {}
            }
            Ok(())
        };
        if let Some(v) = form::value(x, "muc#roomconfig_roomname") {
            c.title = v;
        }
        if let Some(v) = form::value(x, "muc#roomconfig_roomdesc") {
            c.description = v;
        }
        flag("muc#roomconfig_persistentroom", &mut c.persistent)?;
        flag("muc#roomconfig_publicroom", &mut c.public)?;
        flag("muc#roomconfig_membersonly", &mut c.members_only)?;
        flag("muc#roomconfig_moderatedroom", &mut c.moderated)?;
        flag("muc#roomconfig_allowinvites", &mut c.allow_invites)?;
        flag("muc#roomconfig_changesubject", &mut c.change_subject)?;
        let mut protected = !c.password.is_empty();
        flag("muc#roomconfig_passwordprotectedroom", &mut protected)?;
        if let Some(v) = form::value(x, "muc#roomconfig_roomsecret") {
            c.password = v;
        }
        if !protected {
            c.password.clear();
        } else if c.password.is_empty() {
            return Err("a password-protected room needs a password");
        }
        if let Some(v) = form::value(x, "muc#roomconfig_maxusers") {
            let n = match v.trim() {
                "" | "none" => limits.max_occupants,
                n => n
                    .parse::<usize>()
                    .map_err(|_| "max users is not a number")?,
            };
            if n == 0 || n > limits.max_occupants {
                return Err("max users is beyond what this service allows");
            }
            c.max_users = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = form::value(x, "muc#roomconfig_whois") {
            c.whois = match v.as_str() {
                "anyone" => Whois::Anyone,
                "moderators" => Whois::Moderators,
                _ => return Err("whois is moderators or anyone"),
            };
        }
        let hist = form::value(x, "muc#maxhistoryfetch")
            .or_else(|| form::value(x, "muc#roomconfig_historylength"));
        if let Some(v) = hist {
            let n = v
                .trim()
                .parse::<usize>()
                .map_err(|_| "history length is not a number")?;
            c.history_length = u32::try_from(n.min(limits.max_history)).unwrap_or(0);
        }
        if let Some(v) = form::value(x, "muc#roomconfig_allowpm") {
            c.allow_pm = match v.as_str() {
                "anyone" => AllowPm::Anyone,
                "participants" => AllowPm::Participants,
                "moderators" => AllowPm::Moderators,
                "none" => AllowPm::Nobody,
                _ => return Err("allowpm is anyone, participants, moderators or none"),
            };
        }
        if x.children().any(|f| {
            f.is("field", form::NS) && f.attr("var") == Some("muc#roomconfig_presencebroadcast")
        }) {
            let mut bits = 0;
            for v in form::values(x, "muc#roomconfig_presencebroadcast") {
                bits |= Role::parse(&v)
                    .map(Role::bit)
                    .ok_or("presencebroadcast lists roles")?;
            }
            c.presence_broadcast = bits;
        }
        Ok(c)
    }

    /// Tells the occupants what changed (§10.2.1: 104, 172/173), and applies a switch to
    /// members-only (§9.4: 322 for those who are not members).
    async fn config_changed(&mut self, router: &Router, before: &RoomConfig, was_locked: bool) {
        let now = self.stored.config.clone();
        if now.members_only && !before.members_only {
            let out: Vec<String> = self
                .occupants
                .values()
                .filter(|o| self.affiliation(&o.bare) < Affiliation::Member)
                .map(|o| o.nick.clone())
                .collect();
            for nick in out {
                self.remove(router, &nick, &[322]).await;
            }
        }
        if was_locked {
            return;
        }
        let mut codes = vec![104];
        if now.whois != before.whois {
            codes.push(if now.whois == Whois::Anyone { 172 } else { 173 });
        }
        let mut x = Element::new("x", NS_USER);
        for c in codes {
            x.append_child(Element::new("status", NS_USER).with_attr("code", c.to_string()));
        }
        let m = Element::new("message", NS_CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", self.jid.to_string())
            .with_child(x);
        let shared = crate::stanza::shared::SharedStanza::new(m);
        self.fan_out(router, &shared).await;
    }

    /// §10.9: the room is destroyed; each occupant gets its unavailable presence with the
    /// `<destroy/>` (alternate venue, reason) and the room is gone from storage.
    pub async fn destroy(&mut self, router: &Router, d: &Element) {
        let mut destroy = Element::new("destroy", NS_USER);
        if let Some(j) = d.attr("jid") {
            destroy.set_attr("jid", j);
        }
        if let Some(r) = d.get_child("reason", NS_OWNER) {
            destroy.append_child(Element::new("reason", NS_USER).with_text(r.text()));
        }
        for o in self.occupants.values() {
            let x = Element::new("x", NS_USER)
                .with_child(
                    Element::new("item", NS_USER)
                        .with_attr("affiliation", "none")
                        .with_attr("role", "none"),
                )
                .with_child(destroy.clone());
            let p = Element::new("presence", NS_CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", format!("{}/{}", self.jid, o.nick))
                .with_child(x);
            for s in &o.sessions {
                router
                    .route(p.clone().with_attr("to", s.jid.to_string()))
                    .await;
            }
        }
        self.occupants.clear();
        self.by_jid.clear();
        self.destroyed().await;
    }

    /// disco#info on the room (§6.4): identity, the features saying how it is configured, and
    /// the `muc#roominfo` form.
    pub fn disco_info(&self, iq: &Element) -> Element {
        let c = &self.stored.config;
        let mut q = Element::new("query", NS_INFO).with_child(
            Element::new("identity", NS_INFO)
                .with_attr("category", "conference")
                .with_attr("type", "text")
                .with_attr("name", c.title.clone()),
        );
        let pick = |on: bool, yes: &'static str, no: &'static str| if on { yes } else { no };
        for f in [
            NS,
            NS_SID,
            super::register::NS,
            "http://jabber.org/protocol/muc#stable_id",
            "http://jabber.org/protocol/muc#self-ping-optimization",
            pick(c.persistent, "muc_persistent", "muc_temporary"),
            pick(c.public, "muc_public", "muc_hidden"),
            pick(c.members_only, "muc_membersonly", "muc_open"),
            pick(c.moderated, "muc_moderated", "muc_unmoderated"),
            pick(
                !c.password.is_empty(),
                "muc_passwordprotected",
                "muc_unsecured",
            ),
            pick(
                c.whois == Whois::Anyone,
                "muc_nonanonymous",
                "muc_semianonymous",
            ),
        ] {
            q.append_child(Element::new("feature", NS_INFO).with_attr("var", f));
        }
        if self.shared.config.archive.enabled {
            for f in [crate::stanza::NS_MAM, crate::ext::archive::NS_EXTENDED] {
                q.append_child(Element::new("feature", NS_INFO).with_attr("var", f));
            }
        }
        let occupants = self.occupants.len().to_string();
        let x = form::new("result", INFO)
            .with_child(form::field(
                "muc#roominfo_description",
                None,
                Some("Description"),
                &[&c.description],
            ))
            .with_child(form::field(
                "muc#roominfo_occupants",
                None,
                Some("Occupants"),
                &[&occupants],
            ))
            .with_child(form::field(
                "muc#roominfo_subject",
                None,
                Some("Subject"),
                &[&self.stored.subject],
            ))
            .with_child(form::field(
                "muc#roomconfig_roomname",
                None,
                Some("Name"),
                &[&c.title],
            ));
        q.append_child(x);
        iq_result(iq).with_child(q)
    }

    /// disco#items on the room (§6.5): its occupants' room JIDs, for occupants (and anyone in
    /// a public room that is not members-only), paged; how clients of a large room pull it.
    pub fn disco_items(&self, from: &FullJid, iq: &Element) -> Element {
        let c = &self.stored.config;
        let visible = self.by_jid.contains_key(from) || (c.public && !c.members_only);
        let mut q = Element::new("query", NS_ITEMS);
        if !visible {
            return iq_result(iq).with_child(q);
        }
        let req = match iq.children().next().map(rsm::request) {
            Some(Err(c)) => return iq_error(iq, c, None),
            Some(Ok(r)) => r,
            None => None,
        };
        let max = req.as_ref().and_then(|r| r.max).unwrap_or(usize::MAX);
        let after = req.as_ref().and_then(|r| r.after.clone());
        let page: Vec<&String> = self
            .occupants
            .keys()
            .filter(|n| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()))
            .take(max)
            .collect();
        for nick in &page {
            q.append_child(
                Element::new("item", NS_ITEMS)
                    .with_attr("jid", format!("{}/{nick}", self.jid))
                    .with_attr("name", nick.as_str()),
            );
        }
        if req.is_some() {
            let fl = page
                .first()
                .zip(page.last())
                .map(|(f, l)| (f.as_str(), l.as_str()));
            q.append_child(rsm::answer(fl, None, Some(self.occupants.len() as u64)));
        }
        iq_result(iq).with_child(q)
    }
}
