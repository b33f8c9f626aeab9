//! Incoming server streams (RFC 6120 §4–§6 as the receiving entity): STARTTLS required, then
//! SASL EXTERNAL for a peer whose certificate validates for its domain (XEP-0178), or Server
//! Dialback (XEP-0220) per domain pair, several pairs on one stream allowed each on its own
//! authentication (piggybacking). We also answer `<db:verify/>` as the authoritative server of
//! our domains, before any authentication, as dialback needs.
//!
//! Every stanza needs an authenticated pair: its `from` domain authenticated on this stream for
//! its `to` domain (else `invalid-from`), its `to` one of ours (else `host-unknown`).
//!
//! A peer that asks for a bidirectional stream (XEP-0288) gets our stanzas for the inverse of
//! each pair it authenticates on it, when we have no outgoing stream of that pair (`bidi.rs`).

mod auth;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jid::Jid;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, debug, info_span, warn};

use super::bidi::Reverse;
use super::stream::{
    Io, NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK_FEATURE, S2sStream, StreamEnd, into_client_ns,
    is_server_stanza,
};
use super::{S2s, dialback};
use crate::stream::{
    Condition, NS_STREAMS, NS_TLS, StreamError, check_header, random_id, sasl, sm,
};
use crate::xml::{Element, StreamEvent};
use auth::{answer_verify, dialback_result, external};

/// Time a TLS handshake may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(15);

