//! SCRAM-SHA-1 and SCRAM-SHA-256, with and without `-PLUS` (RFC 5802, RFC 7677), server side,
//! with `tls-exporter` channel binding (RFC 9266). Sans-IO: the caller fetches the credentials.
//!
//! Only salted keys are ever stored (RFC 5802 §3: salt, iteration count, StoredKey, ServerKey),
//! so a leaked database does not give passwords, and PLAIN is checked against the same keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::SaslFailure;

/// Iteration count for new credentials (Prosody uses 10000; RFC 7677 asks for at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// The hash function of a SCRAM family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SCRAM-SHA-1
    Sha1,
    /// SCRAM-SHA-256
    Sha256,
}

impl ScramHash {
    /// Both families, strongest first.
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha1];

    /// The SASL mechanism name without `-PLUS`.
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// Parses a stored mechanism name.
    pub fn from_mechanism(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.mechanism() == name)
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        match self {
            ScramHash::Sha1 => {
                let mut m =
                    <Hmac<Sha1> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
                data.iter().for_each(|d| m.update(d));
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!());
                data.iter().for_each(|d| m.update(d));
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What is stored for one account and one hash (RFC 5802 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    /// Hash family.
    pub hash: ScramHash,
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives credentials from a (SASLprepped) password with the given salt.
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password.as_bytes(), salt, iterations);
        let client_key = hash.hmac(&salted, &[b"Client Key"]);
        ScramCredentials {
            hash,
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, &[b"Server Key"]),
        }
    }

    /// New credentials for both hash families, each with a fresh random salt.
    pub fn new_set(password: &str, iterations: u32) -> Result<Vec<Self>, SaslFailure> {
        let password = saslprep(password)?;
        Ok(ScramHash::ALL
            .into_iter()
            .map(|h| ScramCredentials::derive(h, &password, &random_bytes::<16>(), iterations))
            .collect())
    }

    /// Checks a plaintext password (SASL PLAIN) against these keys, in constant time.
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(password) = saslprep(password) else {
            return false;
        };
        let derived = ScramCredentials::derive(self.hash, &password, &self.salt, self.iterations);
        bool::from(derived.stored_key.ct_eq(&self.stored_key))
    }

    /// Credentials that match no password, for unknown users, so that a failed login does not
    /// tell whether the account exists (the salt is stable per user for the server's lifetime).
    pub fn decoy(hash: ScramHash, username: &str, secret: &[u8]) -> Self {
        let salt = hash.hmac(secret, &[username.as_bytes()]);
        ScramCredentials {
            hash,
            salt: salt[..16].to_vec(),
            iterations: DEFAULT_ITERATIONS,
            stored_key: random_bytes::<32>().to_vec(),
            server_key: random_bytes::<32>().to_vec(),
        }
    }
}

/// Random bytes from the thread-local CSPRNG (ChaCha, seeded from the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::Rng;
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// SASLprep (RFC 4013) of a password or username.
pub fn saslprep(s: &str) -> Result<String, SaslFailure> {
    stringprep::saslprep(s)
        .map(|c| c.into_owned())
        .map_err(|_| SaslFailure::MalformedRequest)
}

/// The gs2 header a client sent (RFC 5802 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gs2Flag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<type>`: the client uses channel binding of this type.
    Binding(String),
}

/// Server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    hash: ScramHash,
    plus: bool,
    /// `tls-exporter` data of this connection, when it has TLS 1.3.
    binding: Option<Vec<u8>>,
    /// Whether this server offered any -PLUS mechanism on this connection.
    offered_plus: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    SentServerFirst {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        creds: ScramCredentials,
    },
    Done,
}

/// The first client message, parsed; look up `username`'s credentials, then call
/// [`ScramServer::server_first`].
#[derive(Debug)]
pub struct ClientFirst {
    /// SASLprepped username (the localpart).
    pub username: String,
    /// Authorization identity, if given.
    pub authzid: Option<String>,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
}

impl ScramServer {
    /// Starts an exchange for `hash`; `plus` for the `-PLUS` variant.
    pub fn new(hash: ScramHash, plus: bool, binding: Option<Vec<u8>>, offered_plus: bool) -> Self {
        ScramServer {
            hash,
            plus,
            binding,
            offered_plus,
            state: State::Start,
        }
    }

