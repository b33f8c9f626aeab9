//! Fuzzes the c2s session core in memory: one in-process server (SQLite in a temporary folder,
//! no listeners, authentication without TLS allowed), one in-memory session per input
//! (`xmppd::session::c2s::memory`: the real negotiation, routing and storage, no sockets).
//! The first byte picks where the input starts: at the stream header (header, SASL,
//! registration, bind) or, after this harness logged in with SCRAM-SHA-256 and bound a
//! resource, as stanzas and nonzas (SM, CSI) of a session.
//! A panic anywhere in the server aborts (libFuzzer's panic hook); a session that does not end
//! after the client closed is reported as a hang.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use xmppd::session::c2s::memory;

struct Env {
    rt: Runtime,
    _dir: tempfile::TempDir,
    /// Kept (not forgotten) so that the leak checker at exit sees it as reachable.
    server: xmppd::server::Server,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = xmppd::config::Config::default();
        c.server.data_dir = dir.path().to_path_buf();
        c.server.log = "off".into();
        c.c2s.listen = vec![];
        c.c2s.tls_listen = vec![];
        c.http.listen = vec![];
        c.http.tls_listen = vec![];
        c.c2s.require_tls = false;
        c.c2s.allow_registration = true;
        c.c2s.resume_timeout_secs = 1;
        c.limits.auth_failures_per_ip_per_minute = 1_000_000;
        c.limits.registrations_per_ip_per_hour = 1_000_000;
        let server = rt.block_on(async {
            let s = xmppd::server::Server::start(c).await.unwrap();
            let creds = xmppd::stream::sasl::scram::ScramCredentials::new_set("pw", 4096).unwrap();
            s.storage.accounts.create("localhost", "alice", &creds).await.unwrap();
            s.storage.accounts.create("localhost", "bob", &creds).await.unwrap();
            s
        });
        Env {
            rt,
            _dir: dir,
            server,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let env = env();
    env.rt.block_on(async {
        let mut c = memory::connect(env.server.c2s.clone(), env.server.shutdown_signal());
        if mode & 1 == 1 && c.login("alice", "pw", "fuzz").await.is_none() {
            return;
        }
        c.send(body).await;
        // The session must end once the client is gone.
        assert!(
            c.close(Duration::from_secs(10)).await,
            "the session did not end after the client closed"
        );
    });
});
