//! XEP-0138 Stream Compression with zlib, sans-IO: the feature, the answers to `<compress/>`,
//! and a [`Zlib`] pair that inflates what the client sends (bounded, so a compression bomb
//! cannot make the server allocate without limit) and deflates what we send with a sync flush
//! per write, so every stanza can be decoded as soon as it arrives.
//!
//! The XEP is obsolete: compression under TLS leaks secrets through lengths (CRIME, BREACH).
//! xmppd offers it only when configured, and over TLS only when that is allowed explicitly.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{Condition, StreamError};
use crate::xml::Element;

/// `http://jabber.org/features/compress`
pub const NS_FEATURE: &str = "http://jabber.org/features/compress";
/// `http://jabber.org/protocol/compress`
pub const NS: &str = "http://jabber.org/protocol/compress";

/// Output grows in steps of this size.
const STEP: usize = 16 * 1024;

/// The stream feature offering zlib.
pub fn feature() -> Element {
    Element::new("compression", NS_FEATURE)
        .with_child(Element::new("method", NS_FEATURE).with_text("zlib"))
}

/// Checks a `<compress/>` request: `Ok` for zlib, or the `<failure/>` to send (XEP-0138 §6).
pub fn check_request(el: &Element) -> Result<(), Element> {
    let methods: Vec<String> = el
        .children()
        .filter(|c| c.is("method", NS))
        .map(Element::text)
        .collect();
    match methods.as_slice() {
        [] => Err(failure("setup-failed")),
        m if m.iter().any(|m| m.trim() == "zlib") => Ok(()),
        _ => Err(failure("unsupported-method")),
    }
}

/// `<failure><condition/></failure>`
pub fn failure(condition: &str) -> Element {
    Element::new("failure", NS).with_child(Element::new(condition, NS))
}

/// `<compressed/>`
pub fn compressed() -> Element {
    Element::new("compressed", NS)
}

/// One stream's zlib state, both directions.
pub struct Zlib {
    inflate: Decompress,
    deflate: Compress,
    /// Bytes before compression and after, both directions, for the log.
    pub plain_bytes: u64,
    /// Bytes on the wire, both directions.
    pub wire_bytes: u64,
}

impl std::fmt::Debug for Zlib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zlib")
            .field("plain_bytes", &self.plain_bytes)
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl Default for Zlib {
    fn default() -> Self {
        Zlib {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            plain_bytes: 0,
            wire_bytes: 0,
        }
    }
}

fn processing_failed() -> StreamError {
    StreamError::with_text(
        Condition::UndefinedCondition,
        "the compressed data is invalid",
    )
    .with_app(Element::new("processing-failed", NS))
}

impl Zlib {
    /// Inflates what was read; more than `max` bytes out of one read is a compression bomb
    /// (`policy-violation`).
    pub fn inflate(&mut self, input: &[u8], max: usize) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            if out.len() > max {
                return Err(StreamError::with_text(
                    Condition::PolicyViolation,
                    "the compressed data expands beyond the limit",
                ));
            }
            out.reserve_exact(STEP.min(max + 1 - out.len()).max(1));
            let (in0, out0) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
                .map_err(|_| processing_failed())?;
            pos += (self.inflate.total_in() - in0) as usize;
            let progress = self.inflate.total_in() != in0 || out.len() != out0;
            let full = out.len() == out.capacity();
            if status == Status::StreamEnd {
                // The client ended its zlib stream: nothing valid can follow.
                return Err(processing_failed());
            }
            if !progress || (pos == input.len() && !full) {
                break;
            }
        }
        self.wire_bytes += input.len() as u64;
        self.plain_bytes += out.len() as u64;
        Ok(out)
    }

    /// Deflates `plain` with a sync flush (the peer can decode all of it now).
    pub fn deflate(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(STEP);
            }
            let in0 = self.deflate.total_in();
            // Only a buffer error is possible, and the loop always leaves room.
            let _ = self
                .deflate
                .compress_vec(&plain[pos..], &mut out, FlushCompress::Sync);
            pos += (self.deflate.total_in() - in0) as usize;
            if pos == plain.len() && out.len() < out.capacity() {
                break;
            }
        }
        self.plain_bytes += plain.len() as u64;
        self.wire_bytes += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces_and_bomb() {
        let mut server = Zlib::default();
        let mut client = Zlib::default();
        let msg = b"<message to='a@b'><body>hello hello hello</body></message>".repeat(10);
        let wire = client.deflate(&msg);
        assert!(wire.len() < msg.len());
        let mut got = Vec::new();
        for piece in wire.chunks(3) {
            got.extend(server.inflate(piece, 1 << 20).unwrap());
        }
        assert_eq!(got, msg);
        // 1 MiB of spaces compresses to about a kilobyte.
        let bomb = client.deflate(&vec![b' '; 1 << 20]);
        assert!(bomb.len() < 8 * 1024);
        let e = server.inflate(&bomb, 64 * 1024).unwrap_err();
        assert_eq!(e.condition, Condition::PolicyViolation);
        let e = Zlib::default()
            .inflate(b"not zlib at all", 1024)
            .unwrap_err();
        assert_eq!(e.condition, Condition::UndefinedCondition);
    }

    #[test]
    fn requests() {
        let req = |m: &[&str]| {
            let mut el = Element::new("compress", NS);
            for x in m {
                el.append_child(Element::new("method", NS).with_text(*x));
            }
            check_request(&el)
        };
        assert!(req(&["zlib"]).is_ok());
        let f = req(&["lzw"]).unwrap_err();
        assert!(f.get_child("unsupported-method", NS).is_some());
        let f = req(&[]).unwrap_err();
        assert!(f.get_child("setup-failed", NS).is_some());
    }
}
