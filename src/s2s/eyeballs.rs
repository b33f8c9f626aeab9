//! Happy Eyeballs (RFC 8305) for server connections: a target's addresses are tried in an order
//! that alternates address families (§4), and the next attempt starts when the one before has
//! not connected within a quarter second (§5, the "Connection Attempt Delay") or has failed.
//! Each attempt is bounded on its own; the first to connect wins and the others are dropped. An
//! address that does not answer (or a family without a route) so costs 250 ms, not a connect
//! timeout, before the next one is tried.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::connect::Failure;

/// How long an attempt runs alone before the next one starts (RFC 8305 §5 recommends 250 ms).
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The addresses in RFC 8305 §4 order: the families alternate, starting with the first's.
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let v6_first = first.is_ipv6();
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == v6_first);
    let mut out = Vec::with_capacity(a.len() + b.len());
    a.reverse();
    b.reverse();
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Connects to one of `addrs`, tried in their order with the attempts staggered, each given
/// `attempt` at most: the connection and its address, or why none could be made.
pub async fn connect(
    addrs: &[SocketAddr],
    attempt: Duration,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut pending = addrs.iter().copied();
    let mut running = JoinSet::new();
    let start = |running: &mut JoinSet<_>, addr: SocketAddr| {
        running.spawn(async move {
            let r = tokio::time::timeout(attempt, TcpStream::connect(addr)).await;
            (addr, r)
        });
    };
    let Some(first) = pending.next() else {
        return Err(Failure::Unreachable("no address".into()));
    };
    start(&mut running, first);
    let mut last = Failure::Unreachable("no address answered".into());
    loop {
        let more = pending.len() > 0;
        tokio::select! {
            done = running.join_next() => {
                let failed = match done {
                    None => return Err(last),
                    Some(Ok((addr, Ok(Ok(tcp))))) => return Ok((tcp, addr)),
                    Some(Ok((addr, Ok(Err(e))))) => Failure::Unreachable(format!("{addr}: {e}")),
                    Some(Ok((addr, Err(_)))) => Failure::Unreachable(format!("{addr}: no answer")),
                    Some(Err(e)) => Failure::Unreachable(e.to_string()),
                };
                last = failed;
                // §5: a failure starts the next attempt at once.
                if let Some(next) = pending.next() {
                    start(&mut running, next);
                }
            }
            _ = tokio::time::sleep(ATTEMPT_DELAY), if more => {
                if let Some(next) = pending.next() {
                    start(&mut running, next);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_from_the_first() {
        let a: Vec<SocketAddr> = ["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<String> = interleave(a).iter().map(|x| x.to_string()).collect();
        assert_eq!(
            order,
            ["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"]
        );
        let v4_first: Vec<SocketAddr> = ["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<String> = interleave(v4_first).iter().map(|x| x.to_string()).collect();
        assert_eq!(order, ["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"]);
        assert!(interleave(Vec::new()).is_empty());
    }
}
