//! XEP-0191 Blocking Command: a per-account list of blocked JIDs (full, bare or domain, matched
//! as XEP-0016 does). Blocked entities get no presence from the user; their messages and iqs to
//! the user are refused with `service-unavailable`; the user's own messages and iqs to them are
//! refused with `not-acceptable` + `<blocked/>` (§3.6, §3.7). Lists are cached per account so
//! the check on every routed stanza does not touch the database.

use crate::ext::hooks::{Flow, HookFut, Routing};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jid::{BareJid, FullJid, Jid};

use super::{Ctx, IqFuture, IqHandler, Registrar, account, account_str, sender};
use crate::router::Router;
use crate::session::{Flag, bare_str};
use crate::stanza::{ErrorCondition, error_reply_with, iq_error, iq_result};
use crate::storage::{RosterItem, Subscription};
use crate::stream::{NS_CLIENT, random_id};
use crate::xml::Element;

/// `urn:xmpp:blocking`
pub const NS: &str = "urn:xmpp:blocking";
/// `urn:xmpp:blocking:errors`
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
/// Cached lists before the cache is emptied (bounds its memory).
const CACHE_MAX: usize = 10_000;
const KIND: &str = "block";

/// Blocklists of accounts, loaded on first use.
#[derive(Default)]
pub struct Cache {
    /// Parsed once when loaded: the check runs on every routed stanza.
    lists: Mutex<HashMap<String, Arc<Vec<Jid>>>>,
}

/// A blocklist could not be read (logged where it happened). Blocking is a privacy promise,
/// so the callers fail closed: the stanza is refused, the presence withheld.
#[derive(Debug, Clone, Copy)]
pub struct Unreadable;

impl Cache {
    async fn list(&self, ctx: &Ctx, owner: &BareJid) -> Result<Arc<Vec<Jid>>, Unreadable> {
        self.list_of(ctx, owner.as_str()).await
    }

    /// Whether the account whose normalised bare JID is `owner` blocks `j`.
    async fn blocks(&self, ctx: &Ctx, owner: &str, j: &Jid) -> Result<bool, Unreadable> {
        Ok(self
            .list_of(ctx, owner)
            .await?
            .iter()
            .any(|i| matches(i, j)))
    }

    /// The list of the account whose normalised bare JID is `owner` (a failure to read it is
    /// not cached).
    async fn list_of(&self, ctx: &Ctx, owner: &str) -> Result<Arc<Vec<Jid>>, Unreadable> {
        if let Some(l) = self
            .lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner)
        {
            return Ok(l.clone());
        }
        let (host, user) = account_str(owner);
        let keys: Arc<Vec<Jid>> = match ctx.storage.documents.keys(host, user, KIND).await {
            Ok(k) => Arc::new(k.iter().filter_map(|j| Jid::new(j).ok()).collect()),
            Err(e) => {
                tracing::error!("blocklist of {owner} unreadable, failing closed: {e}");
                return Err(Unreadable);
            }
        };
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        if lists.len() >= CACHE_MAX {
            lists.clear();
        }
        lists.insert(owner.to_string(), keys.clone());
        Ok(keys)
    }

    fn invalidate(&self, account: &BareJid) {
        self.lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account.as_str());
    }
}

/// Whether blocklist item `item` covers `j` (XEP-0016 §2.1 JID matching).
pub fn matches(i: &Jid, j: &Jid) -> bool {
    match (i.node(), i.resource()) {
        (Some(_), Some(_)) => i == j,
        (Some(_), None) => i.to_bare() == j.to_bare(),
        (None, Some(r)) => {
            j.node().is_none() && i.domain() == j.domain() && j.resource() == Some(r)
        }
        (None, None) => i.domain() == j.domain(),
    }
}

/// The account `j` belongs to, as a normalised bare JID, if it is a local one.
fn local_account<'j>(router: &Router, j: &'j Jid) -> Option<&'j str> {
    (j.node().is_some() && router.is_local(j.domain().as_str())).then(|| bare_str(j))
}

/// Whether local account `owner` (none: not a local account) blocks `j`.
async fn blocked_by(
    ctx: &Ctx,
    cache: &Cache,
    owner: Option<&str>,
    j: &Jid,
) -> Result<bool, Unreadable> {
    match owner {
        Some(owner) => cache.blocks(ctx, owner, j).await,
        None => Ok(false),
    }
}

