//! The loop every transport's session runs: it waits with `select!` on the transport's input,
//! the session's bounded inbox (after bind), the timers (negotiation deadline, idle ping, ack
//! request, freeing a quiet session's buffers), a kick from a newer session, a resumption
//! request and server shutdown; it hands what came to the core ([`C2s`]) and has the
//! transport write what the core left in its output. A transport only implements [`Wire`]:
//! reading, feeding what it read to the core, writing, and (TCP) the TLS upgrade.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use std::sync::Arc;

use tokio::sync::Notify;

use super::sm::{Takeover, now_ms};
use super::wake::{Wake, count_buffer, notified, recv, recv_inbox};
use super::{C2s, Flow, Phase};
use crate::session::SessionMsg;
use crate::session::resume::Requests;
use crate::stream::{Condition, StreamError};
use crate::xml::StreamParser;

/// Time without input after which a session frees its read and parser buffers.
const QUIET: Duration = Duration::from_secs(1);
/// Queued stanzas written in one turn before the transport is flushed.
const WRITE_BATCH: usize = 64;

/// A transport under a c2s session.
pub trait Wire: Send {
    /// What one read gives.
    type Input: Send;

    /// Waits for input; `None` when the peer is gone. Cancel-safe (it runs in `select!`).
    fn read(&mut self) -> impl Future<Output = Option<Self::Input>> + Send;

    /// Hands input to the core: parses it and calls [`C2s::on_event`] for each event, and
    /// performs the steps of the stream that stay inside the transport (a restart, compression).
    fn feed(&mut self, s: &mut C2s, input: Self::Input) -> impl Future<Output = Flow> + Send;

    /// Writes what the core's output holds. A peer that stops reading stalls the write: after
    /// `c2s.write_timeout_secs`, or as soon as the session's queue overflows meanwhile
    /// (`wires.full`), this gives up with an error.
    fn flush(
        &mut self,
        s: &mut C2s,
        wires: &Wires,
    ) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Upgrades to TLS after `<proceed/>` (only a transport that offers STARTTLS is asked).
    fn start_tls(&mut self, _s: &mut C2s) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Frees the read and parser buffers of a quiet session; the next input allocates them.
    fn release_idle(&mut self);

    /// Whether a read buffer is held now.
    fn holds_buffer(&self) -> bool;

    /// Closes the transport (bounded in time). What it still holds for the client goes back
    /// to the core ([`C2s::undelivered`]).
    fn shutdown(&mut self, s: &mut C2s) -> impl Future<Output = ()> + Send;
}

/// Runs one session on `wire` to its end: the session stays resumable (XEP-0198) if the
/// transport was lost, and is closed (every stanza re-routed) otherwise.
pub async fn drive<W: Wire>(mut s: C2s, mut wire: W, mut shutdown: watch::Receiver<bool>) {
    let shared = s.shared.clone();
    let config = &shared.config.c2s;
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let deadline = Instant::now() + Duration::from_secs(config.auth_timeout_secs);
    let mut wires = Wires::default();
    let mut holding = false;
    // Liveness (XEP-0199 §4.2 server-to-client pings): when the client last sent anything,
    // and whether it was pinged since.
    let mut last_read = Instant::now();
    let mut pinged = false;
    // The transport died (rather than the session ending): a resumable session waits.
    let mut lost = false;
    debug!(transport = s.link.transport, "connected");
    loop {
        let bound = s.is_bound();
        // Two timers (each is 112 bytes of every session's task): the stage's (negotiation
        // deadline, or idle ping and timeout once bound), and the sooner of an ack request
        // (XEP-0198) and freeing a quiet session's buffers.
        let stage_at = match bound {
            true => last_read + if pinged { idle } else { idle / 2 },
            false => deadline,
        };
        let quiet_at = wire.holds_buffer().then(|| last_read + QUIET);
        let ack_at = s.ack_due().map(Instant::from_std);
        let tick_at = match (ack_at, quiet_at) {
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
            r = wire.read() => Wake::Read(r),
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
                wire.release_idle();
                s.out.release();
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
                if s.hand_over(req, &mut wires.inbox, &mut wires.resume) {
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
            Wake::Read(None) => {
                lost = true;
                break;
            }
            Wake::Read(Some(input)) => {
                // Any input counts, whitespace keepalives included (RFC 6120 §4.6.1).
                last_read = Instant::now();
                pinged = false;
                wire.feed(&mut s, input).await
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
                if wire.flush(&mut s, &Wires::default()).await.is_err()
                    || !Box::pin(wire.start_tls(&mut s)).await
                {
                    break;
                }
                continue;
            }
            Flow::Close(e) => {
                debug!("closing: {e}");
                crate::metrics::stream_error(e.condition.as_str());
                s.write_stream_error(&e);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    wire.flush(&mut s, &Wires::default()),
                )
                .await;
                break;
            }
            Flow::End => {
                s.write_end();
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    wire.flush(&mut s, &Wires::default()),
                )
                .await;
                break;
            }
        }
        count_buffer(&shared.read_buffers, &mut holding, wire.holds_buffer());
        // Bound, resumed or enabled just now: listen on the new channels.
        wires.adopt(&mut s);
        s.maybe_request_ack();
        if let Err(e) = wire.flush(&mut s, &wires).await {
            debug!("write failed: {e}");
            lost = true;
            break;
        }
    }
    count_buffer(&shared.read_buffers, &mut holding, false);
    wire.shutdown(&mut s).await;
    drop(wire);
    if lost
        && s.resumable()
        && let Parked::Resumed = Box::pin(park(&mut s, &mut wires, &mut shutdown)).await
    {
        debug!("handed over");
        return;
    }
    Box::pin(s.close(wires.inbox.take())).await;
    debug!("disconnected");
}

