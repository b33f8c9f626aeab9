//! Stream management on server streams (XEP-0198): a stanza written to a remote server that
//! breaks the stream before acknowledging it is sent again on a new stream, not lost. The
//! remote server here is played by hand (TLS with the test certificate for `b.test`, SASL
//! EXTERNAL, `<sm/>` offered) so that it can drop the first stream at the worst moment.

mod common;

use common::im::chat;
use common::s2s::*;

#[tokio::test]
async fn an_unacknowledged_stanza_is_sent_again_on_a_new_stream() {
    let (_a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    // The first stream takes m1, is asked for an ack, and breaks without giving one.
    let mut first = accept_as_b(&l, true, false).await;
    let got = first.read_until("<r xmlns='urn:xmpp:sm:3'").await;
    assert!(got.contains(">m1<"), "{got}");
    drop(first);
    // a.test makes a new stream and sends m1 again; acknowledged this time: m1 was neither
    // bounced nor lost.
    m1_comes_again_on_a_new_stream(&l, &mut alice).await;
}

#[tokio::test]
async fn without_stream_management_a_stanza_the_socket_took_is_not_sent_twice() {
    let (_a, l, mut alice) = a_routed_to_a_hand_played_b().await;
    alice.send_stanza(chat("bob@b.test", "m1")).await.unwrap();
    let mut first = accept_as_b(&l, false, false).await;
    let got = first.read_until(">m1<").await;
    assert!(
        !got.contains("<r "),
        "no ack requested without stream management: {got}"
    );
    drop(first);
    // The next message makes a new stream, which carries it alone.
    alice.send_stanza(chat("bob@b.test", "m2")).await.unwrap();
    let mut second = accept_as_b(&l, false, false).await;
    let got = second.read_until(">m2<").await;
    assert!(!got.contains(">m1<"), "{got}");
}
