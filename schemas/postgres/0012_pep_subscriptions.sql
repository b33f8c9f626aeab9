-- Explicit subscriptions to PEP nodes (XEP-0060 §6.1): besides the contacts that follow a node
-- through their capabilities (XEP-0163), an entity that may see a node may subscribe to it by
-- name (a bare JID: all its available resources; a full JID: that one). They go with the node.
CREATE TABLE pep_subscriptions (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    jid TEXT NOT NULL,
    PRIMARY KEY (host, username, node, jid),
    FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node)
        ON DELETE CASCADE
);
