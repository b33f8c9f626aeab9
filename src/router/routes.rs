//! The route table: where stanzas for a domain go. A served host's accounts are routed by the
//! RFC 6121 rules (`router/mod.rs`); a service domain (`upload.<host>` today, `conference.<host>`
//! next) goes to the service that registered it; any other domain is remote (federation is to
//! plug in here; until then its stanzas come back with `remote-server-not-found`).
//!
//! A service is an actor of its own: it answers what is addressed to its domain (or to an
//! entity at it, such as a room) and sends through [`Router::route`] like anyone else.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{HookFuture, Router};
use crate::xml::Element;

/// A service with a domain of its own (XEP-0114-like, inside the server).
pub trait Service: Send + Sync {
    /// A stanza addressed to the service's domain or to an entity at it; `from` is stamped.
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> HookFuture<'a>;

    /// What disco#items on the host lists for it (`name`).
    fn name(&self) -> &str;
}

/// Another server's domains (federation): where stanzas to them are handed over.
pub trait Remote: Send + Sync {
    /// Sends `stanza` (its `from` one of ours, its `to` remote) to the remote server, or
    /// bounces it to its sender.
    fn send(&self, router: &Router, stanza: Element);
}

/// Where a domain's stanzas go.
pub enum Route {
    /// A served host: its accounts and the server itself.
    Local,
    /// A service domain.
    Service(Arc<dyn Service>),
    /// Another server.
    Remote,
}

/// The services by domain.
#[derive(Default)]
pub struct Routes {
    services: RwLock<HashMap<String, Arc<dyn Service>>>,
}

impl Routes {
    /// Adds (or replaces) the service of `domain`.
    pub fn add(&self, domain: &str, service: Arc<dyn Service>) {
        self.services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), service);
    }

    /// The service of `domain`, if any.
    pub fn service(&self, domain: &str) -> Option<Arc<dyn Service>> {
        self.services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
            .cloned()
    }

    /// The service domains that are subdomains of `host`, with their names, sorted.
    pub fn under(&self, host: &str) -> Vec<(String, String)> {
        let suffix = format!(".{host}");
        let mut v: Vec<(String, String)> = self
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(d, _)| d.ends_with(&suffix))
            .map(|(d, s)| (d.clone(), s.name().to_string()))
            .collect();
        v.sort();
        v
    }
}
