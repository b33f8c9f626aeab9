//! The archive's bounds and its exactly-once promise: pages capped in count and bytes,
//! preference lists capped, room queries capped, retention, many senders committed together
//! with every message archived once, and a message re-routed after its session ended keeps
//! its one archive entry and id.

mod common;

use common::archive::*;
use common::im::go_online;
use common::muc::{ROOM, ask, body_is, instant, join, ping, send, users, wait};
use common::{TestServer, attr_of};

#[tokio::test]
async fn pages_are_bounded_in_count_and_bytes() {
    let t = TestServer::start(|c| {
        c.archive.max_page = 3;
        c.archive.max_page_bytes = 2500;
        c.archive.max_prefs_jids = 2;
    })
    .await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;
    let big = "x".repeat(1000);
    for i in 0..5 {
        let body = format!("{i}{big}");
        send(
            &mut alice,
            &format!("<message type='chat' to='bob@localhost'><body>{body}</body></message>"),
        )
        .await;
        wait(&mut bob, "the message", |e| body_is(e, &body)).await;
    }
    // A client asking for 100 gets what the bytes allow (two of about 1.1 KB), marked
    // incomplete; paging on gets each message exactly once.
    let mut seen = Vec::new();
    let mut set = "<max>100</max>".to_string();
    loop {
        let page = query(&mut bob, "", "", &set).await;
        assert!(!page.results.is_empty() && page.results.len() <= 2);
        seen.extend(page.bodies());
        if page.complete() {
            break;
        }
        set = format!("<max>100</max><after>{}</after>", page.first_last().1);
    }
    let want: Vec<String> = (0..5).map(|i| format!("{i}{big}")).collect();
    assert_eq!(seen, want);

    // Small messages: the count cap (3) applies.
    let count = query(&mut alice, "", "", "<max>100</max>").await;
    assert_eq!(count.results.len(), 2, "bytes first");
    for i in 0..4 {
        send(
            &mut alice,
            &format!("<message type='chat' to='bob@localhost'><body>s{i}</body></message>"),
        )
        .await;
        wait(&mut bob, "the message", |e| body_is(e, &format!("s{i}"))).await;
    }
    let small = query(&mut bob, "", "", "<max>100</max><before/>").await;
    assert_eq!(small.bodies(), ["s1", "s2", "s3"]);
    assert!(!small.complete());

    // Preference lists past their bound.
    let prefs = format!(
        "<iq type='set' id='p'><prefs xmlns='{MAM}' default='always'><always><jid>a@x</jid><jid>b@x</jid></always><never><jid>c@x</jid></never></prefs></iq>"
    );
    let r = ask(&mut bob, &prefs).await;
    assert_eq!(
        r.children()
            .find(|c| c.name() == "error")
            .and_then(|e| e.children().next())
            .map(|c| c.name().to_string())
            .as_deref(),
        Some("policy-violation")
    );
}

#[tokio::test]
async fn room_queries_are_bounded_and_retention_trims_every_archive() {
    let t = TestServer::start(|c| c.archive.room_queries = 0).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    for i in 0..5 {
        send(
            &mut alice,
            &format!("<message type='groupchat' to='{ROOM}'><body>g{i}</body></message>"),
        )
        .await;
        wait(&mut alice, "the echo", |e| body_is(e, &format!("g{i}"))).await;
        send(
            &mut alice,
            &format!("<message type='chat' to='bob@localhost'><body>c{i}</body></message>"),
        )
        .await;
        wait(&mut bob, "the message", |e| body_is(e, &format!("c{i}"))).await;
    }
    let busy = query(&mut alice, ROOM, "", "").await;
    assert_eq!(busy.condition().as_deref(), Some("resource-constraint"));

    // Retention: each archive keeps its newest 3; nothing is older than a year.
    let mut cfg = t.config.archive.clone();
    cfg.max_messages = 3;
    let gone = xmppd::ext::archive::retention::purge(&t.server().storage, &cfg).await;
    assert_eq!(gone, 2 + 2 + 2, "Alice's, Bob's and the room's oldest two");
    assert_eq!(
        query(&mut bob, "", "", "").await.bodies(),
        ["c2", "c3", "c4"]
    );
    assert_eq!(
        query(&mut alice, "", "", "").await.bodies(),
        ["c2", "c3", "c4"]
    );
    let rows = t.server().storage.muc.history(ROOM, 100, 0).await.unwrap();
    assert_eq!(rows.len(), 3);
    cfg.max_messages = 0;
    cfg.max_age_days = 1;
    assert_eq!(
        xmppd::ext::archive::retention::purge(&t.server().storage, &cfg).await,
        0
    );
}

