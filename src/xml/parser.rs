//! Streaming parser for one XML stream (RFC 6120 §4, §11): fed arbitrary byte chunks, it yields the
//! stream header, each complete top-level element, and the stream's end.
//!
//! Tokenising is done by `rxml`, which enforces XML 1.0 well-formedness, namespace
//! well-formedness and the RFC 6120 §11 restrictions (no DTD, no entity declarations or references
//! beyond the predefined five and character references, no processing instructions, no comments,
//! UTF-8 only, XML 1.0 only). On top of it this parser adds what the RFC leaves to the server
//! (§13.12, each a `policy-violation`):
//! - a byte budget per top-level element, counted from the bytes the tokenizer consumed;
//! - a byte budget per start tag, the stream header included, enforced while the tag is being
//!   read: rxml reports a start tag only once it is complete, so the parser is fed at most what
//!   is left of that budget at a time, and text is emitted eagerly (text buffering off) so that
//!   the bytes consumed since the last event are the unfinished tag;
//! - a cap on attributes per start tag;
//! - a nesting-depth cap;
//! - a budget for what the built tree costs in memory ([`Element::cost`]), so that input whose
//!   tree is much larger than its text (many empty elements, namespaced attributes) is bounded
//!   too. Namespace names are interned by rxml and shared by every element that uses them, so a
//!   long default namespace is held once, not once per element.
//!
//! Text directly inside the stream (other than whitespace keepalives) is refused.

use rxml::error::EndOrError;
use rxml::{Event, Options, Parse, Parser, WithOptions};

use super::element::{Element, NS_XML};

/// Limits applied to one stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum size in bytes of one top-level element (a stanza or a negotiation element).
    pub max_stanza_size: usize,
    /// Maximum memory in bytes that one top-level element may cost once built (see
    /// [`Element::cost`]); a few times `max_stanza_size`.
    pub max_stanza_memory: usize,
    /// Maximum nesting depth below the stream root (a stanza counts as depth 1).
    pub max_depth: usize,
    /// Maximum size in bytes of one start tag with its attributes (the stream header too).
    pub max_tag_size: usize,
    /// Maximum attributes in one start tag (namespace declarations not included).
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_size: 256 * 1024,
            max_stanza_memory: 1024 * 1024,
            max_depth: 32,
            max_tag_size: 16 * 1024,
            max_attributes: 64,
        }
    }
}

impl Limits {
    /// Limits for parsing what this server stored itself (offline messages, documents,
    /// subscription requests): it was bounded by the configured limits when it came in, and
    /// those may have been larger than the defaults, or changed since; only the depth stays
    /// capped (the tree is dropped recursively).
    pub fn stored() -> Self {
        Limits {
            max_stanza_size: usize::MAX / 4,
            max_stanza_memory: usize::MAX / 4,
            max_tag_size: usize::MAX / 4,
            max_attributes: usize::MAX / 4,
            max_depth: 1000,
        }
    }
}

/// The attributes of a received `<stream:stream>` header.
#[derive(Debug, Clone, Default)]
pub struct StreamHeader {
    /// Namespace of the root element (must be `http://etherx.jabber.org/streams`).
    pub ns: String,
    /// Local name of the root element (must be `stream`).
    pub name: String,
    /// `to`, `from`, `version`, `id`, `xml:lang`, in document order.
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    /// An attribute of the header.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the parser produced.
#[derive(Debug)]
pub enum StreamEvent {
    /// The opening `<stream:stream>` tag.
    Header(StreamHeader),
    /// A complete top-level element.
    Element(Element),
    /// The closing `</stream:stream>` tag.
    End,
}

/// Why the stream can no longer be parsed; each maps to one RFC 6120 §4.9.3 condition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed XML (§4.9.3.13 `not-well-formed`).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// A construct that RFC 6120 §11.1 forbids (§4.9.3.18 `restricted-xml`).
    #[error("restricted XML: {0}")]
    Restricted(String),
    /// An undeclared namespace prefix (§4.9.3.2 `bad-namespace-prefix`).
    #[error("undeclared namespace prefix")]
    BadNamespacePrefix,
    /// Input that is not UTF-8 (§4.9.3.22 `unsupported-encoding`).
    #[error("input is not UTF-8")]
    UnsupportedEncoding,
    /// A configured limit was exceeded (§4.9.3.14 `policy-violation`).
    #[error("limit exceeded: {0}")]
    PolicyViolation(String),
    /// Text directly inside the stream root (§4.9.3.1 `bad-format`).
    #[error("character data at stream level")]
    BadFormat,
}

