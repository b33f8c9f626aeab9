//! Fuzzes the streaming XML parser (`xmppd::xml::StreamParser`): arbitrary bytes, fed in
//! chunks whose sizes the input chooses, must give events or an error, never a panic or a
//! hang; every element it yields must serialise to XML that parses back. The property is
//! `xmppd::xml::fuzzing::xml_stream`, which `cargo test` also replays on the committed seeds
//! and regressions (`tests/fuzz_replay.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xmppd::xml::fuzzing::xml_stream(data));