/// Whether `stanza` may be routed; when not, the sender has been answered as XEP-0191 says.
/// This runs on every routed stanza: the two lists come from the cache by string, and JIDs
/// are compared as their normalised strings.
pub async fn allowed(ctx: &Ctx, cache: &Cache, router: &Router, stanza: &Element) -> bool {
    let (Some(Ok(from)), Some(Ok(to))) = (
        stanza.attr("from").map(Jid::new),
        stanza.attr("to").map(Jid::new),
    ) else {
        return true;
    };
    if bare_str(&from) == bare_str(&to) {
        return true;
    }
    let answers = match stanza.name() {
        "message" => true,
        "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
        _ => false,
    };
    let refuse_unreadable = || {
        if answers {
            router.bounce(stanza, ErrorCondition::InternalServerError);
        }
        false
    };
    // The user blocked the recipient (§3.7).
    let Ok(mine) = blocked_by(ctx, cache, local_account(router, &from), &to).await else {
        return refuse_unreadable();
    };
    if mine {
        if answers
            && let Some(r) = error_reply_with(
                stanza,
                ErrorCondition::NotAcceptable,
                Element::new("blocked", NS_ERRORS),
            )
        {
            router.send_to_session(r);
        }
        return false;
    }
    // The recipient blocked the sender (§3.6).
    let Ok(theirs) = blocked_by(ctx, cache, local_account(router, &to), &from).await else {
        return refuse_unreadable();
    };
    if theirs {
        if answers {
            router.bounce(stanza, ErrorCondition::ServiceUnavailable);
        }
        return false;
    }
    true
}

/// Keeps the roster items whose contact may exchange presence with `me`: a block in either
/// direction stops it (§3.6, §3.7), as [`allowed`] decides for one stanza. This runs on every
/// presence broadcast, over the whole roster: a contact's JID is parsed only when `me` has a
/// blocklist, and a contact's own (cached) list is consulted only for local accounts.
pub async fn presence_peers<'a>(
    ctx: &Ctx,
    router: &Router,
    me: &FullJid,
    items: &'a [RosterItem],
) -> Vec<&'a RosterItem> {
    let bare = bare_str(me);
    // Fail closed: an unreadable list of the user's withholds the presence from everyone, an
    // unreadable list of a contact's from that contact.
    let Ok(mine) = ctx.blocks.list_of(ctx, bare).await else {
        return Vec::new();
    };
    let from = Jid::from(me.clone());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let contact = item.contact.as_str();
        let (host, user) = account_str(contact);
        let blocked = contact != bare
            && ((!mine.is_empty()
                && Jid::new(contact).is_ok_and(|c| mine.iter().any(|i| matches(i, &c))))
                || (!user.is_empty()
                    && router.is_local(host)
                    && ctx.blocks.blocks(ctx, contact, &from).await.unwrap_or(true)));
        if !blocked {
            out.push(item);
        }
    }
    out
}

struct Blocking;

/// The JIDs listed in a `<block/>` or `<unblock/>` (normalised); `Err` if one is malformed.
fn items(el: &Element) -> Result<Vec<String>, ErrorCondition> {
    el.children()
        .filter(|c| c.is("item", NS))
        .map(|c| match c.attr("jid").map(Jid::new) {
            Some(Ok(j)) => Ok(j.to_string()),
            _ => Err(ErrorCondition::JidMalformed),
        })
        .collect()
}

