-- Accounts and their SCRAM credentials (RFC 5802 §3): never a password, only salted keys.
CREATE TABLE accounts (
    host        TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (host, username)
);

CREATE TABLE scram_credentials (
    host        TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    mechanism   TEXT    NOT NULL,   -- 'SCRAM-SHA-1' or 'SCRAM-SHA-256'
    salt        BYTEA   NOT NULL,
    iterations  BIGINT  NOT NULL,
    stored_key  BYTEA   NOT NULL,
    server_key  BYTEA   NOT NULL,
    PRIMARY KEY (host, username, mechanism),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
