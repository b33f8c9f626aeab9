//! A crash (`kill -9`) of the real binary: every message the server acknowledged to its sender
//! (XEP-0198 `<a h/>` after the offline store) is still there after a restart, and offline
//! messages handed to a client that had not acknowledged them yet are delivered again.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use tokio::net::TcpStream;

fn xmppd(config: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xmppd"));
    c.arg("--config").arg(config).env("NO_COLOR", "1");
    c
}

/// Starts `xmppd serve`; returns the process and its plain-TCP port (read from its log).
fn serve(config: &std::path::Path) -> (Child, u16) {
    let mut child = xmppd(config)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("the server exited").unwrap();
        let line = strip_ansi(&line);
        if line.contains("listening for clients") && line.contains("direct_tls=false") {
            let addr = line.split("local=").nth(1).unwrap();
            let addr = addr.split_whitespace().next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

/// A data folder with a configuration (plain TCP on port 0, no HTTP) and the accounts alice
/// and bob (password `pw`), made with the CLI; the folder lives as long as the first value.
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xmppd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\n[c2s]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = []\nrequire_tls = false\n[http]\nlisten = []\ntls_listen = []\n[s2s]\nlisten = []\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    for u in ["alice@localhost", "bob@localhost"] {
        let o = xmppd(&cfg)
            .args(["adduser", u, "--password", "pw"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    (dir, cfg)
}

/// Alice (stream management on) sends bob k1…k5 and the server acknowledges all five.
async fn alice_sends_k1_to_k5(port: u16) {
    let mut alice = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    alice.login("alice", "pw", "pc").await;
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    alice.read_tag("enabled").await;
    for i in 1..=5 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat'><body>k{i}</body></message>"
            ))
            .await;
    }
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = alice.read_tag("a").await;
    assert_eq!(attr_of(&a, "a", "h").as_deref(), Some("5"), "{a}");
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn acknowledged_offline_messages_survive_kill_9() {
    let (_dir, cfg) = setup();
    let (mut server, port) = serve(&cfg);
    alice_sends_k1_to_k5(port).await;
    // Acknowledged: now the crash.
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, port) = serve(&cfg);
    // Bob's phone (stream management on) gets them, and the server dies before he
    // acknowledges: they were claimed, not deleted, so they come again after the restart.
    let mut phone = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    phone.login("bob", "pw", "phone").await;
    phone.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    phone.read_tag("enabled").await;
    phone.send("<presence/>").await;
    phone.read_until_n("</body>", 5).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, port) = serve(&cfg);
    let mut bob = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    bob.login("bob", "pw", "phone").await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.read_tag("enabled").await;
    bob.send("<presence/>").await;
    let got = bob.read_until_n("</body>", 5).await;
    // Exactly once: nothing more (no duplicate) within a grace period.
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    for i in 1..=5 {
        assert_eq!(
            got.matches(&format!(">k{i}</body>")).count(),
            1,
            "k{i}: {got}"
        );
    }
    // This time he acknowledges them; after another crash nothing comes again.
    // (h counts every stanza received: his own presence too.)
    bob.ack_all(&got).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, port) = serve(&cfg);
    let mut bob = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    bob.login("bob", "pw", "laptop").await;
    bob.send("<presence/><iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let after = bob.read_until("id='p2'").await;
    assert!(
        !after.contains("</body>"),
        "delivered again after the ack: {after}"
    );
    bob.expect_silence(std::time::Duration::from_millis(500))
        .await;
    server.kill().unwrap();
    let _ = server.wait();
}

#[tokio::test]
async fn acknowledged_messages_are_in_the_archive_after_kill_9() {
    let (_dir, cfg) = setup();
    let (mut server, port) = serve(&cfg);
    let mut bob = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    bob.login("bob", "pw", "phone").await;
    bob.send("<presence/>").await;
    alice_sends_k1_to_k5(port).await;
    let delivered = bob.read_until_n("</body>", 5).await;
    // Acknowledged to Alice and delivered to Bob with ids: now the crash.
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, port) = serve(&cfg);
    let query = "<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>";
    for (user, text) in [("alice", None), ("bob", Some(&delivered))] {
        let mut c = Raw(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        c.login(user, "pw", "laptop").await;
        c.send(query).await;
        let got = c.read_until("id='q'").await;
        for i in 1..=5 {
            assert_eq!(
                got.matches(&format!(">k{i}</body>")).count(),
                1,
                "{user}: {got}"
            );
        }
        // Every id Bob was given names a message of his archive.
        if let Some(text) = text {
            for part in text.split("<stanza-id").skip(1) {
                let id = part
                    .split("id='")
                    .nth(1)
                    .unwrap()
                    .split('\'')
                    .next()
                    .unwrap();
                assert!(got.contains(&format!("id='{id}'")), "{id} archived: {got}");
            }
            assert_eq!(text.matches("<stanza-id").count(), 5);
        }
    }
    server.kill().unwrap();
    let _ = server.wait();
}
