-- Offline storage is bounded in bytes as well as in messages (im.offline_quota_bytes): each
-- row records its stanza's size so the quota check sums a column instead of the texts.
ALTER TABLE offline_messages ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
UPDATE offline_messages SET bytes = LENGTH(CAST(stanza AS BLOB));
