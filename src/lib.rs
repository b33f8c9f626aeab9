//! xmppd: an XMPP server (RFC 6120/6121).
//!
//! # Layout
//! Imports point one way, `xml → stanza → stream → transport → session/router → ext → http →
//! server`, but for `session ↔ router`: the router holds the session registry, and sessions
//! route through the router's `route` and its `Hooks`; the router never reaches into a
//! session's internals (it only queues on a session's handle).
//! - [`xml`]: streaming parser (rxml underneath), element tree, writer. Sans-IO.
//! - [`stanza`]: stanza kinds and stanza errors (RFC 6120 §8).
//! - [`stream`]: stream header checks, features, stream errors, SASL (SCRAM, PLAIN). Sans-IO.
//! - [`transport`]: listeners, TLS, connection limits.
//! - [`session`]: the c2s session core (transport-agnostic), its drivers (TCP here, in-memory
//!   for fuzzing) and the registry of bound sessions.
//! - [`router`]: the route table (host, service, remote) and delivery (RFC 6121 §8.5).
//! - [`s2s`]: federation: outgoing streams per domain pair, incoming streams, SASL EXTERNAL
//!   and dialback, SRV resolution; the router's remote route.
//! - [`ext`]: server-side features as modules, with iq handlers and hooks by priority.
//! - [`storage`]: one trait per area, SQLite and PostgreSQL implementations.
//! - [`http`]: the web listeners: WebSocket and BOSH drivers of the session core, host-meta,
//!   file upload (a service of the route table), `/health`, `/metrics`.
//! - [`metrics`]: what the server counts, for `/metrics`.
//! - [`config`]: the typed configuration.
//! - [`server`]: wiring, listeners, graceful shutdown.

// House rule: no unwrap/expect on the server path (a panic would take a connection's task down
// with it, or worse); tests may use them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod ext;
pub mod http;
pub mod metrics;
pub mod router;
pub mod s2s;
pub mod server;
pub mod session;
pub mod stanza;
pub mod storage;
pub mod stream;
pub mod transport;
pub mod xml;
