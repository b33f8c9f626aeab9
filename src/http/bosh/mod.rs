//! BOSH (XEP-0124, with XMPP over it: XEP-0206) at `/http-bind`: for browsers and networks
//! where a WebSocket does not get through. Each POST carries one `<body/>` with a request id
//! (`rid`) and the stanzas the client sends; the answer carries what the server has for it.
//! This file reads and checks the requests, creates sessions (the c2s core on the
//! [`session::Bosh`] wire), finds them by `sid` and writes the `<body/>` wrappers; the
//! request-and-answer rules are in `session.rs`.
//!
//! Bounds: a request's body is at most the session's stanza size (`c2s.max_stanza_size`, or
//! the pre-authentication size before SASL) and is parsed with the same limits as a TCP
//! stream; requests in flight per session are the negotiated `requests`; what waits for a
//! poll is at most `c2s.session_queue_bytes`; each session holds a slot of the per-IP limits.

mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info_span};

use super::{Conn, HttpState};
use crate::session::c2s::driver::drive;
use crate::session::c2s::{C2s, Framing, Link};
use crate::stream::random_id;
use crate::xml::escape::escape_attr;
use crate::xml::{Element, Limits, StreamEvent, StreamParser};
pub use session::{Bosh, Request};

/// `http://jabber.org/protocol/httpbind`
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// `urn:xmpp:xbosh` (XEP-0206)
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// Shortest time between two empty requests of a polling session (`hold='0'`), in seconds.
const POLLING_SECS: u64 = 2;

/// The sessions by `sid`.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    tx: mpsc::Sender<Request>,
    authenticated: Arc<AtomicBool>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Entry> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sid)
            .cloned()
    }

    fn insert(&self, sid: String, e: Entry) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid, e);
    }

    fn remove(&self, sid: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sid);
    }
}

/// What was negotiated at session creation (XEP-0124 §7.1).
#[derive(Debug, Clone)]
pub struct Settings {
    host: String,
    wait: u64,
    hold: u32,
    requests: u32,
    inactivity: u64,
    /// The client asked for acknowledgements (§9).
    ack: bool,
    /// Bytes that may wait for a poll.
    max_pool: usize,
    secure: bool,
}

impl Settings {
    fn creation_attrs(&self, sid: &str) -> Vec<(&'static str, String)> {
        vec![
            ("sid", sid.to_string()),
            ("wait", self.wait.to_string()),
            ("hold", self.hold.to_string()),
            ("requests", self.requests.to_string()),
            ("inactivity", self.inactivity.to_string()),
            ("polling", POLLING_SECS.to_string()),
            ("ver", "1.11".into()),
            ("from", self.host.clone()),
            ("secure", self.secure.to_string()),
            ("xmpp:version", "1.0".into()),
            ("xmlns:xmpp", NS_XBOSH.into()),
            ("xmlns:stream", crate::stream::NS_STREAMS.into()),
        ]
    }
}

/// A parsed request `<body/>`.
#[derive(Debug)]
pub struct Body {
    rid: u64,
    sid: Option<String>,
    to: Option<String>,
    wait: Option<u64>,
    hold: Option<u32>,
    ack: Option<u64>,
    restart: bool,
    terminate: bool,
    children: Vec<Element>,
}

/// A `<body/>` with these attributes around `children` (already serialised).
pub fn write_body(attrs: &[(&str, String)], children: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + children.len());
    out.extend_from_slice(b"<body xmlns='");
    out.extend_from_slice(NS_HTTPBIND.as_bytes());
    out.push(b'\'');
    for (k, v) in attrs {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"='");
        escape_attr(v, &mut out);
        out.push(b'\'');
    }
    if children.is_empty() {
        out.extend_from_slice(b"/>");
    } else {
        out.push(b'>');
        out.extend_from_slice(children);
        out.extend_from_slice(b"</body>");
    }
    out
}

/// A terminal error for a request that reaches no session (§14.3: HTTP 200, a `condition`).
pub(super) fn terminate(condition: &str) -> Vec<u8> {
    write_body(
        &[
            ("type", "terminate".into()),
            ("condition", condition.into()),
        ],
        &[],
    )
}

