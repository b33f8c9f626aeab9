//! The client-to-server session: one task per connection (RFC 6120 §4–§7).
//!
//! The task loops with `select!` over the socket, its bounded inbox (after bind), the auth
//! deadline, a kick from a newer session, and server shutdown. Bytes go to the sans-IO
//! [`StreamParser`]; each complete element goes to negotiation (`negotiate.rs`) or, once bound,
//! to stanza handling (`stanzas.rs`). Output is buffered and written once per loop turn.

mod csi;
mod negotiate;
mod register;
mod stanzas;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span};

use crate::config::Config;
use crate::router::Router;
use crate::session::{SessionHandle, SessionMsg};
use crate::storage::Storage;
use crate::stream::sasl::scram::random_bytes;
use crate::stream::{Condition, StreamError, random_id, response_header, write_top_level};
use crate::transport::tls::TlsAcceptors;
use crate::transport::{Conn, ConnGuard, ConnLimits};
use crate::xml::{Element, Limits, StreamEvent, StreamParser};

/// Read buffer size per connection.
const READ_BUF: usize = 8 * 1024;
/// Queued stanzas written in one turn before the socket is flushed.
const WRITE_BATCH: usize = 64;
/// Time a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// What every c2s session shares.
pub struct Shared {
    /// The configuration.
    pub config: Arc<Config>,
    /// TLS acceptors (absent only when no certificate could be set up and TLS is not required).
    pub tls: Option<TlsAcceptors>,
    /// The stores.
    pub storage: Storage,
    /// The router (and through it the registry).
    pub router: Arc<Router>,
    /// Connection and authentication limits.
    pub limits: Arc<ConnLimits>,
    /// Key for the decoy credentials of unknown users (stable for this process).
    pub decoy_secret: [u8; 32],
}

impl Shared {
    /// New shared state.
    pub fn new(
        config: Arc<Config>,
        tls: Option<TlsAcceptors>,
        storage: Storage,
        router: Arc<Router>,
        limits: Arc<ConnLimits>,
    ) -> Self {
        Shared {
            config,
            tls,
            storage,
            router,
            limits,
            decoy_secret: random_bytes::<32>(),
        }
    }
}

/// What handling an event asks the loop to do next.
#[derive(Debug)]
enum Flow {
    /// Keep going.
    Continue,
    /// Send `<proceed/>` was queued: flush, then upgrade to TLS, dropping any bytes read after.
    StartTls,
    /// SASL succeeded: parse what follows as a new stream (RFC 6120 §6.4.6).
    Restart,
    /// Send this stream error and close.
    Close(StreamError),
    /// The client closed its stream: close ours.
    End,
}

/// Where the session is in negotiation.
#[derive(Debug)]
enum Phase {
    /// Not authenticated.
    Unauthenticated,
    /// Authenticated as this bare JID, not bound.
    Authenticated(jid::BareJid),
    /// Bound.
    Bound(Bound),
}

#[derive(Debug)]
struct Bound {
    handle: SessionHandle,
}

/// One client connection's state.
pub(crate) struct C2s {
    shared: Arc<Shared>,
    conn: Conn,
    peer: SocketAddr,
    parser: StreamParser,
    /// Bytes waiting to be written.
    out: Vec<u8>,
    /// Whether our stream header for the current stream was written.
    header_sent: bool,
    /// The served domain the client addressed.
    host: String,
    phase: Phase,
    sasl: negotiate::SaslState,
    auth_failures: u32,
    /// The inbox made at bind, until the loop takes it.
    inbox: Option<mpsc::Receiver<SessionMsg>>,
    /// Client State Indication (XEP-0352).
    csi: csi::Csi,
}

impl C2s {
    fn limits(config: &Config) -> Limits {
        Limits {
            max_stanza_size: config.c2s.max_stanza_size,
            max_depth: config.c2s.max_depth,
        }
    }

