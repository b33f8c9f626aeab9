//! Entering and leaving a room, nickname changes and presence updates (XEP-0045 §7.1–§7.4,
//! §7.6, §7.14), and how an occupant's presence is broadcast: with the real JID only to those
//! who may see it, with status 110 to the occupant itself, and not at all to the others when
//! the room's broadcast policy or its size says the others pull it (§7.2.3, large rooms).

use jid::FullJid;

use super::NS_USER;
use super::room::{Room, deliver_shared};
use super::types::{Affiliation, Occupant, Role, Session};
use crate::router::Router;
use crate::stanza::ErrorCondition;
use crate::stanza::shared::SharedStanza;
use crate::stream::NS_CLIENT;
use crate::xml::Element;

impl Room {
    /// A presence from a session to `room/nick`.
    pub async fn presence(&mut self, router: &Router, from: FullJid, nick: String, p: Element) {
        let current = self.by_jid.get(&from).cloned();
        match (p.attr("type"), current) {
            (Some("unavailable"), Some(_)) => {
                let status = p.get_child("status", NS_CLIENT).cloned();
                self.leave(router, &from, status, &[]).await
            }
            (Some("unavailable"), None) | (Some(_), _) => {}
            (None, Some(cur)) if cur == nick => self.update(router, &from, p).await,
            (None, Some(cur)) => self.change_nick(router, &from, cur, nick, p).await,
            (None, None) => self.join(router, from, nick, p).await,
        }
    }

    /// §7.2: a session enters the room.
    async fn join(&mut self, router: &Router, from: FullJid, nick: String, p: Element) {
        let muc = p.get_child("x", super::NS);
        let limits = &self.shared.config.muc;
        if nick.len() > limits.max_nick_length {
            return self.refuse(router, &p, ErrorCondition::JidMalformed).await;
        }
        let bare = from.to_bare();
        let mut codes = vec![];
        if !self.exists {
            if let Err(c) = self.create(&from).await {
                return self.refuse(router, &p, c).await;
            }
            // A client speaking the MUC protocol configures (or accepts) the room before
            // others may enter (§10.1.2); an old groupchat 1.0 client gets an instant room.
            self.locked = muc.is_some();
            codes.push(201);
        }
        let affiliation = self.affiliation(&bare);
        let c = &self.stored.config;
        let refused = if self.locked && affiliation != Affiliation::Owner {
            Some(ErrorCondition::ItemNotFound)
        } else if affiliation == Affiliation::Outcast {
            Some(ErrorCondition::Forbidden)
        } else if c.members_only && affiliation < Affiliation::Member {
            Some(ErrorCondition::RegistrationRequired)
        } else if !c.password.is_empty()
            && affiliation < Affiliation::Admin
            && muc
                .and_then(|x| x.get_child("password", super::NS))
                .map(Element::text)
                != Some(c.password.clone())
        {
            Some(ErrorCondition::NotAuthorized)
        } else if self.occupants.get(&nick).is_some_and(|o| o.bare != bare)
            || self.reserved_by_other(&nick, &bare)
        {
            Some(ErrorCondition::Conflict)
        } else if !self.occupants.contains_key(&nick)
            && self.occupants.len() >= c.max_users as usize
            && affiliation < Affiliation::Admin
        {
            Some(ErrorCondition::ServiceUnavailable)
        } else {
            None
        };
        if let Some(c) = refused {
            return self.refuse(router, &p, c).await;
        }
        let role = Role::default_for(affiliation, self.stored.config.moderated);
        let occupant = self
            .occupants
            .entry(nick.clone())
            .or_insert_with(|| Occupant {
                nick: nick.clone(),
                bare: bare.clone(),
                role,
                sessions: Vec::new(),
                sent: (0, std::time::Instant::now()),
            });
        occupant.sessions.push(Session {
            jid: from.clone(),
            presence: clean(&p),
        });
        let viewer = occupant.role;
        self.by_jid.insert(from.clone(), nick.clone());
        // The others first, then the newcomer's own presence (§7.2.3), then the others learn.
        let sees = self.sees_jids(viewer);
        let large = self.is_large();
        for o in self.occupants.values().filter(|o| o.nick != nick) {
            if self.pushed(o.role, large) {
                router
                    .route(
                        self.presence_of(o, None, sees, &[])
                            .with_attr("to", from.to_string()),
                    )
                    .await;
            }
        }
        if self.stored.config.whois == crate::storage::muc::Whois::Anyone {
            codes.push(100);
        }
        self.broadcast(router, &nick, None, &codes).await;
        self.send_history(
            router,
            &from,
            muc.and_then(|x| x.get_child("history", super::NS)),
        )
        .await;
        self.send_subject(router, &from).await;
    }

