//! The client-to-server session core (RFC 6120 §4–§7), the same for every transport.
//!
//! [`C2s`] owns no socket and names no runtime: a transport's driver ([`driver::Wire`]: TCP in
//! `tcp.rs`, WebSocket in `crate::http::websocket`, BOSH in `crate::http::bosh`, in-memory in
//! `memory.rs`) turns what it reads into events (a stream header, an element, the end of the
//! stream) and writes the [`Output`] that handling them leaves. The transport describes itself
//! once ([`Link`]: secure or not, channel binding, whether it can offer STARTTLS or compression)
//! and performs the steps the core asks for ([`Flow`]: start TLS, start compression, restart
//! the stream, close). Negotiation (`negotiate.rs`), SASL, binding, stream management (`sm.rs`),
//! CSI (`csi.rs`) and in-band registration (`register.rs`) live here; the rules of a client's
//! stanzas are the router's (`router::origin`); the loop that waits on the transport, the inbox
//! and the timers, and a detached session's wait for its resumption, are `driver.rs`.
//!
//! What the core needs from the server (credentials, account creation, routing, the
//! resumption table, password hashing off the I/O threads) it awaits through one interface,
//! [`Shared`] (`shared.rs`): those are the server's services, not the transport's I/O.

mod csi;
pub mod driver;
mod limits;
pub mod memory;
mod negotiate;
mod output;
mod register;
mod shared;
mod sm;
mod stanzas;
pub mod tcp;
mod wake;
pub use driver::Wires;
pub use output::{Framing, NS_FRAMING, Output, Part};
pub use shared::Shared;
pub use sm::Takeover;
pub use tcp::run;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::session::SessionHandle;
use crate::stream::{StreamError, random_id};
use crate::xml::{Element, StreamEvent};

/// What the transport can do and is, as the core needs to know it.
#[derive(Debug, Clone)]
pub struct Link {
    /// The client's address (per-IP limits).
    pub peer: SocketAddr,
    /// Encrypted (TLS), or a path no one else can read (a loopback HTTP connection).
    pub secure: bool,
    /// `tls-exporter` channel-binding data (RFC 9266), with TLS 1.3; dropped once used.
    pub channel_binding: Option<Vec<u8>>,
    /// STARTTLS can be offered (plain TCP with a certificate).
    pub starttls: bool,
    /// Stream compression can be offered (XEP-0138: a byte stream).
    pub compression: bool,
    /// The transport's name in logs.
    pub transport: &'static str,
}

impl Link {
    /// A web transport's: no STARTTLS, no compression, no channel binding (the TLS, if any,
    /// is the HTTP connection's or a proxy's).
    pub fn web(peer: SocketAddr, secure: bool, transport: &'static str) -> Link {
        Link {
            peer,
            secure,
            channel_binding: None,
            starttls: false,
            compression: false,
            transport,
        }
    }
}

/// What handling an event asks the driver to do next.
#[derive(Debug)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Send `<proceed/>` was queued: flush, then upgrade to TLS, dropping any bytes read after.
    StartTls,
    /// SASL succeeded: parse what follows as a new stream (RFC 6120 §6.4.6).
    Restart,
    /// `<compressed/>` was queued: what follows (in both directions) is zlib (XEP-0138).
    Compressed,
    /// Send this stream error and close.
    Close(StreamError),
    /// The client closed its stream: close ours.
    End,
}

/// Where the session is in negotiation.
#[derive(Debug)]
enum Phase {
    /// Not authenticated.
    Unauthenticated,
    /// Authenticated as this bare JID, not bound.
    Authenticated(jid::BareJid),
    /// Bound.
    Bound(Bound),
}

#[derive(Debug)]
struct Bound {
    handle: SessionHandle,
}

/// One client session's state, whatever carries it.
pub struct C2s {
    shared: Arc<Shared>,
    link: Link,
    /// What waits to be written.
    out: Output,
    /// Whether our stream header for the current stream was written.
    header_sent: bool,
    /// The served domain the client addressed.
    host: String,
    phase: Phase,
    sasl: negotiate::SaslState,
    auth_failures: u32,
    /// The inbox made at bind, until the loop takes it.
    inbox: Option<crate::session::queue::Inbox>,
    /// Client State Indication (XEP-0352).
    csi: csi::Csi,
    /// Stream management (XEP-0198), once enabled.
    sm: Option<crate::stream::sm::StreamMgmt>,
    /// Resumption requests, made at `<enable resume/>`, until the loop takes them.
    resume_rx: Option<crate::session::resume::Requests<Takeover>>,
    /// Whether stream compression was started (XEP-0138: once per stream).
    compressed: bool,
    /// Stanzas written that the transport could not hand over, re-routed at close.
    undelivered: Vec<Element>,
}

impl C2s {
    /// A new session on a transport described by `link`.
    pub fn new(shared: Arc<Shared>, link: Link, framing: Framing) -> Self {
        C2s {
            shared,
            link,
            out: Output::new(framing),
            header_sent: false,
            host: String::new(),
            phase: Phase::Unauthenticated,
            sasl: negotiate::SaslState::None,
            auth_failures: 0,
            inbox: None,
            csi: csi::Csi::default(),
            sm: None,
            resume_rx: None,
            compressed: false,
            undelivered: Vec::new(),
        }
    }

    /// What waits to be written, for the driver to take.
    pub fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// The parser limits for the stream now ([`limits`]).
    pub fn parser_limits(&self) -> crate::xml::Limits {
        Self::limits(
            &self.shared.config,
            !matches!(self.phase, Phase::Unauthenticated),
        )
    }

    /// The stream restarts on the same transport (after STARTTLS, SASL or compression): our
    /// header is due again. `secured`: TLS is now up, with this channel-binding data.
    pub fn restart(&mut self, secured: Option<Option<Vec<u8>>>) {
        self.header_sent = false;
        if let Some(binding) = secured {
            self.link.secure = true;
            self.link.starttls = false;
            self.link.channel_binding = binding;
        }
    }

    /// Stream compression started (the driver inflates and deflates from now on).
    pub fn compression_started(&mut self) {
        self.compressed = true;
        self.header_sent = false;
    }

    /// Whether the session is bound (idle pings replace the negotiation deadline).
    pub fn is_bound(&self) -> bool {
        matches!(self.phase, Phase::Bound(_))
    }

    /// Handles one event of the stream.
    pub async fn on_event(&mut self, ev: StreamEvent) -> Flow {
        match ev {
            StreamEvent::Header(h) => self.on_header(&h),
            StreamEvent::Element(el) => self.on_element(el).await,
            StreamEvent::End => Flow::End,
        }
    }

    /// Pings an idle bound client (XEP-0199), or asks for an ack with stream management; its
    /// answer (or any other byte) proves it is alive.
    fn ping_client(&mut self) {
        let Phase::Bound(b) = &self.phase else { return };
        if let Some(sm) = self.sm.as_mut() {
            sm.requested();
            self.write(&crate::stream::sm::request());
            return;
        }
        let ping = Element::new("iq", crate::stream::NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("live-{}", random_id()))
            .with_attr("from", self.host.clone())
            .with_attr("to", b.handle.jid.to_string())
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        self.send(ping);
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if let Phase::Bound(_) = self.phase {
            return self.on_bound_element(el).await;
        }
        self.on_negotiation_element(el).await
    }
}
