//! `[muc]`: the group-chat service (XEP-0045) at `conference.<host>`.

use serde::{Deserialize, Serialize};

/// `[muc]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MucConfig {
    /// The group-chat service (`<subdomain>.<host>` for each host).
    pub enabled: bool,
    /// The service's name: the first label of its domain.
    pub subdomain: String,
    /// Rooms one account may own (persistent and temporary together).
    pub max_rooms_per_user: usize,
    /// Occupants one room may hold, whatever its owner configures (`max users`).
    pub max_occupants: usize,
    /// The `max users` of a new room.
    pub default_max_users: usize,
    /// Affiliations (members, admins, owners, bans) one room may hold.
    pub max_affiliations: usize,
    /// Messages a joining occupant may get as history, at most (a room's history length is
    /// bounded by it).
    pub max_history: usize,
    /// The history length of a new room.
    pub default_history: usize,
    /// Above this many occupants a room stops pushing the joins, leaves and status changes of
    /// participants and visitors to every occupant: clients pull the list (disco#items on the
    /// room). Moderators' presence is still pushed.
    pub large_room_threshold: usize,
    /// Groupchat messages one occupant may send per minute; 0: no limit.
    pub messages_per_minute: u32,
    /// Stanzas waiting for one room, in count; beyond it the sender gets `resource-constraint`.
    pub room_queue: usize,
    /// The same queue, in bytes of element tree.
    pub room_queue_bytes: usize,
    /// Longest room subject, in bytes.
    pub max_subject_length: usize,
    /// Longest nickname, in bytes.
    pub max_nick_length: usize,
    /// Whether the accounts of the served hosts may create rooms (false: only the server's
    /// administrators could, and there are none yet: no creation).
    pub allow_room_creation: bool,
}

impl Default for MucConfig {
    fn default() -> Self {
        MucConfig {
            enabled: true,
            subdomain: "conference".into(),
            max_rooms_per_user: 100,
            max_occupants: 10_000,
            default_max_users: 200,
            max_affiliations: 100_000,
            max_history: 100,
            default_history: 20,
            large_room_threshold: 500,
            messages_per_minute: 0,
            room_queue: 1024,
            room_queue_bytes: 4 * 1024 * 1024,
            max_subject_length: 1024,
            max_nick_length: 64,
            allow_room_creation: true,
        }
    }
}
