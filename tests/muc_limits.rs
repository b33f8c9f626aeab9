//! Group chat under pressure, against the real server: large rooms where presence is pulled,
//! and every `[muc]` limit flooded (room inbox, message rate, occupants, rooms per owner,
//! nickname length, history length), each answered with an error and nothing lost.

mod common;

use common::TestServer;
use common::muc::*;

async fn users(t: &TestServer, names: &[&str]) -> Vec<tokio_xmpp::Client> {
    let mut v = Vec::new();
    for n in names {
        t.add_user(n, "pw").await;
        v.push(t.login(&format!("{n}@localhost"), "pw").await.0);
    }
    v
}

#[tokio::test]
async fn a_large_room_stops_pushing_joins_and_lists_its_occupants() {
    let t = TestServer::start(|c| c.muc.large_room_threshold = 2).await;
    let mut u = users(&t, &["alice", "bob", "carol", "dave"]).await;
    let (mut dave, mut carol, mut bob, mut alice) = (
        u.pop().unwrap(),
        u.pop().unwrap(),
        u.pop().unwrap(),
        u.pop().unwrap(),
    );
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    join(&mut bob, ROOM, "Bob", "").await;
    // Two occupants: still pushed.
    wait(&mut alice, "Bob", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    // Three and four: a large room. The newcomers get their own presence and the
    // moderators', not the participants'; nobody is told of their joins.
    join(&mut carol, ROOM, "Carol", "").await;
    let got = join(&mut dave, ROOM, "Dave", "").await;
    assert!(
        got.iter()
            .any(|e| presence_from(e, &format!("{ROOM}/Alice"))),
        "{got:?}"
    );
    assert!(
        !got.iter()
            .any(|e| presence_from(e, &format!("{ROOM}/Carol"))),
        "{got:?}"
    );
    // Messages still reach everyone; Alice's next stanza is Dave's message, not a join.
    send(
        &mut dave,
        &format!("<message type='groupchat' to='{ROOM}'><body>hi all</body></message>"),
    )
    .await;
    let next_for_alice = next(&mut alice).await;
    assert_eq!(
        next_for_alice.name(),
        "message",
        "{}",
        String::from(&next_for_alice)
    );
    wait(&mut carol, "Dave's message", |e| {
        e.get_child("body", "jabber:client").is_some()
    })
    .await;
    // The list is pulled.
    let items = ask(
        &mut carol,
        &format!("<iq type='get' id='it' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
    )
    .await;
    let names: Vec<_> = items
        .children()
        .next()
        .unwrap()
        .children()
        .map(|i| i.attr("name").unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["Alice", "Bob", "Carol", "Dave"]);
}

#[tokio::test]
async fn a_flooded_room_answers_every_message() {
    let t = TestServer::start(|c| {
        c.muc.room_queue = 4;
        c.muc.room_queue_bytes = 4096;
    })
    .await;
    let mut u = users(&t, &["alice"]).await;
    let mut alice = u.pop().unwrap();
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    const N: usize = 300;
    let body = "x".repeat(200);
    for i in 0..N {
        send(
            &mut alice,
            &format!(
                "<message type='groupchat' id='m{i}' to='{ROOM}'><body>{body}</body></message>"
            ),
        )
        .await;
    }
    // Each one comes back: as the room's message to its sender, or as an error.
    let (mut echoed, mut refused) = (0, 0);
    while echoed + refused < N {
        let e = wait(&mut alice, "an answer", |e| e.name() == "message").await;
        if e.attr("type") == Some("error") {
            assert_eq!(condition(&e), "resource-constraint");
            refused += 1;
        } else {
            echoed += 1;
        }
    }
    assert!(refused > 0, "the inbox bound was never reached");
    assert!(echoed > 0);
    // The room still works afterwards.
    let r = ask(
        &mut alice,
        &format!("<iq type='get' id='p' to='{ROOM}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn every_limit_says_no_clearly() {
    let t = TestServer::start(|c| {
        c.muc.messages_per_minute = 3;
        c.muc.max_rooms_per_user = 1;
        c.muc.max_nick_length = 8;
        c.muc.max_history = 2;
    })
    .await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_maxusers", "2"),
            ("muc#maxhistoryfetch", "50"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    // Rooms per owner.
    let got = join(&mut alice, "second@conference.localhost", "Alice", "").await;
    assert_eq!(condition(got.last().unwrap()), "policy-violation");
    // Nickname length.
    let got = join(&mut bob, ROOM, "a-very-long-nickname", "").await;
    assert_eq!(condition(got.last().unwrap()), "jid-malformed");
    join(&mut bob, ROOM, "Bob", "").await;
    // Max users.
    let got = join(&mut carol, ROOM, "Carol", "").await;
    assert_eq!(condition(got.last().unwrap()), "service-unavailable");
    // Message rate: the fourth in a minute is refused.
    for i in 0..4 {
        send(
            &mut bob,
            &format!("<message type='groupchat' id='r{i}' to='{ROOM}'><body>{i}</body></message>"),
        )
        .await;
    }
    let e = wait(&mut bob, "the refusal", |e| e.attr("id") == Some("r3")).await;
    assert_eq!(condition(&e), "resource-constraint");
    // History: the room's length was capped at muc.max_history.
    send(
        &mut bob,
        &format!("<presence type='unavailable' to='{ROOM}/Bob'/>"),
    )
    .await;
    wait(&mut bob, "left", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    let got = join(&mut carol, ROOM, "Carol", "").await;
    let history = got
        .iter()
        .filter(|e| e.get_child("body", "jabber:client").is_some())
        .count();
    assert_eq!(history, 2, "{got:?}");
}
