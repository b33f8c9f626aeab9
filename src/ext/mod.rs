//! Extensions: one module per feature, registered with the [`Registrar`], which the router
//! calls for stanzas addressed to the server (or iqs to an account's bare JID).
//!
//! An extension declares the iq payload namespaces it answers and the disco features it
//! provides; the registrar answers everything else with `service-unavailable` (RFC 6120 §8.4).

pub mod disco;
pub mod ping;

use std::collections::HashMap;
use std::sync::Arc;

use crate::router::{HandlerFuture, LocalHandler, Router};
use crate::stanza::{ErrorCondition, error_reply, is_error};
use crate::xml::Element;

/// An iq handler for one payload namespace.
pub trait IqHandler: Send + Sync {
    /// Answers `iq` (type get or set, with `from` and `to` stamped); returns the reply.
    fn handle<'a>(&'a self, router: &'a Router, iq: &'a Element) -> IqFuture<'a>;
}

/// What an iq handler returns: the reply to send (a result or an error).
pub type IqFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Element> + Send + 'a>>;

/// The table of extensions.
#[derive(Default)]
pub struct Registrar {
    iq: HashMap<String, Arc<dyn IqHandler>>,
    features: Vec<String>,
}

impl Registrar {
    /// The extensions this build enables.
    pub fn with_defaults() -> Self {
        let mut r = Registrar::default();
        ping::register(&mut r);
        disco::register(&mut r);
        r
    }

    /// Registers an iq handler for payloads in `ns`.
    pub fn iq(&mut self, ns: &str, h: Arc<dyn IqHandler>) {
        self.iq.insert(ns.to_string(), h);
    }

    /// Advertises a disco#info feature.
    pub fn feature(&mut self, var: &str) {
        if !self.features.iter().any(|f| f == var) {
            self.features.push(var.to_string());
        }
    }

    /// The advertised features, sorted.
    pub fn features(&self) -> Vec<String> {
        let mut f = self.features.clone();
        f.sort();
        f
    }
}

/// The registrar, shared, answering as the router's local handler.
pub struct Extensions(pub Arc<Registrar>);

impl LocalHandler for Extensions {
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> HandlerFuture<'a> {
        Box::pin(async move {
            if stanza.name() != "iq" {
                // Messages to the server itself: nothing handles them yet (RFC 6121 §8.5.1).
                if stanza.name() == "message" {
                    router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
                }
                return;
            }
            if is_error(&stanza) || stanza.attr("type") == Some("result") {
                return;
            }
            let handler = stanza.children().next().and_then(|p| self.0.iq.get(p.ns()));
            let reply = match handler {
                Some(h) => h.handle(router, &stanza).await,
                None => match error_reply(&stanza, ErrorCondition::ServiceUnavailable, None) {
                    Some(r) => r,
                    None => return,
                },
            };
            router.route(reply).await;
        })
    }
}
