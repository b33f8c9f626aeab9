-- Nicknames registered with a room (XEP-0045 §7.10): at most one per account and room, and a
-- nickname belongs to one account at most; nobody else may enter the room under it.
CREATE TABLE muc_nicks (
    room TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    nick TEXT NOT NULL,
    PRIMARY KEY (room, jid)
);
CREATE UNIQUE INDEX muc_nicks_nick ON muc_nicks (room, nick);