    /// The hash family of this exchange.
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    /// Parses client-first-message (RFC 5802 §5.1, §7).
    pub fn client_first(&self, msg: &[u8]) -> Result<ClientFirst, SaslFailure> {
        let msg = std::str::from_utf8(msg).map_err(|_| SaslFailure::IncorrectEncoding)?;
        let mut parts = msg.splitn(3, ',');
        let flag = match parts.next() {
            Some("n") => Gs2Flag::No,
            Some("y") => Gs2Flag::ClientOnly,
            Some(p) if p.starts_with("p=") => Gs2Flag::Binding(p[2..].to_string()),
            _ => return Err(SaslFailure::MalformedRequest),
        };
        let authzid = match parts.next() {
            Some("") => None,
            Some(a) if a.starts_with("a=") => Some(decode_saslname(&a[2..])?),
            _ => return Err(SaslFailure::MalformedRequest),
        };
        let bare = parts.next().ok_or(SaslFailure::MalformedRequest)?;
        // Channel binding rules (RFC 5802 §6): -PLUS needs `p`, `p` needs -PLUS, and `y` while
        // we offered -PLUS means someone stripped it from the features (downgrade).
        match (&flag, self.plus) {
            (Gs2Flag::Binding(t), true) if t == "tls-exporter" && self.binding.is_some() => {}
            (Gs2Flag::Binding(_), _) | (_, true) => return Err(SaslFailure::NotAuthorized),
            (Gs2Flag::ClientOnly, false) if self.offered_plus => {
                return Err(SaslFailure::NotAuthorized);
            }
            _ => {}
        }
        let mut attrs = bare.split(',');
        let username = match attrs.next() {
            Some(n) if n.starts_with("n=") => saslprep(&decode_saslname(&n[2..])?)?,
            _ => return Err(SaslFailure::MalformedRequest),
        };
        let client_nonce = match attrs.next() {
            Some(r) if r.starts_with("r=") && r.len() > 2 => r[2..].to_string(),
            _ => return Err(SaslFailure::MalformedRequest),
        };
        // Mandatory extensions (`m=`) are not supported (RFC 5802 §5.1).
        if attrs.any(|a| a.starts_with("m=")) || username.is_empty() {
            return Err(SaslFailure::MalformedRequest);
        }
        let header_len = msg.len() - bare.len();
        Ok(ClientFirst {
            username,
            authzid,
            gs2_header: msg[..header_len].to_string(),
            client_first_bare: bare.to_string(),
            client_nonce,
        })
    }

    /// Builds server-first-message from the user's (or decoy) credentials.
    pub fn server_first(&mut self, first: ClientFirst, creds: ScramCredentials) -> Vec<u8> {
        let nonce = format!("{}{}", first.client_nonce, B64.encode(random_bytes::<18>()));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&creds.salt),
            creds.iterations
        );
        let out = server_first.clone().into_bytes();
        self.state = State::SentServerFirst {
            gs2_header: first.gs2_header,
            client_first_bare: first.client_first_bare,
            server_first,
            nonce,
            creds,
        };
        out
    }

    /// Checks client-final-message (RFC 5802 §5.1); on success returns server-final-message.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        let State::SentServerFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            creds,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(SaslFailure::MalformedRequest);
        };
        let msg = std::str::from_utf8(msg).map_err(|_| SaslFailure::IncorrectEncoding)?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(SaslFailure::MalformedRequest)?;
        let mut attrs = without_proof.split(',');
        let cbind = match attrs.next() {
            Some(c) if c.starts_with("c=") => B64
                .decode(&c[2..])
                .map_err(|_| SaslFailure::IncorrectEncoding)?,
            _ => return Err(SaslFailure::MalformedRequest),
        };
        let mut expected_cbind = gs2_header.into_bytes();
        if self.plus {
            expected_cbind.extend_from_slice(self.binding.as_deref().unwrap_or_default());
        }
        if !bool::from(cbind.ct_eq(&expected_cbind)) {
            return Err(SaslFailure::NotAuthorized);
        }
        match attrs.next() {
            Some(r) if r.strip_prefix("r=") == Some(nonce.as_str()) => {}
            _ => return Err(SaslFailure::NotAuthorized),
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| SaslFailure::IncorrectEncoding)?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let h = self.hash;
        let client_signature = h.hmac(&creds.stored_key, &[auth_message.as_bytes()]);
        if proof.len() != client_signature.len() {
            return Err(SaslFailure::NotAuthorized);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !bool::from(h.hash(&client_key).ct_eq(&creds.stored_key)) {
            return Err(SaslFailure::NotAuthorized);
        }
        let server_signature = h.hmac(&creds.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// Decodes `=2C` and `=3D` in a saslname (RFC 5802 §5.1).
fn decode_saslname(s: &str) -> Result<String, SaslFailure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslFailure::MalformedRequest),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
