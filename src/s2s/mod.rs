//! Federation: server-to-server streams (RFC 6120 §§4–6 between servers, XEP-0178 SASL EXTERNAL,
//! XEP-0220 Server Dialback with XEP-0185 keys, XEP-0368 direct TLS, XEP-0288 bidirectional
//! streams).
//!
//! A remote domain is a route of the router ([`crate::router::Remote`]): a stanza for one goes
//! to the outgoing stream of its domain pair (`local → remote`), at most one per pair, made on
//! first use and closed when idle. While it is made, stanzas wait in a queue bounded in count
//! and bytes; if it cannot be made within `s2s.connect_timeout_secs` they come back to their
//! senders (`remote-server-not-found` when the domain does not resolve, else
//! `remote-server-timeout`); nothing waits forever.
//!
//! Incoming streams (`incoming/`) are authenticated per domain pair and every stanza's
//! `from` is checked against them (`invalid-from`), its `to` against the served domains
//! (`host-unknown`).
//!
//! Stream management (XEP-0198, acknowledgements without resumption) runs on streams
//! authenticated by SASL EXTERNAL when both sides have it: what a broken stream had not
//! acknowledged is sent again on a new one. Without it (dialback, or a peer without it) a
//! stanza written into a socket that then breaks is lost, as with Prosody and ejabberd.
//!
//! Bidirectional streams (XEP-0288, `bidi.rs`): with a peer that offers them one connection
//! carries both directions. A peer's certificate may name its domain by DNS-ID, SRV-ID or
//! XmppAddr (`names.rs`).

pub mod bidi;
pub mod connect;
pub mod dialback;
pub mod eyeballs;
pub mod incoming;
pub mod names;
pub mod outgoing;
pub mod resolve;
pub mod stream;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use jid::Jid;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::router::{Remote, Router};
use crate::stanza::ErrorCondition;
use crate::xml::{Element, Limits};

/// One outgoing stream's queue.
struct Outbound {
    tx: mpsc::Sender<Element>,
    /// What its queued stanzas cost in memory.
    bytes: Arc<AtomicUsize>,
    /// Tells this stream from a later one of the same pair.
    id: u64,
}

/// The federation service.
pub struct S2s {
    config: Arc<Config>,
    tls: tls::S2sTls,
    /// Where remote domains are.
    pub resolver: resolve::Resolver,
    secret: dialback::Secret,
    router: Weak<Router>,
    /// Outgoing streams by (local domain, remote domain).
    pool: Mutex<HashMap<(String, String), Outbound>>,
    next_id: AtomicU64,
    /// Incoming streams by authenticated remote domain.
    incoming: Mutex<HashMap<String, usize>>,
    incoming_total: AtomicUsize,
    /// How each remote domain with an incoming stream authenticated it (`"external"` or
    /// `"dialback"`), for the logs, the admin and the tests.
    methods: Mutex<HashMap<String, &'static str>>,
    shutdown: watch::Receiver<bool>,
    /// Upgraded by every stream task while it runs: the server's shutdown waits for them (a
    /// strong sender here would make it wait for the service itself).
    alive: mpsc::WeakSender<()>,
}

impl S2s {
    /// The service for `router`'s hosts.
    pub fn new(
        config: Arc<Config>,
        router: &Arc<Router>,
        shutdown: watch::Receiver<bool>,
        alive: mpsc::Sender<()>,
    ) -> Result<Arc<S2s>, crate::transport::tls::TlsError> {
        Ok(Arc::new(S2s {
            tls: tls::contexts(&config)?,
            resolver: resolve::Resolver::new(&config.s2s),
            secret: dialback::Secret::new(&config.s2s.dialback_secret),
            router: Arc::downgrade(router),
            pool: Mutex::default(),
            next_id: AtomicU64::new(1),
            incoming: Mutex::default(),
            incoming_total: AtomicUsize::new(0),
            methods: Mutex::default(),
            config,
            shutdown,
            alive: alive.downgrade(),
        }))
    }

    /// The limits on what a remote server sends.
    fn limits(&self) -> Limits {
        let c = &self.config;
        Limits {
            max_stanza_size: c.s2s.max_stanza_size,
            max_stanza_memory: c.s2s.max_stanza_size.saturating_mul(4),
            max_depth: c.c2s.max_depth,
            max_tag_size: c.c2s.max_tag_size,
            max_attributes: c.c2s.max_attributes,
        }
    }

    /// Whether `domain` is ours: a served host or a service domain.
    fn is_ours(&self, domain: &str) -> bool {
        self.config.serves(domain)
            || self
                .router
                .upgrade()
                .is_some_and(|r| r.routes.service(domain).is_some())
    }

