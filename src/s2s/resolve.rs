//! Where a remote domain's server is (RFC 6120 §3.2; XEP-0368): the static routes of the
//! configuration first; else DNS SRV `_xmpps-server._tcp` (direct TLS) and `_xmpp-server._tcp`
//! (STARTTLS), tried in priority order with weighted random order within a priority (RFC 2782),
//! direct TLS first at equal priority; else the domain's own A/AAAA records on port 5269.
//! A single SRV target of `.` means the domain offers no federation.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::RngExt;

use crate::config::S2sConfig;

/// The default port of server streams.
pub const DEFAULT_PORT: u16 = 5269;

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// TLS from the first byte (XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
}

/// Finds remote servers.
pub struct Resolver {
    statics: RwLock<HashMap<String, Target>>,
    dns: Option<TokioResolver>,
}

impl Resolver {
    /// The resolver of `config` (its static routes, its DNS servers or the system's).
    pub fn new(config: &S2sConfig) -> Self {
        let statics = config
            .static_routes
            .iter()
            .filter_map(|(d, to)| Some((d.to_ascii_lowercase(), parse_target(to)?)))
            .collect();
        let dns = match dns(config) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("no DNS resolver for federation ({e}): only static routes");
                None
            }
        };
        Resolver {
            statics: RwLock::new(statics),
            dns,
        }
    }

    /// Adds (or replaces) a static route: `domain`'s server is at `target` (`host:port`).
    pub fn set_static(&self, domain: &str, target: &str) -> bool {
        let Some(t) = parse_target(target) else {
            return false;
        };
        self.statics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), t);
        true
    }

    /// The places to try for `domain`, in order; empty when it has none.
    pub async fn targets(&self, domain: &str) -> Vec<Target> {
        let fixed = self
            .statics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
            .cloned();
        if let Some(t) = fixed {
            return vec![t];
        }
        let Some(dns) = &self.dns else {
            return Vec::new();
        };
        let mut records = Vec::new();
        for (service, direct_tls) in [("_xmpps-server._tcp", true), ("_xmpp-server._tcp", false)] {
            let Ok(found) = dns.srv_lookup(format!("{service}.{domain}.")).await else {
                continue;
            };
            for r in found.answers() {
                if let RData::SRV(srv) = &r.data {
                    let host = srv.target.to_utf8();
                    records.push((
                        srv.priority,
                        srv.weight,
                        Target {
                            host: host.trim_end_matches('.').to_string(),
                            port: srv.port,
                            direct_tls,
                        },
                    ));
                }
            }
        }
        if records.len() == 1 && records[0].2.host.is_empty() {
            // RFC 2782: "." as the only target: the service is decidedly not available.
            return Vec::new();
        }
        records.retain(|r| !r.2.host.is_empty());
        if records.is_empty() {
            return vec![Target {
                host: domain.to_string(),
                port: DEFAULT_PORT,
                direct_tls: false,
            }];
        }
        order(records)
    }

    /// The addresses of `host` (itself when it is an IP address).
    pub async fn addresses(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        let Some(dns) = &self.dns else {
            return Vec::new();
        };
        match dns.lookup_ip(format!("{host}.")).await {
            Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// RFC 2782 order: by priority; within one, direct TLS first, then by weighted random draws
/// (a weight-0 record is drawn last, each non-zero one with chance weight/total).
fn order(mut records: Vec<(u16, u16, Target)>) -> Vec<Target> {
    records.sort_by_key(|r| (r.0, !r.2.direct_tls));
    let mut out = Vec::with_capacity(records.len());
    let mut rng = rand::rng();
    while !records.is_empty() {
        let (p, d) = (records[0].0, records[0].2.direct_tls);
        let end = records
            .iter()
            .position(|r| r.0 != p || r.2.direct_tls != d)
            .unwrap_or(records.len());
        let mut group: Vec<_> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut n = rng.random_range(1..=total);
                group
                    .iter()
                    .position(|r| {
                        let w = u32::from(r.1);
                        if n <= w {
                            return true;
                        }
                        n -= w;
                        false
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick).2);
        }
    }
    out
}

/// `host:port` or `[v6]:port`.
fn parse_target(s: &str) -> Option<Target> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(Target {
        host: host.to_string(),
        port: port.parse().ok()?,
        direct_tls: false,
    })
}

/// Whether `s` is a valid static route (`host:port`).
pub fn valid_route(s: &str) -> bool {
    parse_target(s).is_some_and(|t| !t.host.is_empty())
}

fn dns(config: &S2sConfig) -> Result<TokioResolver, String> {
    if config.dns_servers.is_empty() {
        return TokioResolver::builder_tokio()
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string());
    }
    let mut servers = Vec::new();
    for s in &config.dns_servers {
        let (ip, port) = match s.parse::<SocketAddr>() {
            Ok(a) => (a.ip(), a.port()),
            Err(_) => (
                s.parse::<IpAddr>()
                    .map_err(|_| format!("not an address: {s}"))?,
                53,
            ),
        };
        let mut ns = NameServerConfig::udp_and_tcp(ip);
        for c in &mut ns.connections {
            c.port = port;
        }
        servers.push(ns);
    }
    TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], servers),
        TokioRuntimeProvider::default(),
    )
    .build()
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, direct_tls: bool) -> Target {
        Target {
            host: host.into(),
            port: 1,
            direct_tls,
        }
    }

    #[test]
    fn priority_first_then_direct_tls() {
        let got = order(vec![
            (20, 0, t("c", false)),
            (10, 5, t("b", false)),
            (10, 5, t("a", true)),
        ]);
        assert_eq!(got, vec![t("a", true), t("b", false), t("c", false)]);
    }

    #[test]
    fn weights_pick_heavier_more_often() {
        let mut first_heavy = 0;
        for _ in 0..1000 {
            let got = order(vec![(1, 90, t("heavy", false)), (1, 10, t("light", false))]);
            assert_eq!(got.len(), 2);
            if got[0].host == "heavy" {
                first_heavy += 1;
            }
        }
        assert!((800..=980).contains(&first_heavy), "{first_heavy}");
    }

    #[test]
    fn static_targets_parse() {
        assert_eq!(parse_target("127.0.0.2:5269"), Some(t2("127.0.0.2", 5269)));
        assert_eq!(parse_target("[::1]:5270"), Some(t2("::1", 5270)));
        assert_eq!(parse_target("nohost"), None);
    }

    fn t2(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
            direct_tls: false,
        }
    }
}
