//! A database that fails: a message that can be neither delivered nor stored is never lost
//! without a trace its sender can see. Here Bob's offline storage fails (a trigger makes every
//! insert for him fail, on SQLite and on PostgreSQL), and the message was being re-routed after
//! Bob's session ended, when Alice, its sender, was no longer online either: the error waits
//! in Alice's offline storage and reaches her at her next login.

mod common;

use common::*;

/// Makes every offline store for `bob` fail.
async fn break_bobs_offline_storage(t: &TestServer) {
    if t.config.storage.backend == xmppd::config::Backend::Postgres {
        t.execute(
            "CREATE FUNCTION fail_bob() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql",
        )
        .await;
        t.execute(
            "CREATE TRIGGER fail_bob BEFORE INSERT ON offline_messages FOR EACH ROW \
             WHEN (NEW.username = 'bob') EXECUTE FUNCTION fail_bob()",
        )
        .await;
    } else {
        t.execute(
            "CREATE TRIGGER fail_bob BEFORE INSERT ON offline_messages \
             WHEN NEW.username = 'bob' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unstorable_message_comes_back_to_a_sender_who_left() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    break_bobs_offline_storage(&t).await;
    // Bob's phone takes a message and never acknowledges it (stream management).
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/><presence/>").await;
    bob.read_tag("enabled").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice
        .send("<message to='bob@localhost/phone' type='chat' id='m1'><body>hello</body></message>")
        .await;
    bob.read_until("hello</body>").await;
    // Alice leaves; then Bob's connection drops: the unacknowledged message is re-routed, Bob
    // has no other resource, and his offline storage fails.
    alice.send("</stream:stream>").await;
    alice.read_to_close().await;
    drop(bob);
    // Alice comes back and learns that her message did not make it.
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "laptop").await;
    alice.send("<presence/>").await;
    let got = alice.read_until("</message>").await;
    assert!(
        got.contains("type='error'") && got.contains("id='m1'"),
        "no error for m1: {got}"
    );
    assert!(got.contains("<internal-server-error"), "{got}");
    assert!(
        got.contains("hello</body>"),
        "the error carries the message: {got}"
    );
}

#[tokio::test]
async fn an_unreadable_blocklist_fails_closed() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send("<presence/>").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    // The blocklists cannot be read: whether Bob blocks Alice is unknown, so her message is
    // refused with an error rather than delivered.
    t.execute("ALTER TABLE user_documents RENAME TO user_documents_gone")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='m2'><body>hi</body></message>")
        .await;
    let got = alice.read_until("</message>").await;
    assert!(
        got.contains("type='error'") && got.contains("<internal-server-error"),
        "{got}"
    );
    bob.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let seen = bob.read_until("id='p'").await;
    assert!(
        !seen.contains(">hi</body>"),
        "delivered despite an unreadable blocklist: {seen}"
    );
    // Readable again: delivered.
    t.execute("ALTER TABLE user_documents_gone RENAME TO user_documents")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='m3'><body>again</body></message>")
        .await;
    bob.read_until("again</body>").await;
}
