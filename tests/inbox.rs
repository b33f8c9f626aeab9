//! The inbox (XEP-0430) against the real server with tokio-xmpp clients: unread counts per
//! conversation kept as messages arrive, read by a chat marker from a second device (also
//! one naming a message that is not the newest), by answering, by a reset; the newest message
//! of each conversation; RSM pages; a room counted from its own archive (read diffusion).

mod common;

use common::TestServer;
use common::archive::{MAM, RSM, stanza_id};
use common::im::go_online;
use common::muc::{ROOM, ask, body_is, instant, join, next, ping, send, users, wait};
use tokio_xmpp::Client;

const INBOX: &str = "urn:xmpp:inbox:1";
const MARKERS: &str = "urn:xmpp:chat-markers:0";

/// One conversation as the inbox listed it.
#[derive(Debug)]
struct Entry {
    jid: String,
    unread: u32,
    /// The body of the newest message, when it came with the entry.
    last_body: Option<String>,
}

/// Asks for the inbox (attributes `attrs`, RSM `set` inner XML) and collects the entries up to
/// the iq result, which it returns too.
async fn inbox(c: &mut Client, attrs: &str, set: &str) -> (Vec<Entry>, minidom::Element) {
    let set = if set.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='{RSM}'>{set}</set>")
    };
    let id = xmppd::stream::random_id();
    send(
        c,
        &format!("<iq type='get' id='{id}'><inbox xmlns='{INBOX}' {attrs}>{set}</inbox></iq>"),
    )
    .await;
    let mut entries = Vec::new();
    loop {
        let e = next(c).await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            return (entries, e);
        }
        let Some(entry) = e.get_child("entry", INBOX) else {
            continue;
        };
        let last_body = e.get_child("result", MAM).map(|r| {
            assert_eq!(r.attr("queryid"), Some(id.as_str()));
            assert_eq!(
                r.attr("id"),
                entry.attr("id"),
                "the newest message is the entry's id"
            );
            let m = r.get_child("forwarded", "urn:xmpp:forward:0").unwrap();
            let m = m.get_child("message", "jabber:client").unwrap();
            m.get_child("body", "jabber:client").unwrap().text()
        });
        entries.push(Entry {
            jid: entry.attr("jid").unwrap().to_string(),
            unread: entry.attr("unread").unwrap().parse().unwrap(),
            last_body,
        });
    }
}

fn counts(e: &[Entry]) -> Vec<(&str, u32)> {
    e.iter().map(|e| (e.jid.as_str(), e.unread)).collect()
}

fn fin(iq: &minidom::Element) -> (String, String, String) {
    let f = iq.get_child("fin", INBOX).expect("fin");
    let a = |n: &str| f.attr(n).unwrap().to_string();
    (a("total"), a("unread"), a("all-unread"))
}

fn displayed(to: &str, kind: &str, id: &str) -> String {
    format!("<message to='{to}' type='{kind}'><displayed xmlns='{MARKERS}' id='{id}'/></message>")
}

