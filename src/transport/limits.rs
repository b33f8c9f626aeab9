//! Connection and authentication limits: total connections, connections per IP, a per-IP rate of
//! new connections, and a per-IP budget of failed logins. All counts are bounded: the per-IP
//! table is pruned of idle entries when it grows.
//!
//! "Per IP" means per IPv4 address, and per /64 network for IPv6: one IPv6 host usually holds a
//! whole /64 and can pick a new address in it for every connection (RFC 8981), so counting
//! single IPv6 addresses would limit nothing. An IPv4-mapped IPv6 address counts as its IPv4.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::LimitsConfig;

/// IP entries kept before idle ones are first pruned; after a prune the next one waits until
/// the table has doubled, so a table full of active addresses is not scanned on every new one.
const PRUNE_AT: usize = 4096;

/// The key an address is counted under: the IPv4 address, or the IPv6 /64.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections`
    Total,
    /// `limits.max_connections_per_ip`
    PerIp,
    /// `limits.connections_per_ip_per_minute`
    Rate,
}

/// A token bucket holding at most `cap` tokens, refilled at `cap` per `period` seconds.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    cap: f64,
    period: f64,
}

impl Bucket {
    fn full(cap: u32, period_secs: u32) -> Self {
        Bucket {
            tokens: f64::from(cap),
            at: Instant::now(),
            cap: f64::from(cap),
            period: f64::from(period_secs.max(1)),
        }
    }
    fn refill(&mut self) {
        let now = Instant::now();
        let add = now.duration_since(self.at).as_secs_f64() * self.cap / self.period;
        self.tokens = (self.tokens + add).min(self.cap);
        self.at = now;
    }
    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
    fn available(&mut self) -> bool {
        self.refill();
        self.tokens >= 1.0
    }
    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.cap
    }
}

#[derive(Debug)]
struct IpState {
    open: usize,
    connects: Bucket,
    auth_failures: Bucket,
    registrations: Bucket,
}

/// Shared limits for all listeners.
pub struct ConnLimits {
    cfg: LimitsConfig,
    total: AtomicUsize,
    ips: Mutex<IpTable>,
}

/// The per-address states, and the size at which idle ones are next pruned.
struct IpTable {
    map: HashMap<IpAddr, IpState>,
    prune_at: usize,
}

/// Held for the life of a connection; releases its slots when dropped.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    /// Counted toward `max_connections`.
    total: bool,
    /// Counted toward this address's `max_connections_per_ip`.
    ip: Option<IpAddr>,
}

impl ConnLimits {
    /// New limits.
    pub fn new(cfg: LimitsConfig) -> Arc<Self> {
        Arc::new(ConnLimits {
            cfg,
            total: AtomicUsize::new(0),
            ips: Mutex::new(IpTable {
                map: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        })
    }

    /// Open client connections now.
    pub fn connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn with_ip<T>(&self, ip: IpAddr, f: impl FnOnce(&mut IpState) -> T) -> T {
        let ip = ip_key(ip);
        let mut table = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        let IpTable { map, prune_at } = &mut *table;
        if map.len() >= *prune_at && !map.contains_key(&ip) {
            // Forget addresses with nothing open and every budget refilled.
            map.retain(|_, s| {
                s.open > 0
                    || !s.connects.is_full()
                    || !s.auth_failures.is_full()
                    || !s.registrations.is_full()
            });
            *prune_at = (map.len() * 2).max(PRUNE_AT);
        }
        let cfg = &self.cfg;
        let st = map.entry(ip).or_insert_with(|| IpState {
            open: 0,
            connects: Bucket::full(cfg.connections_per_ip_per_minute, 60),
            auth_failures: Bucket::full(cfg.auth_failures_per_ip_per_minute, 60),
            registrations: Bucket::full(cfg.registrations_per_ip_per_hour, 3600),
        });
        f(st)
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let total = self.admit_proxy()?;
        let per_ip = self.admit_forwarded(ip)?;
        Ok(total.join(per_ip))
    }

    /// Admits a connection from a trusted reverse proxy: it counts toward the total only, as
    /// the per-IP limits apply to the clients behind it ([`Self::admit_forwarded`]).
    pub fn admit_proxy(self: &Arc<Self>) -> Result<ConnGuard, Refusal> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.cfg.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        Ok(ConnGuard {
            limits: self.clone(),
            total: true,
            ip: None,
        })
    }

    /// Admits a client that a trusted proxy forwards: its address's count and rate only (the
    /// proxy's connection counts toward the total).
    pub fn admit_forwarded(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let per_ip = self.cfg.max_connections_per_ip;
        self.with_ip(ip, |st| {
            if st.open >= per_ip {
                return Err(Refusal::PerIp);
            }
            if !st.connects.take() {
                return Err(Refusal::Rate);
            }
            st.open += 1;
            Ok(())
        })?;
        Ok(ConnGuard {
            limits: self.clone(),
            total: false,
            ip: Some(ip),
        })
    }

    /// Whether `ip` may try to authenticate now.
    pub fn may_authenticate(&self, ip: IpAddr) -> bool {
        self.with_ip(ip, |st| st.auth_failures.available())
    }

    /// Records a failed authentication from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        self.with_ip(ip, |st| {
            st.auth_failures.take();
        });
    }

    /// Takes one in-band registration (XEP-0077) from `ip`'s hourly budget; false when spent.
    pub fn take_registration(&self, ip: IpAddr) -> bool {
        self.with_ip(ip, |st| st.registrations.take())
    }
}

