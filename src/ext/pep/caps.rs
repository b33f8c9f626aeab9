//! Entity capabilities (XEP-0115) as PEP needs them: a client's presence carries
//! `<c hash node ver/>`, `ver` being the hash of its disco#info; the features ending in
//! `+notify` (XEP-0163 §4) say which nodes' notifications it wants. The server asks the client
//! once per unknown `ver` (disco#info on `node#ver`), checks the answer against the hash
//! (§5.1, SHA-1 or SHA-256) and keeps the verified feature list for every client that shows
//! the same `ver`; an answer that does not match is not kept. Only the `+notify` features are
//! kept (at most `MAX_INTERESTS` per hash, each at most `MAX_FEATURE` bytes), and at most
//! `pep.caps_cache` hashes (past it the cache starts over): a client that makes up hashes
//! cannot make the server hold more than that. One question at a time per session; asking
//! is also bounded by the router's requests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha1::Digest;

use crate::router::Router;
use crate::stanza::form;
use crate::xml::Element;

/// `http://jabber.org/protocol/caps`
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
const NS_INFO: &str = crate::ext::disco::NS_INFO;

/// The `+notify` features of a `ver`, verified.
pub type Features = Arc<HashSet<String>>;

/// `+notify` features kept per hash, at most.
pub const MAX_INTERESTS: usize = 256;
/// Bytes of one feature kept, at most (longer ones are not kept).
pub const MAX_FEATURE: usize = 1024;

/// The verified hashes, and those being asked about.
pub struct Caps {
    known: Mutex<HashMap<String, Features>>,
    asking: Mutex<HashSet<String>>,
    /// Sessions being asked now (one question at a time each).
    sessions: Mutex<HashSet<jid::FullJid>>,
    max: usize,
    timeout: Duration,
}

/// `(hash, node, ver)` of a presence's `<c/>`.
pub fn of(presence: &Element) -> Option<(String, String, String)> {
    let c = presence.get_child("c", NS_CAPS)?;
    Some((
        c.attr("hash")?.to_string(),
        c.attr("node")?.to_string(),
        c.attr("ver")?.to_string(),
    ))
}

impl Caps {
    /// A cache of at most `max` hashes; clients get `timeout` to answer.
    pub fn new(max: usize, timeout: Duration) -> Caps {
        Caps {
            known: Mutex::new(HashMap::new()),
            asking: Mutex::new(HashSet::new()),
            sessions: Mutex::new(HashSet::new()),
            max,
            timeout,
        }
    }

    /// The verified features of the client whose presence this is, if known.
    pub fn features(&self, presence: &Element) -> Option<Features> {
        let (_, _, ver) = of(presence)?;
        self.known.lock().ok()?.get(&ver).cloned()
    }

    /// Whether the client whose presence this is wants notifications of `node`.
    pub fn wants(&self, presence: &Element, node: &str) -> bool {
        self.features(presence)
            .is_some_and(|f| f.contains(&format!("{node}+notify")))
    }

    /// Makes sure the `ver` of `presence` (sent by `full`: a local session, or a client on
    /// another server) is known: asks the client when it is not (once at a time per `ver`).
    /// Returns the features once known.
    pub async fn learn(
        &self,
        router: &Router,
        host: &str,
        full: &jid::FullJid,
        presence: &Element,
    ) -> Option<Features> {
        let (hash, node, ver) = of(presence)?;
        if let Some(f) = self.known.lock().ok()?.get(&ver) {
            return Some(f.clone());
        }
        if !self.asking.lock().ok()?.insert(ver.clone()) {
            // Another session of the same client is being asked: wait for its answer.
            return self.answer_of(&ver).await;
        }
        let first = self.sessions.lock().ok()?.insert(full.clone());
        let found = match first {
            true => {
                let f = self.ask(router, host, full, &hash, &node, &ver).await;
                if let Ok(mut s) = self.sessions.lock() {
                    s.remove(full);
                }
                f
            }
            // This session is answering another question: this one waits for its next presence.
            false => None,
        };
        if let Ok(mut a) = self.asking.lock() {
            a.remove(&ver);
        }
        let features = Arc::new(found?);
        let mut known = self.known.lock().ok()?;
        if known.len() >= self.max {
            known.clear();
        }
        known.insert(ver, features.clone());
        Some(features)
    }

