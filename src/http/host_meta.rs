//! XEP-0156 discovery of the web connection methods: `/.well-known/host-meta` (XRD, RFC 6415)
//! and `/.well-known/host-meta.json` (JRD), which browser clients such as Converse.js fetch to
//! find the WebSocket endpoint. The URL is made from the request (scheme as the client reached
//! us, the `Host` it asked for), so it is right on this listener and behind a proxy that keeps
//! `Host` and says `X-Forwarded-Proto`. Served with `Access-Control-Allow-Origin: *`: the
//! document is public, and a web client on another origin must be able to read it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{Conn, HttpState};
use crate::xml::escape::escape_attr;

/// The `rel` of a WebSocket endpoint.
const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
/// The `rel` of a BOSH endpoint.
const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";

/// The endpoints (rel, href) for this request.
fn links(s: &HttpState, conn: &Conn, headers: &HeaderMap) -> Vec<(&'static str, String)> {
    let mut links = Vec::new();
    // Only a host name or address with an optional port: anything else is not echoed.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let Some(host) = host else { return links };
    let secure = conn.tls
        || s.proxies
            .forwarded_https(conn.peer.ip(), headers)
            .unwrap_or(false);
    if s.c2s.config.http.bosh {
        let scheme = if secure { "https" } else { "http" };
        links.push((REL_BOSH, format!("{scheme}://{host}/http-bind")));
    }
    if s.c2s.config.http.websocket {
        let scheme = if secure { "wss" } else { "ws" };
        links.push((REL_WEBSOCKET, format!("{scheme}://{host}/xmpp-websocket")));
    }
    links
}

/// `/.well-known/host-meta`
pub async fn xml(
    State(s): State<Arc<HttpState>>,
    Extension(conn): Extension<Arc<Conn>>,
    headers: HeaderMap,
) -> Response {
    let mut out = Vec::new();
    out.extend_from_slice(
        b"<?xml version='1.0' encoding='utf-8'?>\n\
          <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
    );
    for (rel, href) in links(&s, &conn, &headers) {
        out.extend_from_slice(b"  <Link rel='");
        escape_attr(rel, &mut out);
        out.extend_from_slice(b"' href='");
        escape_attr(&href, &mut out);
        out.extend_from_slice(b"'/>\n");
    }
    out.extend_from_slice(b"</XRD>\n");
    (
        [
            (header::CONTENT_TYPE, "application/xrd+xml"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        out,
    )
        .into_response()
}

/// `/.well-known/host-meta.json`
pub async fn json(
    State(s): State<Arc<HttpState>>,
    Extension(conn): Extension<Arc<Conn>>,
    headers: HeaderMap,
) -> Response {
    // The values are fixed names and a URL made of checked characters: nothing to escape.
    let links: Vec<String> = links(&s, &conn, &headers)
        .into_iter()
        .map(|(rel, href)| format!("{{\"rel\":\"{rel}\",\"href\":\"{href}\"}}"))
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        format!("{{\"links\":[{}]}}\n", links.join(",")),
    )
        .into_response()
}
