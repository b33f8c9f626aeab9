//! The inbox (XEP-0430 `urn:xmpp:inbox:1`): a client asks its account for the list of its
//! conversations (contacts and rooms), the most recently active first, each with its unread
//! count and newest message, instead of syncing the whole archive to draw its chat list.
//!
//! How the counts are kept (storage: `storage/inbox.rs`): the archive's commits keep a
//! contact's conversation (a received message is unread, a sent one reads what came before);
//! a chat marker (XEP-0333 `displayed` or `acknowledged`) from any of the account's devices
//! reads the marked message and all before it, wherever it is in the conversation; a room is
//! counted from the room's own archive when asked (read diffusion), from the message the
//! account last read through (it joined, spoke or marked one). Message receipts (XEP-0184)
//! read nothing (XEP-0430 §4).
//!
//! The query: `<iq type='get'><inbox xmlns='urn:xmpp:inbox:1'/></iq>` with `unread-only`,
//! `messages` and an RSM `<set/>` (`max`, `after`/`before` a conversation's JID). Answer: one
//! message per conversation holding `<entry unread jid id/>` and, unless `messages='false'`,
//! the newest message as an archive `<result/>`; then the iq result with
//! `<fin total unread all-unread>` and the RSM `<set/>`. Also `<iq type='set'><reset
//! xmlns='urn:xmpp:inbox:1' jid='…'/></iq>`: the conversation is read (MongooseIM's reset).

use std::sync::Arc;

use jid::{BareJid, Jid};

use super::archive::query;
use super::hooks::{Flow, HookFut, Routing};
use super::{Ctx, IqHandler, OptIqFuture, Registrar, account};
use crate::router::{Route, Router};
use crate::session::Batch;
use crate::stanza::{ErrorCondition, iq_error, iq_result, rsm};
use crate::storage::archive::{ArchiveQuery, Archived, Owner, Page};
use crate::storage::inbox::{Conversation, RoomMark};
use crate::xml::Element;

/// `urn:xmpp:inbox:1`
pub const NS: &str = "urn:xmpp:inbox:1";
/// `urn:xmpp:chat-markers:0` (XEP-0333)
pub const NS_MARKERS: &str = "urn:xmpp:chat-markers:0";

/// Messages of a conversation a marker is looked for among, per read.
const SCAN_STEP: usize = 50;

fn bare_of(attr: Option<&str>) -> Option<BareJid> {
    attr.and_then(|a| Jid::new(a).ok()).map(|j| j.to_bare())
}

/// Whether `m` (a message received, as archived) is the one `marked` names: by its `id`, its
/// XEP-0359 origin id, or its id in the account's archive.
fn names(marked: &str, id: i64, xml: &str) -> bool {
    if id.to_string() == marked {
        return true;
    }
    // Cheap first: only a message whose text holds the id is parsed.
    if !xml.contains(marked) {
        return false;
    }
    let Ok(m) = crate::xml::parse_fragment(xml, crate::xml::Limits::stored()) else {
        return false;
    };
    m.attr("id") == Some(marked)
        || m.children()
            .any(|c| c.is("origin-id", crate::stanza::NS_SID) && c.attr("id") == Some(marked))
}

/// `me` marked message `marked` of its conversation with `with` displayed: what was received
/// after it stays unread. Looked for among the newest unread messages (`archive.inbox_scan`
/// at most): one further back was read already.
async fn marker(ctx: &Ctx, me: &BareJid, with: &BareJid, marked: &str) {
    let (host, user) = account(me);
    let store = &ctx.storage.archive;
    let scan = ctx.config.archive.inbox_scan;
    // Twice at most: a message arriving meanwhile moves the conversation on.
    for _ in 0..2 {
        let mut before = None;
        let mut seen = 0usize;
        let mut found = None;
        let mut state = None;
        while seen < scan {
            let step = SCAN_STEP.min(scan - seen);
            let got = match store
                .inbox_received(host, user, with.as_str(), before, step)
                .await
            {
                Ok(Some(g)) => g,
                Ok(None) => return,
                Err(e) => return tracing::error!("inbox of {me}: {e}"),
            };
            let (unread, last, rows) = got;
            state.get_or_insert((unread, last));
            let Some((unread, _)) = state else { return };
            if let Some(k) = rows.iter().position(|r| names(marked, r.id, &r.xml)) {
                found = Some((seen + k) as u64);
                break;
            }
            seen += rows.len();
            if rows.len() < step || seen as u64 >= unread {
                break;
            }
            before = rows.last().map(|r| r.id);
        }
        let (Some(k), Some((unread, last))) = (found, state) else {
            return;
        };
        if k >= unread {
            return;
        }
        match store
            .inbox_set_unread(host, user, with.as_str(), k, last)
            .await
        {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => return tracing::error!("inbox of {me}: {e}"),
        }
    }
}