    /// Starts the incoming listener on `l`.
    pub fn listen(self: &Arc<Self>, l: tokio::net::TcpListener, direct_tls: bool) {
        tokio::spawn(incoming::accept_loop(self.clone(), l, direct_tls));
    }

    /// Queues `stanza` on the outgoing stream of its domain pair, making one if needed.
    fn enqueue(self: &Arc<Self>, router: &Router, stanza: Element, local: String, remote: String) {
        let cost = stanza.deep_cost();
        let key = (local, remote);
        let mut stanza = stanza;
        for _ in 0..2 {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if !pool.contains_key(&key) {
                if pool.len() >= self.config.s2s.max_outgoing {
                    drop(pool);
                    return router.bounce(&stanza, ErrorCondition::ResourceConstraint);
                }
                let (tx, rx) = mpsc::channel(self.config.s2s.queue.max(1));
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let bytes = Arc::new(AtomicUsize::new(0));
                let out = Outbound {
                    tx,
                    bytes: bytes.clone(),
                    id,
                };
                pool.insert(key.clone(), out);
                let me = self.clone();
                let (local, remote) = key.clone();
                tokio::spawn(outgoing::run(me, local, remote, rx, bytes, id));
            }
            let Some(out) = pool.get(&key) else { return };
            if out.bytes.load(Ordering::Relaxed) + cost > self.config.s2s.queue_bytes {
                drop(pool);
                return router.bounce(&stanza, ErrorCondition::ResourceConstraint);
            }
            match out.tx.try_send(stanza) {
                Ok(()) => {
                    out.bytes.fetch_add(cost, Ordering::Relaxed);
                    return;
                }
                Err(mpsc::error::TrySendError::Full(s)) => {
                    drop(pool);
                    return router.bounce(&s, ErrorCondition::ResourceConstraint);
                }
                // The stream just ended: a new one is made.
                Err(mpsc::error::TrySendError::Closed(s)) => {
                    pool.remove(&key);
                    stanza = s;
                }
            }
        }
        router.bounce(&stanza, ErrorCondition::RemoteServerTimeout);
    }

    /// Forgets the outgoing stream `id` of a pair (it ended).
    fn forget(&self, local: &str, remote: &str, id: u64) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let key = (local.to_string(), remote.to_string());
        if pool.get(&key).is_some_and(|o| o.id == id) {
            pool.remove(&key);
        }
    }

    /// Whether an outgoing stream to `remote` exists or is being made.
    pub fn has_outgoing(&self, remote: &str) -> bool {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .any(|(_, r)| r == remote)
    }

    /// How `remote`'s incoming streams authenticated (the last one): `"external"` or
    /// `"dialback"`; none once it has no incoming stream.
    pub fn method_of(&self, remote: &str) -> Option<&'static str> {
        self.methods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(remote)
            .copied()
    }

    /// Incoming streams open now (authenticated or not).
    pub fn incoming_streams(&self) -> usize {
        self.incoming_total.load(Ordering::Relaxed)
    }

    /// Counts an incoming stream authenticated for `remote`; false when it has too many.
    fn admit_incoming(&self, remote: &str) -> bool {
        let mut m = self.incoming.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(remote.to_string()).or_insert(0);
        if *n >= self.config.s2s.max_incoming_per_domain {
            return false;
        }
        *n += 1;
        true
    }

    fn release_incoming(&self, remote: &str) {
        let mut m = self.incoming.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(remote) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(remote);
                // Kept only while the domain has a stream: the map stays as small as `incoming`.
                self.methods
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(remote);
            }
        }
    }
}

/// A handle the router holds.
pub struct RemoteRoute(pub Arc<S2s>);

impl Remote for RemoteRoute {
    fn send(&self, router: &Router, stanza: Element) {
        let s2s = &self.0;
        let domain = |a: &str| {
            stanza
                .attr(a)
                .and_then(|j| Jid::new(j).ok())
                .map(|j| j.domain().as_str().to_ascii_lowercase())
        };
        let (Some(local), Some(remote)) = (domain("from"), domain("to")) else {
            return router.bounce(&stanza, ErrorCondition::JidMalformed);
        };
        if !s2s.is_ours(&local) {
            // Not ours to send from (a remote sender's stanza is never relayed).
            return router.bounce(&stanza, ErrorCondition::NotAllowed);
        }
        if s2s.config.s2s.blocked(&remote) {
            return router.bounce(&stanza, ErrorCondition::RemoteServerNotFound);
        }
        tracing::trace!(%local, %remote, kind = stanza.name(), "stanza out");
        s2s.enqueue(router, stanza, local, remote);
    }
}

/// The bound listener addresses of federation.
#[derive(Debug, Default, Clone)]
pub struct S2sAddrs {
    /// STARTTLS listeners.
    pub plain: Vec<SocketAddr>,
    /// Direct-TLS listeners.
    pub direct: Vec<SocketAddr>,
}
