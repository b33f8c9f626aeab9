//! Messages in a room (XEP-0045 §7.4–§7.9, §8.1): groupchat messages stored once in the room's
//! archive with the room's `<stanza-id/>` (XEP-0359) and then sent to every occupant,
//! serialised once; the subject; private messages through the room; mediated invitations and
//! declines; and the history a newcomer gets (§7.2.15, with XEP-0203 delay stamps).

use jid::FullJid;

use super::room::Room;
use super::types::{Affiliation, Role};
use super::{NS_SID, NS_USER};
use crate::router::Router;
use crate::stanza::shared::SharedStanza;
use crate::stanza::{ErrorCondition, NS_DELAY, delay};
use crate::storage::muc::RoomMessage;
use crate::stream::NS_CLIENT;
use crate::xml::{Element, Limits, parse_fragment};

impl Room {
    /// A message to the room's bare JID.
    pub async fn message(&mut self, router: &Router, from: FullJid, m: Element) {
        if let Some(x) = m.get_child("x", NS_USER) {
            if let Some(i) = x.get_child("invite", NS_USER) {
                return self.invite(router, &from, &m, i.clone()).await;
            }
            if let Some(d) = x.get_child("decline", NS_USER) {
                return self.decline(router, &from, d.clone()).await;
            }
        }
        if let Some(x) = super::voice::request_form(&m) {
            let x = x.clone();
            return self.voice(router, &from, &m, &x).await;
        }
        if m.attr("type") != Some("groupchat") {
            return self.refuse(router, &m, ErrorCondition::BadRequest).await;
        }
        let Some(o) = self.occupant_of(&from) else {
            return self.refuse(router, &m, ErrorCondition::NotAcceptable).await;
        };
        let (nick, role, bare) = (o.nick.clone(), o.role, o.bare.clone());
        if role < Role::Participant {
            // §7.4 visitors in a moderated room have no voice.
            return self.refuse(router, &m, ErrorCondition::Forbidden).await;
        }
        let has_body = m.get_child("body", NS_CLIENT).is_some();
        if let Some(subject) = m.get_child("subject", NS_CLIENT)
            && !has_body
        {
            return self
                .set_subject(router, &m, &nick, role, subject.text())
                .await;
        }
        if !self.within_rate(&nick) {
            return self
                .refuse(router, &m, ErrorCondition::ResourceConstraint)
                .await;
        }
        let mut out = m.clone();
        out.remove_attr("to");
        out.set_attr("from", format!("{}/{nick}", self.jid));
        // Only the room stamps its own ids (XEP-0359 §5: a forged one is removed).
        let room_jid = self.jid.to_string();
        out.retain_children(|c| !(c.is("stanza-id", NS_SID) && c.attr("by") == Some(&room_jid)));
        // Chat states, markers and receipts are passed on, not kept (nor given an id).
        if !crate::ext::archive::worth_keeping(&out) {
            let shared = SharedStanza::new(out);
            return self.fan_out(router, &shared).await;
        }
        let id = crate::stream::random_id();
        out.append_child(
            Element::new("stanza-id", NS_SID)
                .with_attr("id", id.clone())
                .with_attr("by", room_jid),
        );
        // Serialised once, stored as serialised before anyone sees it (what was sent is in
        // the archive), then the same bytes go to every occupant.
        let shared = SharedStanza::new(out);
        let stored = RoomMessage {
            stanza_id: id,
            nick,
            sender: bare.to_string(),
            ts_ms: crate::storage::now_ms(),
            xml: String::from_utf8_lossy(shared.wire()).into_owned(),
        };
        if let Err(e) = self
            .shared
            .storage
            .muc
            .append(self.jid.as_str(), &stored)
            .await
        {
            tracing::error!("archive of room {}: {e}", self.jid);
            return self
                .refuse(router, &m, ErrorCondition::InternalServerError)
                .await;
        }
        // Speaking reads the room for the speaker's inbox (XEP-0430), here in the room's own
        // turn rather than on every sender's routing path.
        let cfg = &self.shared.config.archive;
        if cfg.enabled && cfg.inbox && router.is_local(bare.domain().as_str()) {
            let (host, user) = crate::ext::account(&bare);
            let mark = crate::storage::inbox::RoomMark::ReadAll;
            let store = &self.shared.storage.archive;
            if let Err(e) = store.inbox_room(host, user, self.jid.as_str(), &mark).await {
                tracing::error!("inbox of {bare}: {e}");
            }
        }
        self.fan_out(router, &shared).await;
    }

