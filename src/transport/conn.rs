//! One client connection: plain TCP or TLS over TCP, upgraded in place by STARTTLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client's byte stream.
pub enum Conn {
    /// Plain TCP (before STARTTLS, or when TLS is not required).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// Transitional state while the TLS handshake owns the socket.
    Closed,
}

impl Conn {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// Reads into `buf`, allocating it (`cap` bytes) only once there is something to read: a
    /// connection whose caller freed the buffer while it was quiet holds none while it waits.
    /// Cancel-safe, like `read`.
    pub async fn read_lazy(&mut self, buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
        if buf.is_empty() {
            match self {
                Conn::Plain(s) => s.readable().await?,
                // Plaintext rustls already decrypted is read without waiting for the socket.
                Conn::Tls(t) if t.get_ref().1.wants_read() => t.get_ref().0.readable().await?,
                Conn::Tls(_) => {}
                Conn::Closed => return Err(io::Error::from(io::ErrorKind::NotConnected)),
            }
            buf.resize(cap, 0);
        }
        self.read(buf).await
    }

    /// `tls-exporter` data, when the connection has TLS 1.3.
    pub fn channel_binding(&self) -> Option<Vec<u8>> {
        match self {
            Conn::Tls(t) => super::tls::exporter(t.get_ref().1),
            _ => None,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Conn::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Conn::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Conn::Closed => Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected))),
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
