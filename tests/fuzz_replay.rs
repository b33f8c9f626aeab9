//! Replays the fuzz targets' committed inputs under `cargo test`, so that a regression on a
//! known input fails CI without a nightly toolchain: the seeds (`fuzz/seeds/<target>/`) and the
//! regressions, inputs that found or would have found a defect (`fuzz/regressions/<target>/`:
//! the namespace and attribute floods, unfinished start tags, directed-presence floods …).
//!
//! `xml_stream` runs the very property the fuzz target runs (`xmppd::xml::fuzzing`);
//! `c2s_session` drives in-memory sessions of a real server as `fuzz/fuzz_targets/c2s_session.rs`
//! does: the first byte's low bit says whether the rest is sent after logging in and binding,
//! and the session must end once the client has closed its side.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use xmppd::session::c2s::memory;

/// Every file of the seeds and regressions of one target, sorted.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    assert!(
        out.len() >= 10,
        "too few inputs for {target}: {}",
        out.len()
    );
    out
}

#[test]
fn xml_stream_inputs() {
    for (path, data) in inputs("xml_stream") {
        let r = std::panic::catch_unwind(|| xmppd::xml::fuzzing::xml_stream(&data));
        assert!(r.is_ok(), "{path:?} fails the xml_stream property");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2s_session_inputs() {
    let t = TestServer::start(|c| {
        c.c2s.require_tls = false;
        c.c2s.allow_registration = true;
        c.c2s.resume_timeout_secs = 1;
        c.limits.auth_failures_per_ip_per_minute = 1_000_000;
        c.limits.registrations_per_ip_per_hour = 1_000_000;
    })
    .await;
    t.add_user("alice", "pw").await;
    t.add_user("bob", "pw").await;
    let server = t.server();
    for (i, (path, data)) in inputs("c2s_session").into_iter().enumerate() {
        let Some((&mode, body)) = data.split_first() else {
            continue;
        };
        // In memory, as the fuzz target runs: the session core without sockets.
        let mut c = memory::connect(server.c2s.clone(), server.shutdown_signal());
        if mode & 1 == 1 {
            let resource = format!("fuzz{i}");
            assert!(
                c.login("alice", "pw", &resource).await.is_some(),
                "{path:?}: login"
            );
        }
        c.send(body).await;
        assert!(
            c.close(Duration::from_secs(10)).await,
            "{path:?}: the session did not end after the client closed"
        );
    }
    // And it still serves, over TCP.
    let mut bob = t.raw().await;
    bob.login("bob", "pw", "after").await;
    bob.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(bob.read_until("id='p'").await.contains("type='result'"));
}
