//! What the server counts, for `/metrics` (Prometheus text format, served by [`crate::http`]).
//!
//! Recorded through the `metrics` facade into one process-wide recorder from
//! metrics-exporter-prometheus, installed on first use. Labels are a small fixed set (stanza
//! kinds, RFC 6120 condition names), so the number of series is bounded whatever peers send.
//! Gauges that are cheaper to read than to maintain (sessions, connections, queued bytes) are
//! set when `/metrics` is scraped.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, for the routing and storage histograms.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// The recorder's handle (installed on first call; `None` if another recorder was installed
/// in this process first).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// A stanza kind as a label: one of a fixed set.
fn kind(name: &str) -> &'static str {
    match name {
        "message" => "message",
        "presence" => "presence",
        "iq" => "iq",
        _ => "other",
    }
}

/// A stanza received from a bound client.
pub fn stanza_in(name: &str) {
    counter!("xmppd_stanzas_in_total", "kind" => kind(name)).increment(1);
}

/// Stanzas written to a client.
pub fn stanzas_out(name: &str, n: u64) {
    counter!("xmppd_stanzas_out_total", "kind" => kind(name)).increment(n);
}

/// A stream closed with an error (RFC 6120 §4.9.3 condition).
pub fn stream_error(condition: &'static str) {
    counter!("xmppd_stream_errors_total", "condition" => condition).increment(1);
}

/// A stanza answered with an error (RFC 6120 §8.3.3 condition).
pub fn stanza_error(condition: &'static str) {
    counter!("xmppd_stanza_errors_total", "condition" => condition).increment(1);
}

/// Stanzas written to (`out`) or read from (`in`) other servers.
pub fn s2s_stanzas(direction: &'static str, n: u64) {
    counter!("xmppd_s2s_stanzas_total", "direction" => direction).increment(n);
}

/// How long routing one stanza from a client took.
pub fn routed(took: Duration) {
    histogram!("xmppd_route_seconds").record(took.as_secs_f64());
}

/// An offline store: how long it took, and whether the message was kept.
pub fn offline_store(took: Duration, stored: bool) {
    histogram!("xmppd_storage_seconds", "op" => "offline_store").record(took.as_secs_f64());
    if stored {
        counter!("xmppd_offline_stored_total").increment(1);
    }
}

/// One group commit of the archive writer: how long it took and how many messages it held.
pub fn archive_commit(took: Duration, messages: u64) {
    histogram!("xmppd_storage_seconds", "op" => "archive_commit").record(took.as_secs_f64());
    counter!("xmppd_archive_commits_total").increment(1);
    counter!("xmppd_archived_total").increment(messages);
}

/// Offline messages handed to a session.
pub fn offline_delivered(n: u64) {
    counter!("xmppd_offline_delivered_total").increment(n);
}

/// An open connection of one transport, counted in `xmppd_connections_open{transport}` for
/// as long as this lives.
pub struct Open(&'static str);

/// Counts a connection of `transport` (`c2s`, `c2s_tls`, `http`, `s2s_in`, `s2s_out`) until
/// the result is dropped.
pub fn open(transport: &'static str) -> Open {
    gauge!("xmppd_connections_open", "transport" => transport).increment(1.0);
    Open(transport)
}

impl Drop for Open {
    fn drop(&mut self) {
        gauge!("xmppd_connections_open", "transport" => self.0).decrement(1.0);
    }
}

/// The gauges read at scrape time.
pub fn set_gauges(sessions: usize, connections: usize, queued_bytes: usize) {
    gauge!("xmppd_sessions").set(sessions as f64);
    gauge!("xmppd_connections").set(connections as f64);
    gauge!("xmppd_queued_bytes").set(queued_bytes as f64);
}
