//! Multi-User Chat (XEP-0045): the group-chat service at `conference.<host>`, a route of the
//! router's table ([`crate::router::Service`]).
//!
//! Each room is an actor: a task with a bounded inbox (in stanzas and in bytes), started when
//! a stanza for the room arrives and ended when the room is empty and its inbox drained (a
//! persistent room is read back from storage the next time). One task per room orders
//! everything that happens in it without a lock. What a room sends goes out through the
//! router like any stanza; a room message is serialised once and each occupant's session
//! splices its own `to` in ([`crate::stanza::shared`]), and it is stored once, in the room's
//! archive (read diffusion), before it is sent.
//!
//! Presence is pulled for large groups: above `muc.large_room_threshold` occupants, the
//! joins, leaves and status changes of participants and visitors are no longer pushed to every
//! occupant (moderators' still are); a client asks the room's disco#items for the list.
//!
//! Files: `room.rs` (state, loading, the actor loop, dispatch), `occupants.rs` (join, leave,
//! nick change, presence broadcast), `chat.rs` (groupchat and private messages, subject,
//! invitations, history), `admin.rs` (roles and affiliations, §8–§10), `owner.rs` (room
//! configuration, destruction, the room's disco), `voice.rs` (voice requests), `types.rs`
//! (roles, affiliations, occupants).
//! Storage: `storage/muc.rs`, `storage/sql/muc.rs`, migration `0006_muc`.

mod admin;
mod archive;
mod chat;
mod lists;
mod occupants;
mod owner;
mod register;
mod room;
mod types;
mod voice;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use jid::Jid;
use tokio::sync::mpsc;

pub use types::{Affiliation, Role};

use crate::config::Config;
use crate::router::{HookFuture, Router, Service};
use crate::stanza::{ErrorCondition, iq_error, iq_result, rsm};
use crate::storage::Storage;
use crate::xml::Element;

/// `http://jabber.org/protocol/muc`
pub const NS: &str = "http://jabber.org/protocol/muc";
/// `http://jabber.org/protocol/muc#user`
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
/// `http://jabber.org/protocol/muc#admin`
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// `http://jabber.org/protocol/muc#owner`
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// `urn:xmpp:sid:0` (XEP-0359 unique and stable stanza ids)
pub use crate::stanza::NS_SID;
const NS_INFO: &str = crate::ext::disco::NS_INFO;
const NS_ITEMS: &str = crate::ext::disco::NS_ITEMS;
/// Rooms listed per disco#items page at most.
const MAX_PAGE: usize = 100;

/// What the service and its rooms share.
pub(crate) struct Shared {
    pub storage: Storage,
    pub config: Arc<Config>,
    /// The service's domain.
    pub domain: String,
    /// The router (weak: the router's table holds the service).
    pub router: Weak<Router>,
    /// Live rooms by name (the node of their JID).
    rooms: Mutex<HashMap<String, Inbox>>,
    /// Archive queries answered at once (`archive.room_queries`).
    pub archive_queries: Arc<tokio::sync::Semaphore>,
}

/// The sending side of a room's inbox, bounded in stanzas and bytes.
#[derive(Clone)]
struct Inbox {
    tx: mpsc::Sender<Element>,
    bytes: Arc<AtomicUsize>,
}

/// The group-chat service of one host.
pub struct MucService {
    shared: Arc<Shared>,
}

impl MucService {
    /// The service at `domain`; temporary rooms left by a previous run are removed.
    pub async fn start(
        storage: Storage,
        config: Arc<Config>,
        domain: &str,
        router: &Arc<Router>,
    ) -> MucService {
        match storage.muc.delete_temporary(domain).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(%domain, "removed {n} temporary rooms of the previous run"),
            Err(e) => tracing::error!(%domain, "temporary rooms of the previous run: {e}"),
        }
        let room_queries = config.archive.room_queries;
        MucService {
            shared: Arc::new(Shared {
                storage,
                config,
                domain: domain.to_string(),
                router: Arc::downgrade(router),
                rooms: Mutex::new(HashMap::new()),
                archive_queries: Arc::new(tokio::sync::Semaphore::new(room_queries)),
            }),
        }
    }

    /// Rooms alive in memory now.
    pub fn live_rooms(&self) -> usize {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl Service for MucService {
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> HookFuture<'a> {
        Box::pin(async move {
            let room = match stanza.attr("to").map(Jid::new) {
                Some(Ok(j)) => j.node().map(|n| n.as_str().to_string()),
                _ => return router.bounce(&stanza, ErrorCondition::JidMalformed),
            };
            match room {
                None => self.to_service(router, stanza).await,
                Some(name) => self.shared.to_room(name, stanza, router),
            }
        })
    }

    fn name(&self) -> &str {
        "Chatrooms"
    }
}

