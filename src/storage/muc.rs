//! Group-chat rooms (XEP-0045): each room's configuration and subject, its affiliations, and
//! its messages, stored once per room (read diffusion: the history a joining occupant gets and,
//! later, the room's archive, read from one table; never a copy per member).
//!
//! Every room is stored while it exists, temporary ones too, so that "rooms per owner" is one
//! count; temporary rooms are removed when their last occupant leaves, and at start-up (no
//! ghost rooms after a restart).

use super::StoreFuture;

/// Who sees occupants' real JIDs (`muc#roomconfig_whois`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whois {
    /// Semi-anonymous: moderators only.
    Moderators,
    /// Non-anonymous: everyone.
    Anyone,
}

/// Who may send private messages through the room (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowPm {
    /// Any occupant.
    Anyone,
    /// Participants and moderators (not visitors).
    Participants,
    /// Moderators only.
    Moderators,
    /// Nobody.
    Nobody,
}

impl Whois {
    /// Its name in `muc#roomconfig_whois` and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Whois::Moderators => "moderators",
            Whois::Anyone => "anyone",
        }
    }
}

impl AllowPm {
    /// Its name in `muc#roomconfig_allowpm` and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::Nobody => "none",
        }
    }
}

/// A room's configuration (`muc#roomconfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// Its natural-language name.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Kept when the last occupant leaves.
    pub persistent: bool,
    /// Listed in the service's disco#items.
    pub public: bool,
    /// Only members (and admins, owners) may enter.
    pub members_only: bool,
    /// Only participants and moderators may speak; newcomers without affiliation are visitors.
    pub moderated: bool,
    /// The password to enter; empty: none.
    pub password: String,
    /// Occupants at most.
    pub max_users: u32,
    /// Who sees real JIDs.
    pub whois: Whois,
    /// Messages a newcomer gets as history by default.
    pub history_length: u32,
    /// Who may send private messages.
    pub allow_pm: AllowPm,
    /// Whether participants may invite others (else only admins and owners).
    pub allow_invites: bool,
    /// Whether participants may change the subject (else only moderators).
    pub change_subject: bool,
    /// Roles whose presence is broadcast: bits 1 moderator, 2 participant, 4 visitor.
    pub presence_broadcast: u8,
}

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// Its configuration.
    pub config: RoomConfig,
    /// Its subject and who set it (a nickname; empty for the room).
    pub subject: String,
    /// Who set the subject.
    pub subject_nick: String,
    /// When it was created.
    pub created_ms: i64,
}

/// A message of a room's archive, as it was broadcast (from the occupant's room JID, with
/// the room's `<stanza-id/>`, without `to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The room's opaque id of it (XEP-0359).
    pub stanza_id: String,
    /// The sender's nickname.
    pub nick: String,
    /// The sender's real bare JID (for moderators and the archive).
    pub sender: String,
    /// When the room received it.
    pub ts_ms: i64,
    /// The stanza.
    pub xml: String,
}

/// The rooms of every group-chat service, implemented once in `storage/sql/muc.rs`.
pub trait MucStore: Send + Sync {
    /// The room `room` (`name@service`), if it exists.
    fn room<'a>(&'a self, room: &'a str) -> StoreFuture<'a, Option<StoredRoom>>;
    /// Creates or updates a room.
    fn save_room<'a>(&'a self, room: &'a str, r: &'a StoredRoom) -> StoreFuture<'a, ()>;
    /// Removes a room with its affiliations and messages.
    fn delete_room<'a>(&'a self, room: &'a str) -> StoreFuture<'a, ()>;
    /// Removes every temporary room of `service` (at start-up); returns how many.
    fn delete_temporary<'a>(&'a self, service: &'a str) -> StoreFuture<'a, u64>;
    /// Public rooms of `service` after `after` (by JID), at most `max`, with their titles; and
    /// how many public rooms there are in all.
    fn public_rooms<'a>(
        &'a self,
        service: &'a str,
        after: Option<&'a str>,
        max: usize,
    ) -> StoreFuture<'a, (Vec<(String, String)>, u64)>;
    /// The affiliations of a room: (bare JID, affiliation, reason).
    fn affiliations<'a>(&'a self, room: &'a str) -> StoreFuture<'a, Vec<(String, String, String)>>;
    /// Sets (or, with `None`, removes) the affiliation of `jid` in `room`.
    fn set_affiliation<'a>(
        &'a self,
        room: &'a str,
        jid: &'a str,
        affiliation: Option<(&'a str, &'a str)>,
    ) -> StoreFuture<'a, ()>;
    /// The nicknames registered with a room: (bare JID, nickname).
    fn nicks<'a>(&'a self, room: &'a str) -> StoreFuture<'a, Vec<(String, String)>>;
    /// Registers (or, with `None`, unregisters) the nickname of `jid` in `room`; false when
    /// another account has registered that nickname.
    fn set_nick<'a>(
        &'a self,
        room: &'a str,
        jid: &'a str,
        nick: Option<&'a str>,
    ) -> StoreFuture<'a, bool>;
    /// Rooms of `service` in which `jid` is an owner.
    fn owned_rooms<'a>(&'a self, service: &'a str, jid: &'a str) -> StoreFuture<'a, u64>;
    /// Appends a message to a room's archive.
    fn append<'a>(&'a self, room: &'a str, m: &'a RoomMessage) -> StoreFuture<'a, ()>;
    /// The newest `max` messages of a room received at or after `since_ms`, oldest first.
    fn history<'a>(
        &'a self,
        room: &'a str,
        max: usize,
        since_ms: i64,
    ) -> StoreFuture<'a, Vec<RoomMessage>>;
}