/// One stream's parser. Restart it (make a new one) after TLS and SASL success (RFC 6120 §4.3.3).
pub struct StreamParser {
    parser: Parser,
    limits: Limits,
    /// Open elements below the root; the first is the top-level element being built.
    stack: Vec<Element>,
    /// Whether the root `<stream:stream>` has been opened.
    in_stream: bool,
    /// Bytes consumed since the last event: an unfinished start tag (or token).
    pending: usize,
    /// Bytes consumed by the top-level element being built.
    element_bytes: usize,
    /// What the top-level element being built costs in memory so far.
    element_memory: usize,
    /// Set once the stream has ended or failed; nothing more is parsed.
    done: bool,
}

impl StreamParser {
    /// A parser for a new stream.
    pub fn new(limits: Limits) -> Self {
        let opts = Options {
            // Text arrives in chunks of at most this size; names and attribute values must fit in it.
            max_token_length: limits.max_tag_size.clamp(1024, 64 * 1024),
            ..Options::default()
        };
        let mut parser = Parser::with_options(opts);
        // Text is emitted as soon as it is read, so that what was consumed since the last event
        // is an unfinished tag, which `next` bounds.
        parser.set_text_buffering(false);
        StreamParser {
            parser,
            limits,
            stack: Vec::new(),
            in_stream: false,
            pending: 0,
            element_bytes: 0,
            element_memory: 0,
            done: false,
        }
    }

    /// Frees the tokenizer's scratch buffers (up to the token length each), for a stream that
    /// went quiet; they are allocated again with the next bytes.
    pub fn release_temporaries(&mut self) {
        self.parser.release_temporaries();
        if self.stack.is_empty() {
            self.stack = Vec::new();
        }
    }

