//! Federation (RFC 6120 server-to-server, XEP-0178, XEP-0220): two servers in this process,
//! `a.test` on 127.0.0.1 and `b.test` on 127.0.0.2, each with a static route to the other, and
//! real clients (tokio-xmpp) on each. With the test CA trusted the servers authenticate with
//! SASL EXTERNAL; with a CA that signs neither certificate, by dialback.

mod common;

use common::im::chat;
use common::s2s::*;

#[tokio::test]
async fn valid_certificates_authenticate_with_sasl_external_both_ways() {
    // One stream each way (no XEP-0288), so that each side authenticates the other.
    let (a, b) = pair(|c| c.s2s.bidi = false).await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("external"));
    assert_eq!(method(&a, "b.test"), Some("external"));
}

#[tokio::test]
async fn untrusted_certificates_fall_back_to_dialback() {
    let ca = stranger_ca();
    let (a, b) = pair(move |c| {
        c.s2s.ca_file = Some(ca.clone());
        c.s2s.bidi = false;
    })
    .await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("dialback"));
    assert_eq!(method(&a, "b.test"), Some("dialback"));
}

#[tokio::test]
async fn untrusted_certificates_are_refused_when_valid_ones_are_required() {
    let ca = stranger_ca();
    let (a, _b) = pair(move |c| {
        c.s2s.ca_file = Some(ca.clone());
        c.s2s.require_valid_certificates = true;
    })
    .await;
    let (mut alice, _) = a.login("alice@a.test", "pw-alice").await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let (from, cond, kind) = next_message(&mut alice).await;
    assert_eq!(
        (from.as_str(), cond.as_str(), kind.as_str()),
        ("bob@b.test", "remote-server-not-found", "error")
    );
}

#[tokio::test]
async fn subscription_and_presence_across_domains() {
    use common::im::{is_presence, is_push, roster, send_presence, wait_for};
    use tokio_xmpp::parsers::presence::Type;
    let (a, b) = pair(|_| {}).await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    let (mut bob, bob_jid) = online(&b, "bob@b.test", "pw-bob").await;
    roster(&mut alice).await; // roster pushes go to resources that asked for it (§2.1.6)
    // RFC 6121 §3.1: alice asks, bob (on the other server) sees the request and approves.
    send_presence(&mut alice, Type::Subscribe, "bob@b.test").await;
    wait_for(&mut bob, "subscription request", |s| {
        is_presence(s, Type::Subscribe, "alice@a.test")
    })
    .await;
    send_presence(&mut bob, Type::Subscribed, "alice@a.test").await;
    wait_for(&mut alice, "roster push", |s| {
        is_push(s, "bob@b.test", "to")
    })
    .await;
    // §3.1.5: the new subscriber gets bob's presence, across the federation.
    let p = wait_for(&mut alice, "bob's presence", |s| {
        is_presence(s, Type::None, "bob@b.test")
    })
    .await;
    let tokio_xmpp::Stanza::Presence(p) = p else {
        unreachable!()
    };
    assert_eq!(p.from.unwrap().to_string(), bob_jid);
    // A change of bob's presence is pushed to his remote subscriber (§4.4).
    let away = tokio_xmpp::parsers::presence::Presence::available()
        .with_show(tokio_xmpp::parsers::presence::Show::Away);
    bob.send_stanza(tokio_xmpp::Stanza::Presence(away))
        .await
        .unwrap();
    wait_for(&mut alice, "bob away", |s| {
        matches!(s, tokio_xmpp::Stanza::Presence(p)
            if p.show == Some(tokio_xmpp::parsers::presence::Show::Away))
    })
    .await;
    // A new session of alice probes bob's server (§4.3) and gets his presence back.
    let (mut alice2, _) = online(&a, "alice@a.test", "pw-alice").await;
    wait_for(&mut alice2, "bob's presence after a probe", |s| {
        is_presence(s, Type::None, "bob@b.test")
    })
    .await;
}

