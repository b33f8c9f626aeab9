//! Measures presence fan-out: one user with N contacts, all online and mutually subscribed,
//! changes presence W times; every contact's connection counts the presences it receives.
//!
//!     cargo run --release --example fanout -- [contacts=1000] [waves=20]
//!
//! Server and clients share this process (and the machine), so the CPU figure covers both.
//! A measurement, not a test: it asserts nothing about time.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sasl::client::Mechanism;
use sasl::client::mechanisms::Scram;
use sasl::common::ChannelBinding;
use sasl::common::scram::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xmppd::config::Config;
use xmppd::server::Server;
use xmppd::storage::{RosterItem, Subscription};
use xmppd::stream::sasl::scram::ScramCredentials;

/// How a presence from the measured user starts (`login` binds resource `r`).
const MARKER: &str = "from='alice@localhost/r'";

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

async fn read_until(s: &mut TcpStream, acc: &mut String, needle: &str) {
    let mut buf = [0u8; 8192];
    while !acc.contains(needle) {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed while waiting for {needle}");
        acc.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn login(port: u16, user: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut acc = String::new();
    s.write_all(HEADER.as_bytes()).await.unwrap();
    read_until(&mut s, &mut acc, "</stream:features>").await;
    let mut m = Scram::<Sha256>::new(user, "pw", ChannelBinding::None).unwrap();
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode(m.initial())
    );
    s.write_all(auth.as_bytes()).await.unwrap();
    acc.clear();
    read_until(&mut s, &mut acc, "</challenge>").await;
    let ch = &acc[acc.find("'>").unwrap() + 2..acc.find("</challenge>").unwrap()];
    let resp = m.response(&B64.decode(ch).unwrap()).unwrap();
    let r = format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(resp)
    );
    s.write_all(r.as_bytes()).await.unwrap();
    acc.clear();
    read_until(&mut s, &mut acc, "</success>").await;
    s.write_all(HEADER.as_bytes()).await.unwrap();
    acc.clear();
    read_until(&mut s, &mut acc, "</stream:features>").await;
    s.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
        .await
        .unwrap();
    acc.clear();
    read_until(&mut s, &mut acc, "</iq>").await;
    s
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let contacts = args.first().copied().unwrap_or(1000);
    let waves = args.get(1).copied().unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.c2s.listen = vec!["127.0.0.1:0".into()];
    config.c2s.tls_listen = vec![];
    config.c2s.require_tls = false;
    config.im.roster_max_items = contacts + 10;
    config.limits.max_connections_per_ip = contacts + 10;
    config.limits.connections_per_ip_per_minute = 1_000_000;
    let server = Server::start(config).await.expect("start");
    let port = server.c2s_addrs[0].port();
    let st = server.storage.clone();
    let creds = ScramCredentials::new_set("pw", 4096).unwrap();
    st.accounts
        .create("localhost", "alice", &creds)
        .await
        .unwrap();
    for i in 0..contacts {
        let name = format!("c{i}");
        st.accounts
            .create("localhost", &name, &creds)
            .await
            .unwrap();
        let mut a = RosterItem::new(format!("{name}@localhost"));
        a.subscription = Subscription::Both;
        st.rosters.put("localhost", "alice", &a).await.unwrap();
        let mut b = RosterItem::new("alice@localhost");
        b.subscription = Subscription::Both;
        st.rosters.put("localhost", &name, &b).await.unwrap();
    }
    eprintln!("logging in {contacts} contacts…");
    let t0 = Instant::now();
    let mut readers = Vec::new();
    for i in 0..contacts {
        let mut s = login(port, &format!("c{i}")).await;
        s.write_all(b"<presence/>").await.unwrap();
        // Each contact counts presences from alice: her initial one plus `waves` changes.
        readers.push(tokio::spawn(async move {
            let mut seen = 0usize;
            let mut acc = String::new();
            let mut buf = [0u8; 16384];
            while seen < waves + 1 {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                acc.push_str(&String::from_utf8_lossy(&buf[..n]));
                seen += acc.matches(MARKER).count();
                // Keep only what may be the start of a marker split across reads.
                let cut = acc.rfind(MARKER).map(|i| i + MARKER.len()).unwrap_or(0);
                let cut = cut.max(acc.len().saturating_sub(MARKER.len() - 1));
                let cut = (cut..=acc.len())
                    .find(|&i| acc.is_char_boundary(i))
                    .unwrap_or(acc.len());
                acc.drain(..cut);
            }
            seen
        }));
    }
    eprintln!("{contacts} logged in and online in {:.1?}", t0.elapsed());
    let mut alice = login(port, "alice").await;
    let (cpu0, t1) = (cpu_seconds(), Instant::now());
    alice.write_all(b"<presence/>").await.unwrap();
    for w in 0..waves {
        alice
            .write_all(format!("<presence><status>wave {w}</status></presence>").as_bytes())
            .await
            .unwrap();
    }
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap_or(0);
    }
    let (wall, cpu) = (t1.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let changes = waves + 1;
    println!("contacts: {contacts}");
    println!("presence changes: {changes}");
    println!(
        "presences delivered: {delivered} (expected {})",
        changes * contacts
    );
    println!(
        "wall: {wall:.3} s, deliveries/s: {:.0}",
        delivered as f64 / wall
    );
    println!(
        "cpu (server+clients): {cpu:.2} s, per presence change: {:.1} ms",
        cpu * 1000.0 / changes as f64
    );
    server.shutdown().await;
}
