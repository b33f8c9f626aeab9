//! Outgoing server streams (RFC 6120 §4–§6): connect to the first reachable place the resolver
//! gives, STARTTLS (required) or direct TLS, then SASL EXTERNAL when the peer offers it (our
//! certificate validates there), else Server Dialback; then the queued stanzas flow, until the
//! stream is idle for `s2s.idle_timeout_secs`.
//!
//! What happens to a stanza: written on the authenticated stream, and with stream management
//! (XEP-0198, when the peer offers it) kept until the peer acknowledges it; when the stream
//! breaks first (or a write fails), written again on a new stream (once), else bounced; when
//! no stream can be made in time, bounced with `remote-server-not-found` (no such domain) or
//! `remote-server-timeout`. Without stream management a stanza the socket took is the peer's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::S2s;
use super::bidi::check_reverse;
use super::connect::{Failure, connect};
use super::stream::{S2sStream, into_client_ns, is_server_stanza};
use crate::stanza::ErrorCondition;
use crate::stream::NS_STREAMS;
use crate::stream::sm::{self, StreamMgmt};
use crate::xml::{Element, StreamEvent};

/// Stanzas written at once.
const BATCH: usize = 64;

/// How a running stream ended.
enum End {
    /// Idle, or the server shuts down: nothing is waiting.
    Done,
    /// The stream broke; these stanzas were not (surely) written.
    Broke(Vec<Element>),
}

/// Runs the outgoing stream of `local → remote` until it is idle or broken.
pub async fn run(
    s2s: Arc<S2s>,
    local: String,
    remote: String,
    mut rx: mpsc::Receiver<Element>,
    bytes: Arc<AtomicUsize>,
    id: u64,
) {
    let _alive = s2s.alive.upgrade();
    let _open = crate::metrics::open("s2s_out");
    let mut carried: Vec<Element> = Vec::new();
    for attempt in 0..2 {
        let limit = Duration::from_secs(s2s.config.s2s.connect_timeout_secs);
        let made = match tokio::time::timeout(limit, connect(&s2s, &local, &remote, true)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Unreachable(format!(
                "{remote} did not answer within {limit:?}"
            ))),
        };
        let mut stream = match made {
            Ok(s) => s,
            Err(e) => {
                warn!(%local, %remote, "no stream: {e}");
                return give_up(&s2s, &local, &remote, id, rx, &bytes, carried, &e);
            }
        };
        let mgmt = enable_sm(&s2s, &mut stream).await;
        info!(%local, %remote, sm = mgmt.is_some(), "outgoing stream authenticated");
        let mut out = Out {
            stream: &mut stream,
            sm: mgmt,
            local: &local,
            remote: &remote,
            received: 0,
        };
        match pump(
            &s2s,
            &mut out,
            &mut rx,
            &bytes,
            std::mem::take(&mut carried),
        )
        .await
        {
            End::Done => {
                stream.close().await;
                break;
            }
            End::Broke(unsent) => {
                debug!(%local, %remote, attempt, "outgoing stream broke");
                carried = unsent;
                if carried.is_empty() && rx.is_empty() {
                    break;
                }
            }
        }
    }
    // Whatever is left goes back through the router: a new stream, or a bounce.
    s2s.forget(&local, &remote, id);
    rx.close();
    let router = s2s.router.upgrade();
    let cond = ErrorCondition::RemoteServerTimeout;
    while let Ok(st) = rx.try_recv() {
        bytes.fetch_sub(st.deep_cost(), Ordering::Relaxed);
        carried.push(st);
    }
    if let Some(r) = router {
        for st in carried {
            r.bounce(&st, cond);
        }
    }
}

/// Bounces everything waiting after a failure to connect.
#[allow(clippy::too_many_arguments)]
fn give_up(
    s2s: &S2s,
    local: &str,
    remote: &str,
    id: u64,
    mut rx: mpsc::Receiver<Element>,
    bytes: &AtomicUsize,
    carried: Vec<Element>,
    why: &Failure,
) {
    s2s.forget(local, remote, id);
    rx.close();
    let Some(router) = s2s.router.upgrade() else {
        return;
    };
    let c = why.condition();
    for st in carried {
        router.bounce(&st, c);
    }
    while let Ok(st) = rx.try_recv() {
        bytes.fetch_sub(st.deep_cost(), Ordering::Relaxed);
        router.bounce(&st, c);
    }
}

/// Asks for stream management (XEP-0198, without resumption) when the peer offered it.
async fn enable_sm(s2s: &S2s, stream: &mut S2sStream) -> Option<StreamMgmt> {
    if !stream.sm_offered || !s2s.config.s2s.stream_management {
        return None;
    }
    stream.send(&Element::new("enable", sm::NS)).await.ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(10), stream.element()).await;
    match answer {
        Ok(Ok(e)) if e.is("enabled", sm::NS) => Some(StreamMgmt::new(None)),
        _ => None,
    }
}

/// An authenticated outgoing stream, with its stream-management state.
struct Out<'a> {
    stream: &'a mut S2sStream,
    sm: Option<StreamMgmt>,
    local: &'a str,
    remote: &'a str,
    /// Stanzas the peer sent us on it (bidirectional, XEP-0288) and we routed.
    received: u32,
}

