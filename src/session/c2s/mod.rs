//! The client-to-server session: one task per connection (RFC 6120 §4–§7).
//!
//! The task loops with `select!` over the socket, its bounded inbox (after bind), the auth
//! deadline, a kick from a newer session, and server shutdown. Bytes go to the sans-IO
//! [`StreamParser`]; each complete element goes to negotiation (`negotiate.rs`) or, once bound,
//! to stanza handling (`stanzas.rs`). Output is buffered and written once per loop turn.

mod csi;
mod limits;
mod negotiate;
mod output;
mod register;
mod sm;
mod stanzas;
mod wake;
pub use sm::Takeover;
use wake::{Wake, count_buffer, notified, recv, recv_inbox};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span};

use crate::config::Config;
use crate::router::Router;
use crate::session::SessionHandle;
use crate::storage::Storage;
use crate::stream::sasl::scram::random_bytes;
use crate::stream::{Condition, StreamError, random_id, response_header};
use crate::transport::tls::TlsAcceptors;
use crate::transport::{Conn, ConnGuard, ConnLimits};
use crate::xml::{Element, StreamEvent, StreamParser};

/// Read buffer size per connection.
const READ_BUF: usize = 4 * 1024;
/// Time without input after which a session frees its read and parser buffers.
const QUIET: Duration = Duration::from_secs(1);
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
    /// Sessions that can be resumed (XEP-0198).
    pub resumptions: crate::session::resume::Resumptions<Takeover>,
    /// Sessions holding a read buffer now ([`Self::read_buffers`] is shared with the server).
    pub read_buffers: Arc<std::sync::atomic::AtomicUsize>,
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
            resumptions: Default::default(),
            read_buffers: Default::default(),
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
    /// `<compressed/>` was queued: what follows (in both directions) is zlib (XEP-0138).
    Compressed,
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
    inbox: Option<crate::session::queue::Inbox>,
    /// Client State Indication (XEP-0352).
    csi: csi::Csi,
    /// Stream management (XEP-0198), once enabled.
    sm: Option<crate::stream::sm::StreamMgmt>,
    /// Resumption requests, made at `<enable resume/>`, until the loop takes them.
    resume_rx: Option<mpsc::Receiver<sm::Request>>,
    /// Stream compression (XEP-0138), once started.
    zlib: Option<Box<crate::stream::compress::Zlib>>,
    /// Bytes written before compression started, not yet flushed (`<compressed/>`).
    raw_out: Vec<u8>,
    /// Bytes read after `<compress/>`, to inflate once compression has started.
    pending_input: Vec<u8>,
}

