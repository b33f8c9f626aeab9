//! Group chat under pressure, against the real server: large rooms where presence is pulled,
//! and every `[muc]` limit flooded (room inbox, message rate, occupants, rooms per owner,
//! nickname length, history length), each answered with an error and nothing lost.

mod common;

use common::TestServer;
use common::muc::*;

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

/// Reads a raw stream to its end in a task, counting `needle` and noting whether `flag` was
/// seen; the count is published as it grows.
fn count_in(
    mut r: tokio::net::tcp::OwnedReadHalf,
    needle: &'static str,
    flag: &'static str,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering::Release;
    use tokio::io::AsyncReadExt;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (n2, seen2) = (n.clone(), seen.clone());
    tokio::spawn(async move {
        let (mut buf, mut tail) = (vec![0u8; 65536], String::new());
        let mut count = 0;
        while let Ok(k) = r.read(&mut buf).await {
            if k == 0 {
                break;
            }
            tail.push_str(&String::from_utf8_lossy(&buf[..k]));
            count += tail.matches(needle).count();
            if tail.contains(flag) {
                seen2.store(true, Release);
            }
            n2.store(count, Release);
            // Keep what could be the start of a needle or flag cut in two.
            let keep = tail.len().saturating_sub(needle.len().max(flag.len()));
            let cut = (keep..=tail.len())
                .find(|&i| tail.is_char_boundary(i))
                .unwrap_or(0);
            tail.drain(..cut);
        }
    });
    (n, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occupant_that_stops_reading_is_dropped_and_the_others_get_everything() {
    use std::sync::atomic::Ordering::Acquire;
    const N: usize = 1500;
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.write_timeout_secs = 3;
    })
    .await;
    for u in ["alice", "bob", "carol"] {
        t.add_user(u, "pw").await;
    }
    let mut raws = Vec::new();
    for (user, nick, rcvbuf) in [
        ("alice", "Alice", 0),
        ("carol", "Carol", 0),
        ("bob", "Bob", 4096),
    ] {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        if rcvbuf > 0 {
            sock.set_recv_buffer_size(rcvbuf).unwrap();
        }
        let tcp = sock
            .connect(format!("127.0.0.1:{}", t.port).parse().unwrap())
            .await
            .unwrap();
        let mut raw = common::Raw(tcp);
        raw.login(user, "pw", "r").await;
        // Without the MUC <x/>, a first join makes an instant room (groupchat 1.0 clients).
        raw.send(&format!("<presence to='{ROOM}/{nick}'/>")).await;
        raw.read_until("<subject").await;
        raws.push(raw);
    }
    // Bob never reads again; Alice and Carol read everything.
    let bob = raws.pop().unwrap();
    let (carol_r, _carol_w) = raws.pop().unwrap().0.into_split();
    let (alice_r, mut alice_w) = raws.pop().unwrap().0.into_split();
    let _ = count_in(alice_r, "</body>", "\0");
    let (got, bob_left) = count_in(
        carol_r,
        "</body>",
        "type='unavailable' from='room@conference.localhost/Bob'",
    );

    let body = "y".repeat(4000);
    for i in 0..N {
        use tokio::io::AsyncWriteExt;
        let m = format!("<message type='groupchat' to='{ROOM}'><body>{i} {body}</body></message>");
        alice_w.write_all(m.as_bytes()).await.unwrap();
        // Paced by Carol's reading (200 in flight), as a chat is.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while got.load(Acquire) + 200 < i {
            assert!(
                tokio::time::Instant::now() < deadline,
                "carol stalled at {i}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.load(Acquire) < N || !bob_left.load(Acquire) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "carol got {} of {N}, saw bob leave: {}",
            got.load(Acquire),
            bob_left.load(Acquire)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(got.load(Acquire), N);
    drop(bob);
}
