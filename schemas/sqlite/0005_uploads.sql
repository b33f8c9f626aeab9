-- HTTP File Upload (XEP-0363): one row per slot handed out. The id is the secret part of the
-- file's URL; a slot becomes a file when its PUT completes (`done`). Quotas sum `size` over an
-- account's rows, pending slots included; expired rows are purged with their files.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    filename TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX uploads_owner ON uploads (host, username);
CREATE INDEX uploads_created ON uploads (created_ms);
