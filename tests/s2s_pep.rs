//! Personal eventing (XEP-0163) across federation: alice on `a.test` publishes, bob on
//! `b.test` (a contact with a mutual subscription) follows her nick through his client's
//! entity capabilities, which `a.test` learns by asking his client through `b.test`. He gets
//! the last item when his client comes online, and each new item as it is published.

mod common;

use common::TestServer;
use common::muc::wait;
use common::pep::*;
use common::s2s::{online, pair};

fn nick(text: &str) -> String {
    format!("<nick xmlns='{NICK}'>{text}</nick>")
}

/// The (item id, text, delayed) of a nick event from `from`.
fn nick_event(e: &minidom::Element, from: &str) -> Option<(String, String, bool)> {
    if e.attr("from") != Some(from) || e.attr("type") != Some("headline") {
        return None;
    }
    let items = e.get_child("event", EVENT)?.get_child("items", EVENT)?;
    if items.attr("node") != Some(NICK) {
        return None;
    }
    let item = items.get_child("item", EVENT)?;
    Some((
        item.attr("id")?.to_string(),
        item.get_child("nick", NICK)?.text(),
        e.get_child("delay", "urn:xmpp:delay").is_some(),
    ))
}

/// bob's client shows its capabilities and answers the questions of both servers about them
/// (its own and alice's, which may come in either order).
async fn online_answering_both_servers(bob: &mut tokio_xmpp::Client, features: &[&str]) {
    online_with_caps_at(bob, "b.test", features, false, features).await;
    let mut askers = vec![
        answer_caps(bob, features, features).await,
        answer_caps(bob, features, features).await,
    ];
    askers.sort();
    assert_eq!(askers, ["a.test", "b.test"]);
}

/// The (item id, text, delayed) of the next nick event from alice that `c` receives.
async fn next_nick_of_alice(
    c: &mut tokio_xmpp::Client,
    what: &str,
) -> Option<(String, String, bool)> {
    let ev = wait(c, what, |e| nick_event(e, "alice@a.test").is_some()).await;
    nick_event(&ev, "alice@a.test")
}

/// alice and bob see each other's presence, as after subscriptions both ways.
async fn befriend_across(a: &TestServer, b: &TestServer) {
    for (t, host, user, contact) in [
        (a, "a.test", "alice", "bob@b.test"),
        (b, "b.test", "bob", "alice@a.test"),
    ] {
        let mut item = xmppd::storage::RosterItem::new(contact);
        item.subscription = xmppd::storage::Subscription::Both;
        t.server()
            .storage
            .rosters
            .put(host, user, &item)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_remote_contact_follows_a_node_by_capabilities() {
    let (a, b) = pair(|_| {}).await;
    befriend_across(&a, &b).await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    let r = publish(&mut alice, NICK, "n1", &nick("Ali"), &[]).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));

    // bob's client comes online on b.test; its server learns its capabilities, and alice's
    // server does, through b.test (a second question to the same client).
    let (mut bob, _) = b.login("bob@b.test", "pw-bob").await;
    let wants = [&format!("{NICK}+notify"), "urn:xmpp:ping"];
    online_answering_both_servers(&mut bob, &wants).await;

    // The last item, stamped with when it was published.
    assert_eq!(
        next_nick_of_alice(&mut bob, "alice's last nick").await,
        Some(("n1".into(), "Ali".into(), true))
    );

    // A new item is pushed as it is published.
    let r = publish(&mut alice, NICK, "n2", &nick("Alice"), &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(
        next_nick_of_alice(&mut bob, "alice's new nick").await,
        Some(("n2".into(), "Alice".into(), false))
    );

    // bob may read the node across the federation too (presence access: he is subscribed).
    let got = items(&mut bob, "alice@a.test", NICK).await;
    assert_eq!(item_ids(&got), ["n2"], "{}", String::from(&got));
}

#[tokio::test]
async fn a_remote_client_gets_only_the_nodes_it_asks_for() {
    const MOOD: &str = "http://jabber.org/protocol/mood";
    let (a, b) = pair(|_| {}).await;
    befriend_across(&a, &b).await;
    let (mut alice, _) = online(&a, "alice@a.test", "pw-alice").await;
    let mood = format!("<mood xmlns='{MOOD}'><happy/></mood>");
    let r = publish(&mut alice, MOOD, "m1", &mood, &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    // bob's client follows moods, not nicks.
    let (mut bob, _) = b.login("bob@b.test", "pw-bob").await;
    let wants = [&format!("{MOOD}+notify"), "urn:xmpp:ping"];
    online_answering_both_servers(&mut bob, &wants).await;
    // The last mood tells that alice's server knows bob's client by now.
    let ev = wait(&mut bob, "alice's last mood", |e| {
        e.get_child("event", EVENT).is_some()
    })
    .await;
    let items = ev
        .get_child("event", EVENT)
        .unwrap()
        .get_child("items", EVENT)
        .unwrap();
    assert_eq!(items.attr("node"), Some(MOOD));
    // A nick is not sent to him: the chat message sent after it on the same stream arrives
    // with no event before it.
    let r = publish(&mut alice, NICK, "n1", &nick("Ali"), &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    common::muc::send(
        &mut alice,
        "<message to='bob@b.test' type='chat'><body>after</body></message>",
    )
    .await;
    let m = wait(&mut bob, "the message or an event", |e| {
        e.name() == "message"
            && e.attr("from")
                .is_some_and(|f| f.starts_with("alice@a.test"))
    })
    .await;
    assert!(
        m.get_child("event", EVENT).is_none(),
        "{}",
        String::from(&m)
    );
}
