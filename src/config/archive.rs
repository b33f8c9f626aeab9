//! `[archive]`: the message archive (XEP-0313) of accounts and rooms.

use serde::{Deserialize, Serialize};

/// `[archive]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Archive accounts' messages and answer archive queries (rooms' messages are stored for
    /// their history anyway, and are queried while this is on).
    pub enabled: bool,
    /// What is archived for an account that set no preferences: `always`, `roster` (messages
    /// with roster contacts) or `never`.
    pub default_mode: String,
    /// Messages one query answers at most (a client's `max` is capped to it).
    pub max_page: usize,
    /// Bytes of archived messages one answer holds at most (the page ends early, incomplete,
    /// when the next message would pass it; the client asks for the next page).
    pub max_page_bytes: usize,
    /// JIDs in an account's `always` and `never` lists together, at most.
    pub max_prefs_jids: usize,
    /// Messages are removed once older than this many days; 0: kept however old.
    pub max_age_days: u64,
    /// Messages one archive (an account's, a room's) keeps at most, the oldest going first;
    /// 0: no count limit.
    pub max_messages: u64,
    /// Seconds between two retention purges (in the background, off the routing path).
    pub purge_interval_secs: u64,
    /// Messages waiting for the archive writer, at most; a sender beyond it waits for room.
    pub write_queue: usize,
    /// Messages the writer commits in one transaction, at most (group commit).
    pub write_batch: usize,
    /// Room-archive queries one group-chat service answers at once; beyond it the asker gets
    /// `resource-constraint` (an account's queries are answered one at a time per session).
    pub room_queries: usize,
    /// Keep each account's inbox (XEP-0430): per conversation, the newest message and how many
    /// are unread, updated in the archive's commits.
    pub inbox: bool,
    /// Conversations one inbox answer lists at most (a client's RSM `max` is capped to it).
    pub inbox_page: usize,
    /// Conversations an inbox lists at most, the most recently active first.
    pub inbox_conversations: usize,
    /// A chat marker is matched among this many newest unread messages of its conversation at
    /// most (older: already read), and a room's unread messages are counted up to it.
    pub inbox_scan: usize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            default_mode: "always".into(),
            max_page: 100,
            max_page_bytes: 1024 * 1024,
            max_prefs_jids: 1000,
            max_age_days: 365,
            max_messages: 100_000,
            purge_interval_secs: 3600,
            write_queue: 4096,
            write_batch: 256,
            room_queries: 64,
            inbox: true,
            inbox_page: 100,
            inbox_conversations: 1000,
            inbox_scan: 1000,
        }
    }
}
