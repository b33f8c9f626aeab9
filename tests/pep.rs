//! Personal eventing (XEP-0163) against the real server with tokio-xmpp clients whose entity
//! capabilities are hashed by xmpp-parsers: publishing creates a node, contacts that ask for
//! `+notify` get the event and newcomers the last item, access models and publish-options,
//! retract, configure, delete, purge, and every bound.

mod common;

use common::TestServer;
use common::im::befriend;
use common::muc::{ask, ping, users, wait};
use common::pep::*;

fn nick(text: &str) -> String {
    format!("<nick xmlns='{NICK}'>{text}</nick>")
}

fn event_of(e: &minidom::Element, node: &str) -> Option<minidom::Element> {
    let ev = e.get_child("event", EVENT)?;
    ev.children()
        .find(|c| c.attr("node") == Some(node))
        .cloned()
}

#[tokio::test]
async fn contacts_that_want_a_node_get_its_items() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    befriend(&t, "alice", "bob").await;
    // No feature a prefix of another: xmpp-parsers 0.23, which hashes the capabilities here,
    // sorts the features with their '<' appended, so it puts `nick+notify` before `nick`
    // where XEP-0115 §5.1 (and Gajim, slixmpp, this server) put `nick` first. The compliance
    // test covers that case with slixmpp.
    let wants = [&format!("{NICK}+notify"), "urn:xmpp:ping"];

    // The account is a PEP service.
    let info = ask(
        &mut alice,
        "<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = info.children().next().unwrap();
    assert!(q.children().any(|i| i.name() == "identity"
        && i.attr("category") == Some("pubsub")
        && i.attr("type") == Some("pep")));

    online_with_caps(&mut bob, &wants, true, &wants).await;
    online_with_caps(&mut carol, &wants, false, &wants).await;
    let r = publish(&mut alice, NICK, "current", &nick("Ali"), &[]).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));

    // Bob (a contact who asked for +notify) hears of it from Alice's bare JID.
    let ev = wait(&mut bob, "the nick event", |e| event_of(e, NICK).is_some()).await;
    assert_eq!(ev.attr("from"), Some("alice@localhost"));
    assert_eq!(ev.attr("type"), Some("headline"));
    let item = event_of(&ev, NICK).unwrap();
    let item = item.children().next().unwrap();
    assert_eq!(item.attr("id"), Some("current"));
    assert_eq!(item.children().next().unwrap().text(), "Ali");

    // Bob may read the node; Carol, no contact, may not.
    assert_eq!(
        item_ids(&items(&mut bob, "alice@localhost", NICK).await),
        ["current"]
    );
    let refused = items(&mut carol, "alice@localhost", NICK).await;
    assert_eq!(
        errors(&refused),
        (
            "not-authorized".into(),
            "presence-subscription-required".into()
        )
    );

    // Bob's second device comes online later: it gets the last item (its caps are known).
    let (mut bob2, _) = t.login("bob@localhost/two", "pw").await;
    online_with_caps(&mut bob2, &wants, false, &wants).await;
    let last = wait(&mut bob2, "the last item", |e| event_of(e, NICK).is_some()).await;
    assert!(last.get_child("delay", "urn:xmpp:delay").is_some());

    // A retraction is notified; the node is then empty.
    let r = ask(
        &mut alice,
        &format!("<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='{NICK}'><item id='current'/></retract></pubsub></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let ev = wait(&mut bob, "the retraction", |e| {
        event_of(e, NICK).is_some_and(|i| i.children().any(|c| c.name() == "retract"))
    })
    .await;
    assert!(ev.attr("from").is_some());
    assert!(item_ids(&items(&mut alice, "alice@localhost", NICK).await).is_empty());
}

