//! Message archive (XEP-0313 `urn:xmpp:mam:2`, with `#extended`) for accounts: each chat or
//! normal message an account sends or receives is archived once for it (a message between
//! two local accounts: once in each archive), and the copy delivered to (or stored offline
//! for) the recipient carries the archive's XEP-0359 `<stanza-id by=account>`, so its
//! carbons and offline copies do too. A stanza-id claiming to be by the recipient's archive
//! that the archive did not add is removed (XEP-0359 §5).
//!
//! Order of events, which is what makes the archive trustworthy: a message is archived (the
//! writer's group commit, `storage/archive_writer.rs`) before it is delivered or stored, and
//! before the sending session counts it as handled for XEP-0198, so neither a stanza-id nor
//! an `<a h>` ever names a message a crash could lose. A message the archive could not store
//! is still delivered, without a stanza-id, and the failure is logged.
//!
//! What is archived (XEP-0313 §5.1.1): messages of type chat or normal with a body, an
//! end-to-end encrypted payload (OMEMO) or a `<store/>` hint; not `<no-store/>` or
//! `<no-permanent-store/>` ones (XEP-0334), not groupchat (the room archives those once, in
//! `muc_messages`), headline or error messages, not carbon copies or archive results.
//! Preferences (§6) pick among them: `always`, `never` or `roster` by default, with lists of
//! JIDs always or never archived.

pub mod query;
pub mod retention;

use std::sync::Arc;

use jid::{BareJid, Jid};

use super::hooks::{Delivering, Flow, HookFut, Routing};
use super::{Ctx, IqHandler, OptIqFuture, Registrar, account};
use crate::router::Router;
use crate::stanza::{ErrorCondition, NS_HINTS, NS_MAM, NS_SID, iq_error, iq_result};
use crate::storage::archive::{ArchiveEntry, Mode, Owner, Prefs};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// `urn:xmpp:mam:2#extended` (XEP-0313 §8: before-id, after-id, ids, flip-page, metadata).
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";

/// End-to-end encrypted payloads archived without a body: OMEMO (XEP-0384) old and new.
const ENCRYPTED: [&str; 2] = ["eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2"];

/// Whether `m` belongs in an account's archive (see the module's header).
pub fn archivable(m: &Element) -> bool {
    matches!(m.attr("type"), None | Some("chat" | "normal")) && worth_keeping(m)
}

/// Whether message `m`, of a kind an archive keeps, is worth keeping: it has a body, an
/// encrypted payload or a `<store/>` hint, and no `<no-store/>` or `<no-permanent-store/>`
/// hint (chat states, markers and receipts alone are not). A room keeps its messages by the
/// same rule.
pub fn worth_keeping(m: &Element) -> bool {
    if m.get_child("no-store", NS_HINTS).is_some()
        || m.get_child("no-permanent-store", NS_HINTS).is_some()
    {
        return false;
    }
    m.get_child("body", NS_CLIENT).is_some()
        || m.get_child("store", NS_HINTS).is_some()
        || m.children()
            .any(|c| c.name() == "encrypted" && ENCRYPTED.contains(&c.ns()))
}

fn bare_of(attr: Option<&str>) -> Option<BareJid> {
    attr.and_then(|a| Jid::new(a).ok()).map(|j| j.to_bare())
}

/// Whether `owner`'s preferences want its messages with `with` archived.
async fn wanted(ctx: &Ctx, owner: &BareJid, with: &BareJid) -> bool {
    let (host, user) = account(owner);
    let prefs = match ctx.storage.archive.prefs(host, user).await {
        Ok(p) => p,
        Err(e) => {
            // The server's default then: archiving is what the account expects.
            tracing::error!("archive preferences of {owner}: {e}");
            None
        }
    };
    let default = Mode::parse(&ctx.config.archive.default_mode).unwrap_or(Mode::Always);
    let mode = match &prefs {
        Some(p) if p.never.iter().any(|j| j == with.as_str()) => return false,
        Some(p) if p.always.iter().any(|j| j == with.as_str()) => return true,
        Some(p) => p.default,
        None => default,
    };
    match mode {
        Mode::Always => true,
        Mode::Never => false,
        Mode::Roster => matches!(
            ctx.storage.rosters.item(host, user, with.as_str()).await,
            Ok(Some(_))
        ),
    }
}

