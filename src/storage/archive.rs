//! Message archives (XEP-0313): an account's archive (`mam_messages`, one row per message and
//! account involved) and a room's (`muc_messages`, the group-chat store's table: one row per
//! room message, read diffusion), queried the same way; and each account's archiving
//! preferences. Rows are ordered by their id. An account's archive gives its ids itself, at
//! commit ([`next_id`]: from the time, increasing); clients name a message by its id in
//! decimal. A room's messages carry a random stanza id given before they are broadcast.

use super::StoreFuture;
use super::inbox::{Conversation, Received, RoomMark};

/// Whose archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// An account: (host, user).
    Account(&'a str, &'a str),
    /// A room, by its bare JID.
    Room(&'a str),
}

/// A message to archive for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Its id in the archive, given by `append` (its XEP-0359 `<stanza-id/>` in decimal).
    pub id: i64,
    /// The account's host.
    pub host: String,
    /// The account's user.
    pub user: String,
    /// The other party's bare JID.
    pub with: String,
    /// When it was archived.
    pub ts_ms: i64,
    /// Sent by the account (else received).
    pub outgoing: bool,
    /// The message as routed.
    pub xml: String,
    /// An instant message for the account's inbox: a received one adds one unread, a sent one
    /// reads the conversation ([`super::inbox`]).
    pub inbox: bool,
}

/// Which page of the matching messages (XEP-0059 as XEP-0313 §4.1.2 uses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The oldest ones, after this stanza id if given.
    After(Option<String>),
    /// The newest ones, before this stanza id if given (`<before/>`: the last page).
    Before(Option<String>),
}

/// What a query asks (XEP-0313 §4.1, with `#extended`'s `before-id`, `after-id` and `ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only messages with this bare JID (a room: this occupant's nick).
    pub with: Option<String>,
    /// Only messages at or after this time.
    pub start_ms: Option<i64>,
    /// Only messages at or before this time.
    pub end_ms: Option<i64>,
    /// Only messages after this one.
    pub after_id: Option<String>,
    /// Only messages before this one.
    pub before_id: Option<String>,
    /// Only these messages (empty: no such filter).
    pub ids: Vec<String>,
    /// The page.
    pub page: Page,
    /// Messages at most.
    pub max: usize,
}

impl ArchiveQuery {
    /// No filter: page `page` of at most `max` messages.
    pub fn page(page: Page, max: usize) -> ArchiveQuery {
        ArchiveQuery {
            with: None,
            start_ms: None,
            end_ms: None,
            after_id: None,
            before_id: None,
            ids: Vec::new(),
            page,
            max,
        }
    }
}

/// An archived message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Its stanza id.
    pub stanza_id: String,
    /// When it was archived.
    pub ts_ms: i64,
    /// The message.
    pub xml: String,
}

/// One page of a query's answer, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// The messages.
    pub items: Vec<Archived>,
    /// No more messages match beyond this page (in the page's direction).
    pub complete: bool,
}

/// How an account's messages are archived by default (XEP-0313 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every message.
    Always,
    /// None (unless its JID is in `always`).
    Never,
    /// Messages with contacts in the roster.
    Roster,
}

impl Mode {
    /// Its name in `<prefs default=…>` and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Always => "always",
            Mode::Never => "never",
            Mode::Roster => "roster",
        }
    }

    /// The mode named `s`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "always" => Some(Mode::Always),
            "never" => Some(Mode::Never),
            "roster" => Some(Mode::Roster),
            _ => None,
        }
    }
}

/// An account's archiving preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// The default.
    pub default: Mode,
    /// Bare JIDs always archived.
    pub always: Vec<String>,
    /// Bare JIDs never archived.
    pub never: Vec<String>,
}

/// Bits of an id below the milliseconds: 4,096 ids per millisecond before the time part runs
/// ahead of the clock (it then catches up).
pub const ID_SHIFT: u32 = 12;

/// The id after `last` for a message archived at `ts_ms`: the time's, or one more than
/// `last` when that is not smaller (a burst, or a clock set back).
pub fn next_id(last: i64, ts_ms: i64) -> i64 {
    (ts_ms.max(0) << ID_SHIFT).max(last.saturating_add(1))
}

/// The smallest id of a message archived at or after `ms`.
pub fn id_at(ms: i64) -> i64 {
    ms.clamp(0, i64::MAX >> ID_SHIFT) << ID_SHIFT
}

/// The archives, implemented once in `storage/sql/archive.rs`.
pub trait ArchiveStore: Send + Sync {
    /// Appends messages to accounts' archives, all or none, giving each its id (increasing in
    /// the order of the commits: one writer appends at a time).
    fn append<'a>(&'a self, entries: &'a mut [ArchiveEntry]) -> StoreFuture<'a, ()>;
    /// Whether `owner`'s archive holds the message `stanza_id`.
    fn contains<'a>(&'a self, owner: Owner<'a>, stanza_id: &'a str) -> StoreFuture<'a, bool>;
    /// A page of `owner`'s archive; `None` when an id the query names is not in it.
    fn query<'a>(
        &'a self,
        owner: Owner<'a>,
        q: &'a ArchiveQuery,
    ) -> StoreFuture<'a, Option<ArchivePage>>;
    /// The oldest and newest message of `owner`'s archive (XEP-0313 §7.1 metadata).
    fn bounds<'a>(&'a self, owner: Owner<'a>) -> StoreFuture<'a, Option<(Archived, Archived)>>;
    /// An account's preferences, if it set any.
    fn prefs<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, Option<Prefs>>;
    /// Sets an account's preferences.
    fn set_prefs<'a>(&'a self, host: &'a str, user: &'a str, p: &'a Prefs) -> StoreFuture<'a, ()>;
    /// Forgets what is cached about an account (it was deleted).
    fn forget(&self, host: &str, user: &str) {
        let _ = (host, user);
    }
    /// Retention: removes messages (of accounts and rooms) archived before `before_ms`, and
    /// the oldest beyond `keep` per archive (0: no count limit); returns how many went.
    fn purge<'a>(&'a self, before_ms: i64, keep: u64) -> StoreFuture<'a, u64>;
    /// An account's inbox, the most recently active conversation first, at most `limit`
    /// conversations; a room's unread messages are counted up to `count_cap`.
    fn inbox<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        limit: usize,
        count_cap: u64,
    ) -> StoreFuture<'a, Vec<Conversation>>;
    /// The newest messages (at most `n`, before id `before` if given) an account received
    /// from `with`, newest first, with the conversation's unread count and newest message id
    /// (`None`: no such conversation).
    fn inbox_received<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        with: &'a str,
        before: Option<i64>,
        n: usize,
    ) -> StoreFuture<'a, Option<(u64, i64, Vec<Received>)>>;
    /// Sets the unread count of the conversation with `with`, if its newest message is still
    /// `last_id` (no message arrived meanwhile); whether it was set.
    fn inbox_set_unread<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        with: &'a str,
        unread: u64,
        last_id: i64,
    ) -> StoreFuture<'a, bool>;
    /// Records what an account did in a room (see [`RoomMark`]).
    fn inbox_room<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        room: &'a str,
        mark: &'a RoomMark,
    ) -> StoreFuture<'a, ()>;
    /// Reads the whole conversation with `jid` (a contact or a room); whether there was one.
    fn inbox_reset<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        jid: &'a str,
    ) -> StoreFuture<'a, bool>;
}
