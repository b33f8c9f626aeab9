//! The TCP transport of a c2s session: plain TCP upgraded by STARTTLS (RFC 6120 §5), or direct
//! TLS (XEP-0368), with stream compression (XEP-0138). It parses bytes into stream events for
//! the core and writes the core's output through zlib and TLS, with a bound on how long a write
//! may stall on a client that stopped reading (the slow-consumer rule).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span};

use super::driver::{Wire, drive, feed_stream, queue_full};
use super::{C2s, Flow, Framing, Link, Shared, Wires};
use crate::stream::compress::Zlib;
use crate::stream::{Condition, StreamError, random_id, write_top_level};
use crate::transport::{Conn, ConnGuard};
use crate::xml::StreamParser;

/// Read buffer size per connection.
const READ_BUF: usize = 4 * 1024;
/// Time a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// One TCP connection under a session.
pub struct Tcp {
    shared: Arc<Shared>,
    conn: Conn,
    parser: StreamParser,
    /// The read buffer (freed while the session is quiet).
    buf: Vec<u8>,
    /// Stream compression (XEP-0138), once started.
    zlib: Option<Box<Zlib>>,
    /// Bytes written before compression started, not yet flushed (`<compressed/>`).
    raw_out: Vec<u8>,
}

impl Tcp {
    /// Feeds bytes to the parser and the core.
    async fn on_bytes(&mut self, s: &mut C2s, mut data: &[u8]) -> Flow {
        match feed_stream(&mut self.parser, s, &mut data).await {
            Flow::Compressed => {
                // `<compressed/>` goes out as it is; everything after is zlib, and the stream
                // restarts (XEP-0138 §5). What was read after it is inflated.
                self.raw_out = s.out.take();
                self.zlib = Some(Box::default());
                s.compression_started();
                self.parser = StreamParser::new(s.parser_limits());
                if data.is_empty() {
                    return Flow::Continue;
                }
                let rest = data.to_vec();
                Box::pin(self.on_input(s, &rest)).await
            }
            // After <proceed/>, anything the client sent in plaintext is dropped unread
            // (STARTTLS command injection).
            other => other,
        }
    }

    /// Bytes from the socket: inflated first when compression is on.
    async fn on_input(&mut self, s: &mut C2s, raw: &[u8]) -> Flow {
        let plain = match self.zlib.as_mut() {
            Some(z) => match z.inflate(raw, self.shared.config.c2s.max_stanza_size) {
                Ok(p) => Cow::Owned(p),
                Err(e) => return Flow::Close(e),
            },
            None => Cow::Borrowed(raw),
        };
        self.on_bytes(s, &plain).await
    }
}

impl Wire for Tcp {
    type Input = usize;