impl ConnGuard {
    /// One guard holding both slots.
    pub fn join(mut self, mut other: ConnGuard) -> ConnGuard {
        self.total |= std::mem::take(&mut other.total);
        if self.ip.is_none() {
            self.ip = other.ip.take();
        }
        self
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.total {
            self.limits.total.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(ip) = self.ip {
            self.limits
                .with_ip(ip, |st| st.open = st.open.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(total: usize, per_ip: usize, rate: u32, auth: u32) -> LimitsConfig {
        LimitsConfig {
            max_connections: total,
            max_connections_per_ip: per_ip,
            connections_per_ip_per_minute: rate,
            auth_failures_per_ip_per_minute: auth,
            registrations_per_ip_per_hour: 2,
        }
    }

    #[test]
    fn per_ip_and_total() {
        let l = ConnLimits::new(cfg(3, 2, 100, 10));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let g1 = l.admit(a).unwrap();
        let _g2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some(Refusal::PerIp));
        let _g3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).err(), Some(Refusal::Total));
        drop(g1);
        assert!(l.admit(a).is_ok());
    }

    #[test]
    fn proxies_count_toward_the_total_and_their_clients_per_address() {
        let l = ConnLimits::new(cfg(2, 1, 100, 10));
        let c: IpAddr = "198.51.100.1".parse().unwrap();
        let p1 = l.admit_proxy().unwrap();
        let _p2 = l.admit_proxy().unwrap();
        assert_eq!(l.admit_proxy().err(), Some(Refusal::Total));
        let f = l.admit_forwarded(c).unwrap();
        assert_eq!(l.admit_forwarded(c).err(), Some(Refusal::PerIp));
        let both = p1.join(f);
        assert_eq!(l.connections(), 2);
        drop(both);
        assert_eq!(l.connections(), 1);
        assert!(l.admit_forwarded(c).is_ok());
    }

    #[test]
    fn connection_rate_and_auth_budget() {
        let l = ConnLimits::new(cfg(100, 100, 3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            drop(l.admit(a).unwrap());
        }
        assert_eq!(l.admit(a).err(), Some(Refusal::Rate));
        assert!(l.may_authenticate(a));
        l.auth_failed(a);
        l.auth_failed(a);
        assert!(!l.may_authenticate(a));
        assert!(l.take_registration(a) && l.take_registration(a));
        assert!(!l.take_registration(a));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = ConnLimits::new(cfg(100, 2, 100, 10));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _g1 = l.admit(a).unwrap();
        let _g2 = l.admit(b).unwrap();
        // A third address in the same /64 is the same host.
        let c: IpAddr = "2001:db8:1:2::99".parse().unwrap();
        assert_eq!(l.admit(c).err(), Some(Refusal::PerIp));
        assert!(l.admit(other).is_ok());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _g3 = l.admit(v4).unwrap();
        let _g4 = l.admit(mapped).unwrap();
        assert_eq!(l.admit(v4).err(), Some(Refusal::PerIp));
    }

    #[test]
    fn pruning_is_amortised() {
        // A table full of addresses that cannot be pruned (each has a connection open) is
        // scanned again only once it has doubled.
        let l = ConnLimits::new(cfg(100_000, 10, 100, 10));
        let mut guards = Vec::new();
        for i in 0..(PRUNE_AT as u32 + 10) {
            guards.push(l.admit(IpAddr::from(i.to_be_bytes())).unwrap());
        }
        let t = l.ips.lock().unwrap();
        assert_eq!(t.prune_at, 2 * PRUNE_AT);
        assert_eq!(t.map.len(), PRUNE_AT + 10);
        drop(t);
        drop(guards);
    }
}
