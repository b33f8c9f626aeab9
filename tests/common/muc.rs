//! Helpers for the group-chat tests: tokio-xmpp clients sending stanzas written as XML and
//! reading what comes back as elements.

use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::{Client, Stanza};

use super::{TestServer, WAIT, next_stanza};

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const USER: &str = "http://jabber.org/protocol/muc#user";
pub const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const ROOM: &str = "room@conference.localhost";

/// Sends a stanza written as XML (its default namespace is `jabber:client`).
pub async fn send(c: &mut Client, xml: &str) {
    let el: minidom::Element = xml
        .replacen('>', " xmlns='jabber:client'>", 1)
        .replacen("/ xmlns='jabber:client'>", " xmlns='jabber:client'/>", 1)
        .parse()
        .unwrap_or_else(|e| panic!("{xml}: {e}"));
    let stanza = match el.name() {
        "message" => Stanza::Message(Message::try_from(el).unwrap()),
        "presence" => Stanza::Presence(Presence::try_from(el).unwrap()),
        _ => Stanza::Iq(Iq::try_from(el).unwrap()),
    };
    c.send_stanza(stanza).await.unwrap();
}

/// The next stanza as an element.
pub async fn next(c: &mut Client) -> minidom::Element {
    match next_stanza(c).await {
        Stanza::Message(m) => m.into(),
        Stanza::Presence(p) => p.into(),
        Stanza::Iq(i) => i.into(),
    }
}

/// Waits for a stanza for which `pred` holds, skipping others.
pub async fn wait(
    c: &mut Client,
    what: &str,
    pred: impl Fn(&minidom::Element) -> bool,
) -> minidom::Element {
    let fut = async {
        loop {
            let s = next(c).await;
            if pred(&s) {
                return s;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what}"))
}

/// Whether `e` is a message with body `text`.
pub fn body_is(e: &minidom::Element, text: &str) -> bool {
    e.name() == "message" && e.children().any(|c| c.name() == "body" && c.text() == text)
}

/// The status codes in a stanza's `muc#user` payload.
pub fn codes(el: &minidom::Element) -> Vec<String> {
    el.get_child("x", USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>` of a stanza's `muc#user` payload.
pub fn item(el: &minidom::Element) -> minidom::Element {
    el.get_child("x", USER)
        .and_then(|x| x.get_child("item", USER))
        .cloned()
        .unwrap_or_else(|| panic!("no muc#user item in {}", String::from(el)))
}

/// The defined condition of an error stanza.
pub fn condition(el: &minidom::Element) -> String {
    assert_eq!(el.attr("type"), Some("error"), "{}", String::from(el));
    el.get_child("error", "jabber:client")
        .and_then(|e| e.children().next())
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

/// Whether `el` is a presence from `from` (`room/nick`).
pub fn presence_from(el: &minidom::Element, from: &str) -> bool {
    el.name() == "presence" && el.attr("from") == Some(from)
}

/// Joins `room/nick` (with `extra` inside the MUC `<x/>`) and reads up to the subject, the
/// last thing a newcomer gets; returns everything read, the self-presence among it.
pub async fn join(c: &mut Client, room: &str, nick: &str, extra: &str) -> Vec<minidom::Element> {
    send(
        c,
        &format!("<presence to='{room}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>"),
    )
    .await;
    let mut got = Vec::new();
    loop {
        let el = next(c).await;
        let done = el.name() == "message" && el.get_child("subject", "jabber:client").is_some();
        let failed = el.attr("type") == Some("error");
        got.push(el);
        if done || failed {
            return got;
        }
    }
}

/// The self-presence (status 110) among what a join read.
pub fn own(got: &[minidom::Element]) -> minidom::Element {
    got.iter()
        .find(|e| e.name() == "presence" && codes(e).contains(&"110".to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("no self-presence in {got:?}"))
}

/// Pings the server and returns every stanza that came before the answer (the session handles
/// its stanzas in order: what an earlier stanza caused for this client is among them).
pub async fn ping(c: &mut Client) -> Vec<minidom::Element> {
    let id = xmppd::stream::random_id();
    send(
        c,
        &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    let mut before = Vec::new();
    let collect = async {
        loop {
            let e = next(c).await;
            if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
                assert_eq!(e.attr("type"), Some("result"), "ping: {}", String::from(&e));
                return;
            }
            before.push(e);
        }
    };
    tokio::time::timeout(WAIT, collect)
        .await
        .expect("the ping's answer");
    before
}

/// Sends an iq written as XML (with `id='q'`) and returns the answer.
pub async fn ask(c: &mut Client, xml: &str) -> minidom::Element {
    send(c, xml).await;
    let id = attr(xml, "id");
    wait(c, "the iq answer", |e| {
        e.name() == "iq" && e.attr("id") == Some(id.as_str())
    })
    .await
}

fn attr(xml: &str, name: &str) -> String {
    let pat = format!("{name}='");
    let i = xml.find(&pat).expect("the iq has an id") + pat.len();
    xml[i..i + xml[i..].find('\'').unwrap()].to_string()
}

/// Accepts the default configuration (an instant room, §10.1.2).
pub async fn instant(c: &mut Client, room: &str) {
    let r = ask(
        c,
        &format!(
            "<iq type='set' id='instant' to='{room}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

/// Submits configuration fields (`var`, value) as the owner.
pub async fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) -> minidom::Element {
    let mut x = String::new();
    for (var, v) in fields {
        x += &format!("<field var='{var}'><value>{v}</value></field>");
    }
    ask(
        c,
        &format!(
            "<iq type='set' id='cfg' to='{room}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{x}</x></query></iq>"
        ),
    )
    .await
}

/// Creates accounts `names` (password `pw`) and logs each in.
pub async fn users(t: &TestServer, names: &[&str]) -> Vec<Client> {
    let mut v = Vec::new();
    for n in names {
        t.add_user(n, "pw").await;
        v.push(t.login(&format!("{n}@localhost"), "pw").await.0);
    }
    v
}
