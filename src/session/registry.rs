//! The in-memory session registry: which full JIDs are bound, with a bounded channel to each
//! session's task, and each session's availability and priority (RFC 6121 §4.7.2.3, §8.5).
//!
//! The lock is a plain `RwLock` held only for map operations, never across `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jid::{BareJid, FullJid};
use tokio::sync::Notify;

use crate::config::ResourceConflict;
use crate::stream::random_id;
use crate::xml::Element;

/// What a session task receives from the rest of the server.
#[derive(Debug)]
pub enum SessionMsg {
    /// A stanza to write to the client. Every variant is one pointer, so a slot is 16 bytes
    /// and the first block of an idle session's queue (32 slots) about half a KiB.
    Stanza(Box<Element>),
    /// Stanzas to write in order, taking one slot of the queue (offline messages at login).
    Batch(Box<Batch>),
    /// A stanza serialised once for many recipients (presence fan-out), with this one's `to`.
    Shared(Box<crate::stanza::shared::Addressed>),
    /// Close the stream with this error, after what was queued before it.
    Close(Box<crate::stream::StreamError>),
}

impl SessionMsg {
    /// The stanzas in this message, as elements (none for `Close`).
    pub fn into_stanzas(self) -> Vec<Element> {
        match self {
            SessionMsg::Stanza(el) => vec![*el],
            SessionMsg::Batch(b) => b.stanzas,
            SessionMsg::Shared(a) => vec![a.element()],
            SessionMsg::Close(_) => Vec::new(),
        }
    }
}

/// Offline messages handed to a session at once.
#[derive(Debug, Default)]
pub struct Batch {
    /// The stanzas, oldest first.
    pub stanzas: Vec<Element>,
    /// Their ids in offline storage, one per stanza, when they were claimed rather than
    /// taken (a session with stream management deletes them once the client acknowledged
    /// them, and gives them back if it ends first); empty when they were taken.
    pub claimed: Vec<i64>,
}

/// Why a stanza could not be handed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The session's queue is full (a slow reader).
    Full,
    /// The session is gone.
    Closed,
}

/// The handle the router uses to reach one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Unique per session for this server's life (tells a resumed or replaced session apart).
    pub id: u64,
    /// The bound full JID.
    pub jid: FullJid,
    tx: super::queue::Outbox,
    /// Signalled when a newer session took this resource (works even when the queue is full).
    kicked: Arc<Notify>,
    /// Signalled when a stanza found the queue full: if the session is stuck writing to a
    /// client that does not read, it gives up on that client.
    full: Arc<Notify>,
}

impl SessionHandle {
    /// Queues a message without waiting; on failure the message comes back with the reason.
    pub fn try_send(&self, msg: SessionMsg) -> Result<(), (DeliveryError, SessionMsg)> {
        use super::queue::Refused;
        self.tx.try_send(msg).map_err(|e| match e {
            Refused::Full(m) => {
                self.full.notify_one();
                (DeliveryError::Full, m)
            }
            Refused::Closed(m) => (DeliveryError::Closed, m),
        })
    }

    /// Tells the session to close with `<conflict/>` (RFC 6120 §4.9.3.3).
    pub fn kick(&self) {
        self.kicked.notify_one();
    }

    /// What the session waits on to learn it was replaced.
    pub fn kicked(&self) -> Arc<Notify> {
        self.kicked.clone()
    }

    /// What the session waits on, while writing, to learn its queue is full.
    pub fn full(&self) -> Arc<Notify> {
        self.full.clone()
    }
}

#[derive(Debug)]
struct Entry {
    handle: SessionHandle,
    /// The last available broadcast presence (RFC 6121 §4.2); `None` while unavailable.
    presence: Option<Arc<Element>>,
    priority: i8,
    /// The flags modules set on it ([`Flag`]).
    flags: u32,
    /// Full or bare JIDs this session sent directed presence to (RFC 6121 §4.6), at most
    /// `im.max_directed_presences`; shared with snapshots, copied only when it changes.
    directed: Arc<HashSet<String>>,
}

