//! TLS with rustls (ring provider): certificate loading, the self-signed certificate made on first
//! start, and channel-binding data (RFC 9266 `tls-exporter`).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// A TLS setup failure (reported at start-up).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing PEM files.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn file_err(path: &Path, msg: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// The acceptors: STARTTLS (no ALPN), direct TLS (ALPN `xmpp-client`, XEP-0368) and HTTPS
/// (ALPN `http/1.1`).
#[derive(Clone)]
pub struct TlsAcceptors {
    /// For `<starttls/>` on the plain listener.
    pub starttls: TlsAcceptor,
    /// For the direct TLS listener.
    pub direct: TlsAcceptor,
    /// For the HTTPS listener (`http.tls_listen`).
    pub https: TlsAcceptor,
}

/// Builds the acceptors from the configured files, or from `data_dir/{cert,key}.pem`, creating a
/// self-signed certificate for the served hosts there when none exists yet.
pub fn acceptors(config: &Config) -> Result<TlsAcceptors, TlsError> {
    let (certs, key) = load_identity(config)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let base = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let mut direct = base.clone();
    direct.alpn_protocols = vec![b"xmpp-client".to_vec()];
    let mut https = base.clone();
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptors {
        starttls: TlsAcceptor::from(Arc::new(base)),
        direct: TlsAcceptor::from(Arc::new(direct)),
        https: TlsAcceptor::from(Arc::new(https)),
    })
}

/// The server's certificate chain and key: the configured files, or `data_dir/{cert,key}.pem`,
/// created self-signed for the served hosts when missing.
pub fn load_identity(
    config: &Config,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (cert_path, key_path) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = &config.server.data_dir;
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                self_signed(&config.server.hosts, &c, &k)?;
            }
            (c, k)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&cert_path, e))?;
    if certs.is_empty() {
        return Err(file_err(&cert_path, "no certificate in file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e))?;
    Ok((certs, key))
}

/// Writes a self-signed certificate for `hosts` (the key readable by the owner only).
pub fn self_signed(hosts: &[String], cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let ck = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    std::fs::write(cert_path, ck.cert.pem()).map_err(|e| file_err(cert_path, e))?;
    write_private(key_path, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| file_err(key_path, e))?;
    tracing::info!(cert = %cert_path.display(), "created a self-signed certificate for {}", hosts.join(", "));
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

/// `tls-exporter` channel-binding data (RFC 9266), only for TLS 1.3 connections, where the
/// exporter is bound to the handshake.
pub fn exporter(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut out = vec![0u8; 32];
    conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(out)
}
