//! A room: its state, read from storage when its actor starts, the actor loop, and where each
//! stanza addressed to the room or to an occupant goes (XEP-0045 §7–§10).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jid::{BareJid, FullJid, Jid};
use tokio::sync::mpsc;

use super::types::{Affiliation, Occupant, Role};
use super::{NS_ADMIN, NS_OWNER, Shared};
use crate::router::Router;
use crate::session::SessionMsg;
use crate::stanza::shared::{Addressed, SharedStanza};
use crate::stanza::{ErrorCondition, error_reply, iq_error, iq_result};
use crate::storage::muc::{AllowPm, RoomConfig, StoredRoom, Whois};
use crate::xml::Element;

/// A room in memory.
pub(crate) struct Room {
    pub shared: Arc<Shared>,
    /// `name@service`
    pub jid: BareJid,
    /// Whether it exists (in storage); a room that does not is created by a join.
    pub exists: bool,
    /// Created with the MUC protocol and not configured yet: only the owner may enter (§10.1.2).
    pub locked: bool,
    pub stored: StoredRoom,
    /// Affiliations by bare JID, with their reasons.
    pub affiliations: HashMap<String, (Affiliation, String)>,
    /// Registered nicknames (§7.10) by bare JID.
    pub registered: HashMap<String, String>,
    /// Occupants by nickname.
    pub occupants: BTreeMap<String, Occupant>,
    /// Nickname of each occupant session.
    pub by_jid: HashMap<FullJid, String>,
    /// Iqs passed to occupants, by the id the room gave them: who asked, with what id, when.
    passed: HashMap<String, (FullJid, String, std::time::Instant)>,
}

/// Iqs passed to occupants that a room remembers at most.
const MAX_PASSED: usize = 256;
/// How long an unanswered passed iq is remembered (when the table is full).
const PASSED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The actor of room `name`: loads it, handles its stanzas in order, ends when it is empty.
pub(crate) async fn run(
    shared: Arc<Shared>,
    name: String,
    mut rx: mpsc::Receiver<Element>,
    bytes: Arc<AtomicUsize>,
) {
    let jid = match BareJid::new(&format!("{name}@{}", shared.domain)) {
        Ok(j) => j,
        Err(_) => {
            // The router parsed this JID already; a room that cannot be named answers nothing.
            shared.may_end(&name, &rx);
            return;
        }
    };
    let mut room = Room::load(shared.clone(), jid).await;
    loop {
        let Some(stanza) = rx.recv().await else { break };
        bytes.fetch_sub(stanza.deep_cost(), Ordering::AcqRel);
        let Some(router) = shared.router.upgrade() else {
            break;
        };
        tracing::trace!(room = %room.jid, kind = stanza.name(), "room stanza");
        room.handle(&router, stanza).await;
        tracing::trace!(room = %room.jid, "room stanza handled");
        if room.occupants.is_empty() && rx.is_empty() {
            if room.exists && !room.stored.config.persistent {
                room.destroyed().await;
            }
            if shared.may_end(&name, &rx) {
                break;
            }
        }
    }
}

impl Room {
    /// The room as storage has it (or a room that does not exist yet).
    async fn load(shared: Arc<Shared>, jid: BareJid) -> Room {
        let mut room = Room {
            stored: default_room(&shared),
            shared,
            jid,
            exists: false,
            locked: false,
            affiliations: HashMap::new(),
            registered: HashMap::new(),
            occupants: BTreeMap::new(),
            by_jid: HashMap::new(),
            passed: HashMap::new(),
        };
        let store = &room.shared.storage.muc;
        match store.room(room.jid.as_str()).await {
            Ok(Some(stored)) => {
                room.stored = stored;
                room.exists = true;
            }
            Ok(None) => return room,
            Err(e) => {
                // Treated as absent for this visit: a join fails (creation would fail too).
                tracing::error!("room {}: {e}", room.jid);
                return room;
            }
        }
        match store.affiliations(room.jid.as_str()).await {
            Ok(rows) => {
                for (jid, a, reason) in rows {
                    if let Some(a) = Affiliation::parse(&a) {
                        room.affiliations.insert(jid, (a, reason));
                    }
                }
            }
            Err(e) => tracing::error!("affiliations of room {}: {e}", room.jid),
        }
        match store.nicks(room.jid.as_str()).await {
            Ok(rows) => room.registered.extend(rows),
            Err(e) => tracing::error!("registered nicknames of room {}: {e}", room.jid),
        }
        room
    }