/// A snapshot of one session's state, for routing and fan-out.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The handle.
    pub handle: SessionHandle,
    /// The last available presence, if available.
    pub presence: Option<Arc<Element>>,
    /// Its priority.
    pub priority: i8,
    /// The flags modules set on it.
    pub flags: u32,
    /// Where it sent directed presence.
    pub directed: Arc<HashSet<String>>,
}

impl SessionInfo {
    /// Whether `flag` is set.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags & flag.0 != 0
    }
}

impl Entry {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            handle: self.handle.clone(),
            presence: self.presence.clone(),
            priority: self.priority,
            flags: self.flags,
            directed: self.directed.clone(),
        }
    }
}

/// A per-session mark that a module owns (roster pushes wanted, carbons on, …): modules name
/// their flags ([`Flag::named`], once), the registry keeps them as bits of one word, so a new
/// module adds no field here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(u32);

impl Flag {
    /// Stream management enabled (XEP-0198): the session acknowledges what it receives.
    pub const ACKS: Flag = Flag(1);

    /// The flag called `name` (the same for every call with that name); at most 31 names
    /// (a 32nd and later share the last bit, which only costs precision).
    pub fn named(name: &'static str) -> Flag {
        static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
        let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
        let i = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                names.len() - 1
            }
        };
        Flag(1 << (i + 1).min(31))
    }
}

/// Result of binding a resource.
#[derive(Debug)]
pub enum BindOutcome {
    /// Bound; `replaced` is the older session that held the resource and must be closed.
    Bound {
        /// Our handle.
        handle: SessionHandle,
        /// The session that lost the resource (policy `kick_old`).
        replaced: Option<SessionHandle>,
    },
    /// The resource is taken (policy `refuse`).
    Conflict,
}

/// The bare part of a JID, without building a `BareJid` (which validates the parts again).
pub fn bare_str(jid: &jid::Jid) -> &str {
    let s = jid.as_str();
    s.split_once('/').map_or(s, |(bare, _)| bare)
}

/// All bound sessions of this node.
#[derive(Debug, Default)]
pub struct Registry {
    /// Keyed by the normalised bare JID as a string, so that a roster item's stored contact
    /// (normalised when it was stored) finds its sessions without being parsed again.
    sessions: RwLock<HashMap<String, Vec<Entry>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `jid` to a new session whose inbox is `tx`, applying the conflict policy.
    pub fn bind(
        &self,
        jid: FullJid,
        tx: super::queue::Outbox,
        policy: ResourceConflict,
    ) -> BindOutcome {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let bare = jid.to_bare();
        let mut map = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let entries = map.entry(bare.to_string()).or_default();
        let mut jid = jid;
        let mut replaced = None;
        if let Some(pos) = entries.iter().position(|e| e.handle.jid == jid) {
            match policy {
                ResourceConflict::Refuse => return BindOutcome::Conflict,
                ResourceConflict::KickOld => replaced = Some(entries.remove(pos).handle),
                ResourceConflict::Random => loop {
                    let Ok(j) =
                        bare.with_resource_str(&format!("{}-{}", jid.resource(), random_id()))
                    else {
                        return BindOutcome::Conflict;
                    };
                    if !entries.iter().any(|e| e.handle.jid == j) {
                        jid = j;
                        break;
                    }
                },
            }
        }
        let handle = SessionHandle {
            id,
            jid,
            tx,
            kicked: Arc::new(Notify::new()),
            full: Arc::new(Notify::new()),
        };
        entries.push(Entry {
            handle: handle.clone(),
            presence: None,
            priority: 0,
            flags: 0,
            directed: Arc::default(),
        });
        BindOutcome::Bound { handle, replaced }
    }

    /// Removes session `id` (if it still holds `jid`); returns its last state.
    pub fn unbind(&self, jid: &FullJid, id: u64) -> Option<SessionInfo> {
        let bare = bare_str(jid);
        let mut map = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let entries = map.get_mut(bare)?;
        let pos = entries.iter().position(|e| e.handle.id == id)?;
        let gone = entries.remove(pos).info();
        if entries.is_empty() {
            map.remove(bare);
        }
        Some(gone)
    }

    fn with_entry<T>(&self, jid: &FullJid, id: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut map = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        map.get_mut(bare_str(jid))
            .and_then(|v| v.iter_mut().find(|e| e.handle.id == id))
            .map(f)
    }