#[tokio::test]
async fn unread_counts_are_read_by_markers_from_another_device_and_by_answers() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    go_online(&mut bob).await;
    let (mut phone, _) = t.login("bob@localhost/phone", "pw").await;

    let info = ask(
        &mut bob,
        "<iq type='get' id='d' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = info.children().next().unwrap();
    assert!(q.children().any(|c| c.attr("var") == Some(INBOX)));

    for i in 0..5 {
        send(
            &mut alice,
            &format!(
                "<message type='chat' id='a{i}' to='bob@localhost'><body>a{i}</body></message>"
            ),
        )
        .await;
    }
    ping(&mut alice).await;
    for i in 0..2 {
        send(
            &mut carol,
            &format!(
                "<message type='chat' id='c{i}' to='bob@localhost'><body>c{i}</body></message>"
            ),
        )
        .await;
    }
    // A chat state and a receipt alone are no unread messages.
    send(
        &mut carol,
        "<message type='chat' to='bob@localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await;
    ping(&mut carol).await;

    let (list, iq) = inbox(&mut bob, "", "").await;
    assert_eq!(
        counts(&list),
        [("carol@localhost", 2), ("alice@localhost", 5)]
    );
    assert_eq!(list[0].last_body.as_deref(), Some("c1"));
    assert_eq!(list[1].last_body.as_deref(), Some("a4"));
    assert_eq!(fin(&iq), ("2".into(), "2".into(), "7".into()));

    // The phone marks a2 displayed (not the newest): a3 and a4 stay unread, on every device.
    send(&mut phone, &displayed("alice@localhost", "chat", "a2")).await;
    ping(&mut phone).await;
    let (list, _) = inbox(&mut bob, "", "").await;
    assert_eq!(counts(&list)[1], ("alice@localhost", 2));
    // A marker naming nothing of the conversation, or something older, changes nothing.
    send(&mut phone, &displayed("alice@localhost", "chat", "nope")).await;
    send(&mut phone, &displayed("alice@localhost", "chat", "a0")).await;
    ping(&mut phone).await;
    let (list, _) = inbox(&mut phone, "messages='false'", "").await;
    assert_eq!(counts(&list)[1], ("alice@localhost", 2));
    assert!(
        list.iter().all(|e| e.last_body.is_none()),
        "messages='false'"
    );

    // Bob answers Carol: her conversation is read, and it is the newest.
    send(
        &mut bob,
        "<message type='chat' to='carol@localhost'><body>hi</body></message>",
    )
    .await;
    ping(&mut bob).await;
    let (list, iq) = inbox(&mut bob, "", "").await;
    assert_eq!(
        counts(&list),
        [("carol@localhost", 0), ("alice@localhost", 2)]
    );
    assert_eq!(list[0].last_body.as_deref(), Some("hi"));
    assert_eq!(fin(&iq), ("2".into(), "1".into(), "2".into()));
    let (list, _) = inbox(&mut bob, "unread-only='true'", "").await;
    assert_eq!(counts(&list), [("alice@localhost", 2)]);

    // Pages of one conversation.
    let (page, iq) = inbox(&mut bob, "", "<max>1</max>").await;
    assert_eq!(counts(&page), [("carol@localhost", 0)]);
    let set = iq
        .get_child("fin", INBOX)
        .unwrap()
        .get_child("set", RSM)
        .unwrap();
    let last = set.get_child("last", RSM).unwrap().text();
    assert_eq!(set.get_child("count", RSM).unwrap().text(), "2");
    let (page, _) = inbox(&mut bob, "", &format!("<max>1</max><after>{last}</after>")).await;
    assert_eq!(counts(&page), [("alice@localhost", 2)]);

    // A marker by the archive's stanza id reads too; then a reset reads all.
    send(
        &mut alice,
        "<message type='chat' id='a5' to='bob@localhost'><body>a5</body></message>",
    )
    .await;
    let got = wait(&mut bob, "a5", |e| body_is(e, "a5")).await;
    let sid = stanza_id(&got, "bob@localhost").expect("stamped");
    let (list, _) = inbox(&mut bob, "", "").await;
    assert_eq!(counts(&list)[0], ("alice@localhost", 3));
    send(&mut phone, &displayed("alice@localhost", "chat", &sid)).await;
    ping(&mut phone).await;
    let (list, _) = inbox(&mut bob, "", "").await;
    assert_eq!(counts(&list)[0], ("alice@localhost", 0));
    let r = ask(
        &mut bob,
        &format!("<iq type='set' id='r'><reset xmlns='{INBOX}' jid='carol@localhost'/></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = ask(
        &mut bob,
        &format!("<iq type='set' id='r2'><reset xmlns='{INBOX}' jid='nobody@localhost'/></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("error"));
    // Nobody reads another account's inbox.
    let r = ask(
        &mut alice,
        &format!("<iq type='get' id='o' to='bob@localhost'><inbox xmlns='{INBOX}'/></iq>"),
    )
    .await;
    assert!(
        String::from(&r).contains("forbidden"),
        "{}",
        String::from(&r)
    );
}

#[tokio::test]
async fn a_room_is_counted_from_its_archive_and_read_by_markers_and_speaking() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob", "carol"]).await;
    let (mut carol, mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap(), u.pop().unwrap());
    join(&mut alice, ROOM, "Alice", "").await;
    instant(&mut alice, ROOM).await;
    join(&mut bob, ROOM, "Bob", "").await;
    join(&mut carol, ROOM, "Carol", "").await;

    let mut sids = Vec::new();
    for (i, body) in ["r0", "r1", "r2"].into_iter().enumerate() {
        send(
            if i == 1 { &mut carol } else { &mut alice },
            &format!("<message type='groupchat' to='{ROOM}'><body>{body}</body></message>"),
        )
        .await;
        let got = wait(&mut bob, body, |e| body_is(e, body)).await;
        sids.push(stanza_id(&got, ROOM).expect("the room stamps its id"));
    }
    // A chat state in the room is passed on, not kept: it is no unread message.
    send(
        &mut carol,
        &format!("<message type='groupchat' to='{ROOM}'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
    )
    .await;
    let got = wait(&mut bob, "the chat state", |e| {
        e.children().any(|c| c.name() == "active")
    })
    .await;
    assert!(stanza_id(&got, ROOM).is_none(), "not kept, so no id");

    let (list, iq) = inbox(&mut bob, "", "").await;
    assert_eq!(counts(&list), [(ROOM, 3)]);
    assert_eq!(list[0].last_body.as_deref(), Some("r2"));
    assert_eq!(fin(&iq), ("1".into(), "1".into(), "3".into()));
    // Bob marks r1 displayed (XEP-0333 in a room: by the room's stanza id).
    send(&mut bob, &displayed(ROOM, "groupchat", &sids[1])).await;
    ping(&mut bob).await;
    assert_eq!(counts(&inbox(&mut bob, "", "").await.0), [(ROOM, 1)]);
    // Alice's own messages are not unread for her, and she spoke after Carol's.
    let (list, _) = inbox(&mut alice, "", "").await;
    assert_eq!(counts(&list), [(ROOM, 0)]);
    // Bob speaks: the room is read for him.
    send(
        &mut bob,
        &format!("<message type='groupchat' to='{ROOM}'><body>me too</body></message>"),
    )
    .await;
    wait(&mut bob, "his own message back", |e| body_is(e, "me too")).await;
    let (list, _) = inbox(&mut bob, "", "").await;
    assert_eq!(counts(&list), [(ROOM, 0)]);
    // What the room passed on but did not keep is not in its archive either.
    let ids: Vec<String> = {
        let a = common::archive::query(&mut bob, ROOM, "", "").await;
        a.bodies()
    };
    assert_eq!(ids, ["r0", "r1", "r2", "me too"]);
}

#[tokio::test]
async fn the_inbox_lists_the_most_recent_conversations_within_its_limits() {
    let t = TestServer::start(|c| {
        c.archive.inbox_conversations = 3;
        c.archive.inbox_page = 2;
        c.archive.inbox_scan = 3;
    })
    .await;
    let names = ["u0", "u1", "u2", "u3", "u4", "zed"];
    let mut u = users(&t, &names).await;
    let mut zed = u.pop().unwrap();
    for (i, c) in u.iter_mut().enumerate() {
        for _ in 0..=i {
            send(
                c,
                "<message type='chat' to='zed@localhost'><body>hello</body></message>",
            )
            .await;
        }
        ping(c).await;
    }
    // Five conversations: the three most recent are listed, two per answer.
    let (page, iq) = inbox(&mut zed, "", "<max>50</max>").await;
    assert_eq!(counts(&page), [("u4@localhost", 5), ("u3@localhost", 4)]);
    assert_eq!(fin(&iq).0, "3");
    let (page, _) = inbox(&mut zed, "", "<after>u3@localhost</after>").await;
    assert_eq!(counts(&page), [("u2@localhost", 3)]);
    // The last page, by RSM <before/>.
    let (page, _) = inbox(&mut zed, "", "<before/>").await;
    assert_eq!(counts(&page), [("u3@localhost", 4), ("u2@localhost", 3)]);
    // A marker is looked for among the inbox_scan (3) newest unread messages only: U4's five
    // messages carry ids m0..m4; one on m0 (too far back) reads nothing, one on m2 reads it
    // and those before it.
    let mut u4 = u.pop().unwrap();
    for i in 0..5 {
        send(
            &mut u4,
            &format!(
                "<message type='chat' id='m{i}' to='zed@localhost'><body>again</body></message>"
            ),
        )
        .await;
    }
    ping(&mut u4).await;
    let unread = |p: &[Entry]| p.iter().find(|e| e.jid == "u4@localhost").map(|e| e.unread);
    assert_eq!(unread(&inbox(&mut zed, "", "").await.0), Some(10));
    send(&mut zed, &displayed("u4@localhost", "chat", "m0")).await;
    ping(&mut zed).await;
    assert_eq!(unread(&inbox(&mut zed, "", "").await.0), Some(10));
    send(&mut zed, &displayed("u4@localhost", "chat", "m2")).await;
    ping(&mut zed).await;
    assert_eq!(unread(&inbox(&mut zed, "", "").await.0), Some(2));
    // A malformed flag is a bad request.
    let r = ask(
        &mut zed,
        &format!("<iq type='get' id='b'><inbox xmlns='{INBOX}' unread-only='maybe'/></iq>"),
    )
    .await;
    assert!(
        String::from(&r).contains("bad-request"),
        "{}",
        String::from(&r)
    );
}