impl MucService {
    /// A stanza to the service itself: disco and ping; anything else is not served.
    async fn to_service(&self, router: &Router, iq: Element) {
        if iq.name() != "iq" {
            if iq.name() == "message" {
                router.bounce(&iq, ErrorCondition::ServiceUnavailable);
            }
            return;
        }
        if !matches!(iq.attr("type"), Some("get" | "set")) {
            return;
        }
        let q = iq.children().next();
        let reply = match q.map(|q| (q.name(), q.ns(), iq.attr("type"))) {
            Some(("query", NS_INFO, Some("get"))) if q.and_then(|q| q.attr("node")).is_none() => {
                let mut query = Element::new("query", NS_INFO).with_child(
                    Element::new("identity", NS_INFO)
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", "Chatrooms"),
                );
                for f in [NS_INFO, NS_ITEMS, NS, crate::ext::ping::NS, rsm::NS] {
                    query.append_child(Element::new("feature", NS_INFO).with_attr("var", f));
                }
                iq_result(&iq).with_child(query)
            }
            Some(("query", NS_ITEMS, Some("get"))) => self.public_rooms(&iq).await,
            Some(("ping", crate::ext::ping::NS, Some("get"))) => iq_result(&iq),
            _ => iq_error(&iq, ErrorCondition::ServiceUnavailable, None),
        };
        router.route(reply).await;
    }

    /// disco#items on the service: the public rooms, paged (XEP-0045 §6.3, XEP-0059).
    async fn public_rooms(&self, iq: &Element) -> Element {
        let q = iq.children().next();
        let req = match q.map(rsm::request) {
            Some(Err(c)) => return iq_error(iq, c, None),
            Some(Ok(r)) => r.unwrap_or_default(),
            None => rsm::Request::default(),
        };
        let max = req.max.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        let s = &self.shared;
        let (rooms, count) = match s
            .storage
            .muc
            .public_rooms(&s.domain, req.after.as_deref(), max)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("public rooms of {}: {e}", s.domain);
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            }
        };
        let mut query = Element::new("query", NS_ITEMS);
        for (jid, title) in &rooms {
            let mut item = Element::new("item", NS_ITEMS).with_attr("jid", jid.clone());
            if !title.is_empty() {
                item.set_attr("name", title.clone());
            }
            query.append_child(item);
        }
        if q.and_then(|q| q.get_child("set", rsm::NS)).is_some() {
            let fl = rooms
                .first()
                .zip(rooms.last())
                .map(|(f, l)| (f.0.as_str(), l.0.as_str()));
            query.append_child(rsm::answer(fl, None, Some(count)));
        }
        iq_result(iq).with_child(query)
    }
}

impl Shared {
    /// Hands a stanza to room `name`'s actor, starting it if it is not running. A full inbox
    /// answers the sender with `resource-constraint`; nothing is dropped silently.
    fn to_room(self: &Arc<Self>, name: String, stanza: Element, router: &Router) {
        let cost = stanza.deep_cost();
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let inbox = rooms.entry(name.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.config.muc.room_queue);
            let bytes = Arc::new(AtomicUsize::new(0));
            let inbox = Inbox {
                tx,
                bytes: bytes.clone(),
            };
            tokio::spawn(room::run(self.clone(), name, rx, bytes));
            inbox
        });
        let before = inbox.bytes.fetch_add(cost, Ordering::AcqRel);
        let sent = if before > 0 && before + cost > self.config.muc.room_queue_bytes {
            Err(stanza)
        } else {
            inbox.tx.try_send(stanza).map_err(|e| e.into_inner())
        };
        if let Err(stanza) = sent {
            inbox.bytes.fetch_sub(cost, Ordering::AcqRel);
            drop(rooms);
            router.bounce(&stanza, ErrorCondition::ResourceConstraint);
        }
    }

    /// Called by a room's task that has nothing left to do: it may end if nothing is waiting
    /// in its inbox (checked under the lock senders take, so no stanza is left behind).
    fn may_end(&self, name: &str, rx: &mpsc::Receiver<Element>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(name);
        true
    }
}