impl C2s {
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
                Flow::Compressed => {
                    self.pending_input = data.to_vec();
                    return Flow::Compressed;
                }
                Flow::Restart => {
                    // Bytes after <success/> belong to the new stream.
                    self.parser = self.new_parser();
                    self.header_sent = false;
                }
                // After <proceed/>, anything the client sent in plaintext is dropped unread
                // (STARTTLS command injection).
                other => return other,
            }
        }
    }

    /// Bytes from the socket: inflated first when compression is on.
    async fn on_input(&mut self, raw: &[u8]) -> Flow {
        let mut raw = std::borrow::Cow::Borrowed(raw);
        loop {
            let plain = match self.zlib.as_mut() {
                Some(z) => match z.inflate(&raw, self.shared.config.c2s.max_stanza_size) {
                    Ok(p) => std::borrow::Cow::Owned(p),
                    Err(e) => return Flow::Close(e),
                },
                None => raw.clone(),
            };
            match self.on_bytes(&plain).await {
                Flow::Compressed => {
                    // `<compressed/>` goes out as it is; everything after is zlib, and the
                    // stream restarts (XEP-0138 §5).
                    self.raw_out = std::mem::take(&mut self.out);
                    self.zlib = Some(Box::default());
                    self.parser = self.new_parser();
                    self.header_sent = false;
                    let rest = std::mem::take(&mut self.pending_input);
                    if rest.is_empty() {
                        return Flow::Continue;
                    }
                    raw = std::borrow::Cow::Owned(rest);
                }
                other => return other,
            }
        }
    }

    /// Pings an idle bound client (XEP-0199), or asks for an ack with stream management; its
    /// answer (or any other byte) proves it is alive.
    fn ping_client(&mut self) {
        let Phase::Bound(b) = &self.phase else { return };
        if let Some(sm) = self.sm.as_mut() {
            sm.requested();
            self.write(&crate::stream::sm::request());
            return;
        }
        let ping = Element::new("iq", crate::stream::NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("live-{}", random_id()))
            .with_attr("from", self.host.clone())
            .with_attr("to", b.handle.jid.to_string())
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        self.send(ping);
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if let Phase::Bound(_) = self.phase {
            return self.on_bound_element(el).await;
        }
        self.on_negotiation_element(el).await
    }
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
            // Boxed, like the other one-off steps: the task keeps only the loop's state.
            let accept = Box::pin(tokio::time::timeout(
                TLS_HANDSHAKE_TIMEOUT,
                tls.direct.accept(tcp),
            ));
            match accept.await {
                Ok(Ok(t)) => Conn::Tls(Box::new(t)),
                Ok(Err(e)) => return debug!("TLS handshake failed: {e}"),
                Err(_) => return debug!("TLS handshake timed out"),
            }
        } else {
            Conn::Plain(tcp)
        };
        let mut s = C2s {
            parser: StreamParser::new(C2s::limits(&shared.config, false)),
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
            sm: None,
            resume_rx: None,
            zlib: None,
            raw_out: Vec::new(),
            pending_input: Vec::new(),
        };
        let mut wires = sm::Wires::default();
        let mut buf = Vec::new();
        let mut holding = false;
        // Liveness (XEP-0199 §4.2 server-to-client pings): when the client last sent anything,
        // and whether it was pinged since.
        let mut last_read = Instant::now();
        let mut pinged = false;
        // The connection died (rather than the session ending): a resumable session waits.
        let mut lost = false;
        debug!("connected");
        loop {
            let bound = matches!(s.phase, Phase::Bound(_));
            // Two timers (each is 112 bytes of every session's task): the stage's (negotiation
            // deadline, or idle ping and timeout once bound), and the sooner of an ack request
            // (XEP-0198) and freeing a quiet session's buffers.
            let stage_at = match bound {
                true => last_read + if pinged { idle } else { idle / 2 },
                false => deadline,
            };
            let quiet_at = (!buf.is_empty()).then(|| last_read + QUIET);
            let tick_at = match (s.ack_due(), quiet_at) {
                (Some(a), Some(q)) => Some(a.min(q)),
                (a, q) => a.or(q),
            };
            let wake = tokio::select! {
                _ = shutdown.changed() => Wake::Shutdown,
                _ = tokio::time::sleep_until(stage_at) => match bound {
                    true => Wake::Idle,
                    false => Wake::Deadline,
                },
                _ = tokio::time::sleep_until(tick_at.unwrap_or(stage_at)), if tick_at.is_some() => {
                    Wake::Tick(quiet_at)
                }
                _ = notified(&wires.kick) => Wake::Kicked,
                _ = notified(&wires.full) => Wake::Full,
                r = recv(&mut wires.resume) => Wake::Resume(r),
                m = recv_inbox(&mut wires.inbox) => Wake::Inbox(m),
                r = s.conn.read_lazy(&mut buf, READ_BUF) => Wake::Read(r),
            };
            let flow = match wake {
                Wake::Shutdown => Flow::Close(StreamError::new(Condition::SystemShutdown)),
                Wake::Deadline => Flow::Close(StreamError::with_text(
                    Condition::ConnectionTimeout,
                    "authentication and resource binding took too long",
                )),
                Wake::Idle if pinged => {
                    lost = true;
                    Flow::Close(StreamError::with_text(
                        Condition::ConnectionTimeout,
                        "no traffic from the client, and no answer to a ping",
                    ))
                }
                Wake::Idle => {
                    pinged = true;
                    s.ping_client();
                    Flow::Continue
                }
                // The ack request is written below (`maybe_request_ack`).
                Wake::Tick(Some(quiet)) if Instant::now() >= quiet => {
                    s.release_idle(&mut buf);
                    Flow::Continue
                }
                Wake::Tick(_) => Flow::Continue,
                Wake::Kicked => Flow::Close(StreamError::with_text(
                    Condition::Conflict,
                    "replaced by a new session with the same resource",
                )),
                // The queue overflowed (`c2s.session_queue`): the client does not keep up. What
                // is queued is kept for a resumption, or re-routed (offline storage).
                Wake::Full => {
                    lost = true;
                    Flow::Close(StreamError::with_text(
                        Condition::ResourceConstraint,
                        "too many stanzas queued for this client",
                    ))
                }
                Wake::Resume(Some(req)) => {
                    if s.hand_over(req, &mut wires) {
                        Flow::Close(StreamError::with_text(
                            Condition::Conflict,
                            "the session was resumed on another connection",
                        ))
                    } else {
                        Flow::Continue
                    }
                }
                Wake::Resume(None) => {
                    wires.resume = None;
                    Flow::Continue
                }
                Wake::Inbox(Some(msg)) => {
                    let mut flow = s.on_msg(msg);
                    // Batch what else is queued into the same write.
                    if let Some(r) = wires.inbox.as_mut() {
                        for _ in 0..WRITE_BATCH {
                            if !matches!(flow, Flow::Continue) {
                                break;
                            }
                            match r.try_recv() {
                                Some(msg) => flow = s.on_msg(msg),
                                None => break,
                            }
                        }
                    }
                    flow
                }
                Wake::Inbox(None) => {
                    wires.inbox = None;
                    Flow::Continue
                }
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                    lost = true;
                    break;
                }
                Wake::Read(Ok(n)) => {
                    // Any byte counts, whitespace keepalives included (RFC 6120 §4.6.1).
                    last_read = Instant::now();
                    pinged = false;
                    s.on_input(&buf[..n]).await
                }
            };
            let flow = match flow {
                Flow::Continue if s.unacked_over_limit() => Flow::Close(StreamError::with_text(
                    Condition::ResourceConstraint,
                    "too many stanzas not acknowledged",
                )),
                other => other,
            };
            match flow {
                Flow::Continue | Flow::Restart | Flow::Compressed => {}
                Flow::StartTls => {
                    if s.flush().await.is_err() || !Box::pin(s.upgrade_tls()).await {
                        break;
                    }
                    continue;
                }
                Flow::Close(e) => {
                    debug!("closing: {e}");
                    crate::metrics::stream_error(e.condition.as_str());
                    s.write_stream_error(&e);
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.flush()).await;
                    break;
                }
                Flow::End => {
                    if !s.header_sent {
                        let host = s.shared.config.default_host().to_string();
                        response_header(&mut s.out, &host, None, &random_id());
                    }
                    s.out.extend_from_slice(b"</stream:stream>");
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.flush()).await;
                    break;
                }
            }
            count_buffer(&s.shared.read_buffers, &mut holding, !buf.is_empty());
            // Bound, resumed or enabled just now: listen on the new channels.
            wires.adopt(&mut s);
            s.maybe_request_ack();
            if let Err(e) = s.flush_within(&wires).await {
                debug!("write failed: {e}");
                lost = true;
                break;
            }
        }
        count_buffer(&s.shared.read_buffers, &mut holding, false);
        let _ = tokio::time::timeout(Duration::from_secs(1), s.conn.shutdown()).await;
        s.conn = Conn::Closed;
        if lost
            && s.resumable()
            && let sm::Parked::Resumed = Box::pin(s.park(&mut wires, &mut shutdown)).await
        {
            debug!("handed over");
            return;
        }
        Box::pin(s.close(wires.inbox.take())).await;
        if let Some(z) = &s.zlib {
            debug!(
                plain = z.plain_bytes,
                wire = z.wire_bytes,
                "compression saved {} bytes",
                z.plain_bytes.saturating_sub(z.wire_bytes)
            );
        }
        debug!("disconnected");
    }
    .instrument(span)
    .await
}
