//! Slow consumers: a client that stops reading must not make the server grow without bound,
//! must not slow anyone else, and loses nothing: its stream is closed with
//! `<resource-constraint/>` and every stanza meant for it is either stored offline or comes back
//! to its sender as an error.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Counts occurrences of `needle` in a byte stream read in chunks.
struct Counter {
    needle: &'static [u8],
    tail: Vec<u8>,
    n: usize,
}

impl Counter {
    fn new(needle: &'static str) -> Self {
        Counter {
            needle: needle.as_bytes(),
            tail: Vec::new(),
            n: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let mut hay = std::mem::take(&mut self.tail);
        hay.extend_from_slice(chunk);
        let k = self.needle.len();
        let mut i = 0;
        while i + k <= hay.len() {
            if &hay[i..i + k] == self.needle {
                self.n += 1;
                i += k;
            } else {
                i += 1;
            }
        }
        let keep = hay.len().saturating_sub(k - 1).max(i);
        self.tail = hay[keep..].to_vec();
    }
}

fn chat(to: &str, i: usize, pad: &str) -> String {
    format!("<message to='{to}' type='chat' id='c{i}'><body>{pad}</body></message>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_nothing_is_lost() {
    const N: usize = 6000;
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        // The queue-overflow path, at full speed: with the archive on, each message waits
        // for its commits and the 5 s write timeout ends Bob's session before his queue fills
        // (also a close, with nothing lost, but not the path this test is about).
        c.archive.enabled = false;
        c.c2s.session_queue = 64;
        c.c2s.write_timeout_secs = 5;
        c.c2s.max_unacked = 100_000;
        c.c2s.max_unacked_bytes = 64 << 20;
        c.im.offline_quota = N;
        c.im.offline_quota_bytes = 32 << 20;
    })
    .await;
    for u in ["alice", "bob", "carol", "dave"] {
        t.add_user(u, "pw").await;
    }
    // Bob's client logs in with stream management, then never reads again. A small receive
    // buffer makes the server's writes stall sooner.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock
        .connect(format!("127.0.0.1:{}", t.port).parse().unwrap())
        .await
        .unwrap();
    let mut bob = Raw(tcp);
    bob.login("bob", "pw", "phone").await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/><presence/>").await;
    bob.read_tag("enabled").await;

    // Alice sends at full speed; what comes back to her is read by a task of its own.
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    let (mut rd, mut wr) = alice.0.into_split();
    let errors = tokio::spawn(async move {
        let mut c = Counter::new("type='error'");
        let mut buf = vec![0u8; 64 * 1024];
        // Until the server closes Alice's stream: it answers her `</stream:stream>` only after
        // every stanza before it was handled, so then her backlog is fully routed.
        loop {
            match tokio::time::timeout(Duration::from_secs(120), rd.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => c.feed(&buf[..n]),
                Ok(Ok(_)) => return c.n,
                other => panic!("alice's stream did not end: {other:?}"),
            }
        }
    });
    let pad = "x".repeat(1000);
    for i in 0..N {
        wr.write_all(chat("bob@localhost/phone", i, &pad).as_bytes())
            .await
            .unwrap();
    }

    // The server gives up on Bob without his help (he still reads nothing).
    let phone = jid::FullJid::new("bob@localhost/phone").unwrap();
    let gone = async {
        while t.server().router.registry.get(&phone).is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .expect("the session of a client that never reads was not closed");
    // His stream ends with resource-constraint, if he ever reads that far.
    let mut closed = Counter::new("resource-constraint");
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, bob.0.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        closed.feed(&buf[..n]);
    }
    assert_eq!(
        closed.n, 1,
        "bob's stream was not closed with resource-constraint"
    );

    // Meanwhile the others chat unaffected.
    let mut carol = t.raw().await;
    carol.login("carol", "pw", "c").await;
    let mut dave = t.raw().await;
    dave.login("dave", "pw", "d").await;
    dave.send("<presence/>").await;
    carol.send(&chat("dave@localhost", 0, "hello dave")).await;
    dave.read_until("hello dave</body>").await;

    // Every message is accounted for: bounced to Alice, or waiting offline for Bob.
    wr.write_all(b"</stream:stream>").await.unwrap();
    let bounced = errors.await.unwrap();
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/>").await;
    let mut stored = Counter::new("</body>");
    let mut buf = vec![0u8; 64 * 1024];
    while stored.n + bounced < N {
        match tokio::time::timeout(WAIT, bob.0.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => stored.feed(&buf[..n]),
            _ => break,
        }
    }
    assert_eq!(
        stored.n + bounced,
        N,
        "{} stored offline + {bounced} bounced",
        stored.n
    );
    assert!(stored.n > 0, "nothing was kept for bob");
    eprintln!("{N} sent: {} stored offline, {bounced} bounced", stored.n);
}

/// Bob's phone reads but never acknowledges while Alice sends 30 messages with `pad` in them;
/// the unacknowledged queue's bound (`tweak`) closes his stream with `<resource-constraint/>`,
/// and all 30 wait offline for his laptop, once each.
async fn unacknowledged_overflow(tweak: impl FnOnce(&mut xmppd::config::Config), pad: &str) {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        tweak(c);
    })
    .await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "phone").await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.read_tag("enabled").await;
    let mut alice = t.raw().await;
    alice.login("alice", "pw", "pc").await;
    for i in 0..30 {
        alice
            .send(&chat("bob@localhost/phone", i, &format!("u{i}-{pad}")))
            .await;
    }
    let closed = bob.read_to_close().await;
    assert!(
        closed.contains("resource-constraint"),
        "{}",
        &closed[closed.len().saturating_sub(300)..]
    );
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/>").await;
    let got = bob.read_until_n("</body>", 30).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    for i in 0..30 {
        assert_eq!(got.matches(&format!(">u{i}-")).count(), 1, "u{i}");
    }
}

#[tokio::test]
async fn too_many_unacknowledged_stanzas_close_the_stream_and_go_offline() {
    unacknowledged_overflow(|c| c.c2s.max_unacked = 20, "").await;
}

#[tokio::test]
async fn unacknowledged_stanzas_are_bounded_in_bytes() {
    // 30 messages of 2 KiB: far below 1000 stanzas, over 32 KiB.
    unacknowledged_overflow(
        |c| {
            c.c2s.max_unacked = 1000;
            c.c2s.max_unacked_bytes = 32 * 1024;
        },
        &"y".repeat(2048),
    )
    .await;
}
