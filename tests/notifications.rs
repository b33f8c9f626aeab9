//! Coalesced notifications: headline messages for an offline user are kept, only the newest
//! of each kind; chat messages all wait as before; with `im.offline_headlines` off, headlines
//! for an offline user are dropped (RFC 6121 §8.5.2.2.1).

mod common;

use common::TestServer;
use common::im::go_online;
use common::muc::{ping, send, users, wait};

async fn bob_gets_after_a_week_away(offline_headlines: bool) -> Vec<String> {
    let t = TestServer::start(|c| c.im.offline_headlines = offline_headlines).await;
    let mut alice = users(&t, &["alice"]).await.remove(0);
    t.add_user("bob", "pw").await;
    for i in 0..10 {
        send(
            &mut alice,
            &format!("<message type='headline' to='bob@localhost'><body>alert {i}</body><x xmlns='urn:t:alert'/></message>"),
        )
        .await;
    }
    for i in 0..3 {
        send(
            &mut alice,
            &format!("<message type='headline' to='bob@localhost'><body>news {i}</body><x xmlns='urn:t:news'/></message>"),
        )
        .await;
    }
    for i in 0..2 {
        send(
            &mut alice,
            &format!("<message type='chat' to='bob@localhost'><body>chat {i}</body></message>"),
        )
        .await;
    }
    ping(&mut alice).await;
    // No error came back for the headlines.
    let (mut bob, _) = t.login("bob@localhost/phone", "pw").await;
    go_online(&mut bob).await;
    // Everything stored comes before the answer to a later ping.
    send(
        &mut bob,
        "<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let mut got = Vec::new();
    loop {
        let e = wait(&mut bob, "a message or the ping", |e| {
            e.name() == "message" || e.attr("id") == Some("after")
        })
        .await;
        if e.name() == "iq" {
            return got;
        }
        let body = e.children().find(|c| c.name() == "body").map(|b| b.text());
        got.push(body.unwrap_or_default());
    }
}

#[tokio::test]
async fn an_offline_user_gets_the_newest_notification_of_each_kind() {
    let mut got = bob_gets_after_a_week_away(true).await;
    got.sort();
    assert_eq!(got, ["alert 9", "chat 0", "chat 1", "news 2"]);
}

#[tokio::test]
async fn with_offline_headlines_off_they_are_dropped() {
    let mut got = bob_gets_after_a_week_away(false).await;
    got.sort();
    assert_eq!(got, ["chat 0", "chat 1"]);
}
