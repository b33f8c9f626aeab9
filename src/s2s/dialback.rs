//! Server Dialback (XEP-0220) with the keys of XEP-0185: the receiving server checks that a
//! server claiming domain O really answers for O in DNS, by asking O's authoritative server
//! (found by the usual resolution) whether the key it was given is O's.
//!
//! The key is `HMAC-SHA256(hex(SHA256(secret)), receiving ' ' originating ' ' stream-id)`, in
//! hex: the authoritative server recomputes it from the verify request and keeps no state.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::xml::Element;

use super::stream::NS_DIALBACK;

/// The dialback secret (hex of its SHA-256, the HMAC key of XEP-0185 §3).
pub struct Secret(String);

impl Secret {
    /// From the configured secret, or a random one when it is empty.
    pub fn new(configured: &str) -> Self {
        let digest = if configured.is_empty() {
            Sha256::digest(crate::stream::sasl::scram::random_bytes::<32>())
        } else {
            Sha256::digest(configured.as_bytes())
        };
        Secret(hex(&digest))
    }

    /// The key for a stream from `originating` to `receiving` with stream id `id`.
    pub fn key(&self, receiving: &str, originating: &str, id: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `key` is the one for that stream (compared in constant time).
    pub fn check(&self, key: &str, receiving: &str, originating: &str, id: &str) -> bool {
        let expected = self.key(receiving, originating, id);
        expected.as_bytes().ct_eq(key.trim().as_bytes()).into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<db:result/>` or `<db:verify/>` (`name`) between two domains.
pub fn element(name: &str, from: &str, to: &str) -> Element {
    Element::new(name.to_string(), NS_DIALBACK)
        .with_attr("from", from)
        .with_attr("to", to)
}

/// Whether `el` is the dialback element `name`.
pub fn is(el: &Element, name: &str) -> bool {
    el.is(name, NS_DIALBACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0185_example_key() {
        // The expected key computed apart, with Python's hmac and hashlib, by XEP-0185 §2.
        let s = Secret::new("s3cr3tf0rd14lb4ck");
        assert_eq!(
            s.key("example.net", "example.com", "D60000229F"),
            "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc"
        );
        assert!(s.check(
            "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc",
            "example.net",
            "example.com",
            "D60000229F"
        ));
        assert!(!s.check("00", "example.net", "example.com", "D60000229F"));
    }
}
