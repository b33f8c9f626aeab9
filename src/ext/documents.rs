//! Per-user XML documents: XEP-0054 vcard-temp (readable by anyone, written by the owner) and
//! XEP-0049 Private XML Storage (owner only), both bounded by `im.max_document_size`.

use std::sync::Arc;

use jid::{BareJid, Jid};

use super::pep::bookmarks;
use super::{Ctx, IqFuture, IqHandler, Registrar, account, sender};
use crate::router::Router;
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::xml::{Element, Limits, parse_fragment};

/// `vcard-temp`
pub const NS_VCARD: &str = "vcard-temp";
/// `jabber:iq:private`
pub const NS_PRIVATE: &str = "jabber:iq:private";

/// The account an iq is about (`to`, or the sender's own when absent) and whether it is the
/// sender's own.
fn target(iq: &Element) -> Option<(BareJid, bool)> {
    let me = sender(iq)?.to_bare();
    match iq.attr("to") {
        None => Some((me, true)),
        Some(t) => {
            let t = Jid::new(t).ok()?.to_bare();
            let own = t == me;
            Some((t, own))
        }
    }
}

struct VCard;

impl IqHandler for VCard {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some((who, own)) = target(iq) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            let (host, user) = account(&who);
            let Some(card) = iq.get_child("vCard", NS_VCARD) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            match iq.attr("type") {
                Some("get") => match ctx.storage.documents.get(host, user, "vcard", "").await {
                    Ok(Some(xml)) => match parse_fragment(&xml, Limits::stored()) {
                        Ok(el) => iq_result(iq).with_child(el),
                        Err(e) => {
                            tracing::error!("stored vCard of {who}: {e}");
                            iq_error(iq, ErrorCondition::InternalServerError, None)
                        }
                    },
                    // XEP-0054 §3.1: no vCard is an empty one.
                    Ok(None) => iq_result(iq).with_child(Element::new("vCard", NS_VCARD)),
                    Err(_) => iq_error(iq, ErrorCondition::InternalServerError, None),
                },
                Some("set") if own => {
                    let reply = store(ctx, iq, host, user, "vcard", "", card).await;
                    // Its photo becomes the PEP avatar too (XEP-0398).
                    if ctx.config.pep.enabled && reply.attr("type") == Some("result") {
                        super::pep::avatar::vcard_set(ctx, router, &who, card).await;
                    }
                    reply
                }
                Some("set") => iq_error(iq, ErrorCondition::Forbidden, None),
                _ => iq_error(iq, ErrorCondition::BadRequest, None),
            }
        })
    }
}

async fn store(
    ctx: &Ctx,
    iq: &Element,
    host: &str,
    user: &str,
    kind: &str,
    key: &str,
    doc: &Element,
) -> Element {
    let xml = doc.to_string_in("");
    if xml.len() > ctx.config.im.max_document_size {
        return iq_error(
            iq,
            ErrorCondition::NotAcceptable,
            Some("the document is too large"),
        );
    }
    match ctx.storage.documents.set(host, user, kind, key, &xml).await {
        Ok(()) => iq_result(iq),
        Err(_) => iq_error(iq, ErrorCondition::InternalServerError, None),
    }
}

struct Private;

impl IqHandler for Private {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some((who, own)) = target(iq) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            if !own {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            let (host, user) = account(&who);
            let Some(query) = iq.get_child("query", NS_PRIVATE) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            // Exactly one child, in a namespace of its own (XEP-0049 §3: not `jabber:*`).
            let mut children = query.children();
            let (Some(doc), None) = (children.next(), children.next()) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            if doc.ns().is_empty() || doc.ns().starts_with("jabber:") {
                return iq_error(iq, ErrorCondition::NotAcceptable, None);
            }
            match iq.attr("type") {
                Some("get") => {
                    let stored = match ctx
                        .storage
                        .documents
                        .get(host, user, "private", doc.ns())
                        .await
                    {
                        Ok(x) => x,
                        Err(_) => return iq_error(iq, ErrorCondition::InternalServerError, None),
                    };
                    let el = match stored.map(|x| parse_fragment(&x, Limits::stored())) {
                        Some(Ok(el)) => el,
                        // Bookmarks never written here: those of PEP (XEP-0411).
                        None if doc.is("storage", bookmarks::LEGACY) && ctx.config.pep.enabled => {
                            bookmarks::legacy_view(ctx, &who)
                                .await
                                .unwrap_or_else(|| Element::new("storage", bookmarks::LEGACY))
                        }
                        None => Element::new(doc.name(), doc.namespace().clone()),
                        Some(Err(e)) => {
                            tracing::error!("stored private XML {} of {who}: {e}", doc.ns());
                            return iq_error(iq, ErrorCondition::InternalServerError, None);
                        }
                    };
                    iq_result(iq).with_child(Element::new("query", NS_PRIVATE).with_child(el))
                }
                Some("set") => {
                    // A new namespace counts against im.max_private_namespaces (each document is
                    // bounded by im.max_document_size, so the account's total is too).
                    let keys = match ctx.storage.documents.keys(host, user, "private").await {
                        Ok(k) => k,
                        Err(_) => return iq_error(iq, ErrorCondition::InternalServerError, None),
                    };
                    if keys.len() >= ctx.config.im.max_private_namespaces
                        && !keys.iter().any(|k| k == doc.ns())
                    {
                        return iq_error(
                            iq,
                            ErrorCondition::ResourceConstraint,
                            Some("too many private XML namespaces"),
                        );
                    }
                    let reply = store(ctx, iq, host, user, "private", doc.ns(), doc).await;
                    // Bookmarks written here reach PEP too (XEP-0411, XEP-0402 #compat).
                    if ctx.config.pep.enabled
                        && doc.is("storage", bookmarks::LEGACY)
                        && reply.attr("type") == Some("result")
                    {
                        bookmarks::legacy_set(ctx, router, &who, doc, false).await;
                    }
                    reply
                }
                _ => iq_error(iq, ErrorCondition::BadRequest, None),
            }
        })
    }
}

/// Registers both handlers and their features.
pub fn register(r: &mut Registrar) {
    r.iq(NS_VCARD, Arc::new(VCard));
    r.feature(NS_VCARD);
    r.iq(NS_PRIVATE, Arc::new(Private));
    r.feature(NS_PRIVATE);
}
