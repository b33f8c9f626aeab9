//! Group chat administration (XEP-0045 §8–§10) against the real server: members-only rooms,
//! passwords, bans, kicks, voice in moderated rooms, the configuration form, a persistent room
//! across a restart, destruction, private messages and invitations.

mod common;

use common::TestServer;
use common::muc::*;

fn unavailable_from(e: &minidom::Element, from: &str) -> bool {
    presence_from(e, from) && e.attr("type") == Some("unavailable")
}

async fn admin(c: &mut tokio_xmpp::Client, items: &str) -> minidom::Element {
    ask(
        c,
        &format!("<iq type='set' id='adm' to='{ROOM}'><query xmlns='{ADMIN}'>{items}</query></iq>"),
    )
    .await
}

#[tokio::test]
async fn members_only_passwords_bans_and_kicks() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));

    let got = join(&mut bob, ROOM, "Bob", "<password>s3cret</password>").await;
    assert_eq!(condition(got.last().unwrap()), "registration-required");
    // Only owners and admins see or change the member list.
    let r = ask(
        &mut bob,
        &format!("<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>"),
    )
    .await;
    assert_eq!(condition(&r), "forbidden");
    let r = admin(
        &mut alice,
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = ask(
        &mut alice,
        &format!("<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>"),
    )
    .await;
    let q = r.children().next().unwrap();
    assert_eq!(
        q.children().next().unwrap().attr("jid"),
        Some("bob@localhost")
    );

    let got = join(&mut bob, ROOM, "Bob", "<password>wrong</password>").await;
    assert_eq!(condition(got.last().unwrap()), "not-authorized");
    let got = join(&mut bob, ROOM, "Bob", "<password>s3cret</password>").await;
    assert_eq!(item(&own(&got)).attr("affiliation"), Some("member"));

    // A ban: Carol cannot enter; Bob, banned while inside, leaves with 301.
    let r = admin(
        &mut alice,
        "<item affiliation='outcast' jid='carol@localhost'><reason>spam</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got = join(&mut carol, ROOM, "Carol", "<password>s3cret</password>").await;
    assert_eq!(condition(got.last().unwrap()), "forbidden");
    // A member cannot ban anyone.
    let r = admin(
        &mut bob,
        "<item affiliation='outcast' jid='alice@localhost'/>",
    )
    .await;
    assert_eq!(condition(&r), "forbidden");
    // The last owner cannot be removed.
    let r = admin(
        &mut alice,
        "<item affiliation='member' jid='alice@localhost'/>",
    )
    .await;
    assert_eq!(condition(&r), "conflict");

    // The presences go before the result (§8.2).
    send(&mut alice, &format!("<iq type='set' id='kick' to='{ROOM}'><query xmlns='{ADMIN}'><item role='none' nick='Bob'><reason>out</reason></item></query></iq>")).await;
    let kicked = wait(&mut bob, "the kick", |e| {
        unavailable_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    let c = codes(&kicked);
    assert!(
        c.contains(&"307".to_string()) && c.contains(&"110".to_string()),
        "{c:?}"
    );
    let seen = wait(&mut alice, "Bob kicked", |e| {
        unavailable_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    assert!(codes(&seen).contains(&"307".to_string()));
    let r = wait(&mut alice, "the result", |e| e.attr("id") == Some("kick")).await;
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn moderated_rooms_give_voice_by_role() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_moderatedroom", "1")]).await;
    let got = join(&mut bob, ROOM, "Bob", "").await;
    assert_eq!(item(&own(&got)).attr("role"), Some("visitor"));
    send(
        &mut bob,
        &format!("<message type='groupchat' to='{ROOM}' id='v1'><body>may I?</body></message>"),
    )
    .await;
    let e = wait(&mut bob, "the error", |e| e.attr("id") == Some("v1")).await;
    assert_eq!(condition(&e), "forbidden");
    // Voice granted: Bob is a participant, everyone sees it, and he speaks.
    let r = admin(&mut alice, "<item role='participant' nick='Bob'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    let p = wait(&mut bob, "his new role", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    assert_eq!(item(&p).attr("role"), Some("participant"));
    send(
        &mut bob,
        &format!("<message type='groupchat' to='{ROOM}'><body>thanks</body></message>"),
    )
    .await;
    let m = wait(&mut alice, "Bob's message", |e| {
        e.name() == "message" && e.get_child("body", "jabber:client").is_some()
    })
    .await;
    assert_eq!(m.attr("from"), Some(format!("{ROOM}/Bob").as_str()));
    // A participant cannot make moderators.
    let r = admin(&mut bob, "<item role='moderator' nick='Bob'/>").await;
    assert_eq!(condition(&r), "forbidden");
}

#[tokio::test]
async fn a_persistent_room_outlives_a_restart() {
    let mut t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost", "pw").await;
    join(&mut alice, ROOM, "Alice", "").await;
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "The Room"),
            ("muc#roomconfig_membersonly", "1"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    admin(
        &mut alice,
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await;
    send(
        &mut alice,
        &format!("<message type='groupchat' to='{ROOM}'><subject>Plans</subject></message>"),
    )
    .await;
    wait(&mut alice, "the subject", |e| {
        e.get_child("subject", "jabber:client").is_some()
    })
    .await;
    send(
        &mut alice,
        &format!("<message type='groupchat' to='{ROOM}'><body>remember this</body></message>"),
    )
    .await;
    wait(&mut alice, "the message", |e| {
        e.get_child("body", "jabber:client").is_some()
    })
    .await;
    drop(alice);
    t.restart().await;

    // No ghost: the room is empty, and it kept its name, members, subject and history.
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    let info = ask(
        &mut bob,
        &format!("<iq type='get' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    let q = info.children().next().unwrap();
    assert_eq!(q.children().next().unwrap().attr("name"), Some("The Room"));
    assert!(
        q.children()
            .any(|f| f.attr("var") == Some("muc_persistent"))
    );
    let got = join(&mut bob, ROOM, "Bob", "").await;
    assert!(
        !got.iter()
            .any(|e| presence_from(e, &format!("{ROOM}/Alice"))),
        "a ghost: {got:?}"
    );
    assert_eq!(item(&own(&got)).attr("affiliation"), Some("member"));
    assert!(got.iter().any(|e| {
        e.get_child("body", "jabber:client")
            .is_some_and(|b| b.text() == "remember this")
    }));
    let subject = got
        .last()
        .unwrap()
        .get_child("subject", "jabber:client")
        .unwrap()
        .text();
    assert_eq!(subject, "Plans");
    // It is listed by the service.
    let items = ask(
        &mut bob,
        "<iq type='get' id='i' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    )
    .await;
    assert!(
        items
            .children()
            .next()
            .unwrap()
            .children()
            .any(|i| i.attr("jid") == Some(ROOM))
    );
}

#[tokio::test]
async fn destruction_tells_everyone_where_to_go() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    join(&mut bob, ROOM, "Bob", "").await;
    let r = ask(
        &mut bob,
        &format!(
            "<iq type='set' id='x' to='{ROOM}'><query xmlns='{OWNER}'><destroy/></query></iq>"
        ),
    )
    .await;
    assert_eq!(condition(&r), "forbidden");
    let r = ask(
        &mut alice,
        &format!("<iq type='set' id='x' to='{ROOM}'><query xmlns='{OWNER}'><destroy jid='other@conference.localhost'><reason>moved</reason></destroy></query></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let p = wait(&mut bob, "the destruction", |e| {
        unavailable_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    let d = p
        .get_child("x", USER)
        .unwrap()
        .get_child("destroy", USER)
        .unwrap();
    assert_eq!(d.attr("jid"), Some("other@conference.localhost"));
    let info = ask(
        &mut bob,
        &format!("<iq type='get' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    assert_eq!(condition(&info), "item-not-found");
}

#[tokio::test]
async fn private_messages_invitations_and_pings() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    common::im::go_online(&mut carol).await;
    // A mediated invitation makes Carol a member; she gets it from the room.
    send(&mut alice, &format!("<message to='{ROOM}'><x xmlns='{USER}'><invite to='carol@localhost'><reason>join us</reason></invite></x></message>")).await;
    let inv = wait(&mut carol, "the invitation", |e| {
        e.name() == "message" && e.attr("from") == Some(ROOM)
    })
    .await;
    let i = inv
        .get_child("x", USER)
        .unwrap()
        .get_child("invite", USER)
        .unwrap();
    assert!(i.attr("from").unwrap().starts_with("alice@localhost"));
    join(&mut carol, ROOM, "Carol", "").await;
    // A non-occupant cannot send private messages through the room.
    send(
        &mut bob,
        &format!("<message type='chat' id='pm0' to='{ROOM}/Carol'><body>psst</body></message>"),
    )
    .await;
    let e = wait(&mut bob, "the error", |e| e.attr("id") == Some("pm0")).await;
    assert_eq!(condition(&e), "not-acceptable");
    send(
        &mut alice,
        &format!("<message type='chat' to='{ROOM}/Carol'><body>psst</body></message>"),
    )
    .await;
    let pm = wait(&mut carol, "the private message", |e| {
        e.attr("type") == Some("chat")
    })
    .await;
    assert_eq!(pm.attr("from"), Some(format!("{ROOM}/Alice").as_str()));
    assert!(pm.get_child("x", USER).is_some());
    // XEP-0410: a joined client pings itself through the room.
    let r = ask(
        &mut carol,
        &format!("<iq type='get' id='sp' to='{ROOM}/Carol'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = ask(
        &mut bob,
        &format!("<iq type='get' id='sp' to='{ROOM}/Carol'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert_eq!(condition(&r), "not-acceptable");
    // An iq to another occupant reaches its client and the answer comes back through the room.
    send(
        &mut alice,
        &format!(
            "<iq type='get' id='ver' to='{ROOM}/Carol'><query xmlns='jabber:iq:version'/></iq>"
        ),
    )
    .await;
    let q = wait(&mut carol, "the passed iq", |e| {
        e.name() == "iq" && e.attr("type") == Some("get")
    })
    .await;
    assert_eq!(q.attr("from"), Some(format!("{ROOM}/Alice").as_str()));
    let id = q.attr("id").unwrap().to_string();
    // The id Carol sees does not tell who asked (the room is semi-anonymous).
    assert!(!id.contains("alice") && !id.contains("ver"), "{id}");
    send(&mut carol, &format!("<iq type='result' id='{id}' to='{ROOM}/Alice'><query xmlns='jabber:iq:version'><name>test</name><version>1</version></query></iq>")).await;
    let r = wait(&mut alice, "the answer", |e| e.attr("id") == Some("ver")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("from"), Some(format!("{ROOM}/Carol").as_str()));
}

#[tokio::test]
async fn a_visitor_asks_for_voice_and_a_moderator_grants_it() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_moderatedroom", "1")]).await;
    let got = join(&mut bob, ROOM, "Bob", "").await;
    assert_eq!(item(&own(&got)).attr("role"), Some("visitor"));
    const REQUEST: &str = "http://jabber.org/protocol/muc#request";
    send(&mut bob, &format!("<message to='{ROOM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{REQUEST}</value></field><field var='muc#role' type='list-single'><value>participant</value></field></x></message>")).await;
    // The moderator gets a form to approve, naming Bob.
    let ask = wait(&mut alice, "the voice request", |e| {
        e.name() == "message" && e.get_child("x", "jabber:x:data").is_some()
    })
    .await;
    let x = ask.get_child("x", "jabber:x:data").unwrap();
    let nick = x
        .children()
        .find(|f| f.attr("var") == Some("muc#roomnick"))
        .and_then(|f| f.children().next())
        .map(|v| v.text());
    assert_eq!(nick.as_deref(), Some("Bob"));
    send(&mut alice, &format!("<message to='{ROOM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{REQUEST}</value></field><field var='muc#role'><value>participant</value></field><field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x></message>")).await;
    let p = wait(&mut bob, "voice", |e| {
        presence_from(e, &format!("{ROOM}/Bob"))
    })
    .await;
    assert_eq!(item(&p).attr("role"), Some("participant"));
}

/// The `jid`s of an admin list answer.
fn listed(answer: &minidom::Element) -> Vec<String> {
    let q = answer.children().next().unwrap();
    let mut v: Vec<String> = q
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_string))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_form_names_owners_and_admins_and_each_message_comes_once() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    // The form shows the lists; submitting them makes Bob an owner and Carol an admin.
    let form = ask(
        &mut alice,
        &format!("<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>"),
    )
    .await;
    assert!(String::from(&form).contains("muc#roomconfig_roomowners"));
    let r = configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_roomowners", "alice@localhost"),
            ("muc#roomconfig_roomowners", "bob@localhost"),
            ("muc#roomconfig_roomadmins", "carol@localhost"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let list = |a: &str| {
        format!(
            "<iq type='get' id='l{a}' to='{ROOM}'><query xmlns='{ADMIN}'><item affiliation='{a}'/></query></iq>"
        )
    };
    assert_eq!(
        listed(&ask(&mut alice, &list("owner")).await),
        ["alice@localhost", "bob@localhost"]
    );
    assert_eq!(
        listed(&ask(&mut alice, &list("admin")).await),
        ["carol@localhost"]
    );
    // Bob, an owner now, takes Alice off the owner list; a list without owners is refused.
    let r = configure(
        &mut bob,
        ROOM,
        &[("muc#roomconfig_roomowners", "bob@localhost")],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(
        listed(&ask(&mut bob, &list("owner")).await),
        ["bob@localhost"]
    );
    let r = configure(&mut bob, ROOM, &[("muc#roomconfig_roomowners", "")]).await;
    assert_eq!(condition(&r), "not-acceptable");
    // Alice, no longer an owner, is refused the form.
    let r = configure(&mut alice, ROOM, &[("muc#roomconfig_roomname", "x")]).await;
    assert_eq!(condition(&r), "forbidden");

    // Exactly once: each of Carol's messages reaches Alice one time, nothing more after.
    join(&mut carol, ROOM, "Carol", "").await;
    for i in 0..5 {
        send(
            &mut carol,
            &format!("<message type='groupchat' to='{ROOM}'><body>once {i}</body></message>"),
        )
        .await;
    }
    let ping = format!("<iq type='get' id='p' to='{ROOM}'><ping xmlns='urn:xmpp:ping'/></iq>");
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let m = wait(&mut alice, "a room message", |e| {
            e.name() == "message" && e.children().any(|c| c.name() == "body")
        })
        .await;
        seen.push(m.children().find(|c| c.name() == "body").unwrap().text());
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("once {i}")).collect::<Vec<_>>()
    );
    // Alice's ping goes through the room after Carol's messages were fanned out: anything
    // sent twice would be queued for Alice before the ping's answer.
    send(&mut alice, &ping).await;
    let rest = wait(&mut alice, "the ping answer", |e| {
        e.name() == "iq" || e.name() == "message"
    })
    .await;
    assert_eq!(
        rest.name(),
        "iq",
        "a room message came twice: {}",
        String::from(&rest)
    );
}
