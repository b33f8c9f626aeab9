//! XEP-0160 Offline Messages: a `normal` or `chat` message for an account with no available
//! resource is stored (within a per-user quota), and delivered with a XEP-0203 delay stamp at
//! the next initial presence, then removed. `headline`, `groupchat` and `error` messages are
//! never stored, nor those hinted `<no-store/>` (XEP-0334). What cannot be stored goes back
//! to its sender as an error: nothing is lost silently.

use crate::ext::hooks::{Flow, HookFut, PresenceOut, Unrouted};
use crate::session::Flag;
use jid::BareJid;

use super::{Ctx, Registrar, account};
use crate::router::Router;
use crate::session::{Batch, SessionHandle};
use crate::stanza::ErrorCondition;
use crate::storage::StoreError;
use crate::stream::NS_CLIENT;
use crate::xml::{Element, Limits, parse_fragment};

/// XEP-0203 Delayed Delivery.
pub use crate::stanza::NS_DELAY;
/// XEP-0334 Message Processing Hints.
pub use crate::stanza::NS_HINTS;

/// Stores `stanza` for `to`, or bounces it when it may not or cannot be stored.
///
/// A resource of `to` may have become available while the message was being stored, after its
/// initial presence had already fetched the store: then the store is handed to it now.
/// `take_all` is one `DELETE … RETURNING`, so a message is never delivered twice.
pub async fn store_or_bounce(ctx: &Ctx, router: &Router, stanza: Element, to: BareJid) {
    if store(ctx, router, stanza, &to).await {
        hand_over(ctx, router, &to).await;
    }
}

/// After a store: hands the store to `to`'s best available resource, if one became available
/// while the message was being stored (its initial presence had already fetched the store).
pub(super) async fn hand_over(ctx: &Ctx, router: &Router, to: &BareJid) {
    let best = router
        .registry
        .available(to)
        .into_iter()
        .max_by_key(|(_, p)| *p);
    if let Some((session, _)) = best {
        deliver(ctx, router, &session).await;
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
    let outcome = match ctx.storage.accounts.exists(host, user).await {
        // RFC 6121 §8.5.2.2.1 / §8.5.4: no such account.
        Ok(false) => {
            router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
            return false;
        }
        Ok(true) => {
            let xml = stanza.to_string_in(NS_CLIENT);
            store_retrying(ctx, host, user, &xml).await
        }
        Err(e) => Err(e),
    };
    let (condition, text) = match outcome {
        Ok(true) => return true,
        Ok(false) => (
            ErrorCondition::ResourceConstraint,
            Some("the recipient's offline storage is full"),
        ),
        Err(e) => {
            tracing::error!("offline store for {to}: {e}");
            (ErrorCondition::InternalServerError, None)
        }
    };
    report(ctx, router, &stanza, condition, text).await;
    false
}

/// Pauses between attempts at an offline store that failed (a database restarting, a lock
/// held too long); then the failure is reported.
const RETRY_AFTER_MS: [u64; 3] = [50, 250, 1000];

/// Stores in `user`'s offline storage, trying again after a database error.
async fn store_retrying(ctx: &Ctx, host: &str, user: &str, xml: &str) -> Result<bool, StoreError> {
    let mut attempt = 0;
    loop {
        let start = std::time::Instant::now();
        let r = ctx
            .storage
            .offline
            .store(host, user, xml, ctx.offline_quota())
            .await;
        crate::metrics::offline_store(start.elapsed(), matches!(r, Ok(true)));
        match r {
            Err(e) if attempt < RETRY_AFTER_MS.len() => {
                tracing::warn!("offline store for {user}@{host} failed, trying again: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(RETRY_AFTER_MS[attempt])).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Tells the sender of `stanza` that it could not be kept: at its session if it has one now;
/// a local sender without one (its session ended while the message was being re-routed, or a
/// resumption expired) finds the error in its own offline storage at its next login. Only
/// when neither works does the log alone hold the stanza (an error is never answered).
async fn report(
    ctx: &Ctx,
    router: &Router,
    stanza: &Element,
    condition: ErrorCondition,
    text: Option<&str>,
) {
    let Some(reply) = crate::stanza::error_reply(stanza, condition, text) else {
        return;
    };
    let Some(sender) = reply.attr("to").and_then(|t| jid::Jid::new(t).ok()) else {
        return;
    };
    let reachable = match sender.clone().try_into_full() {
        Ok(full) => router.registry.get(&full).is_some(),
        Err(bare) => !router.registry.sessions(&bare).is_empty(),
    };
    if reachable {
        router.send_to_session(reply);
        return;
    }
    // The session that sent it is gone: the account's other available resources get the
    // error, or its offline storage keeps it for the next one.
    let bare = sender.to_bare();
    if !router.registry.available(&bare).is_empty() {
        router.deliver_to_available(&reply, &bare);
        return;
    }
    let kept = match bare.node() {
        Some(node) if router.is_local(bare.domain().as_str()) => {
            let xml = reply.to_string_in(NS_CLIENT);
            let stored = store_retrying(ctx, bare.domain().as_str(), node.as_str(), &xml).await;
            if matches!(stored, Ok(true)) {
                // A resource may have become available meanwhile (see `store_or_bounce`).
                // Boxed: delivering can store again, which can report again.
                Box::pin(hand_over(ctx, router, &bare)).await;
            }
            matches!(stored, Ok(true))
        }
        _ => false,
    };
    if !kept {
        tracing::error!(
            to = %stanza.attr("to").unwrap_or_default(),
            "a message could be neither kept nor returned to its sender {sender}: {}",
            stanza.to_string_in(NS_CLIENT)
        );
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
        .is_some_and(|i| i.handle.id == session.id && i.has(Flag::ACKS));
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
                el.append_child(crate::stanza::delay(host, m.stored_at_ms));
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
    let n = batch.stanzas.len() as u64;
    // One queue entry however many there are, so a long absence cannot overflow the queue.
    // A session that vanishes before writing them gives claimed ones back and re-routes
    // taken ones, so they come back here.
    let back = match router.deliver_batch(session, batch) {
        Ok(()) => return crate::metrics::offline_delivered(n),
        Err(back) => back,
    };
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

/// Advertises the feature.
pub fn register(r: &mut Registrar) {
    r.feature("msgoffline");
    r.hooks.unrouted.add(0, "offline", on_unrouted);
    // After the roster module said what the presence changed.
    r.hooks.presence_out.add(-10, "offline", on_presence_out);
}

fn on_unrouted<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut Unrouted) -> HookFut<'a> {
    Box::pin(async move {
        match e.stanza.take() {
            Some(s) if s.attr("type") == Some("headline") && ctx.config.im.offline_headlines => {
                super::coalesce::store(ctx, s, &e.to).await;
                hand_over(ctx, router, &e.to).await;
            }
            // Headlines are otherwise dropped (RFC 6121 §8.5.2.2.1).
            Some(s) if s.attr("type") == Some("headline") => {}
            Some(s) => store_or_bounce(ctx, router, s, e.to.clone()).await,
            None => {}
        }
        Flow::Stop
    })
}

/// Messages to the bare JID that waited: for a session that became reachable (a non-negative
/// priority, XEP-0160 §3).
fn on_presence_out<'a>(ctx: &'a Ctx, router: &'a Router, e: &'a mut PresenceOut) -> HookFut<'a> {
    Box::pin(async move {
        if e.became.reachable {
            deliver(ctx, router, &e.session).await;
        }
        Flow::Next
    })
}
