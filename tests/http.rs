//! The HTTP listener: `/health` answers 200 while the database answers and 503 when it does
//! not; `/metrics` is Prometheus text format, read here by a Prometheus-format parser written by
//! others (prometheus-parse), and counts what the server did.

mod common;

use common::im::{body, chat, go_online};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` over plain HTTP/1.0; returns the status code and the body.
async fn get(t: &TestServer, path: &str) -> (u16, String) {
    let addr = t.server().http_addrs[0];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of sample `name` with `labels` (all of them must match), if present.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

async fn scrape(t: &TestServer) -> prometheus_parse::Scrape {
    let (status, text) = get(t, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

#[tokio::test]
async fn health_and_metrics() {
    let t = TestServer::start(|_| {}).await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    assert_eq!(get(&t, "/health").await, (200, "ok\n".to_string()));

    let (mut alice, _) = t.login("alice@localhost", "pw").await;
    // Bob is offline: stored. Nobody is no one: bounced.
    alice
        .send_stanza(chat("bob@localhost", "while you were out"))
        .await
        .unwrap();
    alice
        .send_stanza(chat("nobody@localhost", "x"))
        .await
        .unwrap();
    // Alice's stanzas are handled in order: once her ping is answered, the message is stored
    // (Bob logging in first would get it live, and nothing would be stored).
    let ping = minidom::Element::builder("ping", "urn:xmpp:ping").build();
    common::im::iq(
        &mut alice,
        Some("localhost"),
        tokio_xmpp::IqRequest::Get(ping),
    )
    .await
    .unwrap();
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    go_online(&mut bob).await;
    assert_eq!(body(&next_message(&mut bob).await), "while you were out");
    for i in 0..5 {
        alice
            .send_stanza(chat("bob@localhost", &format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(body(&next_message(&mut bob).await), format!("m{i}"));
    }

    let m = scrape(&t).await;
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&m, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    assert_eq!(get("xmppd_sessions", &[]), 2.0);
    assert!(get("xmppd_connections", &[]) >= 2.0);
    // Alice and Bob over STARTTLS, and this scrape over HTTP (the counts are process-wide).
    assert!(get("xmppd_connections_open", &[("transport", "c2s")]) >= 2.0);
    assert!(get("xmppd_connections_open", &[("transport", "http")]) >= 1.0);
    assert!(get("xmppd_stanzas_in_total", &[("kind", "message")]) >= 7.0);
    assert!(get("xmppd_stanzas_out_total", &[("kind", "message")]) >= 6.0);
    assert!(get("xmppd_offline_stored_total", &[]) >= 1.0);
    assert!(get("xmppd_offline_delivered_total", &[]) >= 1.0);
    assert!(
        get(
            "xmppd_stanza_errors_total",
            &[("condition", "service-unavailable")]
        ) >= 1.0
    );
    assert!(get("xmppd_route_seconds_count", &[]) >= 7.0);
    assert!(get("xmppd_storage_seconds_count", &[("op", "offline_store")]) >= 1.0);
    // A stream error is counted by its condition.
    let mut raw = t.raw().await;
    raw.send(&format!("{HEADER}<message/>")).await;
    raw.read_to_close().await;
    let m = scrape(&t).await;
    assert!(
        sample(
            &m,
            "xmppd_stream_errors_total",
            &[("condition", "not-authorized")]
        )
        .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn health_says_when_the_database_does_not_answer() {
    let t = TestServer::start(|_| {}).await;
    assert_eq!(get(&t, "/health").await.0, 200);
    t.execute("ALTER TABLE accounts RENAME TO accounts_gone")
        .await;
    let (status, body) = get(&t, "/health").await;
    assert_eq!(status, 503, "{body}");
    t.execute("ALTER TABLE accounts_gone RENAME TO accounts")
        .await;
    assert_eq!(get(&t, "/health").await.0, 200);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let t = TestServer::start(|c| c.http.metrics = false).await;
    assert_eq!(get(&t, "/metrics").await.0, 404);
    assert_eq!(get(&t, "/health").await.0, 200);
    assert_eq!(get(&t, "/nothing-here").await.0, 404);
}

#[tokio::test]
async fn http_connections_have_the_limits_of_client_connections() {
    let t = TestServer::start(|c| {
        c.http.request_timeout_secs = 1;
        c.limits.max_connections_per_ip = 2;
    })
    .await;
    let addr = t.server().http_addrs[0];
    // Two connections that never finish their headers hold the two slots of this address...
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // ... so a third is closed at once, unanswered ...
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET /health HTTP/1.0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, third.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    // ... until the header timeout closes the slow ones.
    for mut s in slow {
        let mut out = Vec::new();
        let closed =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(
            closed.is_ok(),
            "a connection that never sent its headers stayed open"
        );
    }
    let mut ok = None;
    for _ in 0..50 {
        if let Ok(r) = tokio::time::timeout(WAIT, async {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            out
        })
        .await
            && !r.is_empty()
        {
            ok = Some(String::from_utf8_lossy(&r).into_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok.unwrap_or_default().starts_with("HTTP/1.0 200"));
    // A request head over 16 KiB is refused.
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    let header = format!(
        "GET /health HTTP/1.0\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let _ = big.write_all(header.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, big.read_to_end(&mut out))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        !out.starts_with("HTTP/1.0 200") && !out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
}

#[tokio::test]
async fn host_meta_lists_the_websocket_endpoint() {
    let t = TestServer::start(|_| {}).await;
    let addr = t.server().http_addrs[0];
    let (status, xrd) = get(&t, "/.well-known/host-meta").await;
    assert_eq!(status, 200, "{xrd}");
    // Made from the request's Host (here `localhost`) and scheme (plain HTTP: ws).
    let xrd: minidom::Element = xrd.parse().unwrap();
    assert_eq!(xrd.name(), "XRD");
    let link = xrd
        .children()
        .find(|l| l.attr("rel") == Some("urn:xmpp:alt-connections:websocket"))
        .expect("a WebSocket link");
    assert_eq!(link.attr("href"), Some("ws://localhost/xmpp-websocket"));
    let (status, json) = get(&t, "/.well-known/host-meta.json").await;
    assert_eq!(status, 200);
    assert!(
        json.contains(
            r#"{"rel":"urn:xmpp:alt-connections:websocket","href":"ws://localhost/xmpp-websocket"}"#
        ),
        "{json}"
    );
    // The link works: a WebSocket session opens there.
    let mut w = common::ws::Ws::connect(addr).await;
    assert!(w.open().await.contains("SCRAM-SHA-256"));
}
