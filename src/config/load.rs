//! Loading and validating the configuration: every error at once, each with its key path.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Backend, Config};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `c2s.max_stanza_size` (empty for the file as a whole).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Reads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![err("", format!("cannot read {}: {e}", path.display()))])?;
    parse_str(&text)
}

/// Parses and validates configuration text.
pub fn parse_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![err("", format!("not valid TOML: {}", e.message()))])?;
    let mut errors = Vec::new();
    let mut config = Config::default();
    for (section, value) in &table {
        match section.as_str() {
            "server" => section_into(section, value, &mut config.server, &mut errors),
            "storage" => section_into(section, value, &mut config.storage, &mut errors),
            "tls" => section_into(section, value, &mut config.tls, &mut errors),
            "c2s" => section_into(section, value, &mut config.c2s, &mut errors),
            "limits" => section_into(section, value, &mut config.limits, &mut errors),
            "im" => section_into(section, value, &mut config.im, &mut errors),
            "upload" => section_into(section, value, &mut config.upload, &mut errors),
            "muc" => section_into(section, value, &mut config.muc, &mut errors),
            "archive" => section_into(section, value, &mut config.archive, &mut errors),
            "pep" => section_into(section, value, &mut config.pep, &mut errors),
            "s2s" => section_into(section, value, &mut config.s2s, &mut errors),
            "http" => section_into(section, value, &mut config.http, &mut errors),
            _ => errors.push(err(section, "unknown section")),
        }
    }
    validate(&config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Deserialises one section key by key (so each bad key is reported), then as a whole.
fn section_into<T: DeserializeOwned>(
    section: &str,
    value: &toml::Value,
    slot: &mut T,
    errors: &mut Vec<ConfigError>,
) {
    let Some(table) = value.as_table() else {
        errors.push(err(section, "must be a table ([section])"));
        return;
    };
    // Each key alone, so every bad key is reported; the good ones still apply, so that the
    // semantic checks below see them too.
    let mut good = toml::Table::new();
    for (key, v) in table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), v.clone());
        match T::deserialize(toml::Value::Table(one)) {
            Ok(_) => {
                good.insert(key.clone(), v.clone());
            }
            Err(e) => errors.push(err(&format!("{section}.{key}"), clean(e.message()))),
        }
    }
    match T::deserialize(toml::Value::Table(good)) {
        Ok(v) => *slot = v,
        Err(e) => errors.push(err(section, clean(e.message()))),
    }
}

fn clean(msg: &str) -> String {
    msg.trim().replace('\n', " ")
}

