-- Message archives (XEP-0313). An account's archive holds each chat or normal message it sent
-- or received once ('outgoing' tells which); the row id orders the archive, the stanza id
-- (XEP-0359, random and opaque) names a message to clients.
CREATE TABLE mam_messages (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    stanza_id TEXT NOT NULL,
    -- the other party's bare JID
    with_jid TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    outgoing BOOLEAN NOT NULL,
    xml TEXT NOT NULL
);
CREATE INDEX mam_messages_owner ON mam_messages (host, username, id);
CREATE INDEX mam_messages_with ON mam_messages (host, username, with_jid, id);
CREATE UNIQUE INDEX mam_messages_sid ON mam_messages (host, username, stanza_id);
CREATE INDEX mam_messages_ts ON mam_messages (ts_ms);

-- An account's archiving preferences (XEP-0313 §6); no row: the server's default.
CREATE TABLE mam_prefs (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    -- 'always', 'never' or 'roster'
    default_mode TEXT NOT NULL,
    -- bare JIDs, one per line
    always_jids TEXT NOT NULL,
    never_jids TEXT NOT NULL,
    PRIMARY KEY (host, username)
);

-- A room's archive is muc_messages: queries name a message by its stanza id.
CREATE INDEX muc_messages_sid ON muc_messages (room, stanza_id);
CREATE INDEX muc_messages_ts ON muc_messages (ts_ms);
