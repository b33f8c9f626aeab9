//! Connection and authentication limits: total connections, connections per IP, a per-IP rate of
//! new connections, and a per-IP budget of failed logins. All counts are bounded: the per-IP
//! table is pruned of idle entries when it grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::LimitsConfig;

/// Most IP entries kept before idle ones are pruned.
const PRUNE_AT: usize = 4096;

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

/// A token bucket refilled continuously at `per_minute`, holding at most `per_minute`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(cap: u32) -> Self {
        Bucket {
            tokens: f64::from(cap),
            at: Instant::now(),
        }
    }
    fn refill(&mut self, cap: u32) {
        let now = Instant::now();
        let add = now.duration_since(self.at).as_secs_f64() * f64::from(cap) / 60.0;
        self.tokens = (self.tokens + add).min(f64::from(cap));
        self.at = now;
    }
    fn take(&mut self, cap: u32) -> bool {
        self.refill(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
    fn available(&mut self, cap: u32) -> bool {
        self.refill(cap);
        self.tokens >= 1.0
    }
    fn is_full(&mut self, cap: u32) -> bool {
        self.refill(cap);
        self.tokens >= f64::from(cap)
    }
}

#[derive(Debug)]
struct IpState {
    open: usize,
    connects: Bucket,
    auth_failures: Bucket,
}

/// Shared limits for all listeners.
pub struct ConnLimits {
    cfg: LimitsConfig,
    total: AtomicUsize,
    ips: Mutex<HashMap<IpAddr, IpState>>,
}

/// Held for the life of a connection; releases its slots when dropped.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    /// New limits.
    pub fn new(cfg: LimitsConfig) -> Arc<Self> {
        Arc::new(ConnLimits {
            cfg,
            total: AtomicUsize::new(0),
            ips: Mutex::new(HashMap::new()),
        })
    }

    /// Open connections now.
    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn with_ip<T>(&self, ip: IpAddr, f: impl FnOnce(&mut IpState) -> T) -> T {
        let mut ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if ips.len() >= PRUNE_AT && !ips.contains_key(&ip) {
            let (c, a) = (
                self.cfg.connections_per_ip_per_minute,
                self.cfg.auth_failures_per_ip_per_minute,
            );
            ips.retain(|_, s| s.open > 0 || !s.connects.is_full(c) || !s.auth_failures.is_full(a));
        }
        let cfg = &self.cfg;
        let st = ips.entry(ip).or_insert_with(|| IpState {
            open: 0,
            connects: Bucket::full(cfg.connections_per_ip_per_minute),
            auth_failures: Bucket::full(cfg.auth_failures_per_ip_per_minute),
        });
        f(st)
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.cfg.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        let (per_ip, rate) = (
            self.cfg.max_connections_per_ip,
            self.cfg.connections_per_ip_per_minute,
        );
        let r = self.with_ip(ip, |st| {
            if st.open >= per_ip {
                return Err(Refusal::PerIp);
            }
            if !st.connects.take(rate) {
                return Err(Refusal::Rate);
            }
            st.open += 1;
            Ok(())
        });
        match r {
            Ok(()) => Ok(ConnGuard {
                limits: self.clone(),
                ip,
            }),
            Err(e) => {
                self.total.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Whether `ip` may try to authenticate now.
    pub fn may_authenticate(&self, ip: IpAddr) -> bool {
        let cap = self.cfg.auth_failures_per_ip_per_minute;
        self.with_ip(ip, |st| st.auth_failures.available(cap))
    }

    /// Records a failed authentication from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        let cap = self.cfg.auth_failures_per_ip_per_minute;
        self.with_ip(ip, |st| {
            st.auth_failures.take(cap);
        });
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        self.limits
            .with_ip(self.ip, |st| st.open = st.open.saturating_sub(1));
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
    }
}
