//! XEP-0138 stream compression against the real server: off by default, negotiated after
//! authentication, stanzas flowing compressed both ways, the `<failure/>` conditions, a
//! compression bomb ending the stream with policy-violation, and the bytes saved on a chat.

mod common;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMPRESS: &str =
    "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>";

/// A raw client whose stream is zlib-compressed, counting bytes on the wire and in plain.
struct Zraw {
    raw: Raw,
    inflate: Decompress,
    deflate: Compress,
    wire: usize,
    plain: usize,
}

impl Zraw {
    fn new(raw: Raw) -> Self {
        Zraw {
            raw,
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            wire: 0,
            plain: 0,
        }
    }

    fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        self.deflate
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    }

    async fn send(&mut self, s: &str) {
        let z = self.deflate(s.as_bytes());
        self.wire += z.len();
        self.plain += s.len();
        self.raw.0.write_all(&z).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.raw.0.write_all(bytes).await.unwrap();
    }

    /// Reads and inflates until `needle` appears; returns the plain text read.
    async fn read_until(&mut self, needle: &str) -> String {
        let mut acc = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let fut = async {
            while !String::from_utf8_lossy(&acc).contains(needle) {
                let n = self.raw.0.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                self.wire += n;
                let mut out = Vec::with_capacity(1 << 20);
                let before = self.inflate.total_in();
                self.inflate
                    .decompress_vec(&buf[..n], &mut out, FlushDecompress::Sync)
                    .unwrap();
                assert_eq!((self.inflate.total_in() - before) as usize, n);
                self.plain += out.len();
                acc.extend(out);
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("read timed out");
        String::from_utf8_lossy(&acc).into_owned()
    }
}

async fn server(compression: bool) -> TestServer {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.compression = compression;
    })
    .await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    t
}

/// Authenticates, negotiates compression, restarts the stream and binds.
async fn compressed_login(t: &TestServer, user: &str) -> Zraw {
    let mut raw = t.raw().await;
    let features = raw.authenticate(user, "pw").await;
    assert!(
        features.contains("http://jabber.org/features/compress"),
        "{features}"
    );
    raw.send(COMPRESS).await;
    let ok = raw.read_until("<compressed").await;
    assert!(ok.contains("<compressed"), "{ok}");
    let mut z = Zraw::new(raw);
    z.send(HEADER).await;
    let f = z.read_until("</stream:features>").await;
    assert!(f.contains("urn:ietf:params:xml:ns:xmpp-bind"), "{f}");
    assert!(!f.contains("features/compress"), "offered twice: {f}");
    z.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>z</resource></bind></iq>").await;
    let b = z.read_until("</iq>").await;
    assert!(b.contains(&format!("{user}@localhost/z")), "{b}");
    z
}

#[tokio::test]
async fn off_by_default() {
    let t = server(false).await;
    let mut raw = t.raw().await;
    let features = raw.authenticate("alice", "pw").await;
    assert!(!features.contains("compress"), "{features}");
    raw.send(COMPRESS).await;
    let f = raw.read_until("</failure>").await;
    assert!(f.contains("setup-failed"), "{f}");
}

#[tokio::test]
async fn setup_failures_use_the_xep_conditions() {
    let t = server(true).await;
    let mut raw = t.raw().await;
    raw.authenticate("alice", "pw").await;
    raw.send(
        "<compress xmlns='http://jabber.org/protocol/compress'><method>lzw</method></compress>",
    )
    .await;
    let f = raw.read_until("</failure>").await;
    assert!(f.contains("unsupported-method"), "{f}");
    raw.send("<compress xmlns='http://jabber.org/protocol/compress'/>")
        .await;
    let f = raw.read_until("</failure>").await;
    assert!(f.contains("setup-failed"), "{f}");
    // The stream goes on uncompressed.
    raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await;
    assert!(raw.read_until("</iq>").await.contains("<jid>"));
}

#[tokio::test]
async fn a_compressed_chat_and_the_bytes_it_saves() {
    let t = server(true).await;
    let mut alice = compressed_login(&t, "alice").await;
    let mut bob = compressed_login(&t, "bob").await;
    // A realistic exchange: roster, presence, and messages as Conversations or Gajim send
    // them (ids, origin-id, chat states, receipts, markers).
    for z in [&mut alice, &mut bob] {
        z.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        z.read_until("</iq>").await;
        z.send("<presence><show>chat</show><status>Working from home</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='Kx5pBOMQeVHnpFWOrg4NUQeMbJo='/></presence>").await;
    }
    let (p0w, p0p) = (alice.wire + bob.wire, alice.plain + bob.plain);
    for i in 0..50 {
        let (from, to, to_name) = if i % 2 == 0 {
            (&mut alice, &mut bob, "bob")
        } else {
            (&mut bob, &mut alice, "alice")
        };
        let id = format!("6f1c2e9a-3b7d-4c2e-9f{i:02}-a1b2c3d4e5f6");
        from.send(&format!(
            "<message to='{to_name}@localhost' type='chat' id='{id}'><body>Message number {i}: are we still meeting at the station at half past six?</body><origin-id xmlns='urn:xmpp:sid:0' id='{id}'/><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ))
        .await;
        let got = to.read_until(&format!("Message number {i}:")).await;
        assert!(got.contains(&id), "{got}");
    }
    let wire = alice.wire + bob.wire - p0w;
    let plain = alice.plain + bob.plain - p0p;
    eprintln!(
        "50 chat messages, both directions, two clients: {plain} bytes of XML, {wire} on the wire ({:.0}% saved)",
        100.0 * (1.0 - wire as f64 / plain as f64)
    );
    assert!(wire * 2 < plain, "{wire} on the wire for {plain} of XML");
}

#[tokio::test]
async fn a_compression_bomb_ends_the_stream_with_policy_violation() {
    let t = server(true).await;
    let mut z = compressed_login(&t, "alice").await;
    // 4 MiB of whitespace inside one stanza, about 4 KiB compressed.
    let mut bomb = b"<message to='bob@localhost'><body>".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 4 << 20));
    let wire = z.deflate(&bomb);
    assert!(wire.len() < 16 * 1024);
    z.send_raw(&wire).await;
    let end = z.read_until("</stream:stream>").await;
    assert!(end.contains("policy-violation"), "{end}");
}
