-- Offline messages handed to a session with stream management (XEP-0198) are claimed, not
-- deleted, until the client acknowledges them: a crash in between loses nothing (claims are
-- released when the server starts, and the messages are delivered again).
ALTER TABLE offline_messages ADD COLUMN claimed BOOLEAN NOT NULL DEFAULT FALSE;
