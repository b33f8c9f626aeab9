-- Coalesced notifications: a headline message stored for an offline account keeps only the
-- newest of its kind (the sender and what the message is about); ordinary offline messages
-- have no key.
ALTER TABLE offline_messages ADD COLUMN coalesce_key TEXT;
CREATE UNIQUE INDEX offline_messages_coalesce ON offline_messages (host, username, coalesce_key)
    WHERE coalesce_key IS NOT NULL;