    /// Consumes bytes from `input` until one event is complete (`Ok(Some)`), or all of `input`
    /// was consumed and more is needed (`Ok(None)`). Call again with the rest of `input` after an
    /// event: one chunk can hold many elements.
    pub fn next(&mut self, input: &mut &[u8]) -> Result<Option<StreamEvent>, XmlError> {
        if self.done {
            return Ok(None);
        }
        loop {
            // Never let an unfinished tag run more than one byte past its budget.
            let allowed = (self.pending_limit() + 1).saturating_sub(self.pending);
            let mut piece = &input[..input.len().min(allowed.max(1))];
            let before = piece.len();
            let parsed = self.parser.parse(&mut piece, false);
            let consumed = before - piece.len();
            *input = &input[consumed..];
            self.pending += consumed;
            let ev = match parsed {
                Ok(Some(ev)) => ev,
                Ok(None) | Err(EndOrError::NeedMoreData) => {
                    if self.pending > self.pending_limit() {
                        self.done = true;
                        return Err(XmlError::PolicyViolation(format!(
                            "start tag larger than {} bytes",
                            self.limits.max_tag_size
                        )));
                    }
                    if input.is_empty() {
                        return Ok(None);
                    }
                    if consumed == 0 {
                        // Never seen; a tokenizer that took nothing would have this loop spin.
                        self.done = true;
                        return Err(XmlError::NotWellFormed(
                            "the parser made no progress".into(),
                        ));
                    }
                    continue;
                }
                Err(EndOrError::Error(e)) => {
                    self.done = true;
                    return Err(map_error(e));
                }
            };
            self.pending = 0;
            match self.handle(ev) {
                Ok(Some(out)) => {
                    if matches!(out, StreamEvent::End) {
                        self.done = true;
                    }
                    return Ok(Some(out));
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    fn handle(&mut self, ev: Event) -> Result<Option<StreamEvent>, XmlError> {
        match ev {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(metrics, (ns, name), attrs) => {
                if attrs.len() > self.limits.max_attributes {
                    return Err(XmlError::PolicyViolation(format!(
                        "more than {} attributes in one element",
                        self.limits.max_attributes
                    )));
                }
                let attrs = attrs.into_iter().map(|((ans, aname), v)| {
                    let key = if ans.is_empty() {
                        aname.to_string()
                    } else if ans.as_str() == NS_XML {
                        format!("xml:{aname}")
                    } else {
                        format!("{{{ans}}}{aname}")
                    };
                    (key, v)
                });
                if !self.in_stream {
                    self.in_stream = true;
                    return Ok(Some(StreamEvent::Header(StreamHeader {
                        ns: ns.to_string(),
                        name: name.to_string(),
                        attrs: attrs.collect(),
                    })));
                }
                if self.stack.is_empty() {
                    self.element_bytes = 0;
                    self.element_memory = 0;
                }
                self.count(metrics.len())?;
                if self.stack.len() >= self.limits.max_depth {
                    return Err(XmlError::PolicyViolation(format!(
                        "elements nested deeper than {}",
                        self.limits.max_depth
                    )));
                }
                let mut el = Element::new(name.to_string(), ns.into_static());
                for (k, v) in attrs {
                    el.set_attr(k, v);
                }
                self.charge(el.cost())?;
                self.stack.push(el);
                Ok(None)
            }
            Event::EndElement(metrics) => {
                let Some(el) = self.stack.pop() else {
                    // The root closed: the stream is over (RFC 6120 §4.4).
                    return Ok(Some(StreamEvent::End));
                };
                self.count(metrics.len())?;
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(el);
                        Ok(None)
                    }
                    None => Ok(Some(StreamEvent::Element(el))),
                }
            }
            Event::Text(metrics, text) => match self.stack.last_mut() {
                Some(parent) => {
                    let cost = parent.append_text(text);
                    self.count(metrics.len())?;
                    self.charge(cost)?;
                    Ok(None)
                }
                // Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1); anything else
                // is not allowed at stream level.
                None if text
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) =>
                {
                    Ok(None)
                }
                None => Err(XmlError::BadFormat),
            },
        }
    }

    /// How many bytes may be consumed without an event: one start tag of `max_tag_size`, or
    /// one token of the same length (rxml emits longer text and CDATA in pieces of that size)
    /// with its delimiters (`<![CDATA[`, `]]>`, a split UTF-8 sequence).
    fn pending_limit(&self) -> usize {
        self.limits.max_tag_size.max(1024) + 16
    }

    /// Adds input bytes to the budget of the element being built.
    fn count(&mut self, n: usize) -> Result<(), XmlError> {
        self.element_bytes = self.element_bytes.saturating_add(n);
        if self.element_bytes > self.limits.max_stanza_size {
            return Err(XmlError::PolicyViolation(format!(
                "element larger than {} bytes",
                self.limits.max_stanza_size
            )));
        }
        Ok(())
    }

    /// Adds what a piece of the element being built costs in memory to its budget.
    fn charge(&mut self, n: usize) -> Result<(), XmlError> {
        self.element_memory = self.element_memory.saturating_add(n);
        let limit = self.limits.max_stanza_memory;
        if self.element_memory > limit {
            return Err(XmlError::PolicyViolation(format!(
                "element would take more than {limit} bytes of memory"
            )));
        }
        Ok(())
    }
}

fn map_error(e: rxml::Error) -> XmlError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml(what) if what.contains("long") => {
            XmlError::PolicyViolation(format!("token too long ({what})"))
        }
        E::RestrictedXml(what) => XmlError::Restricted(what.to_string()),
        E::UndeclaredEntity => XmlError::Restricted("entity reference".into()),
        // `<!` that is neither a comment nor CDATA: a DOCTYPE, ENTITY, ELEMENT or ATTLIST
        // declaration, i.e. a DTD (RFC 6120 §11.1).
        E::InvalidSyntax(what) if what.contains("cdata or comment") => {
            XmlError::Restricted("document type declaration".into())
        }
        E::UndeclaredNamespacePrefix(_) => XmlError::BadNamespacePrefix,
        E::InvalidUtf8Byte(_) => XmlError::UnsupportedEncoding,
        other => XmlError::NotWellFormed(other.to_string()),
    }
}

#[cfg(test)]
mod tests;

/// Parses one serialised element (a stored stanza) in the `jabber:client` namespace.
pub fn parse_fragment(xml: &str, limits: Limits) -> Result<Element, XmlError> {
    let mut p = StreamParser::new(limits);
    let doc = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{xml}"
    );
    let mut input = doc.as_bytes();
    loop {
        match p.next(&mut input)? {
            Some(StreamEvent::Element(el)) => return Ok(el),
            Some(_) => continue,
            None => return Err(XmlError::NotWellFormed("incomplete element".into())),
        }
    }
}
