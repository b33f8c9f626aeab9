//! Stream negotiation pieces (RFC 6120 §4–§7), sans-IO: header checks, the header we send,
//! stream features, stream errors, SASL. The c2s session (`session::c2s`) drives them.

pub mod compress;
pub mod error;
pub mod sasl;
pub mod sm;

pub use error::{Condition, StreamError};

use crate::xml::{Element, StreamHeader, escape::escape_attr};

/// `http://etherx.jabber.org/streams`
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// `jabber:client`
pub const NS_CLIENT: &str = "jabber:client";
/// `urn:ietf:params:xml:ns:xmpp-tls`
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// `urn:ietf:params:xml:ns:xmpp-bind`
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// `urn:ietf:params:xml:ns:xmpp-session` (RFC 3921, tolerated: RFC 6121 Appendix E)
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// What a valid initial header told us.
#[derive(Debug, Clone)]
pub struct AcceptedHeader {
    /// The served domain the client addressed (lower-cased).
    pub to: String,
    /// The `from` the client gave, echoed as our `to` (RFC 6120 §4.7.2).
    pub from: Option<String>,
    /// `xml:lang` of the stream, default `en`.
    pub lang: String,
}

/// Checks a client's initial stream header (RFC 6120 §4.7). On error, the domain to put in our
/// own header (which must still be sent before the error, §4.9.1.2) is the default host.
pub fn check_header(
    h: &StreamHeader,
    serves: impl Fn(&str) -> bool,
) -> Result<AcceptedHeader, StreamError> {
    if h.ns != NS_STREAMS {
        return Err(StreamError::with_text(
            Condition::InvalidNamespace,
            "the stream namespace must be http://etherx.jabber.org/streams",
        ));
    }
    if h.name != "stream" {
        return Err(StreamError::with_text(
            Condition::BadFormat,
            "the root element must be <stream:stream>",
        ));
    }
    // §4.7.5: no version means 0.9, which this server does not speak.
    let major = h
        .attr("version")
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok());
    if !matches!(major, Some(m) if m >= 1) {
        return Err(StreamError::with_text(
            Condition::UnsupportedVersion,
            "XMPP 1.0 is required",
        ));
    }
    let Some(to) = h.attr("to") else {
        return Err(StreamError::with_text(
            Condition::HostUnknown,
            "the stream header has no 'to'",
        ));
    };
    let to = to.trim_end_matches('.').to_ascii_lowercase();
    if !serves(&to) {
        return Err(StreamError::with_text(
            Condition::HostUnknown,
            format!("{to} is not served here"),
        ));
    }
    Ok(AcceptedHeader {
        to,
        from: h.attr("from").map(str::to_string),
        lang: h.attr("xml:lang").unwrap_or("en").to_string(),
    })
}

/// Our response stream header (RFC 6120 §4.7), with a fresh random `id`.
pub fn response_header(out: &mut Vec<u8>, from: &str, to: Option<&str>, id: &str) {
    out.extend_from_slice(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' from='",
    );
    escape_attr(from, out);
    out.extend_from_slice(b"' id='");
    escape_attr(id, out);
    if let Some(to) = to {
        out.extend_from_slice(b"' to='");
        escape_attr(to, out);
    }
    out.extend_from_slice(b"'>");
}

/// Writes a top-level element of a c2s stream: `stream:`-prefixed when in the streams namespace.
pub fn write_top_level(el: &Element, out: &mut Vec<u8>) {
    write_top_level_as(el, out, false);
}

/// Writes a top-level element, as part of a stream (namespaces inherited from the stream
/// header) or `standalone`: one complete document, as a WebSocket message carries it (RFC 7395
/// §3.3.3), which declares its namespace and the `stream` prefix itself.
pub fn write_top_level_as(el: &Element, out: &mut Vec<u8>, standalone: bool) {
    let inherited = if standalone { "" } else { NS_CLIENT };
    if el.ns() != NS_STREAMS {
        el.write_to(out, inherited);
        return;
    }
    out.extend_from_slice(b"<stream:");
    out.extend_from_slice(el.name().as_bytes());
    if standalone {
        out.extend_from_slice(b" xmlns:stream='");
        out.extend_from_slice(NS_STREAMS.as_bytes());
        out.push(b'\'');
    }
    for (k, v) in el.attrs() {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"='");
        escape_attr(v, out);
        out.push(b'\'');
    }
    out.push(b'>');
    for c in el.children() {
        c.write_to(out, inherited);
    }
    out.extend_from_slice(b"</stream:");
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
}

/// A random stream or resource id.
pub fn random_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sasl::scram::random_bytes::<12>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(attrs: &[(&str, &str)]) -> StreamHeader {
        StreamHeader {
            ns: NS_STREAMS.into(),
            name: "stream".into(),
            attrs: attrs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn header_checks() {
        let serves = |d: &str| d == "localhost";
        let ok =
            check_header(&header(&[("to", "LocalHost."), ("version", "1.0")]), serves).unwrap();
        assert_eq!(ok.to, "localhost");
        let cond = |h| check_header(&h, serves).unwrap_err().condition;
        assert_eq!(
            cond(header(&[("to", "other"), ("version", "1.0")])),
            Condition::HostUnknown
        );
        assert_eq!(cond(header(&[("version", "1.0")])), Condition::HostUnknown);
        assert_eq!(
            cond(header(&[("to", "localhost")])),
            Condition::UnsupportedVersion
        );
        assert_eq!(
            cond(header(&[("to", "localhost"), ("version", "0.9")])),
            Condition::UnsupportedVersion
        );
        assert!(check_header(&header(&[("to", "localhost"), ("version", "2.0")]), serves).is_ok());
        let mut h = header(&[("to", "localhost"), ("version", "1.0")]);
        h.ns = "jabber:client".into();
        assert_eq!(cond(h), Condition::InvalidNamespace);
    }

    #[test]
    fn stream_error_is_prefixed() {
        let mut out = Vec::new();
        write_top_level(
            &StreamError::with_text(Condition::HostUnknown, "x").to_element(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>x</text></stream:error>"
        );
    }
}