/// What a local account sends that reads a conversation: a chat marker, a join.
fn on_routing<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Routing) -> HookFut<'a> {
    Box::pin(async move {
        let s = &e.stanza;
        // Cheap tests first: most stanzas (chat messages, presence) are none of these.
        let mark = s
            .children()
            .find(|c| c.ns() == NS_MARKERS && matches!(c.name(), "displayed" | "acknowledged"))
            .and_then(|m| m.attr("id"));
        let relevant = match s.name() {
            "message" => mark.is_some(),
            "presence" => s.attr("type").is_none() && s.get_child("x", super::muc::NS).is_some(),
            _ => false,
        };
        if !relevant || Router::rerouted() {
            return Flow::Next;
        }
        let (Some(from), Some(to)) = (bare_of(s.attr("from")), s.attr("to")) else {
            return Flow::Next;
        };
        let Ok(to) = Jid::new(to) else {
            return Flow::Next;
        };
        if from.node().is_none() || !router.is_local(from.domain().as_str()) {
            return Flow::Next;
        }
        let room = matches!(router.route_of(to.domain().as_str()), Route::Service(_));
        let bare = to.to_bare();
        let (host, user) = account(&from);
        let store = &ctx.storage.archive;
        let r = match (s.name(), s.attr("type")) {
            ("presence", None) if room && to.resource().is_some() => {
                store
                    .inbox_room(host, user, bare.as_str(), &RoomMark::Joined)
                    .await
            }
            ("message", Some("groupchat")) if room && to.resource().is_none() => {
                // (Speaking reads the room too: the room records that when it stores the
                // message, `muc::chat`.)
                let Some(id) = mark else {
                    return Flow::Next;
                };
                let m = RoomMark::ReadThrough(id.to_string());
                store.inbox_room(host, user, bare.as_str(), &m).await
            }
            ("message", _) if !room && bare.node().is_some() => {
                if let Some(id) = mark {
                    marker(ctx, &from, &bare, id).await;
                }
                return Flow::Next;
            }
            _ => return Flow::Next,
        };
        if let Err(e) = r {
            tracing::error!("inbox of {from}: {e}");
        }
        Flow::Next
    })
}

/// The newest message of each conversation of `page` (those the archive still holds).
async fn newest(ctx: &Ctx, me: &BareJid, page: &[Conversation]) -> Vec<Option<Archived>> {
    let (host, user) = account(me);
    let mut ids: Vec<String> = page
        .iter()
        .filter(|c| !c.room)
        .filter_map(|c| c.last.clone())
        .collect();
    ids.sort();
    let mut q = ArchiveQuery::page(Page::After(None), ids.len().max(1));
    q.ids = ids;
    let mine = match q.ids.is_empty() {
        true => Vec::new(),
        false => match ctx
            .storage
            .archive
            .query(Owner::Account(host, user), &q)
            .await
        {
            Ok(Some(p)) => p.items,
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!("inbox of {me}: {e}");
                Vec::new()
            }
        },
    };
    let mut out = Vec::with_capacity(page.len());
    for c in page {
        if c.room {
            out.push(
                match ctx.storage.archive.bounds(Owner::Room(&c.jid)).await {
                    Ok(b) => b.map(|(_, last)| last),
                    Err(e) => {
                        tracing::error!("inbox of {me}: room {}: {e}", c.jid);
                        None
                    }
                },
            );
        } else {
            let last = c.last.as_deref();
            out.push(
                mine.iter()
                    .find(|m| Some(m.stanza_id.as_str()) == last)
                    .cloned(),
            );
        }
    }
    out
}

/// The page of `all` an RSM request asks for (after or before a conversation's JID).
fn page_of<'c>(
    all: &'c [Conversation],
    set: &Option<rsm::Request>,
    max: usize,
) -> (&'c [Conversation], usize) {
    let pos = |j: &str| all.iter().position(|c| c.jid == j);
    let max = set.as_ref().and_then(|s| s.max).unwrap_or(max).min(max);
    match set
        .as_ref()
        .map(|s| (s.after.as_deref(), s.before.as_deref()))
    {
        Some((_, Some(b))) => {
            let end = if b.is_empty() {
                all.len()
            } else {
                pos(b).unwrap_or(0)
            };
            let start = end.saturating_sub(max);
            (&all[start..end], start)
        }
        Some((Some(a), None)) => {
            let start = pos(a).map_or(all.len(), |i| i + 1);
            (&all[start..(start + max).min(all.len())], start)
        }
        _ => (&all[..max.min(all.len())], 0),
    }
}

