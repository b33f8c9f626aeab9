//! Stream negotiation for one c2s connection: header, features, STARTTLS (RFC 6120 §5),
//! SASL (§6, SCRAM with -PLUS and PLAIN) and resource binding (§7).

use jid::BareJid;
use tracing::info;

use super::{Bound, C2s, Flow, Phase};
use crate::session::BindOutcome;
use crate::stanza::{ErrorCondition, error_reply, is_stanza};
use crate::stream::sasl::scram::{ScramCredentials, ScramHash, ScramServer};
use crate::stream::sasl::{self, SaslFailure, decode_payload, parse_plain, payload_element};
use crate::stream::{
    Condition, NS_BIND, NS_CLIENT, NS_SESSION, NS_STREAMS, NS_TLS, StreamError, check_header,
    random_id,
};
use crate::xml::{Element, StreamHeader};

/// Where a SASL exchange stands (the SCRAM state boxed: a session that is done with SASL keeps
/// only the tag).
#[derive(Debug)]
pub(super) enum SaslState {
    /// None in progress.
    None,
    /// SCRAM chosen with an empty initial response: the next `<response/>` is client-first.
    ScramFirst(Box<ScramServer>),
    /// server-first sent for this user: the next `<response/>` is client-final.
    ScramFinal(Box<ScramServer>, BareJid),
}

impl C2s {
    /// SASL (and registration) may start: TLS is up, or not required.
    pub(super) fn sasl_allowed(&self) -> bool {
        self.link.secure || !self.shared.config.c2s.require_tls
    }

    fn plain_allowed(&self) -> bool {
        self.shared.config.c2s.allow_plain && self.link.secure
    }

