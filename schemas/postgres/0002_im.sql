-- IM core: rosters (RFC 6121 §2), pending inbound subscription requests (§3.1.3),
-- offline messages (XEP-0160), and per-user XML documents (vcard-temp, private storage).
CREATE TABLE roster_items (
    host          TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    contact       TEXT    NOT NULL,   -- bare JID
    name          TEXT,
    subscription  TEXT    NOT NULL,   -- none | to | from | both
    ask           BOOLEAN NOT NULL,   -- outbound request pending (ask='subscribe')
    approved      BOOLEAN NOT NULL,   -- pre-approved inbound subscription (RFC 6121 §3.4)
    PRIMARY KEY (host, username, contact)
);

CREATE TABLE roster_groups (
    host      TEXT NOT NULL,
    username  TEXT NOT NULL,
    contact   TEXT NOT NULL,
    grp       TEXT NOT NULL,
    PRIMARY KEY (host, username, contact, grp),
    FOREIGN KEY (host, username, contact) REFERENCES roster_items (host, username, contact) ON DELETE CASCADE
);

CREATE TABLE roster_versions (
    host      TEXT   NOT NULL,
    username  TEXT   NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (host, username)
);

CREATE TABLE presence_pending (
    host      TEXT NOT NULL,
    username  TEXT NOT NULL,
    contact   TEXT NOT NULL,
    stanza    TEXT NOT NULL,          -- the subscribe presence, re-delivered at login
    PRIMARY KEY (host, username, contact)
);

CREATE TABLE offline_messages (
    id         BIGSERIAL PRIMARY KEY,
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    stored_at  BIGINT  NOT NULL,      -- milliseconds since the epoch
    stanza     TEXT    NOT NULL
);
CREATE INDEX offline_messages_user ON offline_messages (host, username, id);

CREATE TABLE user_documents (
    host      TEXT NOT NULL,
    username  TEXT NOT NULL,
    kind      TEXT NOT NULL,          -- 'vcard' | 'private'
    doc_key   TEXT NOT NULL,          -- '' for vcard; the namespace for private storage
    xml       TEXT NOT NULL,
    PRIMARY KEY (host, username, kind, doc_key)
);
