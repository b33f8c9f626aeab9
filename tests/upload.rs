//! HTTP File Upload (XEP-0363): a tokio-xmpp client finds `upload.localhost` in disco, asks for
//! a slot, PUTs the file with hyper's client (written by others) and anyone GETs it back; the
//! size limit, the quota, the token, the size of the body, a slot used twice, files that must
//! not run as pages, and the purge of expired files.

mod common;

use common::bosh::request;
use common::im::iq;
use common::*;
use tokio_xmpp::IqRequest;

const NS: &str = "urn:xmpp:http:upload:0";

/// Asks for a slot; the (put URL, Authorization header, get URL), or the error condition.
async fn slot(
    c: &mut tokio_xmpp::Client,
    name: &str,
    size: usize,
    kind: &str,
) -> Result<(String, String, String), String> {
    let req = minidom::Element::builder("request", NS)
        .attr(common::im::n("filename"), name)
        .attr(common::im::n("size"), size.to_string())
        .attr(common::im::n("content-type"), kind)
        .build();
    let slot = iq(c, Some("upload.localhost"), IqRequest::Get(req))
        .await?
        .expect("a slot");
    let put = slot.get_child("put", NS).unwrap();
    let auth = put
        .children()
        .find(|h| h.attr("name") == Some("Authorization"))
        .unwrap()
        .text();
    let get = slot.get_child("get", NS).unwrap().attr("url").unwrap();
    Ok((put.attr("url").unwrap().to_string(), auth, get.to_string()))
}

/// `method` on `url` (of this server's HTTP listener) with headers and body.
async fn call(
    t: &TestServer,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> common::bosh::Answer {
    let path = url.split_once("://").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    request(t.server().http_addrs[0], method, path, headers, body).await
}

/// disco#`what` (info or items) of `to`.
async fn disco(c: &mut tokio_xmpp::Client, to: &str, what: &str) -> minidom::Element {
    let ns = format!("http://jabber.org/protocol/disco#{what}");
    let q = minidom::Element::builder("query", ns).build();
    iq(c, Some(to), IqRequest::Get(q)).await.unwrap().unwrap()
}

#[tokio::test]
async fn upload_then_anyone_downloads() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost", "pw").await;
    // The server lists the service; the service says what it is and its limit.
    let items = disco(&mut alice, "localhost", "items").await;
    assert!(
        items
            .children()
            .any(|i| i.attr("jid") == Some("upload.localhost")),
        "{items:?}"
    );
    let info = disco(&mut alice, "upload.localhost", "info").await;
    assert!(info.children().any(|f| f.attr("var") == Some(NS)));
    let xml = String::from(&info);
    assert!(
        xml.contains("max-file-size") && xml.contains("10485760"),
        "{xml}"
    );

    let png: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let (put, auth, get) = slot(&mut alice, "cat picture.png", png.len(), "image/png")
        .await
        .unwrap();
    assert_eq!(put, get);
    assert!(
        get.contains("/upload/") && get.ends_with("/cat%20picture%2Epng"),
        "{get}"
    );
    // Not there before the PUT; the PUT needs the token.
    assert_eq!(call(&t, "GET", &get, &[], vec![]).await.status, 404);
    let wrong = call(
        &t,
        "PUT",
        &put,
        &[("authorization", "Bearer nope")],
        png.clone(),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let ok = call(&t, "PUT", &put, &[("authorization", &auth)], png.clone()).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let again = call(&t, "PUT", &put, &[("authorization", &auth)], png.clone()).await;
    assert_eq!(again.status, 409, "a slot is filled once");

    let got = call(&t, "GET", &get, &[], vec![]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "image/png");
    assert_eq!(got.headers["x-content-type-options"], "nosniff");
    assert!(
        got.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(got.headers["access-control-allow-origin"], "*");
    assert_eq!(got.bytes, png);

    // A page would run as this site's: it is served as an attachment, not as HTML.
    let html = b"<script>alert(1)</script>".to_vec();
    let (put, auth, get) = slot(&mut alice, "x.html", html.len(), "text/html")
        .await
        .unwrap();
    assert_eq!(
        call(&t, "PUT", &put, &[("authorization", &auth)], html)
            .await
            .status,
        201
    );
    let got = call(&t, "GET", &get, &[], vec![]).await;
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert!(
        got.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        got.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
}

#[tokio::test]
async fn limits_quota_and_expiry() {
    let t = TestServer::start(|c| {
        c.upload.max_file_size = 6000;
        c.upload.quota_per_user = 10_000;
    })
    .await;
    t.add_user("alice", "pw").await;
    let (mut alice, _) = t.login("alice@localhost", "pw").await;
    assert_eq!(
        slot(&mut alice, "big.bin", 6001, "application/octet-stream")
            .await
            .err()
            .as_deref(),
        Some("NotAcceptable"),
        "over max_file_size"
    );
    let (put, auth, get) = slot(&mut alice, "a.bin", 6000, "application/octet-stream")
        .await
        .unwrap();
    // Pending slots count: a second 6,000 bytes is over the 10,000-byte quota.
    assert_eq!(
        slot(&mut alice, "b.bin", 6000, "application/octet-stream")
            .await
            .err()
            .as_deref(),
        Some("ResourceConstraint")
    );
    // The body must be the announced size.
    let short = call(&t, "PUT", &put, &[("authorization", &auth)], vec![1; 5000]).await;
    assert!(
        short.status == 400 || short.status == 413,
        "{}",
        short.status
    );
    let long = call(&t, "PUT", &put, &[("authorization", &auth)], vec![1; 7000]).await;
    assert_eq!(long.status, 413);
    assert_eq!(call(&t, "GET", &get, &[], vec![]).await.status, 404);
    let ok = call(&t, "PUT", &put, &[("authorization", &auth)], vec![1; 6000]).await;
    assert_eq!(ok.status, 201);
    assert_eq!(call(&t, "GET", &get, &[], vec![]).await.status, 200);

    // Expiry: with a lifetime of 0 days the purge deletes the file and frees the quota.
    let mut config = t.config.clone();
    config.upload.expire_after_days = 0;
    let u =
        xmppd::http::upload::Uploads::new(t.server().storage.clone(), std::sync::Arc::new(config));
    xmppd::http::upload::files::purge(&u).await;
    assert_eq!(call(&t, "GET", &get, &[], vec![]).await.status, 404);
    assert!(
        !t.dir
            .path()
            .join("uploads")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "files deleted"
    );
    assert!(
        slot(&mut alice, "b.bin", 6000, "application/octet-stream")
            .await
            .is_ok()
    );
}
