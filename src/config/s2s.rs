//! `[s2s]`: federation with other servers (RFC 6120 server-to-server streams).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[s2s]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Federation on: other domains are reached, and other servers may connect. Off: every
    /// stanza to another domain comes back with `remote-server-not-found`.
    pub enabled: bool,
    /// Addresses for incoming server streams (STARTTLS), e.g. `0.0.0.0:5269`.
    pub listen: Vec<String>,
    /// Addresses for incoming direct-TLS server streams (XEP-0368), e.g. `0.0.0.0:5270`.
    pub tls_listen: Vec<String>,
    /// Refuse peers whose certificate does not validate for their domain. Off (the default,
    /// as Prosody and ejabberd): such peers are authenticated by Server Dialback (XEP-0220),
    /// which proves they answer for the domain in DNS; peers with a valid certificate use SASL
    /// EXTERNAL (XEP-0178) either way.
    pub require_valid_certificates: bool,
    /// Offer and use Server Dialback when a certificate does not validate.
    pub dialback: bool,
    /// CA certificates (PEM) to validate peers against; none: the system's store.
    pub ca_file: Option<PathBuf>,
    /// Where a domain's server is, bypassing DNS: `"example.org" = "192.0.2.1:5269"`.
    pub static_routes: BTreeMap<String, String>,
    /// DNS servers to ask (`ip` or `ip:port`); empty: the system's resolv.conf.
    pub dns_servers: Vec<String>,
    /// Seconds to resolve, connect and authenticate to a remote server before the stanzas
    /// waiting for it come back with `remote-server-timeout`.
    pub connect_timeout_secs: u64,
    /// Seconds an outgoing or incoming stream may be idle before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds an incoming stream has to authenticate.
    pub auth_timeout_secs: u64,
    /// Stanzas waiting for one remote domain, in count; beyond it the sender gets
    /// `resource-constraint`.
    pub queue: usize,
    /// The same queue, in bytes of element tree.
    pub queue_bytes: usize,
    /// Largest stanza a remote server may send, in bytes.
    pub max_stanza_size: usize,
    /// Incoming server streams at once, in total.
    pub max_incoming: usize,
    /// Incoming server streams at once from one authenticated domain.
    pub max_incoming_per_domain: usize,
    /// Domain pairs one incoming stream may authenticate (dialback piggybacking).
    pub max_domains_per_stream: usize,
    /// Remote domains with an outgoing stream (or one being made) at once.
    pub max_outgoing: usize,
    /// Stream management (XEP-0198, acknowledgements without resumption) on server streams:
    /// offered to peers authenticated with SASL EXTERNAL, and asked for where offered; what a
    /// broken stream had not acknowledged is sent again on a new one.
    pub stream_management: bool,
    /// Bidirectional streams (XEP-0288): one connection carries stanzas both ways, asked for
    /// and offered (Prosody offers it by default).
    pub bidi: bool,
    /// Domains never connected to nor accepted from.
    pub blocked_domains: Vec<String>,
    /// The secret dialback keys are made from (XEP-0185); empty: a random one per start (a
    /// restart then only makes peers authenticate again). Set it when several nodes share a
    /// domain.
    pub dialback_secret: String,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            enabled: true,
            listen: vec!["0.0.0.0:5269".into()],
            tls_listen: vec![],
            require_valid_certificates: false,
            dialback: true,
            ca_file: None,
            static_routes: BTreeMap::new(),
            dns_servers: vec![],
            connect_timeout_secs: 30,
            idle_timeout_secs: 600,
            auth_timeout_secs: 30,
            queue: 1000,
            queue_bytes: 4 * 1024 * 1024,
            max_stanza_size: 256 * 1024,
            max_incoming: 1000,
            max_incoming_per_domain: 8,
            max_domains_per_stream: 64,
            max_outgoing: 1000,
            stream_management: true,
            bidi: true,
            blocked_domains: vec![],
            dialback_secret: String::new(),
        }
    }
}

impl S2sConfig {
    /// Whether `domain` (lower-case) is blocked.
    pub fn blocked(&self, domain: &str) -> bool {
        self.blocked_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}