    async fn read(&mut self) -> Option<usize> {
        match self.conn.read_lazy(&mut self.buf, READ_BUF).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    async fn feed(&mut self, s: &mut C2s, n: usize) -> Flow {
        let data = std::mem::take(&mut self.buf);
        let flow = self.on_input(s, &data[..n]).await;
        if self.buf.is_empty() {
            self.buf = data;
        }
        flow
    }

    async fn flush(&mut self, s: &mut C2s, wires: &Wires) -> std::io::Result<()> {
        if s.out.is_empty() && self.raw_out.is_empty() {
            return Ok(());
        }
        // What goes on the wire: as is, or (XEP-0138) after what was final before compression
        // started, deflated with a sync flush.
        let mut wire = match self.zlib.as_mut() {
            None if self.raw_out.is_empty() => s.out.take(),
            None => {
                let mut w = std::mem::take(&mut self.raw_out);
                w.append(&mut s.out.take());
                w
            }
            Some(z) => {
                let mut w = std::mem::take(&mut self.raw_out);
                if !s.out.is_empty() {
                    let plain = s.out.take();
                    w.extend(z.deflate(&plain));
                    s.out.reuse(plain);
                }
                w
            }
        };
        let limit = Duration::from_secs(self.shared.config.c2s.write_timeout_secs);
        let mut pos = 0;
        let stalled = {
            let deadline = tokio::time::sleep(limit);
            tokio::pin!(deadline);
            loop {
                if pos == wire.len() {
                    break self.conn.flush().await.err();
                }
                tokio::select! {
                    r = self.conn.write(&wire[pos..]) => match r {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => pos += n,
                        Err(e) => return Err(e),
                    },
                    _ = &mut deadline => break Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut, "the client stopped reading")),
                    _ = queue_full(wires) => break Some(std::io::Error::other(
                        "the queue filled while the client was not reading")),
                }
            }
        };
        if let Some(e) = stalled {
            // Best effort: the rest and the stream error, in case the client wakes up.
            let mut rest = wire.split_off(pos);
            let mut end = Vec::new();
            let err = StreamError::with_text(Condition::ResourceConstraint, e.to_string());
            write_top_level(&err.to_element(), &mut end);
            end.extend_from_slice(b"</stream:stream>");
            match self.zlib.as_mut() {
                Some(z) => rest.extend(z.deflate(&end)),
                None => rest.extend(end),
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.write_all(&rest)).await;
            return Err(e);
        }
        if self.zlib.is_none() {
            s.out.reuse(wire);
        }
        Ok(())
    }

    async fn start_tls(&mut self, s: &mut C2s) -> bool {
        let Some(tls) = self.shared.tls.clone() else {
            return false;
        };
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Closed) else {
            return false;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.starttls.accept(tcp)).await {
            Ok(Ok(t)) => {
                self.conn = Conn::Tls(Box::new(t));
                self.parser = StreamParser::new(s.parser_limits());
                s.restart(Some(self.conn.channel_binding()));
                true
            }
            Ok(Err(e)) => {
                debug!("STARTTLS handshake failed: {e}");
                false
            }
            Err(_) => false,
        }
    }

    fn release_idle(&mut self) {
        self.buf = Vec::new();
        self.parser.release_temporaries();
        if self.raw_out.is_empty() {
            self.raw_out = Vec::new();
        }
    }

    fn holds_buffer(&self) -> bool {
        !self.buf.is_empty()
    }

    async fn shutdown(&mut self, _: &mut C2s) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.shutdown()).await;
        self.conn = Conn::Closed;
        if let Some(z) = &self.zlib {
            debug!(
                plain = z.plain_bytes,
                wire = z.wire_bytes,
                "compression saved {} bytes",
                z.plain_bytes.saturating_sub(z.wire_bytes)
            );
        }
    }
}

/// Runs one client connection to its end. `direct_tls`: the TLS handshake comes first (XEP-0368).
pub async fn run(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    shutdown: watch::Receiver<bool>,
    _guard: ConnGuard,
) {
    let span = info_span!("c2s", id = %random_id(), %peer);
    async move {
        let _ = tcp.set_nodelay(true);
        // TCP keepalive finds peers that vanished without a FIN (a phone that lost its network).
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(15));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let conn = if direct_tls {
            let Some(tls) = shared.tls.clone() else {
                return;
            };
            // Boxed, like the other one-off steps: the task keeps only the loop's state.
            let accept = Box::pin(tokio::time::timeout(
                TLS_HANDSHAKE_TIMEOUT,
                tls.direct.accept(tcp),
            ));
            match accept.await {
                Ok(Ok(t)) => Conn::Tls(Box::new(t)),
                Ok(Err(e)) => return debug!("TLS handshake failed: {e}"),
                Err(_) => return debug!("TLS handshake timed out"),
            }
        } else {
            Conn::Plain(tcp)
        };
        let c = &shared.config.c2s;
        let link = Link {
            peer,
            secure: conn.is_tls(),
            channel_binding: conn.channel_binding(),
            starttls: !conn.is_tls() && shared.tls.is_some(),
            compression: c.compression && (!conn.is_tls() || c.compression_over_tls),
            transport: if direct_tls { "c2s_tls" } else { "c2s" },
        };
        let s = C2s::new(shared.clone(), link, Framing::Stream);
        let wire = Tcp {
            parser: StreamParser::new(s.parser_limits()),
            shared,
            conn,
            buf: Vec::new(),
            zlib: None,
            raw_out: Vec::new(),
        };
        drive(s, wire, shutdown).await;
    }
    .instrument(span)
    .await
}
