//! Group chat (XEP-0045) against the real server with tokio-xmpp clients: the service and its
//! disco, creating, configuring and entering rooms, messages stored once and sent to all with
//! the room's stanza-id, history, nick changes, leaving, and what a session's end does.

mod common;

use common::TestServer;
use common::muc::*;

#[tokio::test]
async fn the_service_is_listed_and_describes_itself() {
    let t = TestServer::start(|_| {}).await;
    let mut c = users(&t, &["alice"]).await.remove(0);
    let items = ask(
        &mut c,
        "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    )
    .await;
    let q = items.children().next().unwrap();
    assert!(
        q.children()
            .any(|i| i.attr("jid") == Some("conference.localhost")),
        "{}",
        String::from(&items)
    );
    let info = ask(
        &mut c,
        "<iq type='get' id='d' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = info.children().next().unwrap();
    let id = q.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(id.attr("category"), Some("conference"));
    assert_eq!(id.attr("type"), Some("text"));
    assert!(q.children().any(|f| f.attr("var") == Some(MUC)));
}

#[tokio::test]
async fn a_room_is_created_locked_then_used_by_several() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());

    // The creator gets 201 and is the owner; the room is locked until configured.
    let got = join(&mut alice, ROOM, "Alice", "").await;
    let me = own(&got);
    assert!(codes(&me).contains(&"201".to_string()), "{got:?}");
    assert_eq!(item(&me).attr("affiliation"), Some("owner"));
    assert_eq!(item(&me).attr("role"), Some("moderator"));
    let refused = join(&mut bob, ROOM, "Bob", "").await;
    assert_eq!(condition(refused.last().unwrap()), "item-not-found");
    instant(&mut alice, ROOM).await;

    // Bob enters: he sees Alice, then himself; Alice sees him; his nick cannot be taken.
    let got = join(&mut bob, ROOM, "Bob", "").await;
    assert!(
        got.iter()
            .any(|e| presence_from(e, &format!("{ROOM}/Alice")))
    );
    let me = own(&got);
    assert_eq!(me.attr("from"), Some(format!("{ROOM}/Bob").as_str()));
    assert_eq!(item(&me).attr("role"), Some("participant"));
    let seen = wait(&mut alice, "Bob's presence", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    // Alice is a moderator: she sees Bob's real JID in this semi-anonymous room.
    assert!(
        item(&seen)
            .attr("jid")
            .unwrap()
            .starts_with("bob@localhost/")
    );
    let taken = join(&mut carol, ROOM, "Bob", "").await;
    assert_eq!(condition(taken.last().unwrap()), "conflict");

    // A message goes to every occupant, from the sender's room JID, with the room's id.
    send(
        &mut bob,
        &format!("<message type='groupchat' to='{ROOM}'><body>hello room</body></message>"),
    )
    .await;
    for c in [&mut alice, &mut bob] {
        let m = wait(c, "the room message", |e| {
            e.name() == "message" && e.get_child("body", "jabber:client").is_some()
        })
        .await;
        assert_eq!(m.attr("from"), Some(format!("{ROOM}/Bob").as_str()));
        let sid = m
            .get_child("stanza-id", "urn:xmpp:sid:0")
            .expect("stanza-id");
        assert_eq!(sid.attr("by"), Some(ROOM));
    }

    // Carol, later, gets it as history with a delay stamp, before the subject.
    let got = join(&mut carol, ROOM, "Carol", "<history maxstanzas='5'/>").await;
    let h = got
        .iter()
        .find(|e| e.get_child("body", "jabber:client").is_some())
        .expect("history");
    assert!(h.get_child("delay", "urn:xmpp:delay").is_some());
    assert!(
        got.last()
            .unwrap()
            .get_child("subject", "jabber:client")
            .is_some()
    );

    // A nick change: unavailable with 303 and the new nick, then the new presence.
    send(&mut carol, &format!("<presence to='{ROOM}/Caroline'/>")).await;
    let gone = wait(&mut bob, "303", |e| {
        presence_from(e, &format!("{ROOM}/Carol")) && e.attr("type") == Some("unavailable")
    })
    .await;
    assert!(codes(&gone).contains(&"303".to_string()));
    assert_eq!(item(&gone).attr("nick"), Some("Caroline"));
    wait(&mut bob, "the new nick", |e| {
        presence_from(e, &format!("{ROOM}/Caroline"))
    })
    .await;

    // Leaving: the others see it, the leaver gets its own unavailable with 110.
    send(
        &mut bob,
        &format!("<presence type='unavailable' to='{ROOM}/Bob'/>"),
    )
    .await;
    let mine = wait(&mut bob, "own unavailable", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    assert_eq!(mine.attr("type"), Some("unavailable"));
    assert!(codes(&mine).contains(&"110".to_string()));
    let seen = wait(&mut alice, "Bob leaving", |e| {
        presence_from(e, &format!("{ROOM}/Bob")) && e.attr("type") == Some("unavailable")
    })
    .await;
    assert_eq!(item(&seen).attr("role"), Some("none"));
}

#[tokio::test]
async fn a_session_that_ends_leaves_its_rooms() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    join(&mut bob, ROOM, "Bob", "").await;
    wait(&mut alice, "Bob", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    // Bob's connection goes away without a word.
    drop(bob);
    let seen = wait(&mut alice, "Bob gone", |e| {
        presence_from(e, &format!("{ROOM}/Bob")) && e.attr("type") == Some("unavailable")
    })
    .await;
    assert_eq!(item(&seen).attr("role"), Some("none"));
    // The room lists Alice alone.
    let items = ask(
        &mut alice,
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
    assert_eq!(names, vec!["Alice"]);
}

#[tokio::test]
async fn a_temporary_room_goes_with_its_last_occupant() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    send(
        &mut alice,
        &format!("<presence type='unavailable' to='{ROOM}/Alice'/>"),
    )
    .await;
    wait(&mut alice, "own unavailable", |e| {
        presence_from(e, &format!("{ROOM}/Alice"))
    })
    .await;
    // Bob creates it anew: he is its owner (201), and no history of the old one remains.
    let got = join(&mut bob, ROOM, "Bob", "").await;
    let me = own(&got);
    assert!(codes(&me).contains(&"201".to_string()), "{got:?}");
    assert_eq!(item(&me).attr("affiliation"), Some("owner"));
}

/// The room's answer to a registration request written as XML (`x` inside the query).
async fn register(c: &mut tokio_xmpp::Client, id: &str, inner: &str) -> minidom::Element {
    ask(
        c,
        &format!("<iq type='set' id='{id}' to='{ROOM}'><query xmlns='jabber:iq:register'>{inner}</query></iq>"),
    )
    .await
}

fn nick_form(nick: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>{nick}</value></field></x>"
    )
}

#[tokio::test]
async fn a_registered_nickname_is_reserved_and_makes_a_member_across_a_restart() {
    let mut t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol", "dave"]).await;
    let mut alice = u.remove(0);
    join(&mut alice, ROOM, "Alice", "").await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_persistentroom", "1")]).await;
    let (mut bob, mut carol) = (u.remove(0), u.remove(0));

    // The form (§7.10.2), then the registration.
    let form = ask(
        &mut bob,
        &format!("<iq type='get' id='f' to='{ROOM}'><query xmlns='jabber:iq:register'/></iq>"),
    )
    .await;
    assert!(
        String::from(&form).contains("muc#register_roomnick"),
        "{}",
        String::from(&form)
    );
    let r = register(&mut bob, "r1", &nick_form("Bobby")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let again = ask(
        &mut bob,
        &format!("<iq type='get' id='f2' to='{ROOM}'><query xmlns='jabber:iq:register'/></iq>"),
    )
    .await;
    let q = again.children().next().unwrap();
    assert!(q.children().any(|c| c.name() == "registered"));
    assert_eq!(
        q.children()
            .find(|c| c.name() == "username")
            .unwrap()
            .text(),
        "Bobby"
    );
    // §7.12: the room tells Bob his nickname.
    let disco = ask(
        &mut bob,
        &format!("<iq type='get' id='x' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"),
    )
    .await;
    let id = disco.children().next().unwrap().children().next().unwrap();
    assert_eq!(id.attr("name"), Some("Bobby"));
    // He is a member now, listed with his nickname.
    let members = ask(
        &mut alice,
        &format!("<iq type='get' id='m' to='{ROOM}'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>"),
    )
    .await;
    let item = members
        .children()
        .next()
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(
        (item.attr("jid"), item.attr("nick")),
        (Some("bob@localhost"), Some("Bobby"))
    );

    // Nobody else enters, changes to, or registers that nickname.
    let got = join(&mut carol, ROOM, "Bobby", "").await;
    assert_eq!(condition(got.last().unwrap()), "conflict");
    let r = register(&mut carol, "r2", &nick_form("Bobby")).await;
    assert_eq!(condition(&r), "conflict");
    let got = join(&mut carol, ROOM, "Carol", "").await;
    own(&got);
    send(&mut carol, &format!("<presence to='{ROOM}/Bobby'/>")).await;
    let refused = wait(&mut carol, "the refused nick change", |e| {
        e.attr("type") == Some("error")
    })
    .await;
    assert_eq!(condition(&refused), "conflict");
    // A malformed or empty nickname is refused.
    assert_eq!(
        condition(&register(&mut carol, "r3", &nick_form("")).await),
        "bad-request"
    );

    // It survives a restart.
    drop((alice, bob, carol));
    t.restart().await;
    let (mut dave, _) = t.login("dave@localhost", "pw").await;
    let got = join(&mut dave, ROOM, "Bobby", "").await;
    assert_eq!(condition(got.last().unwrap()), "conflict");
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    let got = join(&mut bob, ROOM, "Bobby", "").await;
    own(&got);

    // Bob gives it up: no longer a member, and the nickname is free for Dave's registration.
    let r = register(&mut bob, "r4", "<remove/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = register(&mut dave, "r5", &nick_form("Bobby")).await;
    assert_eq!(
        condition(&r),
        "conflict",
        "Bob is still in the room under it"
    );
    send(
        &mut bob,
        &format!("<presence type='unavailable' to='{ROOM}/Bobby'/>"),
    )
    .await;
    ping(&mut bob).await;
    let r = register(&mut dave, "r6", &nick_form("Bobby")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}
