//! Roles and affiliations (XEP-0045 §5) and what an occupant is.

use jid::{BareJid, FullJid};

use crate::xml::Element;

/// A long-lived relation of a JID to a room (§5.2), lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    /// Banned.
    Outcast,
    /// No affiliation.
    None,
    /// A member.
    Member,
    /// An administrator.
    Admin,
    /// An owner.
    Owner,
}

impl Affiliation {
    /// Its name in the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// A temporary relation of an occupant to a room (§5.1), lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Not in the room.
    None,
    /// Present, without voice (moderated rooms).
    Visitor,
    /// Present, with voice.
    Participant,
    /// May kick, grant and revoke voice, and sees real JIDs.
    Moderator,
}

impl Role {
    /// Its name in the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }

    /// Its bit in `RoomConfig::presence_broadcast`.
    pub fn bit(self) -> u8 {
        match self {
            Role::Moderator => 1,
            Role::Participant => 2,
            Role::Visitor => 4,
            Role::None => 0,
        }
    }

    /// The role an occupant with `a` gets on entering (§5.1.2, the defaults).
    pub fn default_for(a: Affiliation, moderated: bool) -> Role {
        match a {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }
}

/// One client session of an occupant.
#[derive(Debug)]
pub struct Session {
    /// Its full JID.
    pub jid: FullJid,
    /// Its last presence to the room, without the MUC payloads, `from` and `to`.
    pub presence: Element,
}

/// An occupant: one nickname, one account, one or more of its sessions (multi-session nicks).
#[derive(Debug)]
pub struct Occupant {
    /// Its nickname in the room.
    pub nick: String,
    /// Its account.
    pub bare: BareJid,
    /// Its role.
    pub role: Role,
    /// Its sessions, the one that joined first first.
    pub sessions: Vec<Session>,
    /// Groupchat messages sent in the current minute, and when that minute began (rate limit).
    pub sent: (u32, std::time::Instant),
}

impl Occupant {
    /// The session whose presence represents the occupant (the latest).
    pub fn current(&self) -> Option<&Session> {
        self.sessions.last()
    }
}