#[tokio::test]
async fn many_senders_at_once_are_each_archived_exactly_once() {
    let t = TestServer::start(|_| {}).await;
    let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let senders = users(&t, &refs).await;
    t.add_user("sink", "pw").await;
    let (mut sink, _) = t.login("sink@localhost", "pw").await;
    go_online(&mut sink).await;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for (i, mut c) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for k in 0..EACH {
                send(
                    &mut c,
                    &format!(
                        "<message type='chat' to='sink@localhost'><body>{i}.{k}</body></message>"
                    ),
                )
                .await;
            }
            // Keep the client (and its queue) alive until the sink has everything.
            c
        }));
    }
    let mut got = std::collections::HashSet::new();
    let total = 12 * EACH;
    while got.len() < total {
        let m = wait(&mut sink, "a message", |e| e.name() == "message").await;
        let id = stanza_id(&m, "sink@localhost").expect("stamped");
        assert!(got.insert(id), "an id delivered twice");
    }
    let _clients: Vec<_> = futures_util::future::join_all(tasks).await;
    let mut archived = Vec::new();
    let mut set = String::new();
    loop {
        let page = query(&mut sink, "", "", &set).await;
        archived.extend(page.ids());
        if page.complete() {
            break;
        }
        set = format!("<after>{}</after>", page.first_last().1);
    }
    assert_eq!(archived.len(), total, "each message archived once");
    let archived: std::collections::HashSet<_> = archived.into_iter().collect();
    assert_eq!(archived, got, "the delivered ids are the archived ones");
}

#[tokio::test]
async fn a_message_re_routed_after_its_session_ended_keeps_its_one_entry() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.read_tag("enabled").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    alice
        .send("<message type='chat' to='bob@localhost/phone'><body>u1</body></message>")
        .await;
    // Bob's client receives it and dies before acknowledging: it goes to offline storage.
    let first = bob.read_until("u1</body>").await;
    let id = attr_of(&first, "stanza-id", "id").expect("stamped");
    drop(bob);
    let (mut laptop, _) = t.login("bob@localhost/laptop", "pw").await;
    go_online(&mut laptop).await;
    let again = wait(&mut laptop, "the re-routed message", |e| body_is(e, "u1")).await;
    assert_eq!(stanza_id(&again, "bob@localhost"), Some(id.clone()));
    let archived = query(&mut laptop, "", "", "").await;
    assert_eq!(archived.ids(), [id], "one entry, the same id");
    let (mut alice2, _) = t.login("alice@localhost/two", "pw").await;
    assert_eq!(query(&mut alice2, "", "", "").await.bodies(), ["u1"]);
}

#[tokio::test]
async fn a_thousand_messages_page_both_ways_and_a_second_device_catches_up() {
    let t = TestServer::start(|c| {
        c.im.offline_quota = 2000;
        c.im.offline_quota_bytes = 4 << 20;
    })
    .await;
    let mut u = users(&t, &["alice", "bob"]).await;
    // Bob's phone is connected but shows no presence: everything waits offline for him, and
    // his archive has it all.
    let (mut phone, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    const N: usize = 1000;
    for i in 0..N {
        send(
            &mut alice,
            &format!("<message type='chat' to='bob@localhost'><body>{i}</body></message>"),
        )
        .await;
    }
    ping(&mut alice).await;

    let all_bodies: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    // Forwards, pages of 100.
    let (mut got, mut ids, mut set) = (Vec::new(), Vec::new(), "<max>100</max>".to_string());
    loop {
        let page = query(&mut phone, "", "", &set).await;
        got.extend(page.bodies());
        ids.extend(page.ids());
        if page.complete() {
            break;
        }
        set = format!("<max>100</max><after>{}</after>", page.first_last().1);
    }
    assert_eq!(got, all_bodies);
    // Backwards from the end, pages of 128: the same messages, newest page first.
    let (mut back, mut set) = (Vec::new(), "<max>128</max><before/>".to_string());
    loop {
        let page = query(&mut phone, "", "", &set).await;
        let mut b = page.bodies();
        b.extend(back);
        back = b;
        if page.complete() {
            break;
        }
        set = format!("<max>128</max><before>{}</before>", page.first_last().0);
    }
    assert_eq!(back, all_bodies);
    // A second device that has everything up to message 600 asks for what came after it.
    let (mut laptop, _) = t.login("bob@localhost/laptop", "pw").await;
    let (mut rest, fields) = (Vec::new(), field("after-id", &ids[600]));
    let mut set = String::new();
    loop {
        let page = query(&mut laptop, "", &fields, &set).await;
        rest.extend(page.bodies());
        if page.complete() {
            break;
        }
        set = format!("<after>{}</after>", page.first_last().1);
    }
    assert_eq!(rest, all_bodies[601..]);
}
