//! Reverse proxies (`http.trusted_proxies`): behind one, every HTTP connection comes from the
//! proxy's address, so the per-IP limits would count all users as one. Only a configured
//! proxy's `X-Forwarded-For` and `X-Forwarded-Proto` are believed; anyone else could forge
//! them to dodge the limits.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ip` or `ip/prefix`.
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                Some(p.trim().parse().ok()?),
            ),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The configured proxies.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<Network>);

impl Proxies {
    /// From the configuration (entries that do not parse were refused by `xmppd check`).
    pub fn new(list: &[String]) -> Self {
        Proxies(list.iter().filter_map(|s| Network::parse(s)).collect())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: from a trusted proxy, the right-most address of
    /// `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it
    /// saw; what is left of the first untrusted one may be forged). Otherwise the peer.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else { break };
            for hop in value.rsplit(',') {
                let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                    return client;
                };
                client = ip;
                if !self.trusts(ip) {
                    return client;
                }
            }
        }
        client
    }

    /// What a trusted proxy says of the client's scheme: `Some(true)` for https.
    pub fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> Option<bool> {
        if !self.trusts(peer) {
            return None;
        }
        let proto = headers.get("x-forwarded-proto")?.to_str().ok()?;
        let first = proto.split(',').next()?.trim();
        Some(first.eq_ignore_ascii_case("https") || first.eq_ignore_ascii_case("wss"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn networks() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            Network::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Network::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_from_proxies_only() {
        let p = Proxies::new(&["127.0.0.1".into(), "10.0.0.0/8".into()]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();
        let client: IpAddr = "198.51.100.9".parse().unwrap();
        // A stranger's header is ignored.
        assert_eq!(p.client(stranger, &headers(&["198.51.100.9"])), stranger);
        // The right-most untrusted hop; a forged left part is skipped.
        assert_eq!(
            p.client(proxy, &headers(&["1.1.1.1, 198.51.100.9"])),
            client
        );
        assert_eq!(
            p.client(proxy, &headers(&["198.51.100.9, 10.0.0.5"])),
            client
        );
        assert_eq!(
            p.client(proxy, &headers(&["198.51.100.9", "10.0.0.5"])),
            client
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(p.client(proxy, &headers(&[])), proxy);
        assert_eq!(p.client(proxy, &headers(&["garbage"])), proxy);
    }
}
