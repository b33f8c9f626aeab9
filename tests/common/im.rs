//! Helpers for the instant-messaging tests (tokio-xmpp clients).

use tokio_xmpp::parsers::message::{Lang, Message};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{Client, IqRequest, IqResponse, Stanza};

use super::{TestServer, WAIT, next_stanza};

pub const ROSTER: &str = "jabber:iq:roster";

/// An attribute name for minidom's builder.
pub fn n(s: &str) -> rxml::NcName {
    rxml::NcName::try_from(s).unwrap()
}

pub fn jid(s: &str) -> jid::Jid {
    jid::Jid::new(s).unwrap()
}

pub fn chat(to: &str, body: &str) -> Stanza {
    Stanza::Message(Message::chat(Some(jid(to))).with_body(Lang::default(), body.to_string()))
}

pub fn body(m: &Message) -> String {
    m.bodies.values().next().cloned().unwrap_or_default()
}

pub async fn iq(
    c: &mut Client,
    to: Option<&str>,
    req: IqRequest,
) -> Result<Option<minidom::Element>, String> {
    let token = c.send_iq(to.map(jid), req).await;
    match tokio::time::timeout(WAIT, token).await {
        Ok(Ok(IqResponse::Result(r))) => Ok(r),
        Ok(Ok(IqResponse::Error(e))) => Err(format!("{:?}", e.defined_condition)),
        other => panic!("iq failed: {other:?}"),
    }
}

/// The roster as (jid, subscription, ask) triples, and its version.
pub async fn roster(c: &mut Client) -> (String, Vec<(String, String, bool)>) {
    let q = minidom::Element::builder("query", ROSTER).build();
    let r = iq(c, None, IqRequest::Get(q))
        .await
        .unwrap()
        .expect("a roster query");
    let items = r
        .children()
        .map(|i| {
            (
                i.attr("jid").unwrap().to_string(),
                i.attr("subscription").unwrap().to_string(),
                i.attr("ask") == Some("subscribe"),
            )
        })
        .collect();
    (r.attr("ver").unwrap_or_default().to_string(), items)
}

pub async fn send_presence(c: &mut Client, kind: PresenceType, to: &str) {
    c.send_stanza(Stanza::Presence(Presence::new(kind).with_to(jid(to))))
        .await
        .unwrap();
}

/// Available presence, then a ping so that it has been processed.
pub async fn go_online(c: &mut Client) {
    c.send_stanza(Stanza::Presence(Presence::available()))
        .await
        .unwrap();
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    iq(c, Some("localhost"), IqRequest::Get(ping))
        .await
        .unwrap();
}

/// Waits for a stanza matching `pred`, skipping others.
pub async fn wait_for(c: &mut Client, what: &str, pred: impl Fn(&Stanza) -> bool) -> Stanza {
    let fut = async {
        loop {
            let s = next_stanza(c).await;
            if pred(&s) {
                return s;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what}"))
}

pub fn is_presence(s: &Stanza, kind: PresenceType, from_bare: &str) -> bool {
    matches!(s, Stanza::Presence(p) if p.type_ == kind
        && p.from.as_ref().is_some_and(|f| f.to_bare().as_str() == from_bare))
}

pub fn is_push(s: &Stanza, contact: &str, subscription: &str) -> bool {
    let Stanza::Iq(iq) = s else { return false };
    let el: minidom::Element = iq.clone().into();
    el.attr("type") == Some("set")
        && el.get_child("query", ROSTER).is_some_and(|q| {
            q.children().any(|i| {
                i.attr("jid") == Some(contact) && i.attr("subscription") == Some(subscription)
            })
        })
}

/// Makes two local accounts mutual contacts (`both`) in the store, as after a handshake.
pub async fn befriend(t: &TestServer, a: &str, b: &str) {
    for (user, contact) in [(a, b), (b, a)] {
        let mut item = xmppd::storage::RosterItem::new(format!("{contact}@localhost"));
        item.subscription = xmppd::storage::Subscription::Both;
        t.server()
            .storage
            .rosters
            .put("localhost", user, &item)
            .await
            .unwrap();
    }
}