/// The channels a session's task listens on, held outside [`C2s`] so `select!` can borrow
/// them next to the socket.
#[derive(Default)]
pub struct Wires {
    /// The session's inbox (after bind).
    pub inbox: Option<crate::session::queue::Inbox>,
    /// Signalled when a newer session took the resource.
    pub kick: Option<Arc<Notify>>,
    /// Resumption requests (when resumable).
    pub resume: Option<Requests<Takeover>>,
    /// Signalled when the inbox was found full (a slow reader).
    pub full: Option<Arc<Notify>>,
}

impl Wires {
    /// Takes what negotiation just set up (a bind, a resumption, an `<enable/>`).
    pub(super) fn adopt(&mut self, s: &mut C2s) {
        if let Some(rx) = s.inbox.take() {
            self.inbox = Some(rx);
            if let Phase::Bound(b) = &s.phase {
                self.kick = Some(b.handle.kicked());
                self.full = Some(b.handle.full());
            }
        }
        if let Some(rx) = s.resume_rx.take() {
            self.resume = Some(rx);
        }
    }
}

/// How a detached session's wait ended.
enum Parked {
    /// Handed over to a new connection: nothing more to do here.
    Resumed,
    /// Timed out, replaced, or the server stops: end the session.
    Expired,
}

/// Waits detached for a `<resume/>` until the timeout (XEP-0198 §5). Stanzas for the session
/// join the unacknowledged queue, within `c2s.max_unacked`.
async fn park(s: &mut C2s, wires: &mut Wires, shutdown: &mut watch::Receiver<bool>) -> Parked {
    let timeout = Duration::from_secs(s.shared.config.c2s.resume_timeout_secs);
    let until = Instant::now() + timeout;
    debug!("connection lost; waiting {timeout:?} for a resumption");
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return Parked::Expired,
            _ = shutdown.changed() => return Parked::Expired,
            _ = notified(&wires.kick) => return Parked::Expired,
            req = recv(&mut wires.resume) => match req {
                Some(req) => if s.hand_over(req, &mut wires.inbox, &mut wires.resume) { return Parked::Resumed },
                None => return Parked::Expired,
            },
            m = recv_inbox(&mut wires.inbox) => match (m, s.sm.as_mut()) {
                (Some(m), Some(sm)) if !matches!(m, SessionMsg::Close(_)) => {
                    match m {
                        SessionMsg::Batch(b) if !b.claimed.is_empty() => {
                            for (el, id) in b.stanzas.into_iter().zip(b.claimed) {
                                sm.sent_claimed(el, now_ms(), Some(id));
                            }
                        }
                        // Kept as the shared serialisation, as for an attached session.
                        SessionMsg::Shared(a) => sm.sent(*a, now_ms()),
                        m => {
                            for el in m.into_stanzas() {
                                sm.sent(el, now_ms());
                            }
                        }
                    }
                    if s.unacked_over_limit() {
                        debug!("too many stanzas for a detached session");
                        return Parked::Expired;
                    }
                }
                _ => return Parked::Expired,
            },
        }
    }
}

/// Feeds the bytes of an XML stream to `parser` and each event to the core, until the bytes
/// are used up (`Continue`) or the core asks for a step of the transport's (what is left of
/// the bytes stays in `data`). A stream restart after SASL gets a new parser here (RFC 6120
/// §6.4.6: the bytes after `<success/>` belong to the new stream).
pub async fn feed_stream(parser: &mut StreamParser, s: &mut C2s, data: &mut &[u8]) -> Flow {
    loop {
        let ev = match parser.next(data) {
            Ok(Some(ev)) => ev,
            Ok(None) => return Flow::Continue,
            Err(e) => return Flow::Close(e.into()),
        };
        match s.on_event(ev).await {
            Flow::Continue => {}
            Flow::Restart => {
                *parser = StreamParser::new(s.parser_limits());
                s.restart(None);
            }
            other => return other,
        }
    }
}

/// Resolves when the session's queue overflowed: a write stalled on a slow reader gives up.
pub async fn queue_full(wires: &Wires) {
    notified(&wires.full).await
}
