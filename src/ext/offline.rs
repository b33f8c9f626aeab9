//! XEP-0160 Offline Messages: a `normal` or `chat` message for an account with no available
//! resource is stored (within a per-user quota), and delivered with a XEP-0203 delay stamp at
//! the next initial presence, then removed. `headline`, `groupchat` and `error` messages are
//! never stored, nor those hinted `<no-store/>` (XEP-0334). What cannot be stored goes back
//! to its sender as an error: nothing is lost silently.

use jid::BareJid;

use super::{Ctx, Registrar, account};
use crate::router::Router;
use crate::session::{Batch, SessionHandle};
use crate::stanza::{ErrorCondition, datetime};
use crate::stream::NS_CLIENT;
use crate::xml::{Element, Limits, parse_fragment};

/// XEP-0203 Delayed Delivery.
pub use crate::stanza::NS_DELAY;
/// XEP-0334 Message Processing Hints.
pub const NS_HINTS: &str = "urn:xmpp:hints";

/// Stores `stanza` for `to`, or bounces it when it may not or cannot be stored.
///
/// A resource of `to` may have become available while the message was being stored, after its
/// initial presence had already fetched the store: then the store is handed to it now.
/// `take_all` is one `DELETE … RETURNING`, so a message is never delivered twice.
pub async fn store_or_bounce(ctx: &Ctx, router: &Router, stanza: Element, to: BareJid) {
    if store(ctx, router, stanza, &to).await {
        let best = router
            .registry
            .available(&to)
            .into_iter()
            .max_by_key(|(_, p)| *p);
        if let Some((session, _)) = best {
            deliver(ctx, router, &session).await;
        }
    }
}

/// Stores `stanza` for `to` (true), or bounces it when it may not or cannot be stored.
async fn store(ctx: &Ctx, router: &Router, stanza: Element, to: &BareJid) -> bool {
    let storable = matches!(stanza.attr("type"), None | Some("normal" | "chat"))
        && stanza.get_child("no-store", NS_HINTS).is_none();
    let (host, user) = account(to);
    if !storable {
        router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
        return false;
    }
    match ctx.storage.accounts.exists(host, user).await {
        Ok(true) => {}
        // RFC 6121 §8.5.2.2.1 / §8.5.4: no such account.
        Ok(false) => {
            router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
            return false;
        }
        Err(e) => {
            tracing::error!("offline: {e}");
            router.bounce(&stanza, ErrorCondition::InternalServerError);
            return false;
        }
    }
    let xml = stanza.to_string_in(NS_CLIENT);
    match ctx
        .storage
        .offline
        .store(host, user, &xml, ctx.offline_quota())
        .await
    {
        Ok(true) => true,
        Ok(false) => {
            let reply = crate::stanza::error_reply(
                &stanza,
                ErrorCondition::ResourceConstraint,
                Some("the recipient's offline storage is full"),
            );
            if let Some(r) = reply {
                router.route(r).await;
            }
            false
        }
        Err(e) => {
            tracing::error!("offline store for {to}: {e}");
            router.bounce(&stanza, ErrorCondition::InternalServerError);
            false
        }
    }
}

/// Hands every stored message to `session` (at its initial presence), stamped with the time
/// it was stored. A session with stream management gets them claimed: they stay stored until
/// the client acknowledges them, so a crash in between loses nothing; others take them.
pub async fn deliver(ctx: &Ctx, router: &Router, session: &SessionHandle) {
    let bare = session.jid.to_bare();
    let (host, user) = account(&bare);
    let acks = router
        .registry
        .info(&session.jid)
        .is_some_and(|i| i.handle.id == session.id && i.acks);
    let rows = if acks {
        ctx.storage.offline.claim_all(host, user).await
    } else {
        ctx.storage
            .offline
            .take_all(host, user)
            .await
            .map(|v| v.into_iter().map(|m| (0, m)).collect())
    };
    let rows = match rows {
        Ok(m) => m,
        Err(e) => return tracing::error!("offline fetch for {bare}: {e}"),
    };
    if rows.is_empty() {
        return;
    }
    tracing::debug!(n = rows.len(), to = %session.jid, acks, "delivering offline messages");
    let mut batch = Batch::default();
    for (id, m) in rows {
        match parse_fragment(&m.stanza, Limits::stored()) {
            Ok(mut el) => {
                el.append_child(
                    Element::new("delay", NS_DELAY)
                        .with_attr("from", host.to_string())
                        .with_attr("stamp", datetime(m.stored_at_ms)),
                );
                batch.stanzas.push(el);
                if acks {
                    batch.claimed.push(id);
                }
            }
            // Only a damaged database gets here (what is stored parsed when it came in).
            // Claimed, it stays stored; taken, it is gone: logged with what it was.
            Err(e) => tracing::error!(
                "offline message {id} for {bare} cannot be parsed ({e}): {}",
                m.stanza
            ),
        }
    }
    // One queue entry however many there are, so a long absence cannot overflow the queue.
    // A session that vanishes before writing them gives claimed ones back and re-routes
    // taken ones, so they come back here.
    if let Err(back) = router.deliver_batch(session, batch) {
        if !back.claimed.is_empty() {
            if let Err(e) = ctx.storage.offline.release(&back.claimed).await {
                tracing::error!("offline claims of {bare} not released: {e}");
            }
            return;
        }
        // Put back without the hand-over check: that session may still look available.
        for mut el in back.stanzas {
            el.remove_children("delay", NS_DELAY);
            store(ctx, router, el, &bare).await;
        }
    }
}

/// Advertises the feature.
pub fn register(r: &mut Registrar) {
    r.feature("msgoffline");
}