    /// The SASL mechanisms offered now, strongest first.
    fn mechanisms(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.link.channel_binding.is_some() {
            m.extend(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
        }
        m.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
        if self.plain_allowed() {
            m.push("PLAIN");
        }
        m
    }

    pub(super) fn on_header(&mut self, h: &StreamHeader) -> Flow {
        let config = self.shared.config.clone();
        let accepted = match check_header(h, |d| config.serves(d)) {
            Ok(a) => a,
            Err(e) => return Flow::Close(e),
        };
        if !self.host.is_empty() && self.host != accepted.to {
            // A restarted stream must address the same domain.
            return Flow::Close(StreamError::with_text(
                Condition::HostUnknown,
                "the domain changed",
            ));
        }
        self.host = accepted.to.clone();
        self.out.header(&accepted.to, accepted.from.as_deref());
        self.header_sent = true;
        let features = self.features();
        self.write(&features);
        Flow::Continue
    }

    /// Stream features for the current phase (RFC 6120 §4.3.2).
    fn features(&self) -> Element {
        let mut f = Element::new("features", NS_STREAMS);
        match &self.phase {
            Phase::Unauthenticated => {
                if self.link.starttls {
                    let mut st = Element::new("starttls", NS_TLS);
                    if self.shared.config.c2s.require_tls {
                        st.append_child(Element::new("required", NS_TLS));
                    }
                    f.append_child(st);
                }
                if self.sasl_allowed() {
                    let mut mechs = Element::new("mechanisms", sasl::NS);
                    for m in self.mechanisms() {
                        mechs.append_child(Element::new("mechanism", sasl::NS).with_text(m));
                    }
                    f.append_child(mechs);
                    if self.registration_open() {
                        f.append_child(Element::new("register", super::register::NS_FEATURE));
                    }
                    if self.link.channel_binding.is_some() {
                        // XEP-0440: which channel-binding types we support.
                        f.append_child(
                            Element::new("sasl-channel-binding", sasl::NS_CB).with_child(
                                Element::new("channel-binding", sasl::NS_CB)
                                    .with_attr("type", "tls-exporter"),
                            ),
                        );
                    }
                }
            }
            Phase::Authenticated(_) | Phase::Bound(_) => {
                if self.compression_offered() {
                    f.append_child(crate::stream::compress::feature());
                }
                f.append_child(Element::new("bind", NS_BIND));
                // What the modules add (roster versioning, RFC 6121 §2.6.1).
                for el in self.shared.router.hooks().stream_features() {
                    f.append_child(el.clone());
                }
                f.append_child(Element::new("csi", super::csi::NS));
                if self.shared.config.c2s.stream_management {
                    f.append_child(Element::new("sm", crate::stream::sm::NS));
                }
                // RFC 6121 Appendix E: tolerated, and optional.
                f.append_child(
                    Element::new("session", NS_SESSION)
                        .with_child(Element::new("optional", NS_SESSION)),
                );
            }
        }
        f
    }

    pub(super) async fn on_negotiation_element(&mut self, el: Element) -> Flow {
        match (el.ns(), el.name()) {
            (NS_TLS, "starttls") => self.on_starttls(),
            (sasl::NS, "auth") => self.on_auth(&el).await,
            (sasl::NS, "response") => self.on_response(&el).await,
            (crate::stream::sm::NS, _) => self.on_sm_unbound(&el).await,
            (crate::stream::compress::NS, "compress") => self.on_compress(&el),
            (sasl::NS, "abort") => {
                self.sasl = SaslState::None;
                self.sasl_failure(SaslFailure::Aborted)
            }
            _ if is_stanza(&el)
                && matches!(self.phase, Phase::Unauthenticated)
                && el.name() == "iq"
                && el.get_child("query", super::register::NS).is_some() =>
            {
                if self.registration_open() {
                    self.on_register(el).await
                } else {
                    // XEP-0077 §3.1: a server without (or not yet offering) in-band
                    // registration answers <service-unavailable/>; account wizards probe so.
                    self.reply_error(&el, ErrorCondition::ServiceUnavailable)
                }
            }
            _ if is_stanza(&el) => match &self.phase {
                Phase::Authenticated(bare) if el.name() == "iq" => {
                    let bare = bare.clone();
                    self.on_pre_bind_iq(el, bare)
                }
                // RFC 6120 §4.9.3.12 and §7.1: no stanzas before authentication and binding.
                _ => Flow::Close(StreamError::with_text(
                    Condition::NotAuthorized,
                    "authenticate and bind a resource first",
                )),
            },
            _ if matches!(el.name(), "message" | "presence" | "iq") => {
                Flow::Close(StreamError::new(Condition::InvalidNamespace))
            }
            _ => Flow::Close(StreamError::with_text(
                Condition::UnsupportedStanzaType,
                format!("unexpected <{}/> in {}", el.name(), el.ns()),
            )),
        }
    }

    /// Compression is offered after authentication, before binding (XEP-0138 §4), when
    /// configured, and under TLS only if that is allowed too.
    fn compression_offered(&self) -> bool {
        let c = &self.shared.config.c2s;
        matches!(self.phase, Phase::Authenticated(_))
            && self.link.compression
            && !self.compressed
            && (!self.link.secure || c.compression_over_tls)
    }

    fn on_compress(&mut self, el: &Element) -> Flow {
        use crate::stream::compress;
        if !self.compression_offered() {
            self.write(&compress::failure("setup-failed"));
            return Flow::Continue;
        }
        match compress::check_request(el) {
            Ok(()) => {
                self.write(&compress::compressed());
                Flow::Compressed
            }
            Err(failure) => {
                self.write(&failure);
                Flow::Continue
            }
        }
    }

    fn on_starttls(&mut self) -> Flow {
        if !self.link.starttls || !matches!(self.phase, Phase::Unauthenticated) {
            // RFC 6120 §5.4.2.2: <failure/> and close the stream.
            self.write(&Element::new("failure", NS_TLS));
            return Flow::End;
        }
        self.write(&Element::new("proceed", NS_TLS));
        Flow::StartTls
    }

    fn sasl_failure(&mut self, f: SaslFailure) -> Flow {
        self.write(&f.to_element());
        Flow::Continue
    }

    /// A failed attempt: counted per connection and, for bad credentials, per IP.
    fn auth_failed(&mut self, f: SaslFailure) -> Flow {
        self.sasl = SaslState::None;
        self.auth_failures += 1;
        if f == SaslFailure::NotAuthorized {
            self.shared.limits.auth_failed(self.link.peer.ip());
        }
        self.write(&f.to_element());
        if self.auth_failures >= self.shared.config.c2s.max_auth_attempts {
            return Flow::Close(StreamError::with_text(
                Condition::PolicyViolation,
                "too many failed authentication attempts",
            ));
        }
        Flow::Continue
    }

    async fn on_auth(&mut self, el: &Element) -> Flow {
        if !matches!(self.phase, Phase::Unauthenticated) || !matches!(self.sasl, SaslState::None) {
            return self.sasl_failure(SaslFailure::MalformedRequest);
        }
        if !self.sasl_allowed() {
            return self.sasl_failure(SaslFailure::EncryptionRequired);
        }
        if !self.shared.limits.may_authenticate(self.link.peer.ip()) {
            return self.sasl_failure(SaslFailure::TemporaryAuthFailure);
        }
        let mech = el.attr("mechanism").unwrap_or_default();
        if !self.mechanisms().contains(&mech) {
            return self.auth_failed(SaslFailure::InvalidMechanism);
        }
        let payload = match decode_payload(el) {
            Ok(p) => p,
            Err(f) => return self.auth_failed(f),
        };
        if mech == "PLAIN" {
            return self.plain(&payload).await;
        }
        let (base, plus) = match mech.strip_suffix("-PLUS") {
            Some(base) => (base, true),
            None => (mech, false),
        };
        let Some(hash) = ScramHash::from_mechanism(base) else {
            return self.auth_failed(SaslFailure::InvalidMechanism);
        };
        let binding = self.link.channel_binding.clone();
        let offered_plus = binding.is_some();
        let scram = ScramServer::new(hash, plus, binding, offered_plus);
        if payload.is_empty() {
            // No initial response (RFC 6120 §6.4.2): ask for it with an empty challenge.
            self.sasl = SaslState::ScramFirst(Box::new(scram));
            self.write(&payload_element("challenge", &[]));
            return Flow::Continue;
        }
        self.scram_first(scram, &payload).await
    }

    async fn on_response(&mut self, el: &Element) -> Flow {
        let payload = match decode_payload(el) {
            Ok(p) => p,
            Err(f) => return self.auth_failed(f),
        };
        match std::mem::replace(&mut self.sasl, SaslState::None) {
            SaslState::None => self.sasl_failure(SaslFailure::MalformedRequest),
            SaslState::ScramFirst(scram) => self.scram_first(*scram, &payload).await,
            SaslState::ScramFinal(mut scram, user) => match scram.client_final(&payload) {
                Ok(server_final) => self.authenticated(user, &server_final),
                Err(f) => self.auth_failed(f),
            },
        }
    }

    /// The account's JID from a SASL user name, if it is a valid localpart.
    fn account(&self, username: &str, authzid: Option<&str>) -> Result<BareJid, SaslFailure> {
        let bare = BareJid::new(&format!("{username}@{}", self.host))
            .map_err(|_| SaslFailure::NotAuthorized)?;
        if bare.node().is_none() {
            return Err(SaslFailure::NotAuthorized);
        }
        // An authzid may only name the account itself (no proxy authorization).
        if let Some(a) = authzid
            && BareJid::new(a).ok().as_ref() != Some(&bare)
        {
            return Err(SaslFailure::InvalidAuthzid);
        }
        Ok(bare)
    }

    async fn lookup(
        &self,
        bare: &BareJid,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>, SaslFailure> {
        let node = bare.node().map(|n| n.as_str()).unwrap_or_default();
        self.shared
            .storage
            .accounts
            .credentials(bare.domain().as_str(), node, hash)
            .await
            .map_err(|e| {
                tracing::error!("credential lookup failed: {e}");
                SaslFailure::TemporaryAuthFailure
            })
    }

    async fn scram_first(&mut self, mut scram: ScramServer, payload: &[u8]) -> Flow {
        let first = match scram.client_first(payload) {
            Ok(f) => f,
            Err(f) => return self.auth_failed(f),
        };
        let bare = match self.account(&first.username, first.authzid.as_deref()) {
            Ok(b) => b,
            Err(f) => return self.auth_failed(f),
        };
        let hash = scram.hash();
        let creds = match self.lookup(&bare, hash).await {
            Ok(Some(c)) => c,
            // Unknown user: go on with decoy credentials; the proof will fail (no user probing).
            Ok(None) => ScramCredentials::decoy(hash, bare.as_str(), &self.shared.decoy_secret),
            Err(f) => return self.auth_failed(f),
        };
        let server_first = scram.server_first(first, creds);
        self.sasl = SaslState::ScramFinal(Box::new(scram), bare);
        self.write(&payload_element("challenge", &server_first));
        Flow::Continue
    }

    async fn plain(&mut self, payload: &[u8]) -> Flow {
        let msg = match parse_plain(payload) {
            Ok(m) => m,
            Err(f) => return self.auth_failed(f),
        };
        let bare = match self.account(&msg.username, msg.authzid.as_deref()) {
            Ok(b) => b,
            Err(f) => return self.auth_failed(f),
        };
        let creds = match self.lookup(&bare, ScramHash::Sha256).await {
            Ok(c) => c,
            Err(f) => return self.auth_failed(f),
        };
        // An unknown user is checked against decoy credentials: the same PBKDF2 work as a
        // real account, so the time a failure takes does not tell whether the account exists.
        let known = creds.is_some();
        let creds = creds.unwrap_or_else(|| {
            ScramCredentials::decoy(ScramHash::Sha256, bare.as_str(), &self.shared.decoy_secret)
        });
        // PBKDF2 is CPU work: keep it off the I/O threads.
        let ok = self.shared.verify_password(creds, msg.password).await && known;
        if ok {
            self.authenticated(bare, &[])
        } else {
            self.auth_failed(SaslFailure::NotAuthorized)
        }
    }

    fn authenticated(&mut self, bare: BareJid, additional: &[u8]) -> Flow {
        info!(user = %bare, transport = self.link.transport, "authenticated");
        self.write(&payload_element("success", additional));
        self.phase = Phase::Authenticated(bare);
        // The channel binding was for SASL only.
        self.link.channel_binding = None;
        Flow::Restart
    }

    /// Between authentication and binding only the bind (and legacy session) iq is allowed.
    fn on_pre_bind_iq(&mut self, iq: Element, bare: BareJid) -> Flow {
        let Some(bind) = iq.get_child("bind", NS_BIND) else {
            return Flow::Close(StreamError::with_text(
                Condition::NotAuthorized,
                "bind a resource first",
            ));
        };
        if iq.attr("type") != Some("set") || iq.attr("id").is_none() {
            return self.reply_error(&iq, ErrorCondition::BadRequest);
        }
        let requested = bind
            .get_child("resource", NS_BIND)
            .map(|r| r.text().trim().to_string())
            .unwrap_or_default();
        let resource = if requested.is_empty() {
            random_id()
        } else {
            requested
        };
        let Ok(full) = bare.with_resource_str(&resource) else {
            // RFC 6120 §7.7.2.1: a resource that cannot be prepared.
            return self.reply_error(&iq, ErrorCondition::BadRequest);
        };
        let c2s = &self.shared.config.c2s;
        let (tx, rx) = crate::session::queue::inbox(c2s.session_queue, c2s.session_queue_bytes);
        let registry = &self.shared.router.registry;
        match registry.bind(full, tx, self.shared.config.c2s.resource_conflict) {
            BindOutcome::Bound { handle, replaced } => {
                if let Some(old) = replaced {
                    info!(jid = %old.jid, "resource taken over by a new session");
                    old.kick();
                }
                info!(jid = %handle.jid, "bound");
                let mut result = Element::new("iq", NS_CLIENT).with_attr("type", "result");
                if let Some(id) = iq.attr("id") {
                    result.set_attr("id", id);
                }
                result
                    .append_child(Element::new("bind", NS_BIND).with_child(
                        Element::new("jid", NS_BIND).with_text(handle.jid.to_string()),
                    ));
                self.write(&result);
                self.inbox = Some(rx);
                self.phase = Phase::Bound(Bound { handle });
                Flow::Continue
            }
            BindOutcome::Conflict => self.reply_error(&iq, ErrorCondition::Conflict),
        }
    }

    /// Writes an error reply to the client's own stanza.
    pub(super) fn reply_error(&mut self, stanza: &Element, c: ErrorCondition) -> Flow {
        if let Some(r) = error_reply(stanza, c, None) {
            self.send(r);
        }
        Flow::Continue
    }
}