fn validate(c: &Config, errors: &mut Vec<ConfigError>) {
    if c.server.hosts.is_empty() {
        errors.push(err("server.hosts", "at least one domain is needed"));
    }
    for (i, h) in c.server.hosts.iter().enumerate() {
        if jid::BareJid::new(h)
            .map(|j| j.node().is_some())
            .unwrap_or(true)
        {
            errors.push(err(
                &format!("server.hosts[{i}]"),
                format!("{h:?} is not a valid domain"),
            ));
        }
    }
    if c.storage.backend == Backend::Postgres && c.storage.url.is_empty() {
        errors.push(err(
            "storage.url",
            "a postgres:// URL is required for the postgres backend",
        ));
    }
    if c.storage.pool_size == 0 {
        errors.push(err("storage.pool_size", "must be at least 1"));
    }
    if c.storage.sqlite_cache_kib < 64 {
        errors.push(err("storage.sqlite_cache_kib", "must be at least 64"));
    }
    if c.tls.cert_file.is_some() != c.tls.key_file.is_some() {
        errors.push(err("tls", "cert_file and key_file go together"));
    }
    for (name, list) in [
        ("c2s.listen", &c.c2s.listen),
        ("c2s.tls_listen", &c.c2s.tls_listen),
        ("http.listen", &c.http.listen),
        ("http.tls_listen", &c.http.tls_listen),
    ] {
        for (i, a) in list.iter().enumerate() {
            if a.parse::<std::net::SocketAddr>().is_err() {
                errors.push(err(
                    &format!("{name}[{i}]"),
                    format!("{a:?} is not an ip:port address"),
                ));
            }
        }
    }
    for (i, p) in c.http.trusted_proxies.iter().enumerate() {
        if crate::http::proxy::Network::parse(p).is_none() {
            errors.push(err(
                &format!("http.trusted_proxies[{i}]"),
                format!("{p:?} is not an address or a network (10.0.0.0/8)"),
            ));
        }
    }
    if c.c2s.max_stanza_size < 1024 {
        errors.push(err("c2s.max_stanza_size", "must be at least 1024 bytes"));
    }
    if c.c2s.max_stanza_size_before_auth < 4096 {
        errors.push(err(
            "c2s.max_stanza_size_before_auth",
            "must be at least 4096 bytes",
        ));
    }
    if c.c2s.max_stanza_memory < c.c2s.max_stanza_size {
        errors.push(err(
            "c2s.max_stanza_memory",
            "must be at least c2s.max_stanza_size",
        ));
    }
    if !(1024..=c.c2s.max_stanza_size.max(1024)).contains(&c.c2s.max_tag_size) {
        errors.push(err(
            "c2s.max_tag_size",
            "must be between 1024 bytes and c2s.max_stanza_size",
        ));
    }
    if !(8..=10_000).contains(&c.c2s.max_attributes) {
        errors.push(err("c2s.max_attributes", "must be between 8 and 10000"));
    }
    // Offline messages are handed over at login all at once; with stream management they
    // then wait for an ack, so they must fit the unacknowledged queue or the session would be
    // closed (and they stored again) at every login.
    if c.c2s.stream_management && c.im.offline_quota > c.c2s.max_unacked {
        errors.push(err(
            "im.offline_quota",
            "must not exceed c2s.max_unacked (offline messages are delivered at once)",
        ));
    }
    if c.c2s.stream_management && c.im.offline_quota_bytes > c.c2s.max_unacked_bytes {
        errors.push(err(
            "im.offline_quota_bytes",
            "must not exceed c2s.max_unacked_bytes (offline messages are delivered at once)",
        ));
    }
    if c.c2s.stream_management && c.archive.max_page_bytes > c.c2s.max_unacked_bytes {
        errors.push(err(
            "archive.max_page_bytes",
            "must not exceed c2s.max_unacked_bytes (a page is sent at once)",
        ));
    }
    if c.muc.default_max_users > c.muc.max_occupants {
        errors.push(err(
            "muc.default_max_users",
            "must not exceed muc.max_occupants",
        ));
    }
    if c.muc.default_history > c.muc.max_history {
        errors.push(err(
            "muc.default_history",
            "must not exceed muc.max_history",
        ));
    }
    if crate::storage::archive::Mode::parse(&c.archive.default_mode).is_none() {
        errors.push(err(
            "archive.default_mode",
            "must be \"always\", \"roster\" or \"never\"",
        ));
    }
    for (domain, to) in &c.s2s.static_routes {
        if !crate::s2s::resolve::valid_route(to) {
            errors.push(err(
                &format!("s2s.static_routes.{domain}"),
                "must be host:port",
            ));
        }
    }
    for s in &c.s2s.dns_servers {
        if s.parse::<std::net::SocketAddr>().is_err() && s.parse::<std::net::IpAddr>().is_err() {
            errors.push(err(
                "s2s.dns_servers",
                format!("{s:?} is not an IP address"),
            ));
        }
    }
    if !(2..=1000).contains(&c.c2s.max_depth) {
        errors.push(err("c2s.max_depth", "must be between 2 and 1000"));
    }
    for (key, v) in [
        ("c2s.auth_timeout_secs", c.c2s.auth_timeout_secs),
        ("http.request_timeout_secs", c.http.request_timeout_secs),
        ("http.bosh_max_wait_secs", c.http.bosh_max_wait_secs),
        ("http.bosh_inactivity_secs", c.http.bosh_inactivity_secs),
        ("http.bosh_max_hold", u64::from(c.http.bosh_max_hold)),
        ("upload.max_file_size", c.upload.max_file_size),
        ("upload.expire_after_days", c.upload.expire_after_days),
        ("muc.max_occupants", c.muc.max_occupants as u64),
        ("muc.default_max_users", c.muc.default_max_users as u64),
        ("muc.room_queue", c.muc.room_queue as u64),
        ("muc.room_queue_bytes", c.muc.room_queue_bytes as u64),
        ("muc.max_nick_length", c.muc.max_nick_length as u64),
        ("archive.max_page", c.archive.max_page as u64),
        ("archive.max_page_bytes", c.archive.max_page_bytes as u64),
        ("archive.purge_interval_secs", c.archive.purge_interval_secs),
        ("archive.write_queue", c.archive.write_queue as u64),
        ("archive.write_batch", c.archive.write_batch as u64),
        ("archive.inbox_page", c.archive.inbox_page as u64),
        (
            "archive.inbox_conversations",
            c.archive.inbox_conversations as u64,
        ),
        ("pep.max_items", u64::from(c.pep.max_items)),
        ("s2s.connect_timeout_secs", c.s2s.connect_timeout_secs),
        ("s2s.idle_timeout_secs", c.s2s.idle_timeout_secs),
        ("s2s.auth_timeout_secs", c.s2s.auth_timeout_secs),
        ("s2s.queue", c.s2s.queue as u64),
        ("s2s.queue_bytes", c.s2s.queue_bytes as u64),
        ("s2s.max_stanza_size", c.s2s.max_stanza_size as u64),
        (
            "s2s.max_incoming_per_domain",
            c.s2s.max_incoming_per_domain as u64,
        ),
        (
            "s2s.max_domains_per_stream",
            c.s2s.max_domains_per_stream as u64,
        ),
        ("pep.max_item_size", c.pep.max_item_size as u64),
        ("c2s.max_auth_attempts", u64::from(c.c2s.max_auth_attempts)),
        ("c2s.session_queue", c.c2s.session_queue as u64),
        ("c2s.idle_timeout_secs", c.c2s.idle_timeout_secs),
        ("c2s.write_timeout_secs", c.c2s.write_timeout_secs),
        ("c2s.max_unacked", c.c2s.max_unacked as u64),
        ("c2s.ack_request_every", u64::from(c.c2s.ack_request_every)),
        ("c2s.ack_request_after_secs", c.c2s.ack_request_after_secs),
        ("limits.max_connections", c.limits.max_connections as u64),
        (
            "limits.max_connections_per_ip",
            c.limits.max_connections_per_ip as u64,
        ),
        (
            "limits.connections_per_ip_per_minute",
            u64::from(c.limits.connections_per_ip_per_minute),
        ),
        (
            "limits.auth_failures_per_ip_per_minute",
            u64::from(c.limits.auth_failures_per_ip_per_minute),
        ),
    ] {
        if v == 0 {
            errors.push(err(key, "must be at least 1"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_embedded_default() {
        let c = parse_str("").unwrap();
        assert_eq!(c.server.hosts, vec!["localhost"]);
        assert_eq!(c.storage.backend, Backend::Sqlite);
        assert!(c.c2s.require_tls);
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../config/xmppd.toml");
        parse_str(text).unwrap();
    }

    #[test]
    fn every_error_is_reported_with_its_key_path() {
        let errs = parse_str(
            "[server]\nhosts = []\nbogus = 1\n[c2s]\nmax_stanza_size = 'big'\nlisten = ['nope']\n\
             resource_conflict = 'maybe'\n[storage]\nbackend = 'postgres'\n[nosuch]\n\
             [s2s]\nstatic_routes = { 'b.test' = 'no-port' }\ndns_servers = ['x']\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "server.bogus",
            "c2s.max_stanza_size",
            "c2s.resource_conflict",
            "nosuch",
            "s2s.static_routes.b.test",
            "s2s.dns_servers",
        ] {
            assert!(keys.contains(&k), "missing {k} in {errs:?}");
        }
        let errs = parse_str(
            "[server]\nhosts = []\n[c2s]\nlisten = ['nope']\n[storage]\nbackend = 'postgres'\n\
             sqlite_cache_kib = 8\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "server.hosts",
            "c2s.listen[0]",
            "storage.url",
            "storage.sqlite_cache_kib",
        ] {
            assert!(keys.contains(&k), "missing {k} in {errs:?}");
        }
    }
}