    /// Creates the room for its first occupant, who becomes its owner (§10.1).
    async fn create(&mut self, owner: &FullJid) -> Result<(), ErrorCondition> {
        let s = &self.shared;
        let bare = owner.to_bare();
        let local = s
            .router
            .upgrade()
            .is_some_and(|r| r.is_local(bare.domain().as_str()));
        if !s.config.muc.allow_room_creation || !local {
            return Err(ErrorCondition::NotAllowed);
        }
        let owned = s
            .storage
            .muc
            .owned_rooms(&s.domain, bare.as_str())
            .await
            .map_err(|e| {
                tracing::error!("rooms of {bare}: {e}");
                ErrorCondition::InternalServerError
            })?;
        if owned >= s.config.muc.max_rooms_per_user as u64 {
            return Err(ErrorCondition::PolicyViolation);
        }
        self.stored.created_ms = crate::storage::now_ms();
        if !self.save().await {
            return Err(ErrorCondition::InternalServerError);
        }
        let r = s
            .storage
            .muc
            .set_affiliation(self.jid.as_str(), bare.as_str(), Some(("owner", "")))
            .await;
        if let Err(e) = r {
            tracing::error!("owner of room {}: {e}", self.jid);
            self.destroyed().await;
            return Err(ErrorCondition::InternalServerError);
        }
        self.affiliations
            .insert(bare.to_string(), (Affiliation::Owner, String::new()));
        self.exists = true;
        Ok(())
    }

    /// §7.4: a new presence from an occupant's session, broadcast as the occupant's.
    async fn update(&mut self, router: &Router, from: &FullJid, p: Element) {
        let Some(nick) = self.by_jid.get(from).cloned() else {
            return;
        };
        if let Some(o) = self.occupants.get_mut(&nick) {
            // The updated session becomes the one that represents the occupant.
            if let Some(i) = o.sessions.iter().position(|s| &s.jid == from) {
                let mut s = o.sessions.remove(i);
                s.presence = clean(&p);
                o.sessions.push(s);
            }
        }
        self.broadcast(router, &nick, None, &[]).await;
    }

    /// §7.6: an occupant takes another nickname: unavailable with 303 and the new nickname,
    /// then available under the new one.
    async fn change_nick(
        &mut self,
        router: &Router,
        from: &FullJid,
        old: String,
        new: String,
        p: Element,
    ) {
        let conflict =
            self.occupants.contains_key(&new) || self.reserved_by_other(&new, &from.to_bare());
        let multi = self
            .occupants
            .get(&old)
            .is_some_and(|o| o.sessions.len() > 1);
        if conflict || new.len() > self.shared.config.muc.max_nick_length {
            let c = if conflict {
                ErrorCondition::Conflict
            } else {
                ErrorCondition::JidMalformed
            };
            return self.refuse(router, &p, c).await;
        }
        if multi {
            // One session of a multi-session nick cannot rename the others.
            return self.refuse(router, &p, ErrorCondition::NotAcceptable).await;
        }
        if let Some(o) = self.occupants.get(&old) {
            self.broadcast_as(router, o, &old, Some(&new), true, &[303])
                .await;
        }
        let Some(mut o) = self.occupants.remove(&old) else {
            return;
        };
        o.nick = new.clone();
        if let Some(s) = o.sessions.iter_mut().find(|s| &s.jid == from) {
            s.presence = clean(&p);
        }
        self.by_jid.insert(from.clone(), new.clone());
        self.occupants.insert(new.clone(), o);
        self.broadcast(router, &new, None, &[]).await;
    }

    /// §7.14: a session leaves (or is found gone, `codes` 333). The occupant leaves with its
    /// last session; an occupant with others left only tells this session.
    pub async fn leave(
        &mut self,
        router: &Router,
        from: &FullJid,
        status: Option<Element>,
        codes: &[u16],
    ) {
        let Some(nick) = self.by_jid.remove(from) else {
            return;
        };
        let Some(o) = self.occupants.get_mut(&nick) else {
            return;
        };
        o.sessions.retain(|s| &s.jid != from);
        let mut p = Element::new("presence", NS_CLIENT).with_attr("type", "unavailable");
        if let Some(s) = status {
            p.append_child(s);
        }
        if !o.sessions.is_empty() {
            let o = &self.occupants[&nick];
            let mut own = self.presence_of(o, Some(&p), true, &[110]);
            own.set_attr("to", from.to_string());
            return router.route(own).await;
        }
        let gone = Session {
            jid: from.clone(),
            presence: p,
        };
        o.sessions.push(gone);
        self.broadcast(router, &nick, Some(()), codes).await;
        self.occupants.remove(&nick);
    }

    /// Broadcasts occupant `nick`'s current presence (`unavailable`: its leaving) to the room:
    /// to its own sessions with 110, to the others as the room's policy says.
    pub async fn broadcast(
        &self,
        router: &Router,
        nick: &str,
        unavailable: Option<()>,
        codes: &[u16],
    ) {
        let Some(o) = self.occupants.get(nick) else {
            return;
        };
        self.broadcast_as(router, o, nick, None, unavailable.is_some(), codes)
            .await;
    }