#[tokio::test]
async fn a_remote_restart_mid_conversation_loses_nothing_it_accepted() {
    let (a, mut b) = pair(|_| {}).await;
    chat_both_ways(&a, &b).await;
    // b goes away: its streams close; a message now is bounced, not lost.
    b.stop().await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    alice
        .send_stanza(chat("bob@b.test", "while down"))
        .await
        .unwrap();
    // (Skipping what the first session left unacknowledged, delivered again to this one.)
    let (from, cond) = loop {
        let (from, cond, kind) = next_message(&mut alice).await;
        if kind == "error" {
            break (from, cond);
        }
    };
    assert_eq!(
        (from.as_str(), cond.as_str()),
        ("bob@b.test", "remote-server-timeout")
    );
    // b is back (a new port): the conversation goes on over a new stream.
    b.restart().await;
    link(&a, "a.test", &b, "b.test");
    chat_both_ways_tagged(&a, &b, "after the restart").await;
}

#[tokio::test]
async fn a_user_of_another_server_joins_a_room_and_chats() {
    use common::muc::{body_is, instant, join, own, send, wait};
    let (a, b) = pair(|_| {}).await;
    // The room service's domain is reached like any other (a static route here, DNS for real).
    let a_route = a.server().s2s_addrs.plain[0].to_string();
    let b_s2s = b.server().s2s.clone().unwrap();
    assert!(b_s2s.resolver.set_static("conference.a.test", &a_route));
    let room = "lounge@conference.a.test";
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    join(&mut alice, room, "alice", "").await;
    instant(&mut alice, room).await;
    // bob, on b.test, joins the room on a.test: his server carries his presence there and
    // the room's presences, history and subject back.
    let (mut bob, _) = online(&b, "bob@b.test", "pw-bob").await;
    let got = join(&mut bob, room, "bob", "").await;
    let me = own(&got);
    assert_eq!(me.attr("from"), Some("lounge@conference.a.test/bob"));
    wait(&mut alice, "bob's arrival", |e| {
        e.name() == "presence" && e.attr("from") == Some("lounge@conference.a.test/bob")
    })
    .await;
    // Each one's groupchat message reaches the other, through the room.
    send(
        &mut alice,
        &format!("<message to='{room}' type='groupchat'><body>from a</body></message>"),
    )
    .await;
    let m = wait(&mut bob, "alice's message", |e| body_is(e, "from a")).await;
    assert_eq!(m.attr("from"), Some("lounge@conference.a.test/alice"));
    send(
        &mut bob,
        &format!("<message to='{room}' type='groupchat'><body>from b</body></message>"),
    )
    .await;
    let m = wait(&mut alice, "bob's message", |e| body_is(e, "from b")).await;
    assert_eq!(m.attr("from"), Some("lounge@conference.a.test/bob"));
    // bob's own copy comes back to him too (the room echoes to every occupant).
    wait(&mut bob, "bob's echo", |e| body_is(e, "from b")).await;
    // bob leaves: alice sees him go.
    send(
        &mut bob,
        &format!("<presence to='{room}/bob' type='unavailable'/>"),
    )
    .await;
    wait(&mut alice, "bob's departure", |e| {
        e.name() == "presence"
            && e.attr("from") == Some("lounge@conference.a.test/bob")
            && e.attr("type") == Some("unavailable")
    })
    .await;
}