impl Out<'_> {
    /// Writes `batch` (kept until acknowledged, and an ack requested, with stream
    /// management); on failure, what may not have arrived.
    async fn write(&mut self, batch: Vec<Element>) -> Result<(), Vec<Element>> {
        let mut out = Vec::new();
        for st in &batch {
            crate::stream::write_top_level(st, &mut out);
        }
        let n = batch.len() as u64;
        if let Some(sm) = &mut self.sm {
            let now = crate::storage::now_ms();
            for st in batch {
                sm.sent(st, now);
            }
            crate::stream::write_top_level(&sm::request(), &mut out);
            if self.stream.write_raw(&out).await.is_err() {
                return Err(self.unacked());
            }
        } else if self.stream.write_raw(&out).await.is_err() {
            return Err(batch);
        }
        crate::metrics::s2s_stanzas("out", n);
        Ok(())
    }

    /// What the peer has not acknowledged (nothing is known without stream management).
    fn unacked(&mut self) -> Vec<Element> {
        self.sm
            .as_mut()
            .map(|sm| {
                let kept = sm.take_unacked().into_iter();
                kept.map(|u| u.stanza.into_element()).collect()
            })
            .unwrap_or_default()
    }

    /// Whether more may be written before the peer acknowledges what it has: what waits for
    /// an ack is bounded as the queue is (`s2s.queue`, `s2s.queue_bytes`).
    fn has_room(&self, s2s: &S2s) -> bool {
        self.sm.as_ref().is_none_or(|sm| {
            sm.pending() < s2s.config.s2s.queue && sm.pending_bytes() < s2s.config.s2s.queue_bytes
        })
    }

    /// Handles what the peer sent; false when the stream is over.
    async fn on_element(&mut self, s2s: &S2s, e: Element) -> bool {
        if e.is("a", sm::NS) {
            let h = sm::parse_h(&e);
            return match (&mut self.sm, h) {
                (Some(sm), Some(h)) => sm.ack(h).is_ok(),
                _ => false,
            };
        }
        if e.is("r", sm::NS) {
            // What came to us on this stream (bidirectional), routed.
            return self.stream.send(&sm::ack(self.received)).await.is_ok();
        }
        if self.stream.bidi && is_server_stanza(&e) {
            return self.reverse(s2s, e).await;
        }
        if e.is("error", NS_STREAMS) {
            let why = e.children().next().map(|c| c.name().to_string());
            warn!(
                "the remote server ended the stream: {}",
                why.unwrap_or_default()
            );
            return false;
        }
        // Nothing else is expected here.
        true
    }

    /// A stanza of the peer on our bidirectional stream (XEP-0288): of the inverse pair only.
    async fn reverse(&mut self, s2s: &S2s, e: Element) -> bool {
        if let Err(err) = check_reverse(&e, self.local, self.remote) {
            warn!(local = %self.local, remote = %self.remote,
                "the remote server sent what it may not: {}", err.condition.as_str());
            self.stream.fail(&err).await;
            return false;
        }
        let Some(router) = s2s.router.upgrade() else {
            return false;
        };
        tracing::trace!(from = %self.remote, to = %self.local, kind = e.name(), "stanza in (bidi)");
        crate::metrics::s2s_stanzas("in", 1);
        router.route(into_client_ns(e)).await;
        self.received = self.received.wrapping_add(1);
        true
    }
}

/// Writes queued stanzas until the stream is idle, breaks or the server shuts down.
async fn pump(
    s2s: &S2s,
    out: &mut Out<'_>,
    rx: &mut mpsc::Receiver<Element>,
    bytes: &AtomicUsize,
    first: Vec<Element>,
) -> End {
    let idle = Duration::from_secs(s2s.config.s2s.idle_timeout_secs);
    let mut shutdown = s2s.shutdown.clone();
    if !first.is_empty()
        && let Err(lost) = out.write(first).await
    {
        return End::Broke(lost);
    }
    loop {
        let deadline = tokio::time::sleep(idle);
        let room = out.has_room(s2s);
        tokio::select! {
            _ = shutdown.changed() => return End::Done,
            _ = deadline => {
                // Idle; what is still unacknowledged after that long goes on a new stream.
                let unacked = out.unacked();
                return if unacked.is_empty() { End::Done } else { End::Broke(unacked) };
            }
            m = rx.recv(), if room => {
                let Some(st) = m else { return End::Done };
                let mut batch = vec![st];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                let cost: usize = batch.iter().map(Element::deep_cost).sum();
                bytes.fetch_sub(cost, Ordering::Relaxed);
                if let Err(lost) = out.write(batch).await {
                    return End::Broke(lost);
                }
            }
            ev = out.stream.next() => {
                let alive = match ev {
                    Ok(StreamEvent::Element(e)) => out.on_element(s2s, e).await,
                    Ok(_) => true,
                    Err(_) => false,
                };
                if !alive {
                    return End::Broke(out.unacked());
                }
            }
        }
    }
}
