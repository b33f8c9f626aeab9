-- Group chat (XEP-0045). A room is keyed by its bare JID (name@service). Every room has a row
-- while it exists, temporary ones too (removed with their last occupant, and at start-up).
CREATE TABLE muc_rooms (
    jid TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    persistent BOOLEAN NOT NULL,
    public BOOLEAN NOT NULL,
    members_only BOOLEAN NOT NULL,
    moderated BOOLEAN NOT NULL,
    password TEXT NOT NULL,
    max_users INTEGER NOT NULL,
    -- 'moderators' or 'anyone'
    whois TEXT NOT NULL,
    history_length INTEGER NOT NULL,
    -- 'anyone', 'participants', 'moderators' or 'none'
    allow_pm TEXT NOT NULL,
    allow_invites BOOLEAN NOT NULL,
    change_subject BOOLEAN NOT NULL,
    -- bits: 1 moderator, 2 participant, 4 visitor
    presence_broadcast INTEGER NOT NULL,
    subject TEXT NOT NULL,
    subject_nick TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX muc_rooms_service ON muc_rooms (service, public);

-- Affiliations: owner, admin, member, outcast (a ban), by bare JID.
CREATE TABLE muc_affiliations (
    room TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    affiliation TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (room, jid)
);
CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid, affiliation);

-- A room's messages, once per room (read diffusion): the history on join and the room's
-- archive. The stanza is stored as broadcast: from the sender's room JID, with the room's
-- stanza-id, without 'to'.
CREATE TABLE muc_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
    stanza_id TEXT NOT NULL,
    nick TEXT NOT NULL,
    sender TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    xml TEXT NOT NULL
);
CREATE INDEX muc_messages_room ON muc_messages (room, id);
CREATE INDEX muc_messages_room_ts ON muc_messages (room, ts_ms);