/// Whether `m` is an instant message, for the inbox: one with a body or an encrypted payload
/// (not only a `<store/>` hint).
fn instant(m: &Element) -> bool {
    m.get_child("body", NS_CLIENT).is_some()
        || m.children()
            .any(|c| c.name() == "encrypted" && ENCRYPTED.contains(&c.ns()))
}

/// `m` (serialised as `xml`) as an entry of `owner`'s archive; `inbox`: it counts in the
/// owner's inbox.
fn entry(owner: &BareJid, with: &BareJid, outgoing: bool, xml: &str, inbox: bool) -> ArchiveEntry {
    let (host, user) = account(owner);
    ArchiveEntry {
        host: host.to_string(),
        user: user.to_string(),
        id: 0,
        with: with.to_string(),
        ts_ms: crate::storage::now_ms(),
        outgoing,
        xml: xml.to_string(),
        inbox,
    }
}

/// Writes `entries` (one commit); whether they are stored.
async fn archive(ctx: &Ctx, entries: &mut [ArchiveEntry]) -> bool {
    match ctx.storage.archive.append(entries).await {
        Ok(()) => true,
        Err(e) => {
            let owner = &entries[0];
            tracing::error!(host = %owner.host, user = %owner.user, "message not archived: {e}");
            false
        }
    }
}

/// Whether `j` is an account of this server.
fn local_account(router: &Router, j: &BareJid) -> bool {
    j.node().is_some() && router.is_local(j.domain().as_str())
}

/// A message a local account sends to anyone but a local account (a room's occupant, later
/// a remote contact): archived for the sender before it is routed. One to a local account is
/// archived for both sides at once when it is delivered ([`incoming`]): one commit, not two.
fn outgoing<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Routing) -> HookFut<'a> {
    Box::pin(async move {
        let m = &e.stanza;
        if m.name() != "message" || Router::rerouted() || !archivable(m) {
            return Flow::Next;
        }
        let (Some(from), Some(to)) = (bare_of(m.attr("from")), bare_of(m.attr("to"))) else {
            return Flow::Next;
        };
        // To a person or a room's occupant only: not to a server or service domain.
        if !local_account(router, &from) || local_account(router, &to) || to.node().is_none() {
            return Flow::Next;
        }
        if wanted(ctx, &from, &to).await {
            archive(
                ctx,
                &mut [entry(
                    &from,
                    &to,
                    true,
                    &m.to_string_in(NS_CLIENT),
                    ctx.config.archive.inbox && instant(m),
                )],
            )
            .await;
        }
        Flow::Next
    })
}

/// A message about to be delivered to (or stored for) a local account: archived for it (and
/// for its sender, when that is a local account too) and stamped with the archive's id.
fn incoming<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Delivering) -> HookFut<'a> {
    Box::pin(async move {
        if e.stanza.name() != "message" || Router::rerouted() {
            return Flow::Next;
        }
        let to = e.to.as_str();
        e.stanza
            .retain_children(|c| !(c.is("stanza-id", NS_SID) && c.attr("by") == Some(to)));
        if !archivable(&e.stanza) {
            return Flow::Next;
        }
        let Some(from) = bare_of(e.stanza.attr("from")) else {
            return Flow::Next;
        };
        // A message to oneself is archived once, as received.
        let sender =
            local_account(router, &from) && from != e.to && wanted(ctx, &from, &e.to).await;
        let recipient = wanted(ctx, &e.to, &from).await;
        if !sender && !recipient {
            return Flow::Next;
        }
        let xml = e.stanza.to_string_in(NS_CLIENT);
        let inbox = ctx.config.archive.inbox && instant(&e.stanza);
        let mut entries = Vec::with_capacity(2);
        if recipient {
            entries.push(entry(&e.to, &from, false, &xml, inbox));
        }
        if sender {
            entries.push(entry(&from, &e.to, true, &xml, inbox));
        }
        if archive(ctx, &mut entries).await && recipient {
            e.stanza.append_child(
                Element::new("stanza-id", NS_SID)
                    .with_attr("id", entries[0].id.to_string())
                    .with_attr("by", e.to.to_string()),
            );
        }
        Flow::Next
    })
}

/// `<prefs/>` as stored (or the server's default).
fn prefs_element(p: &Prefs) -> Element {
    let list = |name: &str, jids: &[String]| {
        let mut l = Element::new(name, NS_MAM);
        for j in jids {
            l.append_child(Element::new("jid", NS_MAM).with_text(j.clone()));
        }
        l
    };
    Element::new("prefs", NS_MAM)
        .with_attr("default", p.default.as_str())
        .with_child(list("always", &p.always))
        .with_child(list("never", &p.never))
}

