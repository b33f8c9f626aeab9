//! The parser limits of a c2s stream, which depend on where negotiation is: a peer that has
//! not authenticated gets the small budgets (RFC 6120 §13.12).

use super::C2s;
use crate::config::Config;
use crate::xml::Limits;

impl C2s {
    /// The parser limits for a new stream: before authentication nothing legitimate is
    /// larger than a SASL exchange or a registration form, so an anonymous peer gets
    /// `c2s.max_stanza_size_before_auth` (and a memory budget in proportion).
    pub fn limits(config: &Config, authenticated: bool) -> Limits {
        let c = &config.c2s;
        let (size, memory) = if authenticated {
            (c.max_stanza_size, c.max_stanza_memory)
        } else {
            let size = c.max_stanza_size_before_auth.min(c.max_stanza_size);
            let memory = c.max_stanza_memory / c.max_stanza_size.max(1) * size;
            (size, memory.max(size))
        };
        Limits {
            max_stanza_size: size,
            max_stanza_memory: memory,
            max_tag_size: c.max_tag_size.min(size),
            max_attributes: c.max_attributes,
            max_depth: c.max_depth,
        }
    }
}
