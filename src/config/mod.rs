//! The server's configuration: one typed struct, defaults in code, unknown keys rejected, and
//! every error reported at once with its key path (`xmppd check`).
//!
//! `config/xmppd.toml` documents every option; an empty file (or none) gives the embedded
//! default: domain `localhost`, SQLite under `./data`, a self-signed certificate.

mod archive;
mod load;
mod muc;
mod pep;
mod s2s;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use archive::ArchiveConfig;
pub use load::{ConfigError, load_file, parse_str};
pub use muc::MucConfig;
pub use pep::PepConfig;
pub use s2s::S2sConfig;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Served domains, data folder, logging.
    pub server: ServerConfig,
    /// The database.
    pub storage: StorageConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Client-to-server listeners and stream negotiation.
    pub c2s: C2sConfig,
    /// Connection and authentication limits.
    pub limits: LimitsConfig,
    /// Instant-messaging limits: rosters, offline storage, stored documents.
    pub im: ImConfig,
    /// The HTTP listeners: WebSocket, host-meta, health and metrics.
    pub http: HttpConfig,
    /// HTTP File Upload (XEP-0363).
    pub upload: UploadConfig,
    /// Group chat (XEP-0045).
    pub muc: MucConfig,
    /// Message archive (XEP-0313).
    pub archive: ArchiveConfig,
    /// Personal eventing (XEP-0163).
    pub pep: PepConfig,
    /// Federation (server-to-server streams).
    pub s2s: S2sConfig,
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Addresses for plain HTTP, e.g. `127.0.0.1:5280` (loopback by default: put a reverse
    /// proxy in front, or list a public address knowingly). Empty: no plain HTTP listener.
    pub listen: Vec<String>,
    /// Addresses for HTTPS with the server's certificate, e.g. `0.0.0.0:5443`. Empty: none.
    pub tls_listen: Vec<String>,
    /// Serve `/metrics` (Prometheus text format). `/health` is always served.
    pub metrics: bool,
    /// Seconds a client may take to send a request's headers (also an idle connection's
    /// next request); then the connection is closed.
    pub request_timeout_secs: u64,
    /// XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`.
    pub websocket: bool,
    /// Origins (`https://chat.example.org`) whose pages may open a WebSocket; empty: any
    /// (browsers send `Origin`; other clients do not and are always allowed).
    pub websocket_origins: Vec<String>,
    /// BOSH (XEP-0124/0206) at `/http-bind`.
    pub bosh: bool,
    /// Longest a BOSH request is held waiting for something to send (a client asks for less).
    pub bosh_max_wait_secs: u64,
    /// A BOSH session with no request for this long is over (its client went away).
    pub bosh_inactivity_secs: u64,
    /// Requests a BOSH client may have held at once (`hold`; one more may be in flight).
    pub bosh_max_hold: u32,
    /// Origins whose pages may use BOSH (CORS); empty: any.
    pub bosh_origins: Vec<String>,
    /// Reverse proxies (addresses, or networks as `10.0.0.0/8`) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed: the per-IP limits then apply to the client's address.
    /// From anyone else these headers are ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec!["127.0.0.1:5280".into()],
            tls_listen: vec!["0.0.0.0:5443".into()],
            metrics: true,
            request_timeout_secs: 10,
            websocket: true,
            websocket_origins: Vec::new(),
            bosh: true,
            bosh_max_wait_secs: 60,
            bosh_inactivity_secs: 60,
            bosh_max_hold: 1,
            bosh_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[upload]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// The upload service (`upload.<host>` for each host); it needs an HTTP listener.
    pub enabled: bool,
    /// The service's name: the first label of its domain.
    pub subdomain: String,
    /// Largest file, in bytes.
    pub max_file_size: u64,
    /// Bytes one account may have stored (pending slots included).
    pub quota_per_user: u64,
    /// Files older than this are deleted.
    pub expire_after_days: u64,
    /// The URL clients reach the HTTP listener at (`https://chat.example.org:5443`); empty:
    /// the first HTTPS listener, else the first plain one, with the host's name.
    pub public_url: String,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            enabled: true,
            subdomain: "upload".into(),
            max_file_size: 10 * 1024 * 1024,
            quota_per_user: 100 * 1024 * 1024,
            expire_after_days: 30,
            public_url: String::new(),
        }
    }
}

