//! A DNS server on loopback for the federation tests: answers SRV and A queries from a fixed
//! table (built with hickory's own message types), NXDOMAIN for anything else.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};

/// Records by name (with the trailing dot).
#[derive(Default, Clone)]
pub struct Zone(HashMap<String, Vec<RData>>);

impl Zone {
    /// `_service._tcp.domain.` → (priority, weight, port, target).
    pub fn srv(mut self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        let target = Name::from_ascii(target).unwrap();
        self.0
            .entry(name.to_string())
            .or_default()
            .push(RData::SRV(SRV::new(priority, weight, port, target)));
        self
    }

    /// `host.` → an IPv4 address.
    pub fn a(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.0
            .entry(name.to_string())
            .or_default()
            .push(RData::A(A(ip)));
        self
    }
}

/// Serves `zone` on a UDP port of 127.0.0.1 until the test ends; returns its address.
pub async fn serve(zone: Zone) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.metadata.authoritative = true;
            let mut found = false;
            for query in &q.queries {
                r.add_query(query.clone());
                let name = query.name().to_ascii().to_ascii_lowercase();
                for data in zone.0.get(&name).into_iter().flatten() {
                    found = true;
                    if data.record_type() == query.query_type() {
                        r.add_answer(Record::from_rdata(query.name().clone(), 60, data.clone()));
                    }
                }
            }
            if !found {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = sock.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}