#[tokio::test]
async fn a_client_whose_capabilities_do_not_match_their_hash_gets_nothing() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    befriend(&t, "alice", "bob").await;
    let claimed = [NICK];
    let lie = [NICK, &format!("{NICK}+notify")];
    online_with_caps(&mut bob, &claimed, true, &lie).await;
    for (id, name) in [("1", "A"), ("2", "B")] {
        let r = publish(&mut alice, NICK, id, &nick(name), &[]).await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    // Each publication's notifications were queued before Alice had her answer; Bob's ping
    // then shows everything that came for him, and none of it is an event.
    let got = ping(&mut bob).await;
    assert!(
        !got.iter().any(|e| event_of(e, NICK).is_some()),
        "an unverified client got notifications: {got:?}"
    );
}

#[tokio::test]
async fn publish_options_access_models_and_the_owners_requests() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    befriend(&t, "alice", "bob").await;
    const BM: &str = "urn:xmpp:bookmarks:1";
    let private = [
        ("pubsub#access_model", "whitelist"),
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
    ];
    let bm = |n: &str| format!("<conference xmlns='{BM}' name='{n}' autojoin='true'/>");
    for room in ["a@conference.localhost", "b@conference.localhost"] {
        let r = publish(&mut alice, BM, room, &bm(room), &private).await;
        assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    }
    assert_eq!(
        item_ids(&items(&mut alice, "alice@localhost", BM).await),
        ["a@conference.localhost", "b@conference.localhost"]
    );
    // Whitelist: not even a contact reads it.
    let refused = items(&mut bob, "alice@localhost", BM).await;
    assert_eq!(
        errors(&refused),
        ("not-allowed".into(), "closed-node".into())
    );
    // The account's disco#items lists the nodes the asker may see (XEP-0060 §5.2): Alice
    // all of hers (with the older bookmarks node the server keeps in step), Bob her nickname.
    let r = publish(&mut alice, NICK, "current", &nick("Al"), &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    let nodes = |r: &minidom::Element| -> Vec<String> {
        let q = r
            .get_child("query", "http://jabber.org/protocol/disco#items")
            .unwrap();
        let mut v: Vec<String> = q
            .children()
            .filter_map(|i| i.attr("node").map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let disco = "<iq type='get' id='di' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>";
    assert_eq!(
        nodes(&ask(&mut alice, disco).await),
        ["http://jabber.org/protocol/nick", "storage:bookmarks", BM]
    );
    assert_eq!(
        nodes(&ask(&mut bob, disco).await),
        ["http://jabber.org/protocol/nick"]
    );
    // Different options on the existing node are a failed precondition.
    let r = publish(
        &mut alice,
        BM,
        "c",
        &bm("c"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    assert_eq!(
        errors(&r),
        ("conflict".into(), "precondition-not-met".into())
    );
    // Only the owner publishes.
    let r = ask(
        &mut bob,
        &format!("<iq type='set' id='x' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><publish node='{BM}'><item id='z'>{}</item></publish></pubsub></iq>", bm("z")),
    )
    .await;
    assert_eq!(errors(&r).0, "forbidden");

    // The owner's configuration: read, then max_items 1 keeps the newest.
    let cfg = ask(
        &mut alice,
        &format!(
            "<iq type='get' id='c'><pubsub xmlns='{OWNER}'><configure node='{BM}'/></pubsub></iq>"
        ),
    )
    .await;
    let form = String::from(&cfg);
    assert!(form.contains("whitelist"), "{form}");
    let set = ask(
        &mut alice,
        &format!("<iq type='set' id='c2'><pubsub xmlns='{OWNER}'><configure node='{BM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#max_items'><value>1</value></field></x></configure></pubsub></iq>"),
    )
    .await;
    assert_eq!(set.attr("type"), Some("result"), "{}", String::from(&set));
    assert_eq!(
        item_ids(&items(&mut alice, "alice@localhost", BM).await),
        ["b@conference.localhost"]
    );
    // Purge, then delete; a deleted node is gone.
    for (id, op) in [("pu", "purge"), ("de", "delete")] {
        let r = ask(
            &mut alice,
            &format!(
                "<iq type='set' id='{id}'><pubsub xmlns='{OWNER}'><{op} node='{BM}'/></pubsub></iq>"
            ),
        )
        .await;
        assert_eq!(r.attr("type"), Some("result"), "{op}");
    }
    assert_eq!(
        errors(&items(&mut alice, "alice@localhost", BM).await).0,
        "item-not-found"
    );
}

#[tokio::test]
async fn every_pep_bound_says_no_clearly() {
    let t = TestServer::start(|c| {
        c.pep.max_nodes = 2;
        c.pep.max_items = 3;
        c.pep.max_item_size = 200;
        c.pep.quota_bytes = 300;
    })
    .await;
    let mut alice = users(&t, &["alice"]).await.remove(0);
    let big = format!("<x xmlns='urn:t'>{}</x>", "y".repeat(300));
    let r = publish(&mut alice, "n1", "1", &big, &[]).await;
    assert_eq!(
        errors(&r),
        ("not-acceptable".into(), "payload-too-big".into())
    );
    let r = publish(
        &mut alice,
        "n1",
        "1",
        "<x xmlns='urn:t'/>",
        &[("pubsub#max_items", "4")],
    )
    .await;
    assert_eq!(
        errors(&r),
        ("not-acceptable".into(), "invalid-options".into())
    );
    // max_items 3 ("max"): the fourth item pushes out the first.
    for i in 0..4 {
        let r = publish(
            &mut alice,
            "n1",
            &i.to_string(),
            "<x xmlns='urn:t'/>",
            &[("pubsub#max_items", "max")],
        )
        .await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    assert_eq!(
        item_ids(&items(&mut alice, "alice@localhost", "n1").await),
        ["1", "2", "3"]
    );
    publish(&mut alice, "n2", "1", "<x xmlns='urn:t'/>", &[]).await;
    let r = publish(&mut alice, "n3", "1", "<x xmlns='urn:t'/>", &[]).await;
    assert_eq!(errors(&r).0, "resource-constraint", "max_nodes");
    // The byte quota: items of 150 bytes, until 300 bytes would be held.
    let mid = format!("<x xmlns='urn:t'>{}</x>", "z".repeat(130));
    let mut refused = false;
    for i in 0..6 {
        let r = publish(
            &mut alice,
            "n1",
            &format!("q{i}"),
            &mid,
            &[("pubsub#max_items", "max")],
        )
        .await;
        if r.attr("type") == Some("error") {
            assert_eq!(errors(&r).0, "resource-constraint");
            refused = true;
            break;
        }
    }
    assert!(refused, "the quota was never reached");
}

#[tokio::test]
async fn bookmarks_reach_the_accounts_other_device_which_joins_the_room() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice"]).await;
    let mut phone = u.pop().unwrap();
    let (mut laptop, _) = t.login("alice@localhost/laptop", "pw").await;
    const BM: &str = "urn:xmpp:bookmarks:1";
    let notify = format!("{BM}+notify");
    let wants = [notify.as_str()];
    online_with_caps(&mut laptop, &wants, true, &wants).await;
    // The phone creates a room and bookmarks it, privately, to join automatically.
    common::muc::join(&mut phone, "lounge@conference.localhost", "Ali", "").await;
    common::muc::instant(&mut phone, "lounge@conference.localhost").await;
    let bm = format!(
        "<conference xmlns='{BM}' name='Lounge' autojoin='true'><nick>Laptop</nick></conference>"
    );
    let r = publish(
        &mut phone,
        BM,
        "lounge@conference.localhost",
        &bm,
        &[
            ("pubsub#access_model", "whitelist"),
            ("pubsub#max_items", "max"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    // The laptop hears of it (its own account's node), and does what a client does with an
    // autojoin bookmark: it enters the room under the bookmark's nick.
    let ev = wait(&mut laptop, "the bookmark", |e| event_of(e, BM).is_some()).await;
    let item = event_of(&ev, BM).unwrap();
    let item = item.children().next().unwrap();
    let room = item.attr("id").unwrap().to_string();
    let conf = item.children().next().unwrap();
    assert_eq!(conf.attr("autojoin"), Some("true"));
    let nick = conf.children().find(|c| c.name() == "nick").unwrap().text();
    let got = common::muc::join(&mut laptop, &room, &nick, "").await;
    let me = common::muc::own(&got);
    assert_eq!(me.attr("from"), Some(format!("{room}/Laptop").as_str()));
}

#[tokio::test]
async fn anyone_who_may_see_a_node_subscribes_to_it_by_name() {
    let t = TestServer::start(|c| c.pep.max_subscribers = 1).await;
    let mut u = users(&t, &["alice", "carol", "dave"]).await;
    let (mut dave, mut carol, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    const DL: &str = "urn:xmpp:omemo:2:devices";
    let devices =
        |id: &str| format!("<devices xmlns='urn:xmpp:omemo:2'><device id='{id}'/></devices>");
    let r = publish(
        &mut alice,
        DL,
        "current",
        &devices("1"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    publish(&mut alice, NICK, "current", &nick("Al"), &[]).await;
    // Carol is no contact and announces no capabilities: she subscribes by name.
    common::muc::send(&mut carol, "<presence/>").await;
    let sub = |node: &str, jid: &str| {
        format!(
            "<iq type='set' id='s' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='{jid}'/></pubsub></iq>"
        )
    };
    let r = ask(&mut carol, &sub(DL, "carol@localhost")).await;
    let s = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("subscription", PUBSUB)
        .unwrap();
    assert_eq!(s.attr("subscription"), Some("subscribed"));
    // Not for someone else, not to a node she may not see.
    assert_eq!(
        errors(&ask(&mut carol, &sub(DL, "dave@localhost")).await),
        ("bad-request".into(), "invalid-jid".into())
    );
    assert_eq!(
        errors(&ask(&mut carol, &sub(NICK, "carol@localhost")).await),
        (
            "not-authorized".into(),
            "presence-subscription-required".into()
        )
    );
    // The node takes one subscriber here (pep.max_subscribers).
    assert_eq!(
        errors(&ask(&mut dave, &sub(DL, "dave@localhost")).await),
        ("policy-violation".into(), "too-many-subscriptions".into())
    );
    let list = ask(
        &mut carol,
        &format!("<iq type='get' id='l' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><subscriptions/></pubsub></iq>"),
    )
    .await;
    assert!(String::from(&list).contains(DL), "{}", String::from(&list));

    // A new device list reaches her.
    publish(
        &mut alice,
        DL,
        "current",
        &devices("2"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    let ev = wait(&mut carol, "the new device list", |e| {
        event_of(e, DL).is_some()
    })
    .await;
    assert!(String::from(&ev).contains("id=\"2\"") || String::from(&ev).contains("id='2'"));

    // Unsubscribed, she hears nothing more; a second unsubscribe is unexpected.
    let unsub = format!(
        "<iq type='set' id='u' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><unsubscribe node='{DL}' jid='carol@localhost'/></pubsub></iq>"
    );
    assert_eq!(ask(&mut carol, &unsub).await.attr("type"), Some("result"));
    assert_eq!(
        errors(&ask(&mut carol, &unsub).await),
        ("unexpected-request".into(), "not-subscribed".into())
    );
    publish(
        &mut alice,
        DL,
        "current",
        &devices("3"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    ping(&mut alice).await;
    let seen = ping(&mut carol).await;
    assert!(
        !seen.iter().any(|e| event_of(e, DL).is_some()),
        "no event after unsubscribing"
    );

    // Subscribed again, she hears of the node's deletion, which ends the subscription.
    assert_eq!(
        ask(&mut carol, &sub(DL, "carol@localhost"))
            .await
            .attr("type"),
        Some("result")
    );
    let del = format!(
        "<iq type='set' id='del' to='alice@localhost'><pubsub xmlns='{OWNER}'><delete node='{DL}'/></pubsub></iq>"
    );
    assert_eq!(ask(&mut alice, &del).await.attr("type"), Some("result"));
    wait(&mut carol, "the deletion", |e| {
        event_of(e, DL).is_some_and(|d| d.name() == "delete")
    })
    .await;
    let list = ask(
        &mut carol,
        &format!("<iq type='get' id='l2' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><subscriptions/></pubsub></iq>"),
    )
    .await;
    assert!(!String::from(&list).contains(DL), "{}", String::from(&list));
}