    /// Records the session's broadcast presence (RFC 6121 §4.2, §4.5): `Some` available
    /// presence with its priority, or `None` for unavailable. Returns the priority it had if
    /// it was available before, `None` if not (so the caller can tell initial presence from an
    /// update, and a resource that just became reachable for bare-JID messages).
    pub fn set_presence(
        &self,
        jid: &FullJid,
        id: u64,
        presence: Option<Element>,
        priority: i8,
    ) -> Option<i8> {
        self.with_entry(jid, id, |e| {
            let was = e.presence.is_some().then_some(e.priority);
            e.presence = presence.map(Arc::new);
            e.priority = priority;
            if e.presence.is_none() {
                e.directed = Arc::default();
            }
            was
        })
        .flatten()
    }

    /// Sets a per-session flag.
    pub fn set_flag(&self, jid: &FullJid, id: u64, flag: Flag, on: bool) {
        self.with_entry(jid, id, |e| match on {
            true => e.flags |= flag.0,
            false => e.flags &= !flag.0,
        });
    }

    /// Remembers (`true`) or forgets a directed-presence recipient of the session. Returns
    /// `false` when `to` is new and the session already has `max` recipients.
    pub fn set_directed(&self, jid: &FullJid, id: u64, to: &str, on: bool, max: usize) -> bool {
        self.with_entry(jid, id, |e| {
            if on == e.directed.contains(to) {
                return true;
            }
            if on && e.directed.len() >= max {
                return false;
            }
            let set = Arc::make_mut(&mut e.directed);
            if on {
                set.insert(to.to_string());
            } else {
                set.remove(to);
            }
            true
        })
        .unwrap_or(true)
    }

    /// Every bound session of `bare`, available or not.
    pub fn sessions(&self, bare: &BareJid) -> Vec<SessionInfo> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare.as_str())
            .map(|v| v.iter().map(Entry::info).collect())
            .unwrap_or_default()
    }

    /// One session's state.
    pub fn info(&self, jid: &FullJid) -> Option<SessionInfo> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare_str(jid))?
            .iter()
            .find(|e| &e.handle.jid == jid)
            .map(Entry::info)
    }

    /// The session bound to exactly `jid`.
    pub fn get(&self, jid: &FullJid) -> Option<SessionHandle> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare_str(jid))?
            .iter()
            .find(|e| &e.handle.jid == jid)
            .map(|e| e.handle.clone())
    }

    /// Available sessions of `bare` with non-negative priority, as (handle, priority).
    pub fn available(&self, bare: &BareJid) -> Vec<(SessionHandle, i8)> {
        self.available_str(bare.as_str())
    }

    /// [`Registry::available`] for a normalised bare JID given as a string.
    pub fn available_str(&self, bare: &str) -> Vec<(SessionHandle, i8)> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare)
            .map(|v| {
                v.iter()
                    .filter(|e| e.presence.is_some() && e.priority >= 0)
                    .map(|e| (e.handle.clone(), e.priority))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last available presence of each available session of `bare` (a normalised bare
    /// JID), for answering probes without a snapshot of every session.
    pub fn presences(&self, bare: &str) -> Vec<Arc<Element>> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare)
            .map(|v| v.iter().filter_map(|e| e.presence.clone()).collect())
            .unwrap_or_default()
    }

    /// Sessions of `bare` (a normalised bare JID) with `flag` set (message carbons on,
    /// XEP-0280), other than the ones numbered in `except`: carbons look at every message, so
    /// this copies no more than the handles.
    pub fn flagged(&self, bare: &str, flag: Flag, except: &[u64]) -> Vec<SessionHandle> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.get(bare)
            .map(|v| {
                v.iter()
                    .filter(|e| e.flags & flag.0 != 0 && !except.contains(&e.handle.id))
                    .map(|e| e.handle.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes queued for all sessions now (their inboxes).
    pub fn queued_bytes(&self) -> usize {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .flatten()
            .map(|e| e.handle.tx.queued_bytes())
            .sum()
    }

    /// Bound sessions.
    pub fn len(&self) -> usize {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }

    /// Whether no session is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
