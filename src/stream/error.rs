//! Stream errors (RFC 6120 §4.9): the conditions, and the `<stream:error/>` element.
//! A stream error always closes the stream.

use crate::xml::Element;

/// `urn:ietf:params:xml:ns:xmpp-streams`
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// The defined conditions of RFC 6120 §4.9.3 that this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// §4.9.3.1
    BadFormat,
    /// §4.9.3.2
    BadNamespacePrefix,
    /// §4.9.3.3: a new session took this resource.
    Conflict,
    /// §4.9.3.4
    ConnectionTimeout,
    /// §4.9.3.6
    HostUnknown,
    /// §4.9.3.7
    ImproperAddressing,
    /// §4.9.3.8
    InternalServerError,
    /// §4.9.3.9
    InvalidFrom,
    /// §4.9.3.10
    InvalidNamespace,
    /// §4.9.3.11
    InvalidXml,
    /// §4.9.3.12
    NotAuthorized,
    /// §4.9.3.13
    NotWellFormed,
    /// §4.9.3.14
    PolicyViolation,
    /// §4.9.3.17
    ResourceConstraint,
    /// §4.9.3.18
    RestrictedXml,
    /// §4.9.3.20
    SystemShutdown,
    /// §4.9.3.21
    UndefinedCondition,
    /// §4.9.3.22
    UnsupportedEncoding,
    /// §4.9.3.23
    UnsupportedStanzaType,
    /// §4.9.3.25
    UnsupportedVersion,
}

impl Condition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        use Condition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

/// A stream error with an optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream error {}{}", .condition.as_str(), .text.as_ref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StreamError {
    /// The condition.
    pub condition: Condition,
    /// Explanation for humans (`<text xml:lang='en'>`).
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), e.g. XEP-0198's
    /// `<handled-count-too-high/>`.
    pub app: Option<Box<Element>>,
}

impl StreamError {
    /// An error without text.
    pub fn new(condition: Condition) -> Self {
        StreamError {
            condition,
            text: None,
            app: None,
        }
    }

    /// An error with text.
    pub fn with_text(condition: Condition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
            app: None,
        }
    }

    /// Adds an application-specific condition.
    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }

    /// The `<stream:error/>` element (in the streams namespace; written with the `stream:` prefix).
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("error", super::NS_STREAMS)
            .with_child(Element::new(self.condition.as_str(), NS_STREAM_ERRORS));
        if let Some(t) = &self.text {
            el.append_child(
                Element::new("text", NS_STREAM_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(t.clone()),
            );
        }
        if let Some(app) = &self.app {
            el.append_child((**app).clone());
        }
        el
    }
}

impl From<crate::xml::XmlError> for StreamError {
    fn from(e: crate::xml::XmlError) -> Self {
        use crate::xml::XmlError as X;
        let condition = match &e {
            X::NotWellFormed(_) => Condition::NotWellFormed,
            X::Restricted(_) => Condition::RestrictedXml,
            X::BadNamespacePrefix => Condition::BadNamespacePrefix,
            X::UnsupportedEncoding => Condition::UnsupportedEncoding,
            X::PolicyViolation(_) => Condition::PolicyViolation,
            X::BadFormat => Condition::BadFormat,
        };
        StreamError::with_text(condition, e.to_string())
    }
}