#[tokio::test]
async fn carbons_blocking_and_metrics_work_with_remote_contacts() {
    use common::im::iq;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_xmpp::IqRequest;
    let (a, b) = pair(|_| {}).await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    let (mut alice2, _) = online(&a, "alice@a.test", "pw-alice").await;
    let enable = minidom::Element::builder("enable", "urn:xmpp:carbons:2").build();
    iq(&mut alice2, None, IqRequest::Set(enable)).await.unwrap();
    let (mut bob, _) = online(&b, "bob@b.test", "pw-bob").await;
    // XEP-0280: what alice sends to a remote contact from one device shows on the other.
    alice
        .send_stanza(chat("bob@b.test", "carbon me"))
        .await
        .unwrap();
    message_with(&mut bob, "carbon me").await;
    let sent = loop {
        let s = common::next_stanza(&mut alice2).await;
        let tokio_xmpp::Stanza::Message(m) = s else {
            continue;
        };
        let el: minidom::Element = m.into();
        if el.get_child("sent", "urn:xmpp:carbons:2").is_some() {
            break el;
        }
    };
    assert!(String::from(&sent).contains("carbon me"));
    // XEP-0191: bob blocks alice (a remote JID); her next message comes back as an error
    // across the federation, and bob gets nothing.
    let block = minidom::Element::builder("block", "urn:xmpp:blocking")
        .append(
            minidom::Element::builder("item", "urn:xmpp:blocking")
                .attr(common::im::n("jid"), "alice@a.test")
                .build(),
        )
        .build();
    iq(&mut bob, None, IqRequest::Set(block)).await.unwrap();
    alice
        .send_stanza(chat("bob@b.test", "blocked?"))
        .await
        .unwrap();
    let (from, cond) = loop {
        let (from, got, kind) = next_message(&mut alice).await;
        if kind == "error" {
            break (from, got);
        }
    };
    assert_eq!(
        (from.as_str(), cond.as_str()),
        ("bob@b.test", "service-unavailable")
    );
    // The federation's streams and stanzas are counted in /metrics.
    let mut s = tokio::net::TcpStream::connect(a.server().http_addrs[0])
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    for needle in [
        "xmppd_connections_open{transport=\"s2s_out\"}",
        "xmppd_s2s_stanzas_total{direction=\"out\"}",
        "xmppd_s2s_stanzas_total{direction=\"in\"}",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

#[tokio::test]
async fn idle_streams_close_and_are_made_again_when_needed() {
    let (a, b) = pair(|c| c.s2s.idle_timeout_secs = 1).await;
    chat_both_ways_tagged(&a, &b, "before").await;
    let s2s = a.server().s2s.clone().unwrap();
    assert!(s2s.has_outgoing("b.test"));
    // Bounded wait: the stream closes within a few idle periods.
    let closed = async {
        while s2s.has_outgoing("b.test") {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), closed)
        .await
        .expect("the idle outgoing stream was not closed");
    chat_both_ways_tagged(&a, &b, "after").await;
}

#[tokio::test]
async fn iqs_reach_the_other_server_and_remote_messages_wait_offline() {
    use common::im::iq;
    use tokio_xmpp::IqRequest;
    let (a, b) = pair(|_| {}).await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    // The other server answers for itself: disco#info, version (XEP-0092), time (XEP-0202).
    let info = minidom::Element::builder("query", "http://jabber.org/protocol/disco#info").build();
    let got = iq(&mut alice, Some("b.test"), IqRequest::Get(info))
        .await
        .unwrap()
        .expect("a disco#info answer");
    assert!(
        got.children()
            .any(|i| i.name() == "identity" && i.attr("category") == Some("server")),
        "{}",
        String::from(&got)
    );
    let version = minidom::Element::builder("query", "jabber:iq:version").build();
    let got = iq(&mut alice, Some("b.test"), IqRequest::Get(version))
        .await
        .unwrap()
        .expect("a version answer");
    assert_eq!(
        got.get_child("name", "jabber:iq:version").map(|n| n.text()),
        Some("xmppd".to_string())
    );
    let time = minidom::Element::builder("time", "urn:xmpp:time").build();
    let got = iq(&mut alice, Some("b.test"), IqRequest::Get(time))
        .await
        .unwrap()
        .expect("a time answer");
    assert!(got.get_child("utc", "urn:xmpp:time").is_some());
    // An iq to an account with no session there: service-unavailable from its server.
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    let got = iq(&mut alice, Some("bob@b.test/gone"), IqRequest::Get(ping)).await;
    assert_eq!(got, Err("ServiceUnavailable".to_string()));
    // bob, offline, is written to from the other server: the message waits for him, with
    // its delay stamp, and comes when he logs in.
    alice
        .send_stanza(chat("bob@b.test", "while you were away"))
        .await
        .unwrap();
    // alice's next iq crosses the same stream after the message: once it is answered, the
    // message has been handled by b.test.
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(&mut alice, Some("b.test"), IqRequest::Get(ping))
        .await
        .unwrap();
    let (mut bob, _) = online(&b, "bob@b.test", "pw-bob").await;
    let m = common::muc::wait(&mut bob, "the stored message", |e| {
        e.name() == "message" && e.get_child("body", "jabber:client").is_some()
    })
    .await;
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "while you were away"
    );
    assert!(m.attr("from").unwrap().starts_with("alice@a.test/"));
    assert!(m.get_child("delay", "urn:xmpp:delay").is_some());
}
