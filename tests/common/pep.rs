//! Helpers for the PEP tests (XEP-0163): a client that shows entity capabilities (XEP-0115,
//! hashed by xmpp-parsers) and answers the server's question about them, and pubsub requests
//! written as XML.

use std::collections::BTreeSet;

use tokio_xmpp::Client;
use tokio_xmpp::parsers::caps::{compute_disco, hash_caps};
use tokio_xmpp::parsers::disco::{DiscoInfoResult, Identity};
use tokio_xmpp::parsers::hashes::Algo;

use super::muc::{ask, send, wait};

pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NICK: &str = "http://jabber.org/protocol/nick";
const INFO: &str = "http://jabber.org/protocol/disco#info";

/// The caps `ver` of a client with `features` (and identity client/pc "t").
pub fn ver_of(features: &[&str]) -> String {
    let disco = DiscoInfoResult {
        node: None,
        identities: vec![Identity {
            category: "client".into(),
            type_: "pc".into(),
            lang: None,
            name: Some("t".into()),
        }],
        features: features
            .iter()
            .map(|f| f.to_string())
            .collect::<BTreeSet<_>>(),
        extensions: vec![],
    };
    hash_caps(&compute_disco(&disco), Algo::Sha_1)
        .unwrap()
        .to_base64()
}

/// Sends available presence with the capabilities of `features` and, when the server does
/// not know them yet (`asked`), answers its disco#info with `answered` features (the same,
/// unless a test lies).
pub async fn online_with_caps(c: &mut Client, features: &[&str], asked: bool, answered: &[&str]) {
    online_with_caps_at(c, "localhost", features, asked, answered).await
}

/// [`online_with_caps`] for an account of `domain`.
pub async fn online_with_caps_at(
    c: &mut Client,
    domain: &str,
    features: &[&str],
    asked: bool,
    answered: &[&str],
) {
    let ver = ver_of(features);
    send(
        c,
        &format!(
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://xmppd.test' ver='{ver}'/></presence>"
        ),
    )
    .await;
    if !asked {
        return;
    }
    let asker = answer_caps(c, features, answered).await;
    assert_eq!(asker, domain);
    // The session handles its stanzas in order: once the ping is answered, so is the question.
    let pong = ask(
        c,
        &format!("<iq type='get' id='caps-ping' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert_eq!(pong.attr("type"), Some("result"));
}

/// Waits for a disco#info question about the capabilities of `features` and answers it with
/// `answered` features; returns who asked.
pub async fn answer_caps(c: &mut Client, features: &[&str], answered: &[&str]) -> String {
    let ver = ver_of(features);
    let q = wait(c, "a disco#info about our capabilities", |e| {
        e.name() == "iq" && e.attr("type") == Some("get") && e.get_child("query", INFO).is_some()
    })
    .await;
    let node = q
        .get_child("query", INFO)
        .unwrap()
        .attr("node")
        .unwrap_or_default()
        .to_string();
    assert_eq!(node, format!("https://xmppd.test#{ver}"));
    let asker = q.attr("from").unwrap().to_string();
    let mut reply = format!(
        "<iq type='result' id='{}' to='{asker}'><query xmlns='{INFO}' node='{node}'><identity category='client' type='pc' name='t'/>",
        q.attr("id").unwrap(),
    );
    for f in answered {
        reply += &format!("<feature var='{f}'/>");
    }
    reply += "</query></iq>";
    send(c, &reply).await;
    asker
}

/// Publishes `payload` as item `id` of `node` (with publish-options `options`: var, value).
pub async fn publish(
    c: &mut Client,
    node: &str,
    id: &str,
    payload: &str,
    options: &[(&str, &str)],
) -> minidom::Element {
    let mut opts = String::new();
    if !options.is_empty() {
        opts = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>".into();
        for (var, v) in options {
            opts += &format!("<field var='{var}'><value>{v}</value></field>");
        }
        opts += "</x></publish-options>";
    }
    ask(
        c,
        &format!(
            "<iq type='set' id='pub-{id}'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'>{payload}</item></publish>{opts}</pubsub></iq>"
        ),
    )
    .await
}

/// The items of `owner`'s `node` (or the error).
pub async fn items(c: &mut Client, owner: &str, node: &str) -> minidom::Element {
    ask(
        c,
        &format!(
            "<iq type='get' id='items-{node}' to='{owner}'><pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
        ),
    )
    .await
}

/// The item ids in an items answer.
pub fn item_ids(answer: &minidom::Element) -> Vec<String> {
    answer
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.children()
                .filter_map(|c| c.attr("id").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The (condition, pubsub-specific condition) of an error answer.
pub fn errors(answer: &minidom::Element) -> (String, String) {
    let e = answer
        .children()
        .find(|c| c.name() == "error")
        .unwrap_or_else(|| panic!("no error in {}", String::from(answer)));
    let mut names = e.children().map(|c| (c.ns(), c.name().to_string()));
    let mut general = String::new();
    let mut specific = String::new();
    for (ns, name) in names.by_ref() {
        if ns == "http://jabber.org/protocol/pubsub#errors" {
            specific = name;
        } else if ns == "urn:ietf:params:xml:ns:xmpp-stanzas" && name != "text" {
            general = name;
        }
    }
    (general, specific)
}
