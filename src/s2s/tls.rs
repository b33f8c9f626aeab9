//! TLS for server streams (RFC 6120 §5, §13.7.2; RFC 7590): both sides present the server's
//! certificate, and each validates the other's against the configured CA file or the
//! system's store, for the peer's domain: a DNS-ID (the name type public CAs issue, checked by
//! webpki), or an SRV-ID or XmppAddr ([`super::names`]), as RFC 6120 §13.7.1.4 and RFC 7590 ask.
//!
//! The handshake itself accepts any certificate (its signature over the handshake is still
//! checked, so the peer holds its key): whether it *validates* decides between SASL EXTERNAL
//! (XEP-0178) and Server Dialback (XEP-0220), as Prosody and ejabberd do, and a peer with a
//! self-signed certificate must still be able to reach the dialback step. Validation runs after
//! the handshake, for each domain the peer claims ([`Trust::valid_for`]).
//!
//! The peer's certificate is validated for server authentication in both directions: public
//! CAs stopped issuing the client-authentication usage in 2025, and a receiving server that
//! asked for it would refuse every federating peer.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Config;
use crate::transport::tls::TlsError;

/// The TLS contexts of federation.
pub struct S2sTls {
    /// For incoming streams (STARTTLS and direct TLS): asks for the peer's certificate.
    pub acceptor: TlsAcceptor,
    /// For direct TLS on incoming streams (ALPN `xmpp-server`, XEP-0368).
    pub direct_acceptor: TlsAcceptor,
    /// For outgoing streams: presents ours.
    pub connector: TlsConnector,
    /// For direct TLS outgoing (ALPN `xmpp-server`).
    pub direct_connector: TlsConnector,
    /// Validates peers' certificates.
    pub trust: Trust,
}

/// The trust anchors peers' certificates are validated against.
pub struct Trust {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// Whether the certificate chain (leaf first) validates now, for server authentication,
    /// and names `domain` (DNS-ID, SRV-ID or XmppAddr). No revocation check: as Prosody and
    /// ejabberd by default.
    pub fn valid_for(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool {
        let (Some(roots), Some((leaf, rest))) = (&self.roots, chain.split_first()) else {
            return false;
        };
        let Ok(parsed) = ParsedCertificate::try_from(leaf) else {
            return false;
        };
        let algs = self.provider.signature_verification_algorithms.all;
        if verify_server_cert_signed_by_trust_anchor(&parsed, roots, rest, UnixTime::now(), algs)
            .is_err()
        {
            return false;
        }
        let dns_id = ServerName::try_from(domain.to_string())
            .is_ok_and(|name| verify_server_name(&parsed, &name).is_ok());
        dns_id || super::names::xmpp_names_match(leaf, domain)
    }
}

/// Builds the contexts from the server's certificate (`tls` section, or the self-signed one
/// made at first start) and `s2s.ca_file` or the system's store.
pub fn contexts(config: &Config) -> Result<S2sTls, TlsError> {
    let (certs, key) = crate::transport::tls::load_identity(config)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let accept_any = Arc::new(AcceptAny(provider.clone()));
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(accept_any.clone())
        .with_single_cert(certs.clone(), key.clone_key())?;
    let mut direct_server = server.clone();
    direct_server.alpn_protocols = vec![b"xmpp-server".to_vec()];
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(accept_any)
        .with_client_auth_cert(certs, key)?;
    let mut direct_client = client.clone();
    direct_client.alpn_protocols = vec![b"xmpp-server".to_vec()];
    Ok(S2sTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        direct_acceptor: TlsAcceptor::from(Arc::new(direct_server)),
        connector: TlsConnector::from(Arc::new(client)),
        direct_connector: TlsConnector::from(Arc::new(direct_client)),
        trust: trust(config, provider)?,
    })
}

fn trust(config: &Config, provider: Arc<CryptoProvider>) -> Result<Trust, TlsError> {
    let mut roots = RootCertStore::empty();
    match &config.s2s.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect())
                .map_err(|e| TlsError::File {
                    path: path.display().to_string(),
                    msg: e.to_string(),
                })?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("system CA store: {e}");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            "no CA certificates for federation: every peer will be authenticated by dialback"
        );
    }
    Ok(Trust {
        roots: (!roots.is_empty()).then(|| Arc::new(roots)),
        provider,
    })
}

/// Accepts any certificate in the handshake, checking only the handshake signature; the chain
/// and the name are judged afterwards ([`Trust::valid_for`]).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl AcceptAny {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for AcceptAny {
    // Asked for, not required: a peer without one can still use dialback.
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
