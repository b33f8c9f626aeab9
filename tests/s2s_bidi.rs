//! Bidirectional server streams (XEP-0288): with both servers offering them, the stream
//! `a.test` makes to `b.test` carries `b.test`'s stanzas back too, and `b.test` makes none.
//! Stanzas on such a stream are checked as on any other, and with stream management what the
//! receiving side sent on it and did not see acknowledged goes out again on a new stream.

mod common;

use common::TestServer;
use common::im::chat;
use common::s2s::*;

fn incoming(s: &TestServer) -> usize {
    s.server().s2s.as_ref().unwrap().incoming_streams()
}

#[tokio::test]
async fn one_connection_carries_both_directions() {
    let (a, b) = pair(|_| {}).await;
    chat_both_ways(&a, &b).await;
    // alice spoke first: a.test connected to b.test, and b.test answered on that stream.
    assert_eq!(method(&b, "a.test"), Some("external"));
    assert_eq!((incoming(&a), incoming(&b)), (0, 1));
    assert_eq!(method(&a, "b.test"), None);
}

#[tokio::test]
async fn with_dialback_too() {
    let ca = stranger_ca();
    let (a, b) = pair(move |c| c.s2s.ca_file = Some(ca.clone())).await;
    chat_both_ways(&a, &b).await;
    assert_eq!(method(&b, "a.test"), Some("dialback"));
    assert_eq!((incoming(&a), incoming(&b)), (0, 1));
}

#[tokio::test]
async fn without_it_each_direction_has_its_own_stream() {
    let (a, b) = pair(|c| c.s2s.bidi = false).await;
    chat_both_ways(&a, &b).await;
    assert_eq!((incoming(&a), incoming(&b)), (1, 1));
}

#[tokio::test]
async fn the_receiving_side_may_send_only_for_the_pair_it_proved() {
    // a.test connects to a hand-played b.test that offers bidirectional streams.
    let (_a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let mut b = accept_as_b(&l, true, true).await;
    b.read_until(">m1<").await;
    // b.test's stanza to alice comes back on a.test's own stream, and is acknowledged.
    b.send("<message from='bob@b.test/phone' to='alice@a.test' type='chat' xmlns='jabber:server'><body>back</body></message><r xmlns='urn:xmpp:sm:3'/>").await;
    let (from, kind) = message_with(&mut alice, "back").await;
    assert_eq!((from.as_str(), kind.as_str()), ("bob@b.test/phone", "chat"));
    let got = b.read_until("<a ").await;
    assert!(got.contains("h='1'") || got.contains("h=\"1\""), "{got}");
    // Another domain's stanza on it ends the stream.
    b.send("<message from='mallory@c.test' to='alice@a.test' type='chat' xmlns='jabber:server'><body>spoof</body></message>").await;
    let end = b.read_to_close().await;
    assert!(end.contains("invalid-from"), "{end}");
}

#[tokio::test]
async fn what_the_receiving_side_sent_unacknowledged_goes_out_again() {
    // a.test with a route to a hand-played b.test; b.test connects first, asking for a
    // bidirectional stream with stream management.
    let (a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    let addr = a.server().s2s_addrs.plain[0];
    let mut b = RawS2s::tls(addr, "b.test", "a.test").await;
    let features = b.read_until("</stream:features>").await;
    assert!(features.contains("urn:xmpp:features:bidi"), "{features}");
    b.send("<bidi xmlns='urn:xmpp:bidi'/>").await;
    b.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Yi50ZXN0</auth>")
        .await;
    b.read_until("<success").await;
    b.header("b.test", "a.test").await;
    b.read_until("</stream:features>").await;
    b.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    b.read_until("<enabled").await;
    // alice's message goes on b.test's stream (no new connection), with an ack request.
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let got = b.read_until("<r xmlns='urn:xmpp:sm:3'").await;
    assert!(got.contains(">m1<"), "{got}");
    // b.test drops it without acknowledging: a.test makes its own stream and sends m1 again.
    drop(b);
    m1_comes_again_on_a_new_stream(&l, &mut alice).await;
}