/// `[im]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImConfig {
    /// Items in one roster (RFC 6121 §2.3.3: a set beyond it is refused).
    pub roster_max_items: usize,
    /// Longest item name and group name, in bytes.
    pub roster_max_name_length: usize,
    /// Groups one roster item may be in.
    pub roster_max_groups: usize,
    /// Offline messages kept per account (XEP-0160); further ones bounce with an error.
    pub offline_quota: usize,
    /// Bytes of offline messages kept per account; further ones bounce with an error.
    pub offline_quota_bytes: usize,
    /// Headline messages (notifications) for an account with no available resource are kept,
    /// the newest of each kind only (coalesced); false: ignored, as RFC 6121 §8.5.2.2.1 has it.
    pub offline_headlines: bool,
    /// Largest vCard or private XML document, in bytes.
    pub max_document_size: usize,
    /// Private XML namespaces (XEP-0049 documents) one account may store.
    pub max_private_namespaces: usize,
    /// JIDs one account may block (XEP-0191).
    pub max_blocklist_items: usize,
    /// Entities one session may send directed presence to (RFC 6121 §4.6) and so be
    /// remembered for its unavailable presence; beyond it directed presence is refused
    /// with `<policy-violation/>`. Each joined group chat counts as one.
    pub max_directed_presences: usize,
}

impl Default for ImConfig {
    fn default() -> Self {
        ImConfig {
            roster_max_items: 1000,
            roster_max_name_length: 1024,
            roster_max_groups: 32,
            offline_quota: 500,
            offline_quota_bytes: 2 * 1024 * 1024,
            offline_headlines: true,
            max_document_size: 64 * 1024,
            max_private_namespaces: 100,
            max_blocklist_items: 1000,
            max_directed_presences: 1000,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Domains this server hosts; the first is the default.
    pub hosts: Vec<String>,
    /// Folder for the SQLite database and the generated certificate.
    pub data_dir: PathBuf,
    /// Log filter (tracing's `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub log: String,
    /// Seconds a graceful shutdown waits for sessions to close.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hosts: vec!["localhost".into()],
            data_dir: PathBuf::from("data"),
            log: "info".into(),
            shutdown_timeout_secs: 10,
        }
    }
}

/// Which database backs the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite in `data_dir` (the embedded default).
    Sqlite,
    /// PostgreSQL at `storage.url`.
    Postgres,
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite` or `postgres`.
    pub backend: Backend,
    /// Database URL; empty for SQLite means `<data_dir>/xmppd.sqlite`.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// SQLite page cache per pooled connection, in KiB.
    pub sqlite_cache_kib: u32,
    /// Rosters of online accounts kept in memory for presence broadcasts (0: none); past it the
    /// cache is emptied.
    pub roster_cache: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sqlite,
            url: String::new(),
            pool_size: 8,
            sqlite_cache_kib: 256,
            roster_cache: 50_000,
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; unset: a self-signed certificate is created in `data_dir`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// What happens when a client binds a resource that another session of the account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceConflict {
    /// The old session is closed with `<conflict/>` (Prosody's and ejabberd's default).
    KickOld,
    /// The new bind fails with `<conflict/>`.
    Refuse,
    /// The new session gets a server-generated resource instead.
    Random,
}

/// `[c2s]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sConfig {
    /// Addresses for plain TCP with STARTTLS (RFC 6120 §5), e.g. `0.0.0.0:5222`.
    pub listen: Vec<String>,
    /// Addresses for direct TLS (XEP-0368), e.g. `0.0.0.0:5223`.
    pub tls_listen: Vec<String>,
    /// Refuse SASL and stanzas until STARTTLS has succeeded.
    pub require_tls: bool,
    /// Offer SASL PLAIN (checked against the stored SCRAM keys); only ever over TLS.
    pub allow_plain: bool,
    /// Largest top-level element in bytes (RFC 6120 §13.12).
    pub max_stanza_size: usize,
    /// Largest top-level element in bytes before authentication (SASL, STARTTLS, in-band
    /// registration need a few KiB); the memory budget shrinks in proportion.
    pub max_stanza_size_before_auth: usize,
    /// Largest memory one received top-level element may take once parsed, in bytes: bounds
    /// input whose tree is bigger than its text (thousands of empty elements). At least
    /// `max_stanza_size`.
    pub max_stanza_memory: usize,
    /// Largest start tag in bytes, attributes included (the stream header too); checked while
    /// the tag is read.
    pub max_tag_size: usize,
    /// Most attributes in one start tag.
    pub max_attributes: usize,
    /// Deepest element nesting inside a stanza.
    pub max_depth: usize,
    /// Seconds a connection may take to authenticate and bind before it is closed.
    pub auth_timeout_secs: u64,
    /// Failed SASL attempts allowed on one connection before it is closed.
    pub max_auth_attempts: u32,
    /// `kick_old`, `refuse` or `random`.
    pub resource_conflict: ResourceConflict,
    /// Let anyone create an account from a client (XEP-0077 in-band registration). Off by
    /// default: an open server attracts spammers. Logged-in users may always change their
    /// password or remove their account this way.
    pub allow_registration: bool,
    /// Stanzas queued for one session. When it overflows the client is not keeping up: the
    /// stanza that did not fit goes back to its sender as an error, the stream is closed with
    /// `<resource-constraint/>`, and what was queued is kept for resumption or re-routed.
    pub session_queue: usize,
    /// Bytes of stanzas queued for one session (as held in memory); beyond it the same as
    /// an overflow of `session_queue`.
    pub session_queue_bytes: usize,
    /// Seconds without any byte from a bound client before its stream is closed with
    /// `<connection-timeout/>`; at half of it the server pings the client (XEP-0199).
    pub idle_timeout_secs: u64,
    /// Seconds a write to a client may stall (a client that stops reading) before its stream
    /// is closed with `<resource-constraint/>`; its queued stanzas are kept for resumption or
    /// re-routed (offline storage).
    pub write_timeout_secs: u64,
    /// Offer XEP-0198 stream management (acks, and resumption after a lost connection).
    pub stream_management: bool,
    /// Seconds a session whose connection was lost waits for a resumption; 0 disables
    /// resumption. Its contacts do not see it go offline meanwhile.
    pub resume_timeout_secs: u64,
    /// Unacknowledged stanzas kept for one session; beyond it the stream is closed with
    /// `<resource-constraint/>` (or a detached session ends) and they are re-routed.
    pub max_unacked: usize,
    /// Bytes of unacknowledged stanzas kept for one session (as held in memory); beyond it
    /// the same as exceeding `max_unacked`.
    pub max_unacked_bytes: usize,
    /// Ask the client for an ack (`<r/>`) after this many unacknowledged stanzas ...
    pub ack_request_every: u32,
    /// ... or when the oldest unacknowledged stanza is this many seconds old.
    pub ack_request_after_secs: u64,
    /// Offer XEP-0138 stream compression (zlib) on connections without TLS. Off by default:
    /// the XEP is obsolete, and compression under encryption leaks secrets (CRIME).
    pub compression: bool,
    /// Also offer compression on TLS connections (only if you accept that risk).
    pub compression_over_tls: bool,
    /// `host:port` sent as `location` in `<enabled/>`: where clients should reconnect to
    /// resume (one node of a cluster). Empty: not sent.
    pub sm_location: String,
}

