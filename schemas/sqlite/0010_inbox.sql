-- The inbox (XEP-0430): an account's conversations with their unread counts, kept up to date
-- in the archive writer's commit (never by a scan of the archive per message).
-- A conversation with a person (room = false): last_id is the newest message of the
-- conversation in the account's archive (mam_messages.id) and unread counts the messages
-- received since the account last sent one or marked one displayed.
-- A room (room = true; read diffusion: nothing is written per member when someone speaks):
-- last_id is the room message (muc_messages.id) the account has read through; the newest
-- message and the unread count are read from the room's archive when the inbox is asked for.
-- (SQLite: WITHOUT ROWID, so that an upsert writes one B-tree, the key's, not two.)
CREATE TABLE inbox (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    room BOOLEAN NOT NULL,
    last_id BIGINT NOT NULL,
    unread BIGINT NOT NULL,
    PRIMARY KEY (host, username, jid)
) WITHOUT ROWID;