impl Blocking {
    async fn handle(&self, ctx: &Ctx, cache: &Cache, router: &Router, iq: &Element) -> Element {
        let Some(from) = sender(iq) else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        let me = from.to_bare();
        if iq.attr("to").is_some_and(|t| t != me.as_str()) {
            return iq_error(iq, ErrorCondition::Forbidden, None);
        }
        let (host, user) = account(&me);
        let docs = &ctx.storage.documents;
        if iq.attr("type") == Some("get") && iq.get_child("blocklist", NS).is_some() {
            if let Some(info) = router.registry.info(&from) {
                router
                    .registry
                    .set_flag(&from, info.handle.id, pushes(), true);
            }
            let mut list = Element::new("blocklist", NS);
            let Ok(current) = cache.list(ctx, &me).await else {
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            };
            for j in current.iter() {
                list.append_child(Element::new("item", NS).with_attr("jid", j.to_string()));
            }
            return iq_result(iq).with_child(list);
        }
        if iq.attr("type") != Some("set") {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        }
        let (block, payload) = match (iq.get_child("block", NS), iq.get_child("unblock", NS)) {
            (Some(b), None) => (true, b),
            (None, Some(u)) => (false, u),
            _ => return iq_error(iq, ErrorCondition::BadRequest, None),
        };
        let jids = match items(payload) {
            Ok(j) => j,
            Err(c) => return iq_error(iq, c, None),
        };
        let result = if block {
            if jids.is_empty() {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            }
            let Ok(now) = cache.list(ctx, &me).await.map(|l| l.len()) else {
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            };
            if now + jids.len() > ctx.config.im.max_blocklist_items {
                return iq_error(iq, ErrorCondition::ResourceConstraint, None);
            }
            let mut r = Ok(());
            for j in &jids {
                r = r.and(docs.set(host, user, KIND, j, "").await.map(|_| ()));
            }
            r
        } else if jids.is_empty() {
            docs.delete(host, user, KIND, None).await.map(|_| ())
        } else {
            let mut r = Ok(());
            for j in &jids {
                r = r.and(docs.delete(host, user, KIND, Some(j)).await.map(|_| ()));
            }
            r
        };
        let before = cache.list(ctx, &me).await.unwrap_or_default();
        cache.invalidate(&me);
        if let Err(e) = result {
            tracing::error!("blocklist of {me}: {e}");
            return iq_error(iq, ErrorCondition::InternalServerError, None);
        }
        let changed: Vec<String> = if block || !jids.is_empty() {
            jids
        } else {
            before.iter().map(Jid::to_string).collect()
        };
        push(router, &me, payload.name(), &changed);
        presence_effects(ctx, router, &me, block, &changed).await;
        iq_result(iq)
    }
}

/// Pushes the change to every resource that asked for the blocklist (§3.3, §3.4).
fn push(router: &Router, me: &BareJid, what: &str, jids: &[String]) {
    let mut payload = Element::new(what, NS);
    for j in jids {
        payload.append_child(Element::new("item", NS).with_attr("jid", j.clone()));
    }
    for s in router
        .registry
        .sessions(me)
        .into_iter()
        .filter(|s| s.has(pushes()))
    {
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("block-{}", random_id()))
            .with_attr("to", s.handle.jid.to_string())
            .with_child(payload.clone());
        router.deliver(&s.handle, iq);
    }
}

/// A newly blocked subscriber sees the user go offline; a newly unblocked one sees the user's
/// presence again (§3.3, §3.4).
async fn presence_effects(ctx: &Ctx, router: &Router, me: &BareJid, block: bool, jids: &[String]) {
    let (host, user) = account(me);
    for j in jids {
        let Ok(contact) = BareJid::new(j) else {
            continue;
        };
        if !router.is_local(contact.domain().as_str()) {
            continue;
        }
        let sub = match ctx.storage.rosters.item(host, user, contact.as_str()).await {
            Ok(Some(i)) => i.subscription,
            _ => Subscription::None,
        };
        if !sub.has_from() {
            continue;
        }
        router.send_presence_of(me, &contact, block);
    }
}

/// The iq handler, with the cache it shares with the routing check.
pub struct Handler;

impl IqHandler for Handler {
    fn handle<'a>(&'a self, ctx: &'a Ctx, router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(Blocking.handle(ctx, &ctx.blocks, router, iq))
    }
}

/// Registers the handler and the feature.
/// Sessions that requested the blocklist get blocklist pushes (XEP-0191 §3.3).
pub(crate) fn pushes() -> Flag {
    static FLAG: std::sync::OnceLock<Flag> = std::sync::OnceLock::new();
    *FLAG.get_or_init(|| Flag::named("blocking"))
}

pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Handler));
    r.feature(NS);
    // Before anything else routes a stanza: a blocked one goes nowhere.
    r.hooks.routing.add(100, "blocking", on_routing);
}

fn on_routing<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Routing) -> HookFut<'a> {
    Box::pin(async move {
        match allowed(ctx, &ctx.blocks, router, &e.stanza).await {
            true => Flow::Next,
            false => Flow::Stop,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_matching() {
        let j = |s| Jid::new(s).unwrap();
        let matches = |item, jid: &Jid| matches(&j(item), jid);
        assert!(matches("evil@x.test", &j("evil@x.test/phone")));
        assert!(matches("evil@x.test/phone", &j("evil@x.test/phone")));
        assert!(!matches("evil@x.test/phone", &j("evil@x.test/desk")));
        assert!(matches("x.test", &j("anyone@x.test/r")));
        assert!(matches("x.test", &j("x.test")));
        assert!(!matches("x.test", &j("a@y.test")));
        assert!(matches("x.test/r", &j("x.test/r")));
        assert!(!matches("x.test/r", &j("a@x.test/r")));
    }
}