    /// One stanza addressed to the room (bare) or to an occupant (full).
    async fn handle(&mut self, router: &Router, stanza: Element) {
        let Some(Ok(from)) = stanza.attr("from").map(Jid::new) else {
            return;
        };
        let Ok(from) = from.try_into_full() else {
            // Rooms talk to sessions: a bare `from` (a server, a service) is not an occupant.
            if stanza.attr("type") != Some("error") && stanza.name() != "presence" {
                router.bounce(&stanza, ErrorCondition::NotAcceptable);
            }
            return;
        };
        let nick = match stanza.attr("to").map(Jid::new) {
            Some(Ok(to)) => to.resource().map(|r| r.as_str().to_string()),
            _ => None,
        };
        if stanza.attr("type") == Some("error") {
            // An error from an occupant's session: it is gone (a ghost), it leaves (status 333).
            if stanza.name() != "iq" && self.by_jid.contains_key(&from) {
                self.leave(router, &from, None, &[333]).await;
            }
            return;
        }
        match (stanza.name(), nick) {
            ("presence", Some(nick)) => self.presence(router, from, nick, stanza).await,
            // Presence to the bare room JID is not a join (§7.2.1 needs a nickname).
            ("presence", None) => {
                if stanza.attr("type").is_none() {
                    router.bounce(&stanza, ErrorCondition::JidMalformed);
                } else if self.by_jid.contains_key(&from) {
                    self.leave(
                        router,
                        &from,
                        stanza
                            .get_child("status", crate::stream::NS_CLIENT)
                            .cloned(),
                        &[],
                    )
                    .await;
                }
            }
            ("message", None) => self.message(router, from, stanza).await,
            ("message", Some(nick)) => self.private_message(router, from, nick, stanza).await,
            ("iq", None) => self.iq(router, from, stanza).await,
            ("iq", Some(nick)) => self.iq_to_occupant(router, from, nick, stanza).await,
            _ => {}
        }
    }

    /// An iq to the room itself.
    async fn iq(&mut self, router: &Router, from: FullJid, iq: Element) {
        if !matches!(iq.attr("type"), Some("get" | "set")) {
            return;
        }
        if !self.exists || (self.locked && self.affiliation(&from.to_bare()) != Affiliation::Owner)
        {
            return router
                .route(iq_error(&iq, ErrorCondition::ItemNotFound, None))
                .await;
        }
        let Some(q) = iq.children().next() else {
            return router.bounce(&iq, ErrorCondition::BadRequest);
        };
        let reply = match (q.ns(), iq.attr("type")) {
            // §7.12: the nickname the asker registered.
            (super::NS_INFO, Some("get")) if q.attr("node") == Some(super::register::NODE) => {
                self.reserved_nick(&from, &iq)
            }
            (super::NS_INFO, Some("get")) => self.disco_info(&iq),
            (super::register::NS, Some("get")) => self.register_get(&from, &iq),
            (super::register::NS, Some("set")) => self.register_set(router, &from, &iq).await,
            (super::NS_ITEMS, Some("get")) => self.disco_items(&from, &iq),
            (NS_ADMIN, Some("get")) => self.admin_get(&from, &iq),
            (NS_ADMIN, Some("set")) => self.admin_set(router, &from, &iq).await,
            (NS_OWNER, Some("get")) => self.owner_get(&from, &iq),
            (NS_OWNER, Some("set")) => return self.owner_set(router, &from, &iq).await,
            // XEP-0410: a ping to the room says whether the pinger is joined.
            (crate::ext::ping::NS, Some("get")) if self.by_jid.contains_key(&from) => {
                iq_result(&iq)
            }
            (crate::ext::ping::NS, _) => iq_error(&iq, ErrorCondition::NotAcceptable, None),
            (crate::stanza::NS_MAM, _) => match self.archive_iq(&from, &iq) {
                Some(r) => r,
                None => return,
            },
            _ => iq_error(&iq, ErrorCondition::ServiceUnavailable, None),
        };
        router.route(reply).await;
    }

    /// An iq to an occupant (`room/nick`): XEP-0410 self-ping is answered by the room; other
    /// requests are passed to the occupant's current session with the id made the room's, and
    /// its answer comes back the same way (§7.6 vCards and the like).
    async fn iq_to_occupant(&mut self, router: &Router, from: FullJid, nick: String, iq: Element) {
        let sender = self.by_jid.get(&from).cloned();
        match iq.attr("type") {
            Some("get" | "set") => {}
            // An answer to an iq the room passed on: back to the session that asked.
            _ => return self.iq_answer(router, &from, &nick, iq).await,
        }
        let Some(sender) = sender else {
            return router
                .route(iq_error(&iq, ErrorCondition::NotAcceptable, None))
                .await;
        };
        let is_ping = iq.get_child("ping", crate::ext::ping::NS).is_some();
        if is_ping && sender == nick {
            return router.route(iq_result(&iq)).await;
        }
        let Some(target) = self.occupants.get(&nick).and_then(|o| o.current()) else {
            return router
                .route(iq_error(&iq, ErrorCondition::ItemNotFound, None))
                .await;
        };
        // The id the target sees is the room's: it must not tell who asked (semi-anonymous
        // rooms), so the room remembers it, for a while and for a bounded number of requests.
        let now = std::time::Instant::now();
        if self.passed.len() >= MAX_PASSED {
            self.passed
                .retain(|_, p| now.duration_since(p.2) < PASSED_FOR);
        }
        if self.passed.len() >= MAX_PASSED {
            let e = iq_error(&iq, ErrorCondition::ResourceConstraint, None);
            return router.route(e).await;
        }
        let id = crate::stream::random_id();
        let original = iq.attr("id").unwrap_or_default().to_string();
        self.passed
            .insert(id.clone(), (from.clone(), original, now));
        let mut fwd = iq.clone();
        fwd.set_attr("id", id);
        fwd.set_attr("from", format!("{}/{sender}", self.jid));
        fwd.set_attr("to", target.jid.to_string());
        router.route(fwd).await;
    }