    /// §8.1: a new subject, from a moderator or, if the room lets them, a participant.
    async fn set_subject(
        &mut self,
        router: &Router,
        m: &Element,
        nick: &str,
        role: Role,
        subject: String,
    ) {
        let allowed = role == Role::Moderator || self.stored.config.change_subject;
        if !allowed {
            return self.refuse(router, m, ErrorCondition::Forbidden).await;
        }
        if subject.len() > self.shared.config.muc.max_subject_length {
            return self.refuse(router, m, ErrorCondition::NotAcceptable).await;
        }
        let before = std::mem::replace(&mut self.stored.subject, subject);
        let before_nick = std::mem::replace(&mut self.stored.subject_nick, nick.to_string());
        if !self.save().await {
            self.stored.subject = before;
            self.stored.subject_nick = before_nick;
            return self
                .refuse(router, m, ErrorCondition::InternalServerError)
                .await;
        }
        let shared = SharedStanza::new(self.subject_message());
        self.fan_out(router, &shared).await;
    }

    /// The subject as the room sends it: from the nickname that set it (or the room).
    fn subject_message(&self) -> Element {
        let from = match self.stored.subject_nick.as_str() {
            "" => self.jid.to_string(),
            n => format!("{}/{n}", self.jid),
        };
        Element::new("message", NS_CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", from)
            .with_child(Element::new("subject", NS_CLIENT).with_text(self.stored.subject.clone()))
    }

    /// §7.2.15: the subject, last thing a newcomer gets (empty when none is set).
    pub async fn send_subject(&self, router: &Router, to: &FullJid) {
        let m = self.subject_message().with_attr("to", to.to_string());
        router.route(m).await;
    }

    /// Whether occupant `nick` may send one more message this minute (`muc.messages_per_minute`).
    fn within_rate(&mut self, nick: &str) -> bool {
        let max = self.shared.config.muc.messages_per_minute;
        let Some(o) = self.occupants.get_mut(nick) else {
            return false;
        };
        if max == 0 {
            return true;
        }
        let now = std::time::Instant::now();
        if now.duration_since(o.sent.1) >= std::time::Duration::from_secs(60) {
            o.sent = (0, now);
        }
        o.sent.0 += 1;
        o.sent.0 <= max
    }

    /// §7.5: a private message to occupant `nick`, through the room.
    pub async fn private_message(
        &mut self,
        router: &Router,
        from: FullJid,
        nick: String,
        m: Element,
    ) {
        if m.attr("type") == Some("groupchat") {
            return self.refuse(router, &m, ErrorCondition::BadRequest).await;
        }
        let Some(sender) = self.occupant_of(&from) else {
            return self.refuse(router, &m, ErrorCondition::NotAcceptable).await;
        };
        if !self.may_pm(sender.role) {
            return self.refuse(router, &m, ErrorCondition::Forbidden).await;
        }
        let sender_nick = sender.nick.clone();
        let Some(target) = self.occupants.get(&nick) else {
            return self.refuse(router, &m, ErrorCondition::ItemNotFound).await;
        };
        let mut out = m.clone();
        out.set_attr("from", format!("{}/{sender_nick}", self.jid));
        if out.get_child("x", NS_USER).is_none() {
            out.append_child(Element::new("x", NS_USER));
        }
        for s in &target.sessions {
            router
                .route(out.clone().with_attr("to", s.jid.to_string()))
                .await;
        }
    }

    /// §7.8.2: a mediated invitation; in a members-only room the invitee becomes a member.
    async fn invite(&mut self, router: &Router, from: &FullJid, m: &Element, invite: Element) {
        let Some(o) = self.occupant_of(from) else {
            return self.refuse(router, m, ErrorCondition::NotAcceptable).await;
        };
        let affiliation = self.affiliation(&o.bare);
        let may = affiliation >= Affiliation::Admin
            || o.role == Role::Moderator
            || (self.stored.config.allow_invites && o.role >= Role::Participant);
        if !may {
            return self.refuse(router, m, ErrorCondition::Forbidden).await;
        }
        let Some(Ok(to)) = invite.attr("to").map(jid::BareJid::new) else {
            return self.refuse(router, m, ErrorCondition::JidMalformed).await;
        };
        if self.stored.config.members_only && self.affiliation(&to) == Affiliation::None {
            // The membership an invitation grants counts against the room's bound too.
            if self.affiliations.len() >= self.shared.config.muc.max_affiliations {
                return self
                    .refuse(router, m, ErrorCondition::PolicyViolation)
                    .await;
            }
            if !self
                .set_affiliation(&to, Affiliation::Member, "invited")
                .await
            {
                return self
                    .refuse(router, m, ErrorCondition::InternalServerError)
                    .await;
            }
        }
        let mut inv = Element::new("invite", NS_USER).with_attr("from", from.to_string());
        if let Some(r) = invite.get_child("reason", NS_USER) {
            inv.append_child(r.clone());
        }
        let mut x = Element::new("x", NS_USER).with_child(inv);
        if !self.stored.config.password.is_empty() {
            x.append_child(
                Element::new("password", NS_USER).with_text(self.stored.config.password.clone()),
            );
        }
        let out = Element::new("message", NS_CLIENT)
            .with_attr("from", self.jid.to_string())
            .with_attr("to", to.to_string())
            .with_child(x);
        router.route(out).await;
    }

    /// §7.8.2: a declined invitation goes back to the inviter.
    async fn decline(&mut self, router: &Router, from: &FullJid, decline: Element) {
        let Some(Ok(to)) = decline.attr("to").map(jid::Jid::new) else {
            return;
        };
        let mut d = Element::new("decline", NS_USER).with_attr("from", from.to_bare().to_string());
        if let Some(r) = decline.get_child("reason", NS_USER) {
            d.append_child(r.clone());
        }
        let out = Element::new("message", NS_CLIENT)
            .with_attr("from", self.jid.to_string())
            .with_attr("to", to.to_string())
            .with_child(Element::new("x", NS_USER).with_child(d));
        router.route(out).await;
    }

    /// §7.2.15: the room's last messages for a newcomer, as its `<history/>` asks (`maxstanzas`,
    /// `maxchars`, `seconds`, `since`), at most the room's history length.
    pub async fn send_history(&self, router: &Router, to: &FullJid, ask: Option<&Element>) {
        let mut max = self.stored.config.history_length as usize;
        let mut since_ms = 0i64;
        let mut max_chars = usize::MAX;
        if let Some(h) = ask {
            if let Some(n) = h.attr("maxstanzas").and_then(|v| v.parse::<usize>().ok()) {
                max = max.min(n);
            }
            if let Some(n) = h.attr("maxchars").and_then(|v| v.parse::<usize>().ok()) {
                max_chars = n;
            }
            if let Some(s) = h.attr("seconds").and_then(|v| v.parse::<i64>().ok()) {
                since_ms = crate::storage::now_ms() - s.saturating_mul(1000);
            }
            if let Some(t) = h.attr("since").and_then(crate::stanza::parse_datetime) {
                since_ms = since_ms.max(t);
            }
        }
        if max == 0 || max_chars == 0 {
            return;
        }
        let rows = match self
            .shared
            .storage
            .muc
            .history(self.jid.as_str(), max, since_ms)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("history of room {}: {e}", self.jid);
                return;
            }
        };
        // maxchars counts the stanzas as sent, newest kept first.
        let mut chars = 0usize;
        let mut keep = rows.len();
        for (i, r) in rows.iter().enumerate().rev() {
            chars = chars.saturating_add(r.xml.len());
            if chars > max_chars {
                break;
            }
            keep = i;
        }
        let limits = Limits::stored();
        for r in &rows[keep..] {
            match parse_fragment(&r.xml, limits) {
                Ok(mut m) => {
                    m.remove_children("delay", NS_DELAY);
                    m.append_child(delay(self.jid.as_str(), r.ts_ms));
                    router.route(m.with_attr("to", to.to_string())).await;
                }
                Err(e) => {
                    tracing::error!("stored message {} of room {}: {e}", r.stanza_id, self.jid)
                }
            }
        }
    }
}
