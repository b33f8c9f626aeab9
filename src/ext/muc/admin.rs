//! Moderation and administration (XEP-0045 §8–§10, `muc#admin`): roles by nickname (kick,
//! voice, moderator) and affiliations by JID (ban, member, admin, owner), with the lists of
//! each. A request with several items is checked whole before any of it is applied.

use jid::{BareJid, FullJid};

use super::NS_ADMIN;
use super::room::Room;
use super::types::{Affiliation, Role};
use crate::router::Router;
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::xml::Element;

/// One change a request asks for.
enum Change {
    Role {
        nick: String,
        role: Role,
    },
    Affiliation {
        jid: BareJid,
        affiliation: Affiliation,
        reason: String,
    },
}

impl Room {
    /// §9.5, §10.5, §10.8, §8.5: a list of an affiliation or a role.
    pub fn admin_get(&self, from: &FullJid, iq: &Element) -> Element {
        let Some(item) = iq
            .children()
            .next()
            .and_then(|q| q.get_child("item", NS_ADMIN))
        else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        let me = self.occupant_of(from).map(|o| o.role).unwrap_or(Role::None);
        let mine = self.affiliation(&from.to_bare());
        let mut q = Element::new("query", NS_ADMIN);
        if let Some(a) = item.attr("affiliation") {
            let Some(a) = Affiliation::parse(a).filter(|a| *a != Affiliation::None) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            if mine < Affiliation::Admin {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            let mut rows: Vec<_> = self.affiliations.iter().filter(|(_, v)| v.0 == a).collect();
            rows.sort_by(|x, y| x.0.cmp(y.0));
            for (jid, (a, reason)) in rows {
                let mut i = Element::new("item", NS_ADMIN)
                    .with_attr("affiliation", a.as_str())
                    .with_attr("jid", jid.clone());
                if let Some(n) = self.registered.get(jid.as_str()) {
                    i.set_attr("nick", n.clone());
                } else if let Some(o) = self.occupants.values().find(|o| o.bare.as_str() == jid) {
                    i.set_attr("nick", o.nick.clone());
                }
                if !reason.is_empty() {
                    i.append_child(Element::new("reason", NS_ADMIN).with_text(reason.clone()));
                }
                q.append_child(i);
            }
        } else if let Some(r) = item.attr("role") {
            let Some(r) = Role::parse(r).filter(|r| *r != Role::None) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            if me != Role::Moderator {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            for o in self.occupants.values().filter(|o| o.role == r) {
                let mut i = Element::new("item", NS_ADMIN)
                    .with_attr("role", r.as_str())
                    .with_attr("nick", o.nick.clone())
                    .with_attr("affiliation", self.affiliation(&o.bare).as_str());
                if let Some(s) = o.current() {
                    i.set_attr("jid", s.jid.to_string());
                }
                q.append_child(i);
            }
        } else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        }
        iq_result(iq).with_child(q)
    }

    /// §8.2–§8.6, §9.1–§9.8, §10.3–§10.7: changes of roles and affiliations.
    pub async fn admin_set(&mut self, router: &Router, from: &FullJid, iq: &Element) -> Element {
        let Some(q) = iq.children().next() else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        let mut changes = Vec::new();
        for item in q.children().filter(|c| c.is("item", NS_ADMIN)) {
            match self.check(from, item) {
                Ok(c) => changes.push(c),
                Err(c) => return iq_error(iq, c, None),
            }
        }
        if changes.is_empty() {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        }
        // Removing the last owner would leave the room without one (§10.7).
        let owners_left = self
            .affiliations
            .iter()
            .filter(|(j, v)| {
                v.0 == Affiliation::Owner
                    && !changes.iter().any(|c| matches!(c, Change::Affiliation { jid, .. } if jid.as_str() == j.as_str()))
            })
            .count();
        let new_owners = changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::Affiliation {
                        affiliation: Affiliation::Owner,
                        ..
                    }
                )
            })
            .count();
        if owners_left + new_owners == 0 {
            return iq_error(iq, ErrorCondition::Conflict, None);
        }
        let added = changes
            .iter()
            .filter(|c| matches!(c, Change::Affiliation { .. }))
            .count();
        if self.affiliations.len() + added > self.shared.config.muc.max_affiliations {
            return iq_error(
                iq,
                ErrorCondition::PolicyViolation,
                Some("too many affiliations"),
            );
        }
        for c in changes {
            match c {
                Change::Role { nick, role } => self.apply_role(router, &nick, role).await,
                Change::Affiliation {
                    jid,
                    affiliation,
                    reason,
                } => {
                    let before = self.affiliation(&jid);
                    if !self.set_affiliation(&jid, affiliation, &reason).await {
                        return iq_error(iq, ErrorCondition::InternalServerError, None);
                    }
                    self.affiliation_changed(router, &jid, before).await;
                }
            }
        }
        iq_result(iq)
    }

    /// Whether `from` may make the change `item` asks for, and what it is.
    fn check(&self, from: &FullJid, item: &Element) -> Result<Change, ErrorCondition> {
        let actor_role = self.occupant_of(from).map(|o| o.role).unwrap_or(Role::None);
        let actor = self.affiliation(&from.to_bare());
        let reason = item
            .get_child("reason", NS_ADMIN)
            .map(Element::text)
            .unwrap_or_default();
        if let Some(r) = item.attr("role") {
            let role = Role::parse(r).ok_or(ErrorCondition::BadRequest)?;
            let nick = item.attr("nick").ok_or(ErrorCondition::BadRequest)?;
            let target = self
                .occupants
                .get(nick)
                .ok_or(ErrorCondition::ItemNotFound)?;
            let theirs = self.affiliation(&target.bare);
            if actor_role != Role::Moderator {
                return Err(ErrorCondition::Forbidden);
            }
            // A moderator cannot touch those affiliated above it, nor an admin or owner's
            // moderator role (§8.2, §8.6, §9.7).
            if theirs > actor || (theirs >= Affiliation::Admin && role < Role::Moderator) {
                return Err(ErrorCondition::NotAllowed);
            }
            if (role == Role::Moderator || target.role == Role::Moderator)
                && actor < Affiliation::Admin
            {
                return Err(ErrorCondition::NotAllowed);
            }
            return Ok(Change::Role {
                nick: nick.to_string(),
                role,
            });
        }
        let affiliation = item
            .attr("affiliation")
            .and_then(Affiliation::parse)
            .ok_or(ErrorCondition::BadRequest)?;
        let jid = match (item.attr("jid"), item.attr("nick")) {
            (Some(j), _) => jid::Jid::new(j)
                .map_err(|_| ErrorCondition::JidMalformed)?
                .to_bare(),
            (None, Some(n)) => self
                .occupants
                .get(n)
                .ok_or(ErrorCondition::ItemNotFound)?
                .bare
                .clone(),
            (None, None) => return Err(ErrorCondition::BadRequest),
        };
        let theirs = self.affiliation(&jid);
        let ok = match actor {
            Affiliation::Owner => true,
            // An admin manages members and bans of those below admin (§9).
            Affiliation::Admin => theirs < Affiliation::Admin && affiliation < Affiliation::Admin,
            _ => false,
        };
        if !ok {
            return Err(if actor < Affiliation::Admin {
                ErrorCondition::Forbidden
            } else {
                ErrorCondition::NotAllowed
            });
        }
        Ok(Change::Affiliation {
            jid,
            affiliation,
            reason,
        })
    }

    /// Gives occupant `nick` a role; `none` kicks it (307).
    pub(super) async fn apply_role(&mut self, router: &Router, nick: &str, role: Role) {
        if role == Role::None {
            return self.remove(router, nick, &[307]).await;
        }
        if let Some(o) = self.occupants.get_mut(nick) {
            o.role = role;
        }
        self.broadcast(router, nick, None, &[]).await;
    }

    /// Stores an affiliation (`none` removes it); false if storage failed.
    pub async fn set_affiliation(&mut self, jid: &BareJid, a: Affiliation, reason: &str) -> bool {
        let row = (a != Affiliation::None).then_some((a.as_str(), reason));
        if let Err(e) = self
            .shared
            .storage
            .muc
            .set_affiliation(self.jid.as_str(), jid.as_str(), row)
            .await
        {
            tracing::error!("affiliation in room {}: {e}", self.jid);
            return false;
        }
        match a {
            Affiliation::None => self.affiliations.remove(jid.as_str()),
            _ => self
                .affiliations
                .insert(jid.to_string(), (a, reason.to_string())),
        };
        true
    }

    /// The occupants of account `jid` after its affiliation changed: banned ones leave (301),
    /// those no longer members of a members-only room leave (321), the others get the role
    /// their affiliation gives and everyone sees it.
    pub(super) async fn affiliation_changed(
        &mut self,
        router: &Router,
        jid: &BareJid,
        before: Affiliation,
    ) {
        let a = self.affiliation(jid);
        let nicks: Vec<String> = self
            .occupants
            .values()
            .filter(|o| &o.bare == jid)
            .map(|o| o.nick.clone())
            .collect();
        for nick in nicks {
            if a == Affiliation::Outcast {
                self.remove(router, &nick, &[301]).await;
            } else if self.stored.config.members_only && a < Affiliation::Member {
                self.remove(router, &nick, &[321]).await;
            } else {
                let moderated = self.stored.config.moderated;
                if let Some(o) = self.occupants.get_mut(&nick) {
                    let default = Role::default_for(a, moderated);
                    // Admins and owners moderate; one who is no longer gets its affiliation's
                    // default role; otherwise the affiliation only raises the role (§9.3, §10.7).
                    o.role = if a >= Affiliation::Admin {
                        Role::Moderator
                    } else if before >= Affiliation::Admin {
                        default
                    } else {
                        default.max(o.role)
                    };
                }
                self.broadcast(router, &nick, None, &[]).await;
            }
        }
    }
}
