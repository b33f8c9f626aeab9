//! The inbox (XEP-0430): per account, per conversation (a contact or a room), the newest
//! message and how many are unread. The archive's store keeps it ([`super::ArchiveStore`]'s
//! `inbox_*` methods, table `inbox`):
//!
//! - **A contact:** updated in the archive writer's commit, one upsert per conversation per
//!   commit (never a scan per message): a received instant message adds one unread, a sent one
//!   reads the conversation (the account answered, so it saw what came before). A chat marker
//!   (XEP-0333 `displayed` or `acknowledged`) from any of the account's devices reads the
//!   marked message and those before it: the unread count becomes the number of messages
//!   received after it, found among the newest unread ones (at most `archive.inbox_scan`).
//! - **A room** (read diffusion): nothing is written per member when someone speaks. The row
//!   holds the room message the account has read through (it joined, spoke, or marked one);
//!   the newest message and the unread count (messages from others after it, counted up to
//!   `archive.inbox_count_cap`) are read from the room's archive when the inbox is asked for.

/// A conversation of an account's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The contact's bare JID, or the room's.
    pub jid: String,
    /// A room.
    pub room: bool,
    /// Messages unread.
    pub unread: u64,
    /// The newest message's id in its archive (the account's, in decimal; the room's stanza
    /// id), if any.
    pub last: Option<String>,
    /// When the newest message was archived, on the scale of an account's archive ids
    /// (milliseconds << [`super::archive::ID_SHIFT`]; 0: none): the inbox's order.
    pub active: i64,
}

/// What an account did in a room, for its inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMark {
    /// It joined: the room enters its inbox read through the newest message, unless it was
    /// there already (what it had read stays).
    Joined,
    /// It spoke, or reset the conversation: read through the newest message.
    ReadAll,
    /// It marked this message (by the room's stanza id) displayed: read through it (never
    /// backwards).
    ReadThrough(String),
}

/// A message received in a conversation, newest first, for matching a chat marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its id in the account's archive.
    pub id: i64,
    /// The message.
    pub xml: String,
}