    fn write(&mut self, el: &Element) {
        write_top_level(el, &mut self.out);
    }

    /// Queues a stream error and the closing tag; our header first if it was not sent
    /// (RFC 6120 §4.9.1.2).
    fn write_stream_error(&mut self, e: &StreamError) {
        if !self.header_sent {
            let host = self.shared.config.default_host().to_string();
            response_header(&mut self.out, &host, None, &random_id());
            self.header_sent = true;
        }
        self.write(&e.to_element());
        self.out.extend_from_slice(b"</stream:stream>");
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.conn.write_all(&self.out).await?;
        self.conn.flush().await?;
        self.out.clear();
        // Give back the memory of a burst (idle sessions stay small).
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Feeds bytes to the parser and handles each event.
    async fn on_bytes(&mut self, mut data: &[u8]) -> Flow {
        loop {
            let ev = match self.parser.next(&mut data) {
                Ok(Some(ev)) => ev,
                Ok(None) => return Flow::Continue,
                Err(e) => return Flow::Close(e.into()),
            };
            let flow = match ev {
                StreamEvent::Header(h) => self.on_header(&h),
                StreamEvent::Element(el) => self.on_element(el).await,
                StreamEvent::End => Flow::End,
            };
            match flow {
                Flow::Continue => {}
                Flow::Restart => {
                    // Bytes after <success/> belong to the new stream.
                    self.parser = StreamParser::new(Self::limits(&self.shared.config));
                    self.header_sent = false;
                }
                // After <proceed/>, anything the client sent in plaintext is dropped unread
                // (STARTTLS command injection).
                other => return other,
            }
        }
    }

    /// Pings an idle bound client (XEP-0199); its answer (or any other byte) proves it is alive.
    fn ping_client(&mut self) {
        let Phase::Bound(b) = &self.phase else { return };
        let ping = Element::new("iq", crate::stream::NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("live-{}", random_id()))
            .with_attr("from", self.host.clone())
            .with_attr("to", b.handle.jid.to_string())
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        self.write(&ping);
    }

    /// A message from the rest of the server.
    fn on_msg(&mut self, msg: SessionMsg) -> Flow {
        match msg {
            SessionMsg::Stanza(el) => {
                self.write_stanza(el);
                Flow::Continue
            }
            SessionMsg::Close(e) => Flow::Close(e),
        }
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if let Phase::Bound(_) = self.phase {
            return self.on_bound_element(el).await;
        }
        self.on_negotiation_element(el).await
    }
}

/// Receives from the inbox when bound; never resolves otherwise.
async fn recv(rx: &mut Option<mpsc::Receiver<SessionMsg>>) -> Option<SessionMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn kicked(n: &Option<Arc<Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Deadline,
    Idle,
    Kicked,
    Inbox(Option<SessionMsg>),
    Read(std::io::Result<usize>),
}

/// Runs one client connection to its end. `direct_tls`: the TLS handshake comes first (XEP-0368).
pub async fn run(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    mut shutdown: watch::Receiver<bool>,
    _guard: ConnGuard,
) {
    let span = info_span!("c2s", id = %random_id(), %peer);
    async move {
        let _ = tcp.set_nodelay(true);
        // TCP keepalive finds peers that vanished without a FIN (a phone that lost its network).
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(15));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let idle = Duration::from_secs(shared.config.c2s.idle_timeout_secs);
        let deadline = Instant::now() + Duration::from_secs(shared.config.c2s.auth_timeout_secs);
        let conn = if direct_tls {
            let Some(tls) = shared.tls.clone() else {
                return;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.direct.accept(tcp)).await {
                Ok(Ok(t)) => Conn::Tls(Box::new(t)),
                Ok(Err(e)) => return debug!("TLS handshake failed: {e}"),
                Err(_) => return debug!("TLS handshake timed out"),
            }
        } else {
            Conn::Plain(tcp)
        };
        let mut s = C2s {
            parser: StreamParser::new(C2s::limits(&shared.config)),
            shared,
            conn,
            peer,
            out: Vec::new(),
            header_sent: false,
            host: String::new(),
            phase: Phase::Unauthenticated,
            sasl: negotiate::SaslState::None,
            auth_failures: 0,
            inbox: None,
            csi: csi::Csi::default(),
        };
        let mut rx: Option<mpsc::Receiver<SessionMsg>> = None;
        let mut kick: Option<Arc<Notify>> = None;
        let mut buf = vec![0u8; READ_BUF];
        // Liveness (XEP-0199 §4.2 server-to-client pings): when the client last sent anything,
        // and whether it was pinged since.
        let mut last_read = Instant::now();
        let mut pinged = false;
        debug!("connected");
        loop {
            let bound = matches!(s.phase, Phase::Bound(_));
            let idle_at = last_read + if pinged { idle } else { idle / 2 };
            let wake = tokio::select! {
                _ = shutdown.changed() => Wake::Shutdown,
                _ = tokio::time::sleep_until(deadline), if !bound => Wake::Deadline,
                _ = tokio::time::sleep_until(idle_at), if bound => Wake::Idle,
                _ = kicked(&kick) => Wake::Kicked,
                m = recv(&mut rx) => Wake::Inbox(m),
                r = s.conn.read(&mut buf) => Wake::Read(r),
            };
            let flow = match wake {
                Wake::Shutdown => Flow::Close(StreamError::new(Condition::SystemShutdown)),
                Wake::Deadline => Flow::Close(StreamError::with_text(
                    Condition::ConnectionTimeout,
                    "authentication and resource binding took too long",
                )),
                Wake::Idle if pinged => Flow::Close(StreamError::with_text(
                    Condition::ConnectionTimeout,
                    "no traffic from the client, and no answer to a ping",
                )),
                Wake::Idle => {
                    pinged = true;
                    s.ping_client();
                    Flow::Continue
                }
                Wake::Kicked => Flow::Close(StreamError::with_text(
                    Condition::Conflict,
                    "replaced by a new session with the same resource",
                )),
                Wake::Inbox(Some(msg)) => {
                    let mut flow = s.on_msg(msg);
                    // Batch what else is queued into the same write.
                    if let Some(r) = rx.as_mut() {
                        for _ in 0..WRITE_BATCH {
                            if !matches!(flow, Flow::Continue) {
                                break;
                            }
                            match r.try_recv() {
                                Ok(msg) => flow = s.on_msg(msg),
                                Err(_) => break,
                            }
                        }
                    }
                    flow
                }
                Wake::Inbox(None) => Flow::Continue,
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) => break,
                Wake::Read(Ok(n)) => {
                    // Any byte counts, whitespace keepalives included (RFC 6120 §4.6.1).
                    last_read = Instant::now();
                    pinged = false;
                    s.on_bytes(&buf[..n]).await
                }
            };
            match flow {
                Flow::Continue | Flow::Restart => {}
                Flow::StartTls => {
                    if s.flush().await.is_err() || !s.upgrade_tls().await {
                        break;
                    }
                    continue;
                }
                Flow::Close(e) => {
                    debug!("closing: {e}");
                    s.write_stream_error(&e);
                    let _ = s.flush().await;
                    break;
                }
                Flow::End => {
                    if !s.header_sent {
                        let host = s.shared.config.default_host().to_string();
                        response_header(&mut s.out, &host, None, &random_id());
                    }
                    s.out.extend_from_slice(b"</stream:stream>");
                    let _ = s.flush().await;
                    break;
                }
            }
            // Bound just now: start reading the inbox.
            if let (Phase::Bound(b), None) = (&s.phase, &rx) {
                kick = Some(b.handle.kicked());
                rx = s.inbox.take();
            }
            if s.flush().await.is_err() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), s.conn.shutdown()).await;
        s.close(rx).await;
        debug!("disconnected");
    }
    .instrument(span)
    .await
}
