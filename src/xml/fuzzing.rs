//! The property the XML fuzz target checks, in the library so that `cargo test` replays the
//! committed seeds and regression inputs through exactly the same code as `cargo fuzz`
//! (`fuzz/fuzz_targets/xml_stream.rs`, `tests/fuzz_replay.rs`).
//!
//! The first byte of an input chooses the chunk size (1–64 bytes); the rest is the stream.
//! Arbitrary bytes must give events or an error, never a panic or a hang, and every element
//! the parser yields must serialise to XML that parses back.

use super::{Limits, StreamEvent, StreamParser, parse_fragment};

/// Runs one input; panics if the property does not hold.
pub fn xml_stream(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_stanza_size: 4096,
        max_stanza_memory: 16 * 1024,
        max_tag_size: 2048,
        max_attributes: 16,
        max_depth: 16,
    };
    let mut parser = StreamParser::new(limits);
    let chunk = usize::from(split % 64) + 1;
    'feed: for mut piece in body.chunks(chunk) {
        loop {
            match parser.next(&mut piece) {
                Ok(Some(StreamEvent::Element(el))) => {
                    let text = el.to_string_in("jabber:client");
                    if let Err(e) = parse_fragment(&text, Limits::stored()) {
                        panic!("written element does not parse back: {e}: {text}");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
}
