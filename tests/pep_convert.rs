//! The forms older clients read, kept in step with PEP, against the real server with
//! tokio-xmpp clients: avatars between PEP (XEP-0084) and the vCard (XEP-0153, XEP-0398) with
//! the photo's hash added to presence, and bookmarks between XEP-0402, private XML and the
//! `storage:bookmarks` node (XEP-0411, XEP-0402 `#compat`).

mod common;

use base64::Engine;
use common::TestServer;
use common::im::befriend;
use common::muc::{ask, ping, send, users, wait};
use common::pep::*;
use sha1::Digest;

const DATA: &str = "urn:xmpp:avatar:data";
const META: &str = "urn:xmpp:avatar:metadata";
const VCARD: &str = "vcard-temp";
const UPDATE: &str = "vcard-temp:x:update";
const BM: &str = "urn:xmpp:bookmarks:1";
const LEGACY: &str = "storage:bookmarks";

fn sha1_hex(b: &[u8]) -> String {
    sha1::Sha1::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn event_items(e: &minidom::Element, node: &str) -> Option<minidom::Element> {
    let ev = e.get_child("event", EVENT)?;
    ev.children()
        .find(|c| c.attr("node") == Some(node))
        .cloned()
}

/// The photo of `who`'s vCard: (type, image), if any.
async fn vcard_photo(c: &mut tokio_xmpp::Client, who: &str) -> Option<(String, Vec<u8>)> {
    let r = ask(
        c,
        &format!("<iq type='get' id='vc' to='{who}'><vCard xmlns='{VCARD}'/></iq>"),
    )
    .await;
    let p = r.get_child("vCard", VCARD)?.get_child("PHOTO", VCARD)?;
    let kind = p.get_child("TYPE", VCARD)?.text();
    let bin = p.get_child("BINVAL", VCARD)?.text();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(bin.split_whitespace().collect::<String>())
        .unwrap();
    Some((kind, bytes))
}

/// The `<photo/>` of a presence's `vcard-temp:x:update`, if any.
fn photo_of(p: &minidom::Element) -> Option<String> {
    Some(p.get_child("x", UPDATE)?.get_child("photo", UPDATE)?.text())
}

#[tokio::test]
async fn avatars_convert_between_pep_and_the_vcard_and_ride_on_presence() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice", "bob"]).await;
    let (mut bob, mut alice) = (u.pop().unwrap(), u.pop().unwrap());
    befriend(&t, "alice", "bob").await;
    let wants = [format!("{META}+notify")];
    let wants: Vec<&str> = wants.iter().map(String::as_str).collect();
    online_with_caps(&mut bob, &wants, true, &wants).await;

    let info = ask(
        &mut alice,
        "<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = info.children().next().unwrap();
    for f in [
        "urn:xmpp:pep-vcard-conversion:0",
        "urn:xmpp:bookmarks-conversion:0",
        "urn:xmpp:bookmarks:1#compat",
    ] {
        assert!(q.children().any(|c| c.attr("var") == Some(f)), "{f}");
    }

    // PEP to vCard: Alice's client publishes data, then metadata.
    let img: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = sha1_hex(&img);
    let data = format!("<data xmlns='{DATA}'>{}</data>", b64(&img));
    let r = publish(&mut alice, DATA, &id, &data, &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    let meta = format!(
        "<metadata xmlns='{META}'><info id='{id}' bytes='{}' type='image/png'/><info id='other' type='image/png' url='https://example.org/a.png'/></metadata>",
        img.len()
    );
    let r = publish(&mut alice, META, &id, &meta, &[]).await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(
        vcard_photo(&mut bob, "alice@localhost").await,
        Some(("image/png".into(), img.clone()))
    );
    // Her presence carries the hash, also when her client put an empty <x/> there; a <photo/>
    // of the client's own stays as it is.
    send(
        &mut alice,
        &format!("<presence><x xmlns='{UPDATE}'/></presence>"),
    )
    .await;
    let p = wait(&mut bob, "Alice's presence", |e| {
        e.name() == "presence" && e.attr("from").is_some_and(|f| f.starts_with("alice@"))
    })
    .await;
    assert_eq!(photo_of(&p).as_deref(), Some(id.as_str()));
    send(
        &mut alice,
        &format!("<presence><show>away</show><x xmlns='{UPDATE}'><photo/></x></presence>"),
    )
    .await;
    let p = wait(&mut bob, "Alice's next presence", |e| {
        e.name() == "presence" && e.get_child("show", "jabber:client").is_some()
    })
    .await;
    assert_eq!(photo_of(&p).as_deref(), Some(""));

    // vCard to PEP: a client that only knows vCards sets a new photo; Bob's client hears of
    // the new avatar and fetches its image from PEP.
    let img2: Vec<u8> = (0..500u32).map(|i| (i % 13) as u8).collect();
    let id2 = sha1_hex(&img2);
    let r = ask(
        &mut alice,
        &format!(
            "<iq type='set' id='set'><vCard xmlns='{VCARD}'><FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard></iq>",
            b64(&img2)
        ),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let ev = wait(&mut bob, "the new avatar", |e| {
        event_items(e, META).is_some_and(|i| String::from(&i).contains(&id2))
    })
    .await;
    let items = event_items(&ev, META).unwrap();
    let info = items.children().next().unwrap().children().next().unwrap();
    let info = info.children().next().unwrap();
    assert_eq!(info.attr("id"), Some(id2.as_str()));
    assert_eq!(info.attr("type"), Some("image/jpeg"));
    assert_eq!(info.attr("bytes"), Some("500"));
    let got = items_of(&mut bob, "alice@localhost", DATA).await;
    assert!(got.contains(&(id2.clone(), b64(&img2))), "{got:?}");
    // The same vCard again publishes nothing new.
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='set2'><vCard xmlns='{VCARD}'><FN>Alice A.</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard></iq>",
            b64(&img2)
        ),
    )
    .await;
    let seen = ping(&mut bob).await;
    assert!(
        !seen.iter().any(|e| event_items(e, META).is_some()),
        "no second event"
    );

    // A vCard without a photo clears the PEP avatar (empty metadata), and presence no longer
    // names one.
    ask(
        &mut alice,
        &format!("<iq type='set' id='set3'><vCard xmlns='{VCARD}'><FN>Alice</FN></vCard></iq>"),
    )
    .await;
    let ev = wait(&mut bob, "no avatar", |e| {
        event_items(e, META).is_some_and(|i| !String::from(&i).contains("info"))
    })
    .await;
    assert!(event_items(&ev, META).is_some());
    send(&mut alice, "<presence><show>dnd</show></presence>").await;
    let p = wait(&mut bob, "Alice's presence", |e| {
        e.name() == "presence"
            && e.get_child("show", "jabber:client")
                .is_some_and(|s| s.text() == "dnd")
    })
    .await;
    assert_eq!(photo_of(&p), None);
}

/// The (id, text) of each item of `owner`'s `node`.
async fn items_of(c: &mut tokio_xmpp::Client, owner: &str, node: &str) -> Vec<(String, String)> {
    let r = items(c, owner, node).await;
    let list = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB));
    list.map(|l| {
        l.children()
            .map(|i| {
                let id = i.attr("id").unwrap_or_default().to_string();
                (
                    id,
                    i.children().next().map(|p| p.text()).unwrap_or_default(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The private XML bookmarks: (jid, name, autojoin, nick) of each conference.
async fn private_bookmarks(c: &mut tokio_xmpp::Client) -> Vec<(String, String, String, String)> {
    let r = ask(
        c,
        &format!("<iq type='get' id='pg'><query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'/></query></iq>"),
    )
    .await;
    let s = r
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", LEGACY))
        .expect("storage");
    s.children()
        .filter(|c| c.name() == "conference")
        .map(|c| {
            let a = |n: &str| c.attr(n).unwrap_or_default().to_string();
            let nick = c
                .get_child("nick", LEGACY)
                .map(|n| n.text())
                .unwrap_or_default();
            (a("jid"), a("name"), a("autojoin"), nick)
        })
        .collect()
}

#[tokio::test]
async fn bookmarks_convert_between_native_pep_private_xml_and_the_legacy_node() {
    let t = TestServer::start(|_| {}).await;
    let mut u = users(&t, &["alice"]).await;
    let mut phone = u.pop().unwrap();
    let (mut old, _) = t.login("alice@localhost/old", "pw").await;
    let wants = [format!("{BM}+notify"), format!("{LEGACY}+notify")];
    let wants: Vec<&str> = wants.iter().map(String::as_str).collect();
    online_with_caps(&mut old, &wants, true, &wants).await;

    // A modern client bookmarks a room (XEP-0402): the older forms have it.
    let conf = format!(
        "<conference xmlns='{BM}' name='Lounge' autojoin='true'><nick>Al</nick></conference>"
    );
    let opts = [
        ("pubsub#access_model", "whitelist"),
        ("pubsub#max_items", "max"),
    ];
    let r = publish(&mut phone, BM, "lounge@conference.localhost", &conf, &opts).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(
        private_bookmarks(&mut phone).await,
        [(
            "lounge@conference.localhost".into(),
            "Lounge".into(),
            "true".into(),
            "Al".into()
        )]
    );
    let ev = wait(&mut old, "the legacy node's event", |e| {
        event_items(e, LEGACY).is_some()
    })
    .await;
    assert!(String::from(&ev).contains("lounge@conference.localhost"));

    // An older client rewrites private XML: the lounge renamed, a new room, a web link. Its
    // own session follows the native node too: the event comes before the answer.
    send(
        &mut old,
        &format!(
            "<iq type='set' id='ps'><query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'>\
             <conference jid='lounge@conference.localhost' name='Living room' autojoin='true'><nick>Al</nick></conference>\
             <conference jid='work@conference.localhost' name='Work' autojoin='false'/>\
             <url name='Site' url='https://example.org/'/></storage></query></iq>"
        ),
    )
    .await;
    wait(&mut old, "the native node's event", |e| {
        event_items(e, BM).is_some_and(|i| String::from(&i).contains("work@conference.localhost"))
    })
    .await;
    let r = wait(&mut old, "the answer", |e| e.attr("id") == Some("ps")).await;
    assert_eq!(r.attr("type"), Some("result"));
    let native = items(&mut phone, "alice@localhost", BM).await;
    let list = String::from(&native);
    assert_eq!(item_ids(&native).len(), 2, "{list}");
    assert!(
        list.contains("Living room") && list.contains("work@conference.localhost"),
        "{list}"
    );

    // The older client drops the lounge: its native item is retracted, the link stays.
    ask(
        &mut old,
        &format!(
            "<iq type='set' id='ps2'><query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'>\
             <conference jid='work@conference.localhost' name='Work' autojoin='false'/>\
             <url name='Site' url='https://example.org/'/></storage></query></iq>"
        ),
    )
    .await;
    let native = items(&mut phone, "alice@localhost", BM).await;
    assert_eq!(item_ids(&native), ["work@conference.localhost"]);

    // The modern client retracts the work room: gone from the older forms, the link kept.
    let r = ask(
        &mut phone,
        &format!("<iq type='set' id='rt'><pubsub xmlns='{PUBSUB}'><retract node='{BM}'><item id='work@conference.localhost'/></retract></pubsub></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(private_bookmarks(&mut phone).await.is_empty());
    let legacy = items(&mut phone, "alice@localhost", LEGACY).await;
    let s = String::from(&legacy);
    assert!(
        s.contains("https://example.org/") && !s.contains("conference.localhost"),
        "{s}"
    );

    // A client of the legacy PEP node (XEP-0048 over PEP) is converted too.
    let storage = format!(
        "<storage xmlns='{LEGACY}'><conference jid='pep@conference.localhost' autojoin='true'/></storage>"
    );
    let r = publish(
        &mut old,
        LEGACY,
        "current",
        &storage,
        &[("pubsub#access_model", "whitelist")],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(
        item_ids(&items(&mut phone, "alice@localhost", BM).await),
        ["pep@conference.localhost"]
    );
    assert_eq!(
        private_bookmarks(&mut phone).await[0].0,
        "pep@conference.localhost"
    );
}
