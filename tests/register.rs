//! XEP-0077 In-Band Registration: off by default; when on, accounts are created before login
//! within a per-IP budget; logged-in users change their password or remove their account.

mod common;

use common::*;
use tokio_xmpp::{IqRequest, IqResponse};

const NS: &str = "jabber:iq:register";

fn form(user: &str, pw: &str) -> String {
    format!(
        "<iq type='set' id='r-{user}'><query xmlns='{NS}'><username>{user}</username>\
         <password>{pw}</password></query></iq>"
    )
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    let features = raw.read_until("</stream:features>").await;
    assert!(!features.contains("iq-register"), "{features}");
    // XEP-0077 §3.1: an iq error, and the stream stays open (account wizards probe so).
    raw.send(&format!(
        "<iq type='get' id='probe'><query xmlns='{NS}'/></iq>"
    ))
    .await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("id='probe'") && out.contains("type='error'"),
        "{out}"
    );
    assert!(out.contains("<service-unavailable"), "{out}");
    raw.send(&form("mallory", "pw")).await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("id='r-mallory'") && out.contains("<service-unavailable"),
        "{out}"
    );
    // Still the same stream: authentication proceeds on it.
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='NOPE'>=</auth>")
        .await;
    assert!(
        raw.read_until("</failure>")
            .await
            .contains("<invalid-mechanism/>")
    );
    assert!(
        !t.server()
            .storage
            .accounts
            .exists("localhost", "mallory")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn register_before_login_then_log_in() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.allow_registration = true;
        c.limits.registrations_per_ip_per_hour = 2;
    })
    .await;
    let mut raw = t.raw().await;
    raw.send(HEADER).await;
    let features = raw.read_until("</stream:features>").await;
    assert!(
        features.contains("<register xmlns='http://jabber.org/features/iq-register'/>"),
        "{features}"
    );
    raw.send(&format!("<iq type='get' id='f'><query xmlns='{NS}'/></iq>"))
        .await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("<username/>") && out.contains("<password/>"),
        "{out}"
    );
    raw.send(&form("Newbie", "s3cret")).await;
    let out = raw.read_until("id='r-Newbie'").await;
    assert!(out.contains("type='result'"), "{out}");
    // The same name again (after normalisation) is a conflict.
    raw.send(&form("newbie", "other")).await;
    let out = raw.read_until("</iq>").await;
    assert!(
        out.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{out}"
    );
    // The budget of 2 per hour is spent (the conflict counted): the next is refused.
    raw.send(&form("third", "pw")).await;
    let out = raw.read_until("</iq>").await;
    assert!(out.contains("<policy-violation"), "{out}");
    assert!(
        !t.server()
            .storage
            .accounts
            .exists("localhost", "third")
            .await
            .unwrap()
    );
    // The new account logs in with a real client.
    let (_client, jid) = t.login("newbie@localhost/x", "s3cret").await;
    assert_eq!(jid, "newbie@localhost/x");
}

#[tokio::test]
async fn change_password_and_remove_account_when_logged_in() {
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "old").await;
    let (mut alice, _) = t.login("alice@localhost/a", "old").await;
    let set = minidom::Element::builder("query", NS)
        .append(minidom::Element::builder("username", NS).append("alice"))
        .append(minidom::Element::builder("password", NS).append("new"))
        .build();
    let token = alice.send_iq(None, IqRequest::Set(set)).await;
    let r = tokio::time::timeout(WAIT, token).await;
    assert!(matches!(r, Ok(Ok(IqResponse::Result(_)))), "{r:?}");
    let (_again, _) = t.login("alice@localhost/b", "new").await;

    // Removal: the result, then the stream closes with <not-authorized/>; the account is gone.
    let mut raw = t.raw().await;
    raw.login("alice", "new", "raw").await;
    raw.send(&format!(
        "<iq type='set' id='rm'><query xmlns='{NS}'><remove/></query></iq>"
    ))
    .await;
    let out = raw.read_to_close().await;
    let result = out.find("id='rm'").expect("a result");
    let error = out
        .find("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
        .expect("a stream error");
    assert!(result < error, "{out}");
    assert!(
        !t.server()
            .storage
            .accounts
            .exists("localhost", "alice")
            .await
            .unwrap()
    );
}
