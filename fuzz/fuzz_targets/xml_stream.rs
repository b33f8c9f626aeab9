//! Fuzzes the streaming XML parser (`xmppd::xml::StreamParser`): arbitrary bytes, fed in
//! chunks whose sizes the input chooses, must give events or an error, never a panic or a
//! hang; every element it yields must serialise to XML that parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmppd::xml::{Limits, StreamEvent, StreamParser, parse_fragment};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_stanza_size: 4096,
        max_depth: 16,
    };
    let mut parser = StreamParser::new(limits);
    let chunk = usize::from(split % 64) + 1;
    'feed: for mut piece in body.chunks(chunk) {
        loop {
            match parser.next(&mut piece) {
                Ok(Some(StreamEvent::Element(el))) => {
                    let text = el.to_string_in("jabber:client");
                    let big = Limits {
                        max_stanza_size: 1 << 20,
                        max_depth: 64,
                    };
                    if let Err(e) = parse_fragment(&text, big) {
                        panic!("written element does not parse back: {e}: {text}");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
});