/// Reads a `<prefs/>` to set: its default and its lists, as normalised bare JIDs.
fn parse_prefs(el: &Element, max_jids: usize) -> Result<Prefs, ErrorCondition> {
    let default = el
        .attr("default")
        .and_then(Mode::parse)
        .ok_or(ErrorCondition::BadRequest)?;
    let list = |name: &str| -> Result<Vec<String>, ErrorCondition> {
        let mut v: Vec<String> = Vec::new();
        for j in el
            .get_child(name, NS_MAM)
            .into_iter()
            .flat_map(|l| l.children())
        {
            let bare = Jid::new(j.text().trim()).map_err(|_| ErrorCondition::JidMalformed)?;
            let s = bare.to_bare().to_string();
            if !v.contains(&s) {
                v.push(s);
            }
        }
        Ok(v)
    };
    let (always, never) = (list("always")?, list("never")?);
    if always.len() + never.len() > max_jids {
        return Err(ErrorCondition::PolicyViolation);
    }
    Ok(Prefs {
        default,
        always,
        never,
    })
}

struct Mam;

impl Mam {
    async fn prefs(&self, ctx: &Ctx, me: &BareJid, iq: &Element, el: &Element) -> Element {
        let (host, user) = account(me);
        if iq.attr("type") == Some("set") {
            let p = match parse_prefs(el, ctx.config.archive.max_prefs_jids) {
                Ok(p) => p,
                Err(c) => return iq_error(iq, c, None),
            };
            return match ctx.storage.archive.set_prefs(host, user, &p).await {
                Ok(()) => iq_result(iq).with_child(prefs_element(&p)),
                Err(e) => {
                    tracing::error!("archive preferences of {me}: {e}");
                    iq_error(iq, ErrorCondition::InternalServerError, None)
                }
            };
        }
        match ctx.storage.archive.prefs(host, user).await {
            Ok(p) => {
                let p = p.unwrap_or(Prefs {
                    default: Mode::parse(&ctx.config.archive.default_mode).unwrap_or(Mode::Always),
                    always: Vec::new(),
                    never: Vec::new(),
                });
                iq_result(iq).with_child(prefs_element(&p))
            }
            Err(e) => {
                tracing::error!("archive preferences of {me}: {e}");
                iq_error(iq, ErrorCondition::InternalServerError, None)
            }
        }
    }
}

impl IqHandler for Mam {
    fn handle<'a>(
        &'a self,
        ctx: &'a Ctx,
        router: &'a Router,
        iq: &'a Element,
    ) -> super::IqFuture<'a> {
        Box::pin(async move {
            match self.handle_opt(ctx, router, iq).await {
                Some(r) => r,
                None => iq_result(iq),
            }
        })
    }

    fn handle_opt<'a>(
        &'a self,
        ctx: &'a Ctx,
        router: &'a Router,
        iq: &'a Element,
    ) -> OptIqFuture<'a> {
        Box::pin(async move {
            // One's own archive only (XEP-0313 §4: the archive is the account's).
            let (me, el) = match super::own_request(iq) {
                Ok(r) => r,
                Err(reply) => return Some(reply),
            };
            let (host, user) = account(&me);
            let kind = iq.attr("type");
            Some(match (el.name(), kind) {
                ("prefs", _) => self.prefs(ctx, &me, iq, el).await,
                ("metadata", Some("get")) => {
                    query::metadata(&ctx.storage, Owner::Account(host, user), iq).await
                }
                ("query", Some("get")) => query::fields(iq),
                ("query", Some("set")) => {
                    let owner = Owner::Account(host, user);
                    match query::run(&ctx.storage, &ctx.config.archive, owner, None, iq).await {
                        Ok(batch) => {
                            query::deliver(router, iq, batch);
                            return None;
                        }
                        Err(reply) => reply,
                    }
                }
                _ => iq_error(iq, ErrorCondition::FeatureNotImplemented, None),
            })
        })
    }
}

/// Registers the archive: its iq handler, features and hooks (after blocking has filtered).
pub fn register(r: &mut Registrar) {
    r.iq(NS_MAM, Arc::new(Mam));
    r.feature(NS_MAM);
    r.feature(NS_EXTENDED);
    r.feature(NS_SID);
    r.hooks.routing.add(0, "archive", outgoing);
    r.hooks.delivering.add(0, "archive", incoming);
}