    /// The features of `ver` once the question in flight about it is answered (or given up).
    async fn answer_of(&self, ver: &str) -> Option<Features> {
        let start = tokio::time::Instant::now();
        while start.elapsed() < self.timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(f) = self.known.lock().ok()?.get(ver) {
                return Some(f.clone());
            }
            if !self.asking.lock().ok()?.contains(ver) {
                return None;
            }
        }
        None
    }

    /// Asks `full` for disco#info on `node#ver`; its features if the answer has hash `ver`.
    async fn ask(
        &self,
        router: &Router,
        host: &str,
        full: &jid::FullJid,
        hash: &str,
        node: &str,
        ver: &str,
    ) -> Option<HashSet<String>> {
        let to = full.to_string();
        let local = router.is_local(full.domain().as_str());
        if local && router.registry.get(full).is_none() {
            return None;
        }
        let requests = &router.requests;
        let (id, rx) = requests.open(&to)?;
        let iq = Element::new("iq", crate::stream::NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.clone())
            .with_attr("from", host)
            .with_attr("to", to)
            .with_child(Element::new("query", NS_INFO).with_attr("node", format!("{node}#{ver}")));
        // To the session, or through federation to the client's server.
        router.send_to_session(iq);
        let answer = requests.wait(&id, rx, self.timeout).await?;
        let query = answer.get_child("query", NS_INFO)?;
        if verification_hash(query, hash)? != ver {
            tracing::debug!(%full, "entity capabilities that do not match their hash");
            return None;
        }
        Some(
            query
                .children()
                .filter(|c| c.name() == "feature")
                .filter_map(|c| c.attr("var"))
                .filter(|f| f.ends_with("+notify") && f.len() <= MAX_FEATURE)
                .take(MAX_INTERESTS)
                .map(str::to_string)
                .collect(),
        )
    }
}

/// XEP-0115 §5.1: the verification string of a disco#info answer, hashed with `hash`
/// (`sha-1` or `sha-256`) and in base64; `None` for another hash or an answer that §5.4 says
/// not to accept (a repeated identity or feature, a form without FORM_TYPE).
pub fn verification_hash(query: &Element, hash: &str) -> Option<String> {
    let mut identities: Vec<String> = query
        .children()
        .filter(|c| c.name() == "identity")
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.attr("category").unwrap_or_default(),
                i.attr("type").unwrap_or_default(),
                i.attr("xml:lang").unwrap_or_default(),
                i.attr("name").unwrap_or_default()
            )
        })
        .collect();
    let mut features: Vec<&str> = query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    let (ni, nf) = (identities.len(), features.len());
    identities.sort();
    identities.dedup();
    features.sort_unstable();
    features.dedup();
    if identities.len() != ni || features.len() != nf {
        return None;
    }
    let mut s = String::new();
    for i in &identities {
        s.push_str(i);
        s.push('<');
    }
    for f in &features {
        s.push_str(f);
        s.push('<');
    }
    let mut forms: Vec<(String, &Element)> = Vec::new();
    for x in query.children().filter(|c| c.is("x", form::NS)) {
        forms.push((form::form_type(x)?, x));
    }
    forms.sort_by(|a, b| a.0.cmp(&b.0));
    for (kind, x) in forms {
        s.push_str(&kind);
        s.push('<');
        let mut fields: Vec<(&str, Vec<String>)> = x
            .children()
            .filter(|f| f.is("field", form::NS) && f.attr("var") != Some("FORM_TYPE"))
            .map(|f| {
                let mut v: Vec<String> = f
                    .children()
                    .filter(|v| v.is("value", form::NS))
                    .map(Element::text)
                    .collect();
                v.sort();
                (f.attr("var").unwrap_or_default(), v)
            })
            .collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (var, values) in fields {
            s.push_str(var);
            s.push('<');
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    let digest = match hash {
        "sha-1" => sha1::Sha1::digest(s.as_bytes()).to_vec(),
        "sha-256" => sha2::Sha256::digest(s.as_bytes()).to_vec(),
        _ => return None,
    };
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse_fragment};

    #[test]
    fn the_simple_example_of_xep_0115() {
        // XEP-0115 §5.2.
        let q = parse_fragment(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='client' name='Exodus 0.9.1' type='pc'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/muc'/></query>",
            Limits::stored(),
        )
        .unwrap();
        assert_eq!(
            verification_hash(&q, "sha-1").as_deref(),
            Some("QgayPKawpkPSDYmwT/WM94uAlu0=")
        );
    }

    #[test]
    fn the_complex_example_of_xep_0115() {
        // XEP-0115 §5.3, with an extended form.
        let q = parse_fragment(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
             <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/muc'/>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
             <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
             <field var='os'><value>Mac</value></field>\
             <field var='os_version'><value>10.5.1</value></field>\
             <field var='software'><value>Psi</value></field>\
             <field var='software_version'><value>0.11</value></field></x></query>",
            Limits::stored(),
        )
        .unwrap();
        assert_eq!(
            verification_hash(&q, "sha-1").as_deref(),
            Some("q07IKJEyjvHSyhy//CH0CxmKi8w=")
        );
    }
}