    /// [`Room::broadcast`] for occupant `o` under `nick`; `new_nick` marks a nickname change.
    pub async fn broadcast_as(
        &self,
        router: &Router,
        o: &Occupant,
        nick: &str,
        new_nick: Option<&str>,
        unavailable: bool,
        codes: &[u16],
    ) {
        let base = match (unavailable || new_nick.is_some(), o.current()) {
            (false, Some(s)) => s.presence.clone(),
            (true, _) => {
                let mut p = Element::new("presence", NS_CLIENT).with_attr("type", "unavailable");
                if let Some(st) = o
                    .current()
                    .and_then(|s| s.presence.get_child("status", NS_CLIENT))
                {
                    p.append_child(st.clone());
                }
                p
            }
            (false, None) => return,
        };
        let item_extra = |mut p: Element| {
            if let Some(n) = new_nick
                && let Some(x) = p.children().last().cloned()
            {
                let mut x2 = Element::new("x", NS_USER);
                for c in x.children() {
                    let mut c = c.clone();
                    if c.name() == "item" {
                        c.set_attr("nick", n);
                    }
                    x2.append_child(c);
                }
                p.remove_children("x", NS_USER);
                p.append_child(x2);
            }
            p
        };
        let from = format!("{}/{nick}", self.jid);
        // Its own sessions: with its real JID and 110 (§7.2.2).
        let mut own_codes = codes.to_vec();
        own_codes.push(110);
        for s in &o.sessions {
            let p = item_extra(self.presence_parts(&from, o, &base, true, &own_codes));
            router.route(p.with_attr("to", s.jid.to_string())).await;
        }
        if !self.pushed(o.role, self.is_large()) {
            return;
        }
        let with = SharedStanza::new(item_extra(
            self.presence_parts(&from, o, &base, true, codes),
        ));
        let without = SharedStanza::new(item_extra(
            self.presence_parts(&from, o, &base, false, codes),
        ));
        for other in self.occupants.values().filter(|x| x.nick != nick) {
            let shared = if self.sees_jids(other.role) {
                &with
            } else {
                &without
            };
            for s in &other.sessions {
                // A session that cannot take a presence gets the next message's 333.
                deliver_shared(router, shared, &s.jid);
            }
        }
    }

    /// The presence of occupant `o` as the room sends it (`base`: what to send instead of its
    /// current presence, e.g. unavailable), with its real JID if `sees`.
    pub fn presence_of(
        &self,
        o: &Occupant,
        base: Option<&Element>,
        sees: bool,
        codes: &[u16],
    ) -> Element {
        let base = base
            .cloned()
            .or_else(|| o.current().map(|s| s.presence.clone()))
            .unwrap_or_else(|| Element::new("presence", NS_CLIENT));
        self.presence_parts(&format!("{}/{}", self.jid, o.nick), o, &base, sees, codes)
    }

    fn presence_parts(
        &self,
        from: &str,
        o: &Occupant,
        base: &Element,
        sees: bool,
        codes: &[u16],
    ) -> Element {
        let mut p = base.clone();
        p.set_attr("from", from);
        let (affiliation, role) = if base.attr("type") == Some("unavailable") {
            (self.affiliation(&o.bare), Role::None)
        } else {
            (self.affiliation(&o.bare), o.role)
        };
        let mut item = Element::new("item", NS_USER)
            .with_attr("affiliation", affiliation.as_str())
            .with_attr("role", role.as_str());
        if sees && let Some(s) = o.current() {
            item.set_attr("jid", s.jid.to_string());
        }
        let mut x = Element::new("x", NS_USER).with_child(item);
        for c in codes {
            x.append_child(Element::new("status", NS_USER).with_attr("code", c.to_string()));
        }
        p.append_child(x);
        p
    }

    /// Whether a presence of `role` is pushed to the other occupants.
    pub fn pushed(&self, role: Role, large: bool) -> bool {
        if large && role != Role::Moderator {
            return false;
        }
        self.stored.config.presence_broadcast & role.bit() != 0 || role == Role::None
    }

    /// Whether the room is above `muc.large_room_threshold` (presence pulled).
    pub fn is_large(&self) -> bool {
        self.occupants.len() > self.shared.config.muc.large_room_threshold
    }

    /// Removes occupant `nick` from the room (kicked, banned, no longer a member), telling
    /// everyone with `codes`.
    pub async fn remove(&mut self, router: &Router, nick: &str, codes: &[u16]) {
        let Some(o) = self.occupants.get(nick) else {
            return;
        };
        let jids: Vec<FullJid> = o.sessions.iter().map(|s| s.jid.clone()).collect();
        if let Some(o) = self.occupants.get_mut(nick) {
            o.role = Role::None;
        }
        self.broadcast(router, nick, Some(()), codes).await;
        for j in jids {
            self.by_jid.remove(&j);
        }
        self.occupants.remove(nick);
    }
}

/// A session's presence as the room keeps it: its own payload (show, status, priority, caps),
/// without the MUC elements and addresses.
fn clean(p: &Element) -> Element {
    let mut c = p.clone();
    c.remove_attr("from");
    c.remove_attr("to");
    c.remove_attr("id");
    c.remove_children("x", super::NS);
    c.remove_children("x", NS_USER);
    c
}
