//! `[pep]`: personal eventing (XEP-0163): avatars, nicknames, bookmarks, OMEMO keys and the
//! other data clients publish on their account.

use serde::{Deserialize, Serialize};

/// `[pep]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PepConfig {
    /// PEP on every account.
    pub enabled: bool,
    /// Nodes one account may have.
    pub max_nodes: usize,
    /// The largest `pubsub#max_items` a node may be given.
    pub max_items: u32,
    /// Bytes of one item's payload, at most.
    pub max_item_size: usize,
    /// Bytes of items one account may keep in all.
    pub quota_bytes: u64,
    /// Entity-capabilities hashes (XEP-0115) remembered with the features they stand for.
    pub caps_cache: usize,
    /// Seconds a client has to answer the server's disco#info about its capabilities.
    pub caps_timeout_secs: u64,
    /// Explicit subscriptions (XEP-0060 §6.1) one node takes at most; past it a subscriber
    /// gets `<policy-violation/>` with `<too-many-subscriptions/>`.
    pub max_subscribers: usize,
    /// Bytes of memory, at most, for the resources of contacts on other servers that want
    /// notifications (their JIDs and what their capabilities ask for); 0: none are sent.
    pub remote_resources_bytes: usize,
    /// Resources of one remote contact remembered per account, at most.
    pub remote_resources_per_contact: usize,
}

impl Default for PepConfig {
    fn default() -> Self {
        PepConfig {
            enabled: true,
            max_nodes: 100,
            max_items: 256,
            max_item_size: 128 * 1024,
            quota_bytes: 4 * 1024 * 1024,
            caps_cache: 10_000,
            caps_timeout_secs: 10,
            max_subscribers: 1000,
            remote_resources_bytes: 8 * 1024 * 1024,
            remote_resources_per_contact: 16,
        }
    }
}
