//! Making a server stream (RFC 6120 §4–§6 as the initiating entity): resolution, TCP, STARTTLS
//! (required) or direct TLS, then SASL EXTERNAL when the peer offers it (our certificate
//! validates there), else Server Dialback (XEP-0220); and the dialback verification a
//! receiving server asks of a domain's authoritative server.

use std::time::Duration;

use base64::Engine;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::debug;

use super::stream::{Io, NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK_FEATURE, S2sStream, StreamEnd};
use super::{S2s, dialback, eyeballs};
use crate::stanza::ErrorCondition;
use crate::stream::{NS_STREAMS, NS_TLS, sasl, sm};
use crate::xml::{Element, StreamEvent};

/// Time one TCP connection attempt may take (attempts overlap: `eyeballs.rs`).
const CONNECT_ATTEMPT: Duration = Duration::from_secs(10);

/// Why no stream could be made.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The domain has no server (DNS).
    #[error("{0} does not resolve")]
    NotFound(String),
    /// It resolved, but nothing answered or the stream broke.
    #[error("{0}")]
    Unreachable(String),
    /// It answered and refused us, or we refused it.
    #[error("{0}")]
    Refused(String),
}

impl Failure {
    /// The stanza error for what waited for this stream.
    pub fn condition(&self) -> ErrorCondition {
        match self {
            Failure::NotFound(_) | Failure::Refused(_) => ErrorCondition::RemoteServerNotFound,
            Failure::Unreachable(_) => ErrorCondition::RemoteServerTimeout,
        }
    }
}

impl From<StreamEnd> for Failure {
    fn from(e: StreamEnd) -> Self {
        Failure::Unreachable(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Unreachable(e.to_string())
    }
}

/// Makes a stream to `remote`'s server; `authenticate`: as `local` (else it is for a dialback
/// verification, which is sent before any authentication).
pub async fn connect(
    s2s: &S2s,
    local: &str,
    remote: &str,
    authenticate: bool,
) -> Result<S2sStream, Failure> {
    let targets = s2s.resolver.targets(remote).await;
    if targets.is_empty() {
        return Err(Failure::NotFound(remote.to_string()));
    }
    let mut last = Failure::NotFound(remote.to_string());
    for t in targets {
        let mut addrs = eyeballs::interleave(s2s.resolver.addresses(&t.host, t.port).await);
        // Happy Eyeballs among the target's addresses; one that connects and then fails the
        // negotiation is left out of the next race.
        while !addrs.is_empty() {
            let (tcp, addr) = match eyeballs::connect(&addrs, CONNECT_ATTEMPT).await {
                Ok(x) => x,
                Err(e) => {
                    last = e;
                    break;
                }
            };
            addrs.retain(|a| *a != addr);
            let _ = tcp.set_nodelay(true);
            match negotiate(s2s, tcp, t.direct_tls, local, remote, authenticate).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    debug!(%addr, "stream to {remote}: {e}");
                    last = e;
                }
            }
        }
    }
    Err(last)
}