    /// A result or error for an iq the room passed on (its id names the asker).
    async fn iq_answer(&mut self, router: &Router, from: &FullJid, nick: &str, iq: Element) {
        let Some(responder) = self.by_jid.get(from).cloned() else {
            return;
        };
        let Some((asker, id, _)) = iq.attr("id").and_then(|i| self.passed.remove(i)) else {
            return;
        };
        if self.by_jid.get(&asker).map(String::as_str) != Some(nick) {
            return;
        }
        let mut back = iq.clone();
        back.set_attr("id", id);
        back.set_attr("from", format!("{}/{responder}", self.jid));
        back.set_attr("to", asker.to_string());
        router.route(back).await;
    }

    /// The affiliation of an account.
    pub fn affiliation(&self, bare: &BareJid) -> Affiliation {
        self.affiliations
            .get(bare.as_str())
            .map(|a| a.0)
            .unwrap_or(Affiliation::None)
    }

    /// The occupant a session is, if it is one.
    pub fn occupant_of(&self, from: &FullJid) -> Option<&Occupant> {
        self.occupants.get(self.by_jid.get(from)?)
    }

    /// Whether `viewer` (a role) sees real JIDs in this room.
    pub fn sees_jids(&self, viewer: Role) -> bool {
        self.stored.config.whois == Whois::Anyone || viewer == Role::Moderator
    }

    /// Whether private messages from `role` are allowed.
    pub fn may_pm(&self, role: Role) -> bool {
        match self.stored.config.allow_pm {
            AllowPm::Anyone => true,
            AllowPm::Participants => role >= Role::Participant,
            AllowPm::Moderators => role == Role::Moderator,
            AllowPm::Nobody => false,
        }
    }

    /// Sends one stanza serialised once to every session of every occupant. A session that
    /// could not take it (its queue full: its driver ends it as a slow consumer; or gone)
    /// leaves the room at once with 333, so that a client resuming its stream learns it is
    /// out and rejoins (getting the history) instead of silently missing messages.
    pub async fn fan_out(&mut self, router: &Router, shared: &Arc<SharedStanza>) {
        let mut failed = Vec::new();
        for o in self.occupants.values() {
            for s in &o.sessions {
                if !deliver_shared(router, shared, &s.jid) {
                    failed.push(s.jid.clone());
                }
            }
        }
        for jid in failed {
            self.leave(router, &jid, None, &[333]).await;
        }
    }

    /// Saves the room's row.
    pub async fn save(&self) -> bool {
        match self
            .shared
            .storage
            .muc
            .save_room(self.jid.as_str(), &self.stored)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("saving room {}: {e}", self.jid);
                false
            }
        }
    }

    /// The room is gone (destroyed, or temporary and empty): out of storage and of memory.
    pub async fn destroyed(&mut self) {
        if let Err(e) = self.shared.storage.muc.delete_room(self.jid.as_str()).await {
            tracing::error!("deleting room {}: {e}", self.jid);
        }
        self.exists = false;
        self.locked = false;
        self.affiliations.clear();
        self.registered.clear();
        self.stored = default_room(&self.shared);
    }

    /// Replies to `stanza` with an error, as the room.
    pub async fn refuse(&self, router: &Router, stanza: &Element, c: ErrorCondition) {
        if let Some(r) = error_reply(stanza, c, None) {
            router.route(r).await;
        }
    }
}

/// Hands a shared stanza to one session, or to the server of a remote occupant (federation;
/// what happens there is that server's to say); false if a local session could not take it.
pub fn deliver_shared(router: &Router, shared: &Arc<SharedStanza>, to: &FullJid) -> bool {
    if !router.is_local(to.domain().as_str()) {
        let a = Addressed {
            shared: shared.clone(),
            to: to.to_string(),
        };
        router.to_remote(a.element());
        return true;
    }
    let Some(h) = router.registry.get(to) else {
        return false;
    };
    let a = Addressed {
        shared: shared.clone(),
        to: to.to_string(),
    };
    // Full: the session's driver ends it as a slow consumer. Closed: the session is going.
    // Either way the stanza stays where it came from (the room's archive, the room's state).
    h.try_send(SessionMsg::Shared(Box::new(a))).is_ok()
}

/// A new room's configuration, from `[muc]`.
fn default_room(shared: &Shared) -> StoredRoom {
    let c = &shared.config.muc;
    StoredRoom {
        config: RoomConfig {
            title: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: String::new(),
            max_users: u32::try_from(c.default_max_users).unwrap_or(u32::MAX),
            whois: Whois::Moderators,
            history_length: u32::try_from(c.default_history).unwrap_or(u32::MAX),
            allow_pm: AllowPm::Anyone,
            allow_invites: false,
            change_subject: false,
            presence_broadcast: 7,
        },
        subject: String::new(),
        subject_nick: String::new(),
        created_ms: crate::storage::now_ms(),
    }
}