struct Inbox;

impl Inbox {
    async fn list(
        &self,
        ctx: &Ctx,
        me: &BareJid,
        iq: &Element,
        el: &Element,
    ) -> Result<Batch, Element> {
        let cfg = &ctx.config.archive;
        let flag = |name: &str, default: bool| match el.attr(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(_) => Err(iq_error(iq, ErrorCondition::BadRequest, None)),
        };
        let (unread_only, messages) = (flag("unread-only", false)?, flag("messages", true)?);
        let set = rsm::request(el).map_err(|c| iq_error(iq, c, None))?;
        let (host, user) = account(me);
        let mut all = match ctx
            .storage
            .archive
            .inbox(host, user, cfg.inbox_conversations, cfg.inbox_scan as u64)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("inbox of {me}: {e}");
                return Err(iq_error(iq, ErrorCondition::InternalServerError, None));
            }
        };
        let total = all.len();
        let with_unread = all.iter().filter(|c| c.unread > 0).count();
        let all_unread: u64 = all.iter().map(|c| c.unread).sum();
        if unread_only {
            all.retain(|c| c.unread > 0);
        }
        let (page, index) = page_of(&all, &set, cfg.inbox_page);
        let last = if messages {
            newest(ctx, me, page).await
        } else {
            vec![None; page.len()]
        };
        let to = iq.attr("from").unwrap_or_default();
        let queryid = iq.attr("id");
        let mut stanzas = Vec::with_capacity(page.len() + 1);
        let mut bytes = 0usize;
        for (c, m) in page.iter().zip(last) {
            let mut entry = Element::new("entry", NS)
                .with_attr("jid", c.jid.clone())
                .with_attr("unread", c.unread.to_string());
            if let Some(id) = &c.last {
                entry.set_attr("id", id.clone());
            }
            let mut msg = Element::new("message", crate::stream::NS_CLIENT)
                .with_attr("to", to)
                .with_child(entry);
            if let Some(m) = m {
                // An answer stays within what one archive page may hold.
                bytes = bytes.saturating_add(m.xml.len());
                let stamp_by = if c.room { c.jid.as_str() } else { me.as_str() };
                if bytes <= cfg.max_page_bytes
                    && let Some(r) = query::result(&m, queryid, stamp_by)
                {
                    msg.append_child(r);
                }
            }
            stanzas.push(msg);
        }
        let ends = page
            .first()
            .zip(page.last())
            .map(|(f, l)| (f.jid.as_str(), l.jid.as_str()));
        let fin = Element::new("fin", NS)
            .with_attr("total", total.to_string())
            .with_attr("unread", with_unread.to_string())
            .with_attr("all-unread", all_unread.to_string())
            .with_child(rsm::answer(ends, Some(index), Some(all.len() as u64)));
        stanzas.push(iq_result(iq).with_child(fin));
        Ok(Batch {
            stanzas,
            claimed: Vec::new(),
        })
    }
}

impl IqHandler for Inbox {
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
            // One's own inbox only.
            let (me, el) = match super::own_request(iq) {
                Ok(r) => r,
                Err(reply) => return Some(reply),
            };
            Some(match (el.name(), iq.attr("type")) {
                ("inbox", Some("get")) => match self.list(ctx, &me, iq, el).await {
                    Ok(batch) => {
                        query::deliver(router, iq, batch);
                        return None;
                    }
                    Err(reply) => reply,
                },
                ("reset", Some("set")) => {
                    let Some(jid) = bare_of(el.attr("jid")) else {
                        return Some(iq_error(iq, ErrorCondition::BadRequest, None));
                    };
                    let (host, user) = account(&me);
                    match ctx
                        .storage
                        .archive
                        .inbox_reset(host, user, jid.as_str())
                        .await
                    {
                        Ok(true) => iq_result(iq),
                        Ok(false) => iq_error(iq, ErrorCondition::ItemNotFound, None),
                        Err(e) => {
                            tracing::error!("inbox of {me}: {e}");
                            iq_error(iq, ErrorCondition::InternalServerError, None)
                        }
                    }
                }
                _ => iq_error(iq, ErrorCondition::FeatureNotImplemented, None),
            })
        })
    }
}

/// Registers the inbox (with the archive, whose commits keep it).
pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Inbox));
    r.feature(NS);
    r.hooks.routing.add(0, "inbox", on_routing);
}