/// One connection's negotiation: TLS, then (with `authenticate`) SASL EXTERNAL or dialback.
async fn negotiate(
    s2s: &S2s,
    tcp: TcpStream,
    direct_tls: bool,
    local: &str,
    remote: &str,
    authenticate: bool,
) -> Result<S2sStream, Failure> {
    let name = ServerName::try_from(remote.to_string())
        .map_err(|_| Failure::NotFound(remote.to_string()))?;
    let io = if direct_tls {
        let tls = s2s.tls.direct_connector.connect(name.clone(), tcp).await?;
        Io::Tls(Box::new(tls.into()))
    } else {
        Io::Plain(tcp)
    };
    let mut st = S2sStream::new(io, s2s.limits());
    let mut sasl_done = false;
    loop {
        st.header(Some(local), Some(remote), None).await?;
        let StreamEvent::Header(h) = st.next().await? else {
            return Err(Failure::Refused("no stream header".into()));
        };
        if h.ns != NS_STREAMS {
            return Err(Failure::Refused("not an XMPP stream".into()));
        }
        let id = h.attr("id").unwrap_or_default().to_string();
        let features = st.element().await?;
        if !features.is("features", NS_STREAMS) {
            return Err(Failure::Refused(format!(
                "expected stream features, got <{}>",
                features.name()
            )));
        }
        if !st.is_tls() {
            // RFC 6120 §5.3.1: TLS is mandatory here; a peer without it is not used.
            if features.get_child("starttls", NS_TLS).is_none() {
                return Err(Failure::Refused(format!(
                    "{remote} does not offer STARTTLS"
                )));
            }
            st.send(&Element::new("starttls", NS_TLS)).await?;
            let answer = st.element().await?;
            if !answer.is("proceed", NS_TLS) {
                return Err(Failure::Refused("STARTTLS refused".into()));
            }
            let Io::Plain(tcp) = std::mem::replace(&mut st.io, Io::Gone) else {
                return Err(Failure::Unreachable("lost the socket".into()));
            };
            let tls = s2s.tls.connector.connect(name.clone(), tcp).await?;
            st.io = Io::Tls(Box::new(tls.into()));
            st.restart();
            continue;
        }
        let valid = s2s.tls.trust.valid_for(&st.peer_certificates(), remote);
        if !valid && s2s.config.s2s.require_valid_certificates {
            return Err(Failure::Refused(format!(
                "the certificate of {remote} does not validate"
            )));
        }
        if authenticate
            && !sasl_done
            && !st.bidi
            && s2s.config.s2s.bidi
            && features.get_child("bidi", NS_BIDI_FEATURE).is_some()
        {
            // XEP-0288 §2.2: asked for before authenticating; there is no answer.
            st.send(&Element::new("bidi", NS_BIDI)).await?;
            st.bidi = true;
        }
        if sasl_done || !authenticate {
            st.sm_offered = features.get_child("sm", sm::NS).is_some();
            return Ok(st);
        }
        if offers_external(&features) {
            let payload = base64::engine::general_purpose::STANDARD.encode(local);
            let auth = Element::new("auth", sasl::NS)
                .with_attr("mechanism", "EXTERNAL")
                .with_text(payload);
            st.send(&auth).await?;
            let answer = st.element().await?;
            if answer.is("success", sasl::NS) {
                sasl_done = true;
                st.restart();
                continue;
            }
            debug!(%remote, "SASL EXTERNAL refused; trying dialback");
        }
        let dialback_offered = features
            .get_child("dialback", NS_DIALBACK_FEATURE)
            .is_some();
        if !s2s.config.s2s.dialback {
            return Err(Failure::Refused(format!(
                "{remote} did not accept our certificate and dialback is off"
            )));
        }
        if !dialback_offered {
            debug!(%remote, "dialback not advertised; trying it anyway (XEP-0220 §2.1)");
        }
        let key = s2s.secret.key(remote, local, &id);
        st.send(&dialback::element("result", local, remote).with_text(key))
            .await?;
        loop {
            let e = st.element().await?;
            if dialback::is(&e, "result") {
                return match e.attr("type") {
                    Some("valid") => Ok(st),
                    _ => Err(Failure::Refused(format!("{remote} refused our dialback"))),
                };
            }
            if e.is("error", NS_STREAMS) {
                return Err(Failure::Refused(format!("{remote} ended the stream")));
            }
        }
    }
}

/// Whether the features offer SASL EXTERNAL.
fn offers_external(features: &Element) -> bool {
    features
        .get_child("mechanisms", sasl::NS)
        .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"))
}

/// Asks `remote`'s authoritative server whether `key` is its key for the stream `id` it opened
/// to `local` (XEP-0220 §2.3): a new connection, TLS if offered, `<db:verify/>`.
pub async fn verify(s2s: &S2s, local: &str, remote: &str, id: &str, key: &str) -> bool {
    let limit = Duration::from_secs(s2s.config.s2s.connect_timeout_secs);
    let ask = async {
        let mut st = connect(s2s, local, remote, false).await?;
        let req = dialback::element("verify", local, remote)
            .with_attr("id", id)
            .with_text(key);
        st.send(&req).await?;
        loop {
            let e = st.element().await?;
            if dialback::is(&e, "verify") {
                st.close().await;
                return Ok::<bool, Failure>(e.attr("type") == Some("valid"));
            }
        }
    };
    match tokio::time::timeout(limit, ask).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            debug!(%remote, "dialback verification failed: {e}");
            false
        }
        Err(_) => false,
    }
}
