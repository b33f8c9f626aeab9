//! XEP-0352 Client State Indication. While the client says it is inactive (a phone in a
//! pocket), presence updates for it are held, keeping only the latest per sender, and flushed
//! before anything important (a message, an iq, a subscription request) or when it becomes
//! active again, so the order the client sees is still the order of events. The hold is bounded.

use super::C2s;
use crate::router::is_subscription;
use crate::xml::Element;

/// `urn:xmpp:csi:0`
pub const NS: &str = "urn:xmpp:csi:0";
/// Senders whose presence may be held at once; one more flushes them all.
const MAX_HELD: usize = 1000;

/// The held presences, in the order their senders first appeared.
#[derive(Debug, Default)]
pub(super) struct Csi {
    pub(super) inactive: bool,
    held: Vec<(String, Element)>,
}

impl C2s {
    /// `<active/>` or `<inactive/>` from the client.
    pub(super) fn on_csi(&mut self, el: &Element) {
        match el.name() {
            "inactive" => self.csi.inactive = true,
            _ => {
                self.csi.inactive = false;
                self.flush_held();
            }
        }
    }

    /// Writes a stanza for the client, holding it if it is a presence update while inactive.
    pub(super) fn write_stanza(&mut self, el: Element) {
        if self.csi.inactive
            && el.name() == "presence"
            && !is_subscription(&el)
            && el.attr("type") != Some("error")
        {
            let from = el.attr("from").unwrap_or_default().to_string();
            if let Some(slot) = self.csi.held.iter_mut().find(|(f, _)| *f == from) {
                slot.1 = el;
            } else if self.csi.held.len() < MAX_HELD {
                self.csi.held.push((from, el));
            } else {
                self.flush_held();
                self.send(el);
            }
            return;
        }
        self.flush_held();
        self.send(el);
    }

    fn flush_held(&mut self) {
        for (_, p) in std::mem::take(&mut self.csi.held) {
            self.send(p);
        }
    }
}

impl Csi {
    /// The held presences, taken out (the session ends).
    pub(super) fn take_held(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }
}