/// Parses a request body; `None` when it is not a `<body/>` of the right namespace, or
/// breaks the limits.
fn parse(data: &[u8], limits: Limits) -> Option<Body> {
    let mut p = StreamParser::new(limits);
    let mut input = data;
    let StreamEvent::Header(h) = p.next(&mut input).ok()?? else {
        return None;
    };
    if h.ns != NS_HTTPBIND || h.name != "body" {
        return None;
    }
    let mut children = Vec::new();
    loop {
        match p.next(&mut input).ok()? {
            Some(StreamEvent::Element(el)) => children.push(el),
            Some(StreamEvent::End) => break,
            Some(StreamEvent::Header(_)) | None => return None,
        }
    }
    let restart = h.attr(&format!("{{{NS_XBOSH}}}restart"));
    Some(Body {
        rid: h.attr("rid")?.trim().parse().ok()?,
        sid: h.attr("sid").map(str::to_string),
        to: h
            .attr("to")
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase()),
        wait: h.attr("wait").and_then(|w| w.trim().parse().ok()),
        hold: h.attr("hold").and_then(|w| w.trim().parse().ok()),
        ack: h.attr("ack").and_then(|w| w.trim().parse().ok()),
        restart: matches!(restart, Some("true" | "1")),
        terminate: h.attr("type") == Some("terminate"),
        children,
    })
}

/// Whether `sid` names a session that has authenticated.
fn authenticated(state: &HttpState, sid: Option<&str>) -> bool {
    sid.and_then(|s| state.bosh.get(s))
        .is_some_and(|e| e.authenticated.load(Ordering::Relaxed))
}

/// Reads a request's body: at most the pre-authentication size
/// (`c2s.max_stanza_size_before_auth`), unless its `<body sid='…'>`, which comes first, names a
/// session that has authenticated; then at most `c2s.max_stanza_size`. An anonymous peer so
/// makes the server hold no more than on TCP before authentication.
async fn read_body(state: &HttpState, body: HttpBody) -> Result<Vec<u8>, &'static str> {
    use futures_util::StreamExt;
    let c = &state.c2s.config.c2s;
    let small = c.max_stanza_size_before_auth.min(c.max_stanza_size);
    let mut limit = small;
    let mut data = Vec::new();
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        data.extend_from_slice(&chunk.map_err(|_| "bad-request")?);
        if data.len() > limit {
            if limit == small && authenticated(state, sid_of(&data).as_deref()) {
                limit = c.max_stanza_size;
            }
            if data.len() > limit {
                return Err("policy-violation");
            }
        }
    }
    Ok(data)
}

/// The `sid` of a request body's start tag, once it is complete.
fn sid_of(data: &[u8]) -> Option<String> {
    let mut p = StreamParser::new(Limits::default());
    let mut input = data;
    match p.next(&mut input).ok()?? {
        StreamEvent::Header(h) => h.attr("sid").map(str::to_string),
        _ => None,
    }
}

/// The CORS headers for `origin`, if it may use BOSH.
fn cors(state: &HttpState, headers: &HeaderMap) -> Option<Vec<(header::HeaderName, HeaderValue)>> {
    let allowed = &state.c2s.config.http.bosh_origins;
    let origin = match headers.get(header::ORIGIN) {
        None => return Some(Vec::new()),
        Some(o) if allowed.is_empty() || allowed.iter().any(|a| a.as_bytes() == o.as_bytes()) => {
            o.clone()
        }
        Some(_) => return None,
    };
    Some(vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type"),
        ),
        (
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        ),
        (header::VARY, HeaderValue::from_static("Origin")),
    ])
}

fn xml_response(cors: Vec<(header::HeaderName, HeaderValue)>, body: Vec<u8>) -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        HttpBody::from(body),
    )
        .into_response();
    r.headers_mut().extend(cors);
    r
}

