//! The roster store (RFC 6121 §2): items with subscription state, groups, a version per roster
//! (RFC 6121 §2.6, XEP-0237: a counter bumped on every change), and pending inbound
//! subscription requests (§3.1.3), kept until answered.

use super::StoreFuture;

/// The subscription state of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Neither side sees the other's presence.
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    /// Both.
    Both,
}

impl Subscription {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => return None,
        })
    }

    /// The contact receives the user's presence.
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    /// The user receives the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Builds a state from its two halves.
    pub fn from_parts(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

/// One roster item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID.
    pub contact: String,
    /// The user's name for the contact.
    pub name: Option<String>,
    /// Subscription state.
    pub subscription: Subscription,
    /// An outbound subscription request is pending (`ask='subscribe'`).
    pub ask: bool,
    /// The user pre-approved the contact's subscription (RFC 6121 §3.4).
    pub approved: bool,
    /// Groups, sorted.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// A new item with no subscription.
    pub fn new(contact: impl Into<String>) -> Self {
        RosterItem {
            contact: contact.into(),
            name: None,
            subscription: Subscription::None,
            ask: false,
            approved: false,
            groups: Vec::new(),
        }
    }
}

/// Rosters, implemented once in `storage/sql/roster.rs` for both databases.
pub trait RosterStore: Send + Sync {
    /// The roster version and every item.
    fn items<'a>(&'a self, host: &'a str, user: &'a str)
    -> StoreFuture<'a, (i64, Vec<RosterItem>)>;
    /// The same, shared: what presence fan-out reads. A cache in front of the store
    /// ([`super::roster_cache`]) answers it from memory.
    fn items_shared<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, super::roster_cache::Roster> {
        Box::pin(async move { Ok(std::sync::Arc::new(self.items(host, user).await?)) })
    }
    /// The account's last session ended: a cache may drop what it keeps of its roster.
    fn forget(&self, host: &str, user: &str) {
        let _ = (host, user);
    }
    /// One item.
    fn item<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<RosterItem>>;
    /// Creates or replaces an item (with its groups); returns the new roster version.
    fn put<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        item: &'a RosterItem,
    ) -> StoreFuture<'a, i64>;
    /// Creates an item or updates its subscription state (`subscription`, `ask`, `approved`),
    /// leaving a stored item's name and groups as they are; returns the new roster version.
    /// The subscription state machine's write: one statement and the version bump.
    fn put_state<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        item: &'a RosterItem,
    ) -> StoreFuture<'a, i64>;
    /// Removes an item; returns the new version, or `None` if there was no such item.
    fn remove<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<i64>>;
    /// Number of items.
    fn count<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, usize>;
    /// Pending inbound subscription requests: (contact, the stored presence stanza).
    fn pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, Vec<(String, String)>>;
    /// Stores (or replaces) a pending inbound request.
    fn add_pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
        stanza: &'a str,
    ) -> StoreFuture<'a, ()>;
    /// Drops a pending request; whether there was one.
    fn remove_pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, bool>;
}
