//! Memory floods before authentication: input whose parsed tree is far bigger than its bytes
//! (one long namespace and tens of thousands of empty elements, namespaced attributes) and
//! start tags that never end. Each flooding connection is closed with `<policy-violation/>`,
//! the server's peak memory grows by no more than a small multiple of `max_stanza_size` per
//! connection, and two users keep chatting meanwhile.
//!
//! One test in this file, so that the process's peak RSS (`VmHWM`) is this test's alone.

mod common;

use common::im::{body, chat, go_online};
use common::*;
use tokio::io::AsyncWriteExt;

/// The process's peak resident memory in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The hostile inputs, each sent whole by one connection (after the stream header, or after
/// authenticating, where the budgets are larger).
fn floods() -> Vec<String> {
    let ns = |n: usize| format!("urn:{}", "x".repeat(n));
    let attrs: String = (0..30_000).map(|i| format!(" a{i}=''")).collect();
    vec![
        // The shape measured in the hardening issue: a 4 KiB default namespace, 50,000 children.
        format!("<iq xmlns='{}'>{}</iq>", ns(4096), "<a/>".repeat(50_000)),
        // A 12 KiB namespace and 60,000 children (a 16 KiB one is refused as a start tag).
        format!(
            "<iq xmlns='{}'>{}</iq>",
            ns(12 * 1024),
            "<a/>".repeat(60_000)
        ),
        // The attribute variant: a long prefixed namespace named by every child's attribute.
        format!(
            "<iq xmlns:p='{}'>{}</iq>",
            ns(12 * 1024),
            "<b p:x=''/>".repeat(22_000)
        ),
        // A start tag that never closes.
        format!("<message{attrs}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_bounded_and_others_keep_chatting() {
    // Plain TCP offered (not required) so that raw sockets can also log in; the parser is the
    // same with TLS.
    let t = TestServer::start(|c| c.c2s.require_tls = false).await;
    t.add_user("alice", "pw").await;
    t.add_user("mallory", "pw").await;
    t.add_user("bob", "pw").await;
    let (mut alice, _) = t.login("alice@localhost", "pw").await;
    let (mut bob, _) = t.login("bob@localhost", "pw").await;
    go_online(&mut bob).await;
    // Warm up the message path so its allocations are in the baseline.
    alice
        .send_stanza(chat("bob@localhost", "warm"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut bob).await), "warm");

    let before = peak_rss_kib();
    let floods = floods();
    let mut attackers = Vec::new();
    for round in 0..4 {
        for body in floods.clone() {
            let mut raw = t.raw().await;
            // Half of them before authentication, half after.
            let input = if round % 2 == 0 {
                format!("{HEADER}{body}")
            } else {
                raw.login("mallory", "pw", &format!("r{}", attackers.len()))
                    .await;
                body
            };
            let what = format!("round {round}: {}", &input[..80]);
            attackers.push(tokio::spawn(async move {
                // The server may close mid-write; what it said before closing is what counts.
                let _ = raw.0.write_all(input.as_bytes()).await;
                (what, raw.read_to_close().await)
            }));
        }
    }
    // Meanwhile, the users chat.
    for i in 0..20 {
        alice
            .send_stanza(chat("bob@localhost", &format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(body(&next_message(&mut bob).await), format!("m{i}"));
    }
    let connections = attackers.len();
    let mut outputs = Vec::new();
    for a in attackers {
        outputs.push(a.await.unwrap());
    }
    let grown_kib = peak_rss_kib().saturating_sub(before);
    // Each connection may hold its stanza budget, its memory budget and buffers; before the
    // fix a single one of these inputs built hundreds of MiB.
    let per_connection_kib = 4 * t.config.c2s.max_stanza_size as u64 / 1024;
    eprintln!("peak RSS grew by {grown_kib} KiB over {connections} flooding connections");
    assert!(
        grown_kib <= connections as u64 * per_connection_kib,
        "peak RSS grew by {grown_kib} KiB for {connections} connections \
         (bound {per_connection_kib} KiB each)"
    );
    for (what, out) in outputs {
        assert!(
            out.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
            "{what}: expected <policy-violation/>, got {}",
            &out[out.len().saturating_sub(300)..]
        );
    }
    alice
        .send_stanza(chat("bob@localhost", "after"))
        .await
        .unwrap();
    assert_eq!(body(&next_message(&mut bob).await), "after");
}
