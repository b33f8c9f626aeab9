//! SASL negotiation elements (RFC 6120 §6): mechanisms offered, `<failure/>` conditions, PLAIN.
//!
//! The SCRAM family lives in [`scram`]; the session drives the exchange because credentials
//! come from storage.

pub mod scram;
pub mod scram_client;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::xml::Element;

/// `urn:ietf:params:xml:ns:xmpp-sasl`
pub const NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0440 SASL Channel-Binding Type Capability.
pub const NS_CB: &str = "urn:xmpp:sasl-cb:0";

/// The SASL failure conditions of RFC 6120 §6.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    /// §6.5.1 the client aborted.
    #[error("aborted")]
    Aborted,
    /// §6.5.4 the client needs TLS first.
    #[error("encryption-required")]
    EncryptionRequired,
    /// §6.5.2... base64 or UTF-8 was broken.
    #[error("incorrect-encoding")]
    IncorrectEncoding,
    /// §6.5.6 the authorization identity is not allowed.
    #[error("invalid-authzid")]
    InvalidAuthzid,
    /// §6.5.7 the mechanism is not offered.
    #[error("invalid-mechanism")]
    InvalidMechanism,
    /// §6.5.8 the request is malformed.
    #[error("malformed-request")]
    MalformedRequest,
    /// §6.5.10 wrong credentials.
    #[error("not-authorized")]
    NotAuthorized,
    /// §6.5.11 try again later (rate limit, storage failure).
    #[error("temporary-auth-failure")]
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The `<failure/>` element.
    pub fn to_element(self) -> Element {
        Element::new("failure", NS).with_child(Element::new(self.to_string(), NS))
    }
}

/// Decodes the base64 payload of `<auth/>` or `<response/>` (`=` means empty, RFC 6120 §6.4.2).
pub fn decode_payload(el: &Element) -> Result<Vec<u8>, SaslFailure> {
    let text = el.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text).map_err(|_| SaslFailure::IncorrectEncoding)
}

/// Encodes a payload for `<challenge/>` or `<success/>`.
pub fn payload_element(name: &str, data: &[u8]) -> Element {
    let el = Element::new(name, NS);
    if data.is_empty() {
        el
    } else {
        el.with_text(B64.encode(data))
    }
}

/// A parsed PLAIN message (RFC 4616): authorization id, user name, password.
#[derive(Debug)]
pub struct PlainMessage {
    /// Requested authorization identity, if any.
    pub authzid: Option<String>,
    /// The user name (localpart), SASLprepped.
    pub username: String,
    /// The password as sent.
    pub password: String,
}

/// Parses `authzid NUL authcid NUL passwd`.
pub fn parse_plain(data: &[u8]) -> Result<PlainMessage, SaslFailure> {
    let text = std::str::from_utf8(data).map_err(|_| SaslFailure::IncorrectEncoding)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::MalformedRequest);
    };
    if user.is_empty() || password.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok(PlainMessage {
        authzid: (!authzid.is_empty()).then(|| authzid.to_string()),
        username: scram::saslprep(user)?,
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_parsing() {
        let m = parse_plain(b"\0alice\0pw").unwrap();
        assert_eq!(
            (m.authzid, m.username.as_str(), m.password.as_str()),
            (None, "alice", "pw")
        );
        assert!(parse_plain(b"alice\0pw").is_err());
        assert!(parse_plain(b"\0\0pw").is_err());
        assert!(parse_plain(b"\0a\0b\0c").is_err());
        assert_eq!(
            parse_plain(&[0, 0xff, 0]).unwrap_err(),
            SaslFailure::IncorrectEncoding
        );
    }

    #[test]
    fn failure_element() {
        assert_eq!(
            SaslFailure::NotAuthorized
                .to_element()
                .to_string_in("jabber:client"),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
        );
    }
}
