-- Personal eventing (XEP-0163): an account's nodes with their configuration, and their items.
CREATE TABLE pep_nodes (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    -- 'presence' (contacts subscribed to the account's presence), 'open' or 'whitelist'
    -- (the owner alone)
    access_model TEXT NOT NULL,
    persist_items BOOLEAN NOT NULL,
    max_items INTEGER NOT NULL,
    notify_retract BOOLEAN NOT NULL,
    PRIMARY KEY (host, username, node)
);

-- Items, newest last by id; one per item id within a node (publishing an id again replaces it).
CREATE TABLE pep_items (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    item_id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    -- bytes of xml, counted against the account's quota
    size BIGINT NOT NULL,
    xml TEXT NOT NULL,
    FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node)
        ON DELETE CASCADE
);
CREATE UNIQUE INDEX pep_items_key ON pep_items (host, username, node, item_id);
CREATE INDEX pep_items_order ON pep_items (host, username, node, id);
