//! Client side of SCRAM-SHA-1 / SCRAM-SHA-256 without channel binding (RFC 5802 §5), sans-IO.
//! Used by the load generator (`xmppd-bench`), which logs in to any server with it.
//!
//! The salted password (PBKDF2) is the expensive step; [`ScramClient::final_message`] takes a
//! cache so that a client logging in many times, as real clients do, derives it once per salt.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;

use super::scram::{ScramHash, random_bytes, saslprep};

/// Why a SCRAM exchange failed on the client side.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramClientError {
    /// The server's message could not be parsed.
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    /// The server's nonce does not extend ours.
    #[error("server nonce does not start with the client nonce")]
    Nonce,
    /// The server's signature is wrong: it does not know the password.
    #[error("server signature does not verify")]
    ServerSignature,
    /// The username or password is not valid SASLprep input.
    #[error("username or password rejected by SASLprep")]
    Prep,
}

/// Salted passwords already derived, by (hash, salt, iterations).
pub type SaltCache = HashMap<(ScramHash, Vec<u8>, u32), Vec<u8>>;

/// One client exchange: `first_message`, then `final_message(server-first)`, then `verify`.
#[derive(Debug)]
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange for `username` (a localpart) and `password`.
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Result<Self, ScramClientError> {
        let user = saslprep(username).map_err(|_| ScramClientError::Prep)?;
        let password = saslprep(password).map_err(|_| ScramClientError::Prep)?;
        let nonce = B64.encode(random_bytes::<18>());
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Ok(ScramClient {
            hash,
            password,
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            server_signature: Vec::new(),
        })
    }

    /// client-first-message, with the `n,,` header (no channel binding, no authzid).
    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final-message for the server-first-message `server_first`.
    pub fn final_message(
        &mut self,
        server_first: &[u8],
        cache: &mut SaltCache,
    ) -> Result<Vec<u8>, ScramClientError> {
        let sf = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::Malformed("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in sf.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = B64.decode(v).ok(),
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramClientError::Malformed("no nonce"))?;
        let salt = salt.ok_or(ScramClientError::Malformed("no salt"))?;
        let iterations = iterations
            .filter(|i| *i > 0)
            .ok_or(ScramClientError::Malformed("no iteration count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        let h = self.hash;
        let salted = cache
            .entry((h, salt.clone(), iterations))
            .or_insert_with(|| h.salted_password(self.password.as_bytes(), &salt, iterations))
            .clone();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{sf},{without_proof}", self.client_first_bare);
        let client_key = h.hmac(&salted, &[b"Client Key"]);
        let stored_key = h.hash(&client_key);
        let signature = h.hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, &[b"Server Key"]);
        self.server_signature = h.hmac(&server_key, &[auth_message.as_bytes()]);
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message (`v=…`), proving that the server knows the password.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let v = std::str::from_utf8(server_final)
            .ok()
            .and_then(|s| s.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("no verifier"))?;
        match bool::from(v.ct_eq(&self.server_signature)) && !v.is_empty() {
            true => Ok(()),
            false => Err(ScramClientError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::sasl::scram::{ScramCredentials, ScramServer};

    fn exchange(hash: ScramHash, server_pw: &str, client_pw: &str) -> Result<(), String> {
        let creds = ScramCredentials::derive(hash, server_pw, b"salt-of-sixteen!", 4096);
        let mut cache = SaltCache::new();
        let mut client = ScramClient::new(hash, "alice", client_pw).map_err(|e| e.to_string())?;
        let mut server = ScramServer::new(hash, false, None, false);
        let first = server
            .client_first(&client.first_message())
            .map_err(|e| format!("{e:?}"))?;
        assert_eq!(first.username, "alice");
        let sf = server.server_first(first, creds);
        let cf = client
            .final_message(&sf, &mut cache)
            .map_err(|e| e.to_string())?;
        let done = server.client_final(&cf).map_err(|e| format!("{e:?}"))?;
        client.verify(&done).map_err(|e| e.to_string())
    }

    #[test]
    fn logs_in_to_the_server_side_with_both_hashes() {
        assert_eq!(exchange(ScramHash::Sha1, "pw", "pw"), Ok(()));
        assert_eq!(exchange(ScramHash::Sha256, "pencil", "pencil"), Ok(()));
        assert!(exchange(ScramHash::Sha256, "pencil", "wrong").is_err());
    }

    #[test]
    fn rejects_a_foreign_nonce_and_a_wrong_signature() {
        let mut c = ScramClient::new(ScramHash::Sha1, "bob", "pw").unwrap();
        let mut cache = SaltCache::new();
        let bad = c.final_message(b"r=other,s=c2FsdA==,i=4096", &mut cache);
        assert_eq!(bad, Err(ScramClientError::Nonce));
        let sf = format!("r={}x,s=c2FsdA==,i=4096", c.nonce);
        assert!(c.final_message(sf.as_bytes(), &mut cache).is_ok());
        assert_eq!(cache.len(), 1);
        assert_eq!(c.verify(b"v=AAAA"), Err(ScramClientError::ServerSignature));
    }
}
