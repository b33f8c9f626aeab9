//! Presence fan-out as the profile of the presence benchmark shaped it: the stanza is
//! serialised once and each recipient's session splices in its own `to` (a client without
//! stream management gets those bytes; one with it gets an element its session keeps for the
//! acks), the sender's roster comes from the roster cache, and blocking filters the roster in
//! both directions. Run with the cache off, at one entry (emptied at every other read) and at
//! its default, with a roster change and blocks made while everyone is online.

mod common;

use common::im::*;
use common::*;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{Client, IqRequest};

/// The start tag of the first `<presence` in `s` that contains `needle`.
fn presence_with<'a>(s: &'a str, needle: &str) -> &'a str {
    let at = s
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {s}"));
    let start = s[..at].rfind("<presence").expect("a presence");
    &s[start..=start + s[start..].find('>').unwrap()]
}

fn blocking(kind: &str, jid: &str) -> IqRequest {
    IqRequest::Set(
        minidom::Element::builder(kind, "urn:xmpp:blocking")
            .append(minidom::Element::builder("item", "urn:xmpp:blocking").attr(n("jid"), jid))
            .build(),
    )
}

async fn set_priority(c: &mut Client, prio: i8) {
    c.send_stanza(Stanza::Presence(Presence::available().with_priority(prio)))
        .await
        .unwrap();
}

fn priority_of(s: &Stanza) -> i8 {
    match s {
        Stanza::Presence(p) => p.priority.0,
        _ => unreachable!(),
    }
}

async fn fan_out_with_roster_cache(roster_cache: usize) {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.storage.roster_cache = roster_cache;
    })
    .await;
    for u in ["alice", "bob", "carol", "dave"] {
        t.add_user(u, "pw").await;
    }
    for contact in ["bob", "carol", "dave"] {
        befriend(&t, "alice", contact).await;
    }
    // Bob: no stream management (the shared bytes as they are). Carol: stream management
    // (her session keeps an element per stanza). Dave: tokio-xmpp.
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "r").await;
    bob.send("<presence/>").await;
    bob.read_until("from='bob@localhost/r'").await;
    let mut carol = t.raw().await;
    carol.login("carol", "pw", "r").await;
    carol.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    carol.read_until("<enabled").await;
    carol.send("<presence/>").await;
    carol.read_until("from='carol@localhost/r'").await;
    let (mut dave, _) = t.login("dave@localhost/d", "pw").await;
    go_online(&mut dave).await;
    let (mut alice, _) = t.login("alice@localhost/a", "pw").await;
    go_online(&mut alice).await;

    // Each gets Alice's presence addressed to itself.
    for (raw, who) in [(&mut bob, "bob"), (&mut carol, "carol")] {
        let got = raw.read_until("from='alice@localhost/a'").await;
        let tag = presence_with(&got, "from='alice@localhost/a'");
        assert_eq!(
            attr_of(tag, "presence", "to").as_deref(),
            Some(&*format!("{who}@localhost")),
            "{tag}"
        );
    }
    let first = wait_for(&mut dave, "alice online", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    assert_eq!(priority_of(&first), 0);

    // While everyone is online: Alice removes Carol from her roster, and Dave blocks Alice.
    let remove = minidom::Element::builder("query", ROSTER)
        .append(
            minidom::Element::builder("item", ROSTER)
                .attr(n("jid"), "carol@localhost")
                .attr(n("subscription"), "remove"),
        )
        .build();
    iq(&mut alice, None, IqRequest::Set(remove)).await.unwrap();
    carol.read_until("type='unavailable'").await;
    iq(&mut dave, None, blocking("block", "alice@localhost"))
        .await
        .unwrap();

    // Alice's next presence reaches Bob, neither Carol (no longer a contact) nor Dave (who
    // blocked her). Carol's proof: the message Alice sends right after it comes first.
    set_priority(&mut alice, 5).await;
    alice
        .send_stanza(chat("carol@localhost/r", "after-5"))
        .await
        .unwrap();
    let got = bob.read_until("<priority>5</priority>").await;
    let tag = presence_with(&got, "from='alice@localhost/a'");
    assert_eq!(
        attr_of(tag, "presence", "to").as_deref(),
        Some("bob@localhost")
    );
    let got = carol.read_until("after-5").await;
    assert!(
        !got.contains("<priority>5</priority>"),
        "Carol got Alice's presence after the removal: {got}"
    );

    // Dave's proof: after he unblocks her, the first presence of Alice's he sees is the next
    // one (priority 7), not the one sent while she was blocked (priority 5).
    iq(&mut dave, None, blocking("unblock", "alice@localhost"))
        .await
        .unwrap();
    set_priority(&mut alice, 7).await;
    let next = wait_for(&mut dave, "alice again", |s| {
        is_presence(s, PresenceType::None, "alice@localhost")
    })
    .await;
    assert_eq!(
        priority_of(&next),
        7,
        "a presence sent while blocked reached Dave"
    );

    // Alice leaves: Bob and Dave see her go; her last session took her cached roster along.
    alice.send_end().await.unwrap();
    bob.read_until("type='unavailable'").await;
    wait_for(&mut dave, "alice unavailable", |s| {
        is_presence(s, PresenceType::Unavailable, "alice@localhost")
    })
    .await;
}

#[tokio::test]
async fn fan_out_without_a_roster_cache() {
    fan_out_with_roster_cache(0).await;
}

#[tokio::test]
async fn fan_out_with_a_roster_cache_of_one() {
    fan_out_with_roster_cache(1).await;
}

#[tokio::test]
async fn fan_out_with_the_default_roster_cache() {
    fan_out_with_roster_cache(xmppd::config::StorageConfig::default().roster_cache).await;
}