/// Accepts incoming server streams on `l` until shutdown.
pub async fn accept_loop(s2s: Arc<S2s>, l: TcpListener, direct_tls: bool) {
    let mut shutdown = s2s.shutdown.clone();
    loop {
        let Some((tcp, peer)) = crate::transport::accept(&l, &mut shutdown, "s2s").await else {
            return;
        };
        if s2s.incoming_total.fetch_add(1, Ordering::Relaxed) >= s2s.config.s2s.max_incoming {
            s2s.incoming_total.fetch_sub(1, Ordering::Relaxed);
            warn!(%peer, "incoming server stream refused: s2s.max_incoming reached");
            continue;
        }
        let s2s = s2s.clone();
        let span = info_span!("s2s_in", %peer);
        tokio::spawn(
            async move {
                let _alive = s2s.alive.upgrade();
                let _open = crate::metrics::open("s2s_in");
                serve(&s2s, tcp, peer, direct_tls).await;
                s2s.incoming_total.fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

/// One incoming stream's state.
struct Incoming {
    /// Our id for the current stream (dialback keys are bound to it).
    id: String,
    /// The domain the current stream's header addressed.
    local: String,
    /// The peer's domain from its header, if it gave one.
    from: Option<String>,
    /// Authenticated (remote, local) pairs.
    pairs: HashSet<(String, String)>,
    /// Remote domains this stream is counted for.
    counted: Vec<String>,
    /// Stanzas handled, once the peer enabled stream management (XEP-0198).
    handled: Option<u32>,
    /// The peer asked for a bidirectional stream (XEP-0288).
    bidi: bool,
    /// Our stanzas to the peer on this stream, when it is bidirectional.
    reverse: Reverse,
}

/// What to do after an element.
enum Next {
    Continue,
    /// A new stream header follows (after TLS or SASL).
    Restart,
    Close(StreamError),
}

async fn serve(s2s: &Arc<S2s>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let _ = tcp.set_nodelay(true);
    let io = if direct_tls {
        match tokio::time::timeout(TLS_TIMEOUT, s2s.tls.direct_acceptor.accept(tcp)).await {
            Ok(Ok(t)) => Io::Tls(Box::new(t.into())),
            _ => return debug!("TLS handshake failed"),
        }
    } else {
        Io::Plain(tcp)
    };
    let mut st = S2sStream::new(io, s2s.limits());
    let mut inc = Incoming {
        id: String::new(),
        local: String::new(),
        from: None,
        pairs: HashSet::new(),
        counted: Vec::new(),
        handled: None,
        bidi: false,
        reverse: Reverse::new(s2s),
    };
    let end = run(s2s, &mut st, &mut inc).await;
    match end {
        Some(e) => {
            debug!(%peer, "closing: {}", e.condition.as_str());
            st.fail(&e).await;
        }
        None => st.close().await,
    }
    inc.reverse.finish(s2s);
    for d in &inc.counted {
        s2s.release_incoming(d);
    }
}

/// Runs the stream; `Some` is the error that ends it.
async fn run(s2s: &Arc<S2s>, st: &mut S2sStream, inc: &mut Incoming) -> Option<StreamError> {
    let c = &s2s.config.s2s;
    let auth_deadline = tokio::time::Instant::now() + Duration::from_secs(c.auth_timeout_secs);
    let idle = Duration::from_secs(c.idle_timeout_secs);
    let mut shutdown = s2s.shutdown.clone();
    let mut expect_header = true;
    loop {
        let limit = if inc.pairs.is_empty() {
            auth_deadline
        } else {
            tokio::time::Instant::now() + idle
        };
        let ev = tokio::select! {
            _ = shutdown.changed() => return Some(StreamError::new(Condition::SystemShutdown)),
            _ = tokio::time::sleep_until(limit) => {
                return match inc.pairs.is_empty() {
                    true => Some(StreamError::with_text(Condition::ConnectionTimeout,
                        "not authenticated in time")),
                    false => None,
                };
            }
            ev = st.next() => ev,
            Some(out) = inc.reverse.next(), if inc.reverse.has_room(s2s) => {
                // Ours to the peer, on its bidirectional stream (XEP-0288).
                let acks = inc.handled.is_some();
                if !inc.reverse.write(st, out, acks).await {
                    return None;
                }
                continue;
            }
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(StreamEnd::Xml(e)) => return Some(StreamError::from(e)),
            Err(_) => return None,
        };
        let next = match ev {
            StreamEvent::Header(h) if expect_header => {
                expect_header = false;
                let a = match check_header(&h, |d| s2s.is_ours(d)) {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = st
                            .header(
                                s2s.config.server.hosts.first().map(String::as_str),
                                None,
                                Some(&random_id()),
                            )
                            .await;
                        return Some(e);
                    }
                };
                inc.id = random_id();
                inc.local = a.to;
                inc.from = a.from.map(|f| f.to_ascii_lowercase());
                let from = inc.from.clone();
                if st
                    .header(Some(&inc.local), from.as_deref(), Some(&inc.id))
                    .await
                    .is_err()
                {
                    return None;
                }
                let f = features(s2s, st, inc);
                if st.send(&f).await.is_err() {
                    return None;
                }
                Next::Continue
            }
            StreamEvent::Element(e) if !expect_header => on_element(s2s, st, inc, e).await,
            _ => Next::Close(StreamError::with_text(
                Condition::BadFormat,
                "unexpected header",
            )),
        };
        match next {
            Next::Continue => {}
            Next::Restart => {
                st.restart();
                expect_header = true;
            }
            Next::Close(e) => return Some(e),
        }
    }
}

/// The stream features now (RFC 6120 §4.3.2).
fn features(s2s: &S2s, st: &S2sStream, inc: &Incoming) -> Element {
    let mut f = Element::new("features", NS_STREAMS);
    if !st.is_tls() {
        f.append_child(
            Element::new("starttls", NS_TLS).with_child(Element::new("required", NS_TLS)),
        );
        return f;
    }
    let certs = st.peer_certificates();
    let external = inc.from.as_deref().is_some_and(|d| {
        !inc.pairs.contains(&(d.to_string(), inc.local.clone()))
            && s2s.tls.trust.valid_for(&certs, d)
    });
    if external {
        f.append_child(
            Element::new("mechanisms", sasl::NS)
                .with_child(Element::new("mechanism", sasl::NS).with_text("EXTERNAL")),
        );
    }
    if inc.pairs.is_empty() && s2s.config.s2s.bidi {
        f.append_child(Element::new("bidi", NS_BIDI_FEATURE));
    }
    if !inc.pairs.is_empty() && s2s.config.s2s.stream_management {
        // After SASL EXTERNAL's restart: acknowledgements for what the peer sends.
        f.append_child(Element::new("sm", sm::NS));
    }
    if s2s.config.s2s.dialback {
        f.append_child(
            Element::new("dialback", NS_DIALBACK_FEATURE)
                .with_child(Element::new("errors", NS_DIALBACK_FEATURE)),
        );
    }
    f
}

async fn on_element(s2s: &Arc<S2s>, st: &mut S2sStream, inc: &mut Incoming, e: Element) -> Next {
    if e.is("starttls", NS_TLS) {
        if st.is_tls() {
            return Next::Close(StreamError::with_text(
                Condition::PolicyViolation,
                "TLS is up",
            ));
        }
        if st.send(&Element::new("proceed", NS_TLS)).await.is_err() {
            return Next::Close(StreamError::new(Condition::UndefinedCondition));
        }
        let Io::Plain(tcp) = std::mem::replace(&mut st.io, Io::Gone) else {
            return Next::Close(StreamError::new(Condition::InternalServerError));
        };
        return match tokio::time::timeout(TLS_TIMEOUT, s2s.tls.acceptor.accept(tcp)).await {
            Ok(Ok(t)) => {
                st.io = Io::Tls(Box::new(t.into()));
                Next::Restart
            }
            _ => Next::Close(StreamError::new(Condition::UndefinedCondition)),
        };
    }
    if !st.is_tls() {
        // RFC 6120 §5.3.1: STARTTLS is required before anything else here.
        return Next::Close(StreamError::with_text(
            Condition::PolicyViolation,
            "STARTTLS is required",
        ));
    }
    if e.is("bidi", NS_BIDI) {
        // XEP-0288 §2.2: asked before authenticating; no answer. Later, it changes nothing.
        inc.bidi |= inc.pairs.is_empty() && s2s.config.s2s.bidi;
        return Next::Continue;
    }
    if e.is("auth", sasl::NS) {
        return external(s2s, st, inc, &e).await;
    }
    if e.ns() == sm::NS {
        return stream_management(s2s, st, inc, &e).await;
    }
    if dialback::is(&e, "verify") {
        return answer_verify(s2s, st, &e).await;
    }
    if dialback::is(&e, "result") {
        return dialback_result(s2s, st, inc, &e).await;
    }
    if is_server_stanza(&e) {
        return stanza(s2s, inc, e).await;
    }
    Next::Close(StreamError::with_text(
        Condition::UnsupportedStanzaType,
        format!("<{}/> is not expected here", e.name()),
    ))
}

/// XEP-0198 on an incoming stream: `<enable/>` once authenticated (no resumption: a broken
/// stream's unacknowledged stanzas are sent again on a new one), `<r/>` answered with the
/// count of stanzas handled (routed: delivered, stored or bounced).
async fn stream_management(s2s: &S2s, st: &mut S2sStream, inc: &mut Incoming, e: &Element) -> Next {
    let reply = match e.name() {
        "enable"
            if !inc.pairs.is_empty()
                && s2s.config.s2s.stream_management
                && inc.handled.is_none() =>
        {
            inc.handled = Some(0);
            Element::new("enabled", sm::NS)
        }
        "enable" => sm::failed("unexpected-request", None),
        "r" => match inc.handled {
            Some(h) => sm::ack(h),
            None => return Next::Continue,
        },
        // Acks of what we send on a bidirectional stream.
        "a" => {
            return match sm::parse_h(e).is_some_and(|h| inc.reverse.ack(h)) {
                true => Next::Continue,
                false => Next::Close(StreamError::with_text(
                    Condition::UndefinedCondition,
                    "acknowledged what was not sent",
                )),
            };
        }
        _ => return Next::Continue,
    };
    match st.send(&reply).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close(StreamError::new(Condition::UndefinedCondition)),
    }
}

/// A stanza from an authenticated pair, routed as the router's own.
async fn stanza(s2s: &S2s, inc: &mut Incoming, e: Element) -> Next {
    if inc.pairs.is_empty() {
        return Next::Close(StreamError::with_text(
            Condition::NotAuthorized,
            "authenticate first",
        ));
    }
    let domain = |a: &str| {
        e.attr(a)
            .and_then(|j| Jid::new(j).ok())
            .map(|j| j.domain().as_str().to_ascii_lowercase())
    };
    let (Some(from), Some(to)) = (domain("from"), domain("to")) else {
        return Next::Close(StreamError::with_text(
            Condition::ImproperAddressing,
            "a stanza needs a valid 'from' and 'to'",
        ));
    };
    if !s2s.is_ours(&to) {
        return Next::Close(StreamError::with_text(
            Condition::HostUnknown,
            format!("{to} is not served here"),
        ));
    }
    if !inc.pairs.contains(&(from.clone(), to.clone())) {
        return Next::Close(StreamError::with_text(
            Condition::InvalidFrom,
            format!("{from} is not authenticated on this stream for {to}"),
        ));
    }
    let Some(router) = s2s.router.upgrade() else {
        return Next::Close(StreamError::new(Condition::SystemShutdown));
    };
    tracing::trace!(%from, %to, kind = e.name(), "stanza in");
    crate::metrics::s2s_stanzas("in", 1);
    router.route(into_client_ns(e)).await;
    if let Some(h) = &mut inc.handled {
        *h = h.wrapping_add(1);
    }
    Next::Continue
}
