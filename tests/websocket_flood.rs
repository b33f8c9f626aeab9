//! A WebSocket flood before authentication: many connections each start a message of almost
//! `c2s.max_stanza_size` (the WebSocket library's fixed limit) and stop before its end. The
//! server reads no more than the pre-authentication size (16 KiB) of each before it answers
//! `<policy-violation/>`, so its peak memory grows by far less than the messages' size.
//!
//! One test in this file, so that the process's peak RSS (`VmHWM`) is this test's alone.

mod common;

use std::time::Duration;

use common::ws::Ws;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;

/// The process's peak resident memory in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_large_messages_before_authentication_are_cut_at_the_small_budget() {
    let t = TestServer::start(|c| c.limits.max_connections_per_ip = 10_000).await;
    let addr = t.server().http_addrs[0];
    let n = 64;
    let size: usize = 250 * 1024;
    let chunk = vec![b'x'; 16 * 1024];
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut w = Ws::connect(addr).await;
        w.open().await;
        conns.push(w);
    }
    let before = peak_rss_kib();
    // A text frame of `size` bytes (masked with a zero key, as a client must mask), all but
    // its last KiB, written raw under the library.
    let mut header = vec![0x81, 0xFF];
    header.extend_from_slice(&(size as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    for w in &mut conns {
        let MaybeTlsStream::Plain(tcp) = w.0.get_mut() else {
            panic!("plain")
        };
        let _ = tcp.write_all(&header).await;
        let mut sent = 0;
        while sent + chunk.len() < size - 1024 {
            if tcp.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = peak_rss_kib().saturating_sub(before);
    // Each is refused: the budget was spent long before the message's end.
    for w in &mut conns {
        let out = w.recv_to_close().await;
        assert!(out.contains("policy-violation"), "{out}");
    }
    // Held in full, the messages would be n × 250 KiB = 16 MiB.
    assert!(
        grown < 6 * 1024,
        "peak RSS grew by {grown} KiB for {n} unfinished messages"
    );
    // And the server still serves.
    t.add_user("alice", "pw").await;
    let mut ok = Ws::connect(addr).await;
    assert_eq!(
        ok.login("alice", "pw", "after").await,
        "alice@localhost/after"
    );
}
