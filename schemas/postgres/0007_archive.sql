-- Message archives (XEP-0313). An account's archive holds each chat or normal message it sent
-- or received once ('outgoing' tells which). The id is given by the server's archive writer,
-- increasing in commit order and made from the time (milliseconds << 12, then a counter): it
-- orders the archive, names a message to clients (its XEP-0359 stanza id, in decimal, as
-- ejabberd's are) and bounds time ranges, so no index on a random id or on the time is needed.
CREATE TABLE mam_messages (
    id BIGINT PRIMARY KEY,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    -- the other party's bare JID
    with_jid TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    outgoing BOOLEAN NOT NULL,
    xml TEXT NOT NULL
);
CREATE INDEX mam_messages_owner ON mam_messages (host, username, id);
CREATE INDEX mam_messages_with ON mam_messages (host, username, with_jid, id);

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
