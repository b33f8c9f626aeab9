//! Personal eventing (XEP-0163): each account's nodes (their XEP-0060 configuration) and the
//! items published to them, newest last.

use super::StoreFuture;

/// Who may see a node's items and get its notifications (XEP-0060 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Contacts subscribed to the owner's presence (`from` or `both`), and the owner.
    Presence,
    /// Anyone.
    Open,
    /// The owner alone (private data: bookmarks, XEP-0223 storage).
    Whitelist,
}

impl Access {
    /// Its `pubsub#access_model` value, also stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Presence => "presence",
            Access::Open => "open",
            Access::Whitelist => "whitelist",
        }
    }

    /// The model named `s`.
    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "presence" => Some(Access::Presence),
            "open" => Some(Access::Open),
            "whitelist" => Some(Access::Whitelist),
            _ => None,
        }
    }
}

/// A node's configuration (the `pubsub#node_config` fields PEP clients set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    /// `pubsub#access_model`
    pub access: Access,
    /// `pubsub#persist_items`: false keeps the last item only (to send to newcomers).
    pub persist_items: bool,
    /// `pubsub#max_items`: items kept, the oldest going first.
    pub max_items: u32,
    /// `pubsub#notify_retract`: a retraction is notified.
    pub notify_retract: bool,
}

/// An item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PepItem {
    /// Its id within the node.
    pub id: String,
    /// Who published it (a full JID).
    pub publisher: String,
    /// When.
    pub ts_ms: i64,
    /// The payload.
    pub xml: String,
}

/// The PEP nodes, implemented once in `storage/sql/pep.rs`.
pub trait PepStore: Send + Sync {
    /// A node's configuration, if the node exists.
    fn node<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
    ) -> StoreFuture<'a, Option<NodeConfig>>;
    /// An account's nodes, by name.
    fn nodes<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, Vec<String>>;
    /// Creates a node or changes its configuration (keeping at most `max_items` items).
    fn save_node<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        config: &'a NodeConfig,
    ) -> StoreFuture<'a, ()>;
    /// Deletes a node with its items; whether it existed.
    fn delete_node<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
    ) -> StoreFuture<'a, bool>;
    /// Publishes `item` to an existing node (replacing an item of the same id, which becomes
    /// the newest), then keeps the newest `keep` items.
    fn publish<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        item: &'a PepItem,
        keep: u32,
    ) -> StoreFuture<'a, ()>;
    /// Removes an item; whether it existed.
    fn retract<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, bool>;
    /// The newest `max` items (oldest first), or those of `ids` when given.
    fn items<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        max: usize,
        ids: &'a [String],
    ) -> StoreFuture<'a, Vec<PepItem>>;
    /// Removes every item of a node; how many.
    fn purge<'a>(&'a self, host: &'a str, user: &'a str, node: &'a str) -> StoreFuture<'a, u64>;
    /// The newest item of each node of an account, with the node's name and configuration.
    fn last_items<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, Vec<(String, NodeConfig, PepItem)>>;
    /// The bytes of items an account holds.
    fn bytes<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, u64>;
    /// Subscribes `jid` to an existing node, unless it has `max` subscribers already (then
    /// false; subscribing again is no new subscriber).
    fn subscribe<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        jid: &'a str,
        max: usize,
    ) -> StoreFuture<'a, bool>;
    /// Ends `jid`'s subscription; whether it had one.
    fn unsubscribe<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
        jid: &'a str,
    ) -> StoreFuture<'a, bool>;
    /// The JIDs subscribed to a node.
    fn subscribers<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        node: &'a str,
    ) -> StoreFuture<'a, Vec<String>>;
    /// The subscriptions of `bare` (and its resources) to an account's nodes: (node, JID).
    fn subscriptions<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        bare: &'a str,
    ) -> StoreFuture<'a, Vec<(String, String)>>;
}
