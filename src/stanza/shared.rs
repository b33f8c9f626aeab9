//! One stanza for many recipients that differ only in `to` (presence fan-out: one change, a
//! copy for every available resource of every subscriber). It is serialised once; each
//! recipient's session writes the shared bytes with its own `to` spliced in, instead of the
//! router cloning the element for each and each session serialising its copy. A session that
//! needs an element (stream management keeps what it sent, CSI holds presence, a queue drained
//! at close re-routes) gets one with [`Addressed::element`].

use std::sync::Arc;

use crate::stream::write_top_level;
use crate::xml::Element;
use crate::xml::escape::escape_attr;

/// The stanza, without `to`, and its serialisation.
#[derive(Debug)]
pub struct SharedStanza {
    stanza: Element,
    wire: Vec<u8>,
    /// Where ` to='…'` goes: right after the element's name.
    split: usize,
}

impl SharedStanza {
    /// Serialises `stanza` (its `to`, if any, removed) once.
    pub fn new(mut stanza: Element) -> Arc<SharedStanza> {
        stanza.remove_attr("to");
        let mut wire = Vec::new();
        write_top_level(&stanza, &mut wire);
        let split = 1 + stanza.name().len();
        Arc::new(SharedStanza {
            stanza,
            wire,
            split,
        })
    }

    /// The stanza as the shared copy holds it (no `to`).
    pub fn stanza(&self) -> &Element {
        &self.stanza
    }

    /// Its serialisation (without `to`, inside a `jabber:client` stream), e.g. to store it.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

/// The shared stanza for one recipient.
#[derive(Debug, Clone)]
pub struct Addressed {
    pub shared: Arc<SharedStanza>,
    pub to: String,
}

impl Addressed {
    /// What this recipient's copy holds: the shared bytes (counted for each recipient, as a
    /// queue cannot know how many others share them) and its `to`.
    pub fn bytes(&self) -> usize {
        self.shared.wire.len() + self.to.len()
    }

    /// Writes the stanza with this recipient's `to`: the same bytes as serialising
    /// [`Addressed::element`], but for the order of the attributes.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.write_as(out, false);
    }

    /// Writes it, as part of a stream or `standalone` (a WebSocket message, RFC 7395 §3.3.3):
    /// then the namespace the stream header would have given is declared on the stanza.
    pub fn write_as(&self, out: &mut Vec<u8>, standalone: bool) {
        let s = &self.shared;
        out.extend_from_slice(&s.wire[..s.split]);
        if standalone && s.stanza.ns() == crate::stream::NS_CLIENT {
            out.extend_from_slice(b" xmlns='jabber:client'");
        }
        out.extend_from_slice(b" to='");
        escape_attr(&self.to, out);
        out.push(b'\'');
        out.extend_from_slice(&s.wire[s.split..]);
    }

    /// The stanza as an element of its own.
    pub fn element(&self) -> Element {
        let mut el = self.shared.stanza.clone();
        el.set_attr("to", self.to.clone());
        el
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse_fragment};

    #[test]
    fn the_spliced_bytes_parse_to_the_element() {
        let p = parse_fragment(
            "<presence xmlns='jabber:client' from='a@x/r' to='old@x'><status>a &amp; b</status>\
             <x xmlns='urn:example' v='&apos;'/></presence>",
            Limits::default(),
        )
        .unwrap();
        let shared = SharedStanza::new(p);
        assert_eq!(shared.stanza().attr("to"), None);
        for to in ["b@x", "o'neil&co@x"] {
            let a = Addressed {
                shared: shared.clone(),
                to: to.to_string(),
            };
            let mut out = Vec::new();
            a.write(&mut out);
            let text = String::from_utf8(out).unwrap();
            let parsed = parse_fragment(&text, Limits::default()).unwrap();
            // Standalone (WebSocket): the same element, with its namespace declared.
            let mut alone = Vec::new();
            a.write_as(&mut alone, true);
            let alone = String::from_utf8(alone).unwrap();
            assert!(
                alone.starts_with("<presence xmlns='jabber:client' to="),
                "{alone}"
            );
            let alone = parse_fragment(&alone, Limits::default()).unwrap();
            assert_eq!(alone, parsed);
            let el = a.element();
            assert_eq!(parsed.attr("to"), Some(to), "{text}");
            assert_eq!(el.attr("to"), Some(to));
            assert_eq!(parsed.attr("from"), Some("a@x/r"));
            assert_eq!(parsed.attrs().count(), el.attrs().count());
            assert!(parsed.children().eq(el.children()), "{text}");
        }
    }

    #[test]
    fn an_empty_stanza_splices_too() {
        let shared = SharedStanza::new(Element::new("presence", crate::stream::NS_CLIENT));
        let a = Addressed {
            shared,
            to: "b@x".into(),
        };
        let mut out = Vec::new();
        a.write(&mut out);
        assert_eq!(out, b"<presence to='b@x'/>");
    }
}