impl Default for C2sConfig {
    fn default() -> Self {
        C2sConfig {
            listen: vec!["0.0.0.0:5222".into()],
            tls_listen: vec!["0.0.0.0:5223".into()],
            require_tls: true,
            allow_plain: true,
            max_stanza_size: 256 * 1024,
            max_stanza_size_before_auth: 16 * 1024,
            max_stanza_memory: 1024 * 1024,
            max_tag_size: 16 * 1024,
            max_attributes: 64,
            max_depth: 32,
            auth_timeout_secs: 30,
            max_auth_attempts: 3,
            resource_conflict: ResourceConflict::KickOld,
            allow_registration: false,
            idle_timeout_secs: 300,
            session_queue: 5000,
            session_queue_bytes: 8 * 1024 * 1024,
            write_timeout_secs: 30,
            stream_management: true,
            resume_timeout_secs: 300,
            max_unacked: 1000,
            max_unacked_bytes: 8 * 1024 * 1024,
            ack_request_every: 5,
            ack_request_after_secs: 30,
            sm_location: String::new(),
            compression: false,
            compression_over_tls: false,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open client connections in total.
    pub max_connections: usize,
    /// Open client connections from one IP address.
    pub max_connections_per_ip: usize,
    /// New connections one IP address may open per minute (token bucket, burst of the same size).
    pub connections_per_ip_per_minute: u32,
    /// Failed authentications one IP address may make per minute before it is refused for a while.
    pub auth_failures_per_ip_per_minute: u32,
    /// Accounts one IP address may create per hour through in-band registration.
    pub registrations_per_ip_per_hour: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            // An office or a mobile carrier's NAT puts hundreds of users behind one address,
            // and after a network blip they all reconnect at once: 1,000 connections and 1,000
            // new ones a minute from one address (ejabberd and Prosody have no such limit).
            max_connections_per_ip: 1000,
            connections_per_ip_per_minute: 1000,
            auth_failures_per_ip_per_minute: 10,
            registrations_per_ip_per_hour: 3,
        }
    }
}

impl Config {
    /// The default domain (the first of `server.hosts`).
    pub fn default_host(&self) -> &str {
        self.server
            .hosts
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    }

    /// Whether `domain` is served here.
    pub fn serves(&self, domain: &str) -> bool {
        self.server
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(domain))
    }
}