/// `OPTIONS /http-bind`: the CORS preflight of a browser client.
pub async fn preflight(state: Arc<HttpState>, headers: HeaderMap) -> Response {
    match cors(&state, &headers) {
        Some(c) if state.c2s.config.http.bosh => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut().extend(c);
            r
        }
        Some(_) => StatusCode::NOT_FOUND.into_response(),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

/// `POST /http-bind`.
pub async fn request(
    state: Arc<HttpState>,
    conn: Arc<Conn>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let config = &state.c2s.config;
    if !config.http.bosh {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(cors) = cors(&state, &headers) else {
        return (StatusCode::FORBIDDEN, "this Origin may not use BOSH\n").into_response();
    };
    let data = match read_body(&state, body).await {
        Ok(d) => d,
        Err(condition) => return xml_response(cors, terminate(condition)),
    };
    // Parsed with the pre-authentication limits first (a new session's, or one before SASL);
    // an authenticated session's body is parsed again with its own when they refused it. A
    // refused body ends nothing but this request: the session expires unless the client goes
    // on with a valid one.
    let small = C2s::limits(config, false);
    let big = C2s::limits(config, true);
    let body = match parse(&data, small) {
        Some(b) => b,
        None => match parse(&data, big) {
            Some(b) if authenticated(&state, b.sid.as_deref()) => b,
            _ => return xml_response(cors, terminate("bad-request")),
        },
    };
    let entry = match &body.sid {
        Some(sid) => match state.bosh.get(sid) {
            Some(e) => e,
            None => return xml_response(cors, terminate("item-not-found")),
        },
        None => match create(&state, &conn, &headers, &body) {
            Ok(e) => e,
            Err(condition) => return xml_response(cors, terminate(condition)),
        },
    };
    tracing::trace!(body = %String::from_utf8_lossy(&data), "BOSH request");
    let (reply, answer) = oneshot::channel();
    // More requests in flight than the window: the client misbehaves (§11).
    if entry.tx.try_send(Request { body, reply }).is_err() {
        return xml_response(cors, terminate("policy-violation"));
    }
    let limit = Duration::from_secs(config.http.bosh_max_wait_secs + 30);
    match tokio::time::timeout(limit, answer).await {
        Ok(Ok(bytes)) => {
            tracing::trace!(body = %String::from_utf8_lossy(&bytes), "BOSH answer");
            xml_response(cors, bytes.as_ref().clone())
        }
        // The session ended without answering this one.
        Ok(Err(_)) | Err(_) => xml_response(cors, terminate("item-not-found")),
    }
}

/// Creates a session for a request without `sid` (§7.1); on refusal, the condition.
fn create(
    state: &Arc<HttpState>,
    conn: &Conn,
    headers: &HeaderMap,
    body: &Body,
) -> Result<Entry, &'static str> {
    let config = &state.c2s.config;
    let Some(host) = body.to.clone().filter(|h| config.serves(h)) else {
        return Err("host-unknown");
    };
    let client = conn.client(&state.proxies, headers);
    // A session is a connection for the per-IP limits, like a TCP or WebSocket one.
    let limits = &state.c2s.limits;
    let guard = if state.proxies.trusts(conn.peer.ip()) {
        limits.admit_forwarded(client.addr.ip())
    } else {
        limits.admit(client.addr.ip())
    }
    .map_err(|_| "policy-violation")?;
    let http = &config.http;
    let hold = body.hold.unwrap_or(1).min(http.bosh_max_hold);
    let settings = Settings {
        host,
        wait: body
            .wait
            .unwrap_or(http.bosh_max_wait_secs)
            .min(http.bosh_max_wait_secs),
        hold,
        requests: hold + 1,
        inactivity: http.bosh_inactivity_secs,
        ack: body.ack.is_some(),
        max_pool: config.c2s.session_queue_bytes,
        secure: client.secure,
    };
    let sid = format!("{}{}", random_id(), random_id());
    let (tx, rx) = mpsc::channel(settings.requests as usize + 1);
    let authenticated = Arc::new(AtomicBool::new(false));
    let link = Link::web(client.addr, client.secure, "bosh");
    let s = C2s::new(state.c2s.clone(), link, Framing::Messages);
    let wire = Bosh::new(
        sid.clone(),
        rx,
        settings,
        state.bosh.clone(),
        authenticated.clone(),
        body.rid,
    );
    let entry = Entry { tx, authenticated };
    state.bosh.insert(sid.clone(), entry.clone());
    let (shutdown, alive) = (state.shutdown.clone(), state.alive.clone());
    let span = info_span!("bosh", id = %sid, peer = %client.addr);
    tokio::spawn(
        async move {
            let open = crate::metrics::open("bosh");
            drive(s, wire, shutdown).await;
            drop((guard, open, alive));
        }
        .instrument(span),
    );
    Ok(entry)
}
