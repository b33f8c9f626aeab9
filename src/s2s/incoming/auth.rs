//! Authentication on an incoming server stream: SASL EXTERNAL (XEP-0178) for a peer whose
//! certificate validates for its domain, Server Dialback (XEP-0220) per domain pair (with the
//! XEP-0344 shortcut when the certificate already proves the domain), and our answers to
//! `<db:verify/>` as the authoritative server of our domains.

use base64::Engine;
use tracing::info;

use super::{Incoming, Next};
use crate::s2s::stream::S2sStream;
use crate::s2s::{S2s, connect, dialback};
use crate::stream::{Condition, StreamError, sasl};
use crate::xml::Element;

/// Counts a newly authenticated pair; false when the remote domain has too many streams.
pub(super) fn authenticated(
    s2s: &S2s,
    inc: &mut Incoming,
    remote: &str,
    local: &str,
    method: &'static str,
) -> bool {
    // Each pair is proven on its own, so a peer with many domains could stack them here.
    let pair = (remote.to_string(), local.to_string());
    if !inc.pairs.contains(&pair) && inc.pairs.len() >= s2s.config.s2s.max_domains_per_stream {
        return false;
    }
    if !inc.counted.iter().any(|d| d == remote) {
        if !s2s.admit_incoming(remote) {
            return false;
        }
        inc.counted.push(remote.to_string());
    }
    inc.pairs.insert(pair);
    let bidi = inc.bidi && inc.reverse.adopt(s2s, local, remote);
    info!(%remote, %local, method, bidi, "incoming stream authenticated");
    s2s.methods
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(remote.to_string(), method);
    true
}

/// SASL EXTERNAL (XEP-0178): the authorization identity (or the header's `from`) is the
/// peer's domain, and its certificate must validate for it.
pub(super) async fn external(
    s2s: &S2s,
    st: &mut S2sStream,
    inc: &mut Incoming,
    e: &Element,
) -> Next {
    let failure = |cond: &str| {
        Element::new("failure", sasl::NS).with_child(Element::new(cond.to_string(), sasl::NS))
    };
    if e.attr("mechanism") != Some("EXTERNAL") {
        let _ = st.send(&failure("invalid-mechanism")).await;
        return Next::Continue;
    }
    let text = e.text();
    let text = text.trim();
    let authzid = match text {
        "" | "=" => inc.from.clone(),
        b64 => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|d| d.to_ascii_lowercase()),
    };
    let Some(domain) = authzid else {
        let _ = st.send(&failure("malformed-request")).await;
        return Next::Continue;
    };
    let ok = !s2s.config.s2s.blocked(&domain)
        && inc.from.as_deref().is_none_or(|f| f == domain)
        && s2s.tls.trust.valid_for(&st.peer_certificates(), &domain);
    if !ok {
        let _ = st.send(&failure("not-authorized")).await;
        return Next::Continue;
    }
    let local = inc.local.clone();
    if !authenticated(s2s, inc, &domain, &local, "external") {
        return Next::Close(StreamError::with_text(
            Condition::PolicyViolation,
            "too many streams from your domain, or domains on this stream",
        ));
    }
    if st.send(&Element::new("success", sasl::NS)).await.is_err() {
        return Next::Close(StreamError::new(Condition::UndefinedCondition));
    }
    Next::Restart
}

/// We are the authoritative server: is `key` ours for the stream `id` that one of our domains
/// (`to`) opened to the asking server (`from`)?
pub(super) async fn answer_verify(s2s: &S2s, st: &mut S2sStream, e: &Element) -> Next {
    let (Some(from), Some(to), Some(id)) = (e.attr("from"), e.attr("to"), e.attr("id")) else {
        return Next::Close(StreamError::with_text(
            Condition::BadFormat,
            "db:verify needs from, to, id",
        ));
    };
    let valid = s2s.is_ours(to) && s2s.secret.check(&e.text(), from, to, id);
    let answer = dialback::element("verify", to, from)
        .with_attr("id", id)
        .with_attr("type", if valid { "valid" } else { "invalid" });
    match st.send(&answer).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close(StreamError::new(Condition::UndefinedCondition)),
    }
}

/// A peer asks to be authenticated as `from` for our `to` (XEP-0220 §2.1).
pub(super) async fn dialback_result(
    s2s: &S2s,
    st: &mut S2sStream,
    inc: &mut Incoming,
    e: &Element,
) -> Next {
    let (Some(from), Some(to)) = (e.attr("from"), e.attr("to")) else {
        return Next::Close(StreamError::with_text(
            Condition::BadFormat,
            "db:result needs from and to",
        ));
    };
    let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
    let reply =
        |kind: &str| dialback::element("result", &to, &from).with_attr("type", kind.to_string());
    if !s2s.is_ours(&to) {
        // XEP-0220 §2.4: an error for this pair, the stream stays.
        let err = reply("error").with_child(
            Element::new("error", crate::stream::NS_CLIENT)
                .with_attr("type", "cancel")
                .with_child(Element::new("item-not-found", crate::stanza::NS_STANZAS)),
        );
        let _ = st.send(&err).await;
        return Next::Continue;
    }
    let valid = if !s2s.config.s2s.dialback || s2s.config.s2s.blocked(&from) {
        false
    } else if s2s.tls.trust.valid_for(&st.peer_certificates(), &from) {
        // XEP-0344 §2.3: the certificate already proves the domain.
        true
    } else if s2s.config.s2s.require_valid_certificates {
        false
    } else {
        connect::verify(s2s, &to, &from, &inc.id, &e.text()).await
    };
    let admitted = valid && authenticated(s2s, inc, &from, &to, "dialback");
    if valid && !admitted {
        return Next::Close(StreamError::with_text(
            Condition::PolicyViolation,
            "too many streams from your domain, or domains on this stream",
        ));
    }
    let kind = if admitted { "valid" } else { "invalid" };
    match st.send(&reply(kind)).await {
        Ok(()) if admitted => Next::Continue,
        // XEP-0220 §2.4.2 (old behaviour kept by peers): an invalid key ends the stream.
        Ok(()) => Next::Close(StreamError::new(Condition::NotAuthorized)),
        Err(_) => Next::Close(StreamError::new(Condition::UndefinedCondition)),
    }
}
