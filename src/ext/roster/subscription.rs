//! Presence subscriptions (RFC 6121 §3, Appendix A): the state machine on the user's side
//! (outbound subscribe/subscribed/unsubscribe/unsubscribed) and on the contact's side (inbound),
//! pre-approval (§3.4), pending requests kept for offline contacts (§3.1.3), and roster item
//! removal with its implied unsubscriptions (§2.5.2).

use jid::BareJid;

use super::{account, push};
use crate::ext::Ctx;
use crate::router::Router;
use crate::stanza::ErrorCondition;
use crate::storage::{RosterItem, StoreError, Subscription};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// A presence of `kind` from `from` to `to` (bare JIDs), as the server sends on a user's behalf.
fn presence(kind: &str, from: &BareJid, to: &BareJid) -> Element {
    Element::new("presence", NS_CLIENT)
        .with_attr("type", kind)
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
}

async fn load(
    ctx: &Ctx,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<Option<RosterItem>, StoreError> {
    let (host, user) = account(owner);
    ctx.storage.rosters.item(host, user, contact.as_str()).await
}

async fn save(
    ctx: &Ctx,
    router: &Router,
    owner: &BareJid,
    item: &RosterItem,
) -> Result<(), StoreError> {
    let (host, user) = account(owner);
    let ver = ctx.storage.rosters.put_state(host, user, item).await?;
    push(router, owner, item, false, ver);
    Ok(())
}

/// A local user `me` sent a subscription presence to `contact` (RFC 6121 §3.1.2, §3.1.5,
/// §3.2.2, §3.3.2). Updates `me`'s roster, then forwards it stamped with the bare JID.
pub async fn outbound(
    ctx: &Ctx,
    router: &Router,
    me: &BareJid,
    contact: BareJid,
    kind: &str,
    stanza: Element,
) {
    if let Err(e) = outbound_inner(ctx, router, me, &contact, kind, stanza).await {
        tracing::error!("subscription ({kind}) from {me} to {contact}: {e}");
    }
}

async fn outbound_inner(
    ctx: &Ctx,
    router: &Router,
    me: &BareJid,
    contact: &BareJid,
    kind: &str,
    mut stanza: Element,
) -> Result<(), StoreError> {
    let (host, user) = account(me);
    let existing = load(ctx, me, contact).await?;
    // `subscribe` and `subscribed` create an item when there is none: the roster limit holds
    // on this path as on a roster set (RFC 6121 §2.3.3), whatever the contact.
    if existing.is_none()
        && matches!(kind, "subscribe" | "subscribed")
        && ctx.storage.rosters.count(host, user).await? >= ctx.config.im.roster_max_items
    {
        router.bounce(&stanza, ErrorCondition::ResourceConstraint);
        return Ok(());
    }
    let mut item = existing
        .clone()
        .unwrap_or_else(|| RosterItem::new(contact.to_string()));
    let (to, from) = (item.subscription.has_to(), item.subscription.has_from());
    let mut forward = true;
    match kind {
        "subscribe" => {
            if !to && !item.ask {
                item.ask = true;
                save(ctx, router, me, &item).await?;
            }
        }
        "unsubscribe" => {
            if existing.is_some() && (to || item.ask) {
                item.subscription = Subscription::from_parts(false, from);
                item.ask = false;
                save(ctx, router, me, &item).await?;
            }
        }
        "subscribed" => {
            let pending = ctx
                .storage
                .rosters
                .remove_pending(host, user, contact.as_str())
                .await?;
            if pending && !from {
                item.subscription = Subscription::from_parts(to, true);
                item.approved = false;
                save(ctx, router, me, &item).await?;
            } else if !pending && !from {
                // Pre-approval (§3.4): remembered, nothing sent.
                if !item.approved {
                    item.approved = true;
                    save(ctx, router, me, &item).await?;
                }
                forward = false;
            } else {
                forward = false;
            }
        }
        "unsubscribed" => {
            let pending = ctx
                .storage
                .rosters
                .remove_pending(host, user, contact.as_str())
                .await?;
            if existing.is_some() && (from || item.approved) {
                item.subscription = Subscription::from_parts(to, false);
                item.approved = false;
                save(ctx, router, me, &item).await?;
            } else if !pending {
                forward = false;
            }
        }
        _ => return Ok(()),
    }
    if !forward {
        return Ok(());
    }
    stanza.set_attr("from", me.to_string());
    stanza.set_attr("to", contact.to_string());
    router.route(stanza).await;
    match kind {
        // §3.1.5: the new subscriber gets the user's current presence.
        "subscribed" => router.send_presence_of(me, contact, false),
        // §3.2.2: a cancelled subscriber sees the user go offline.
        "unsubscribed" => router.send_presence_of(me, contact, true),
        _ => {}
    }
    Ok(())
}

/// A subscription presence from `from` reached local account `me` (RFC 6121 §3.1.3, §3.1.6,
/// §3.2.3, §3.3.3).
pub async fn inbound(ctx: &Ctx, router: &Router, stanza: Element, me: BareJid, from: BareJid) {
    if let Err(e) = inbound_inner(ctx, router, stanza, &me, &from).await {
        tracing::error!("inbound subscription to {me} from {from}: {e}");
    }
}

async fn inbound_inner(
    ctx: &Ctx,
    router: &Router,
    mut stanza: Element,
    me: &BareJid,
    from: &BareJid,
) -> Result<(), StoreError> {
    let (host, user) = account(me);
    let kind = stanza.attr("type").unwrap_or_default().to_string();
    // An account with a session exists; only one without needs the query.
    if router.registry.sessions(me).is_empty() && !ctx.storage.accounts.exists(host, user).await? {
        // §3.1.3: no such user: the subscription is refused.
        if kind == "subscribe" {
            router.route(presence("unsubscribed", me, from)).await;
        }
        return Ok(());
    }
    // Delivered as coming from the bare JID (§3.1.2); an error goes back to the sender.
    let sent = stanza.clone();
    stanza.set_attr("from", from.to_string());
    stanza.set_attr("to", me.to_string());
    let existing = load(ctx, me, from).await?;
    let mut item = existing
        .clone()
        .unwrap_or_else(|| RosterItem::new(from.to_string()));
    let (to, has_from) = (item.subscription.has_to(), item.subscription.has_from());
    match kind.as_str() {
        "subscribe" => {
            if has_from {
                // Already subscribed: answer on the user's behalf.
                router.route(presence("subscribed", me, from)).await;
            } else if item.approved {
                item.subscription = Subscription::from_parts(to, true);
                item.approved = false;
                save(ctx, router, me, &item).await?;
                router.route(presence("subscribed", me, from)).await;
                router.send_presence_of(me, from, false);
            } else {
                // Kept until answered, and shown to every available resource now (§3.1.3);
                // as many pending requests as roster items at most.
                let pending = ctx.storage.rosters.pending(host, user).await?;
                if pending.len() >= ctx.config.im.roster_max_items
                    && !pending.iter().any(|(f, _)| f == from.as_str())
                {
                    router.bounce(&sent, ErrorCondition::ResourceConstraint);
                    return Ok(());
                }
                ctx.storage
                    .rosters
                    .add_pending(host, user, from.as_str(), &stanza.to_string_in(NS_CLIENT))
                    .await?;
                router.deliver_to_available(&stanza, me);
            }
        }
        // Only an answer to a request we made counts (§3.1.6).
        "subscribed" if existing.is_some() && item.ask => {
            item.ask = false;
            item.subscription = Subscription::from_parts(true, has_from);
            save(ctx, router, me, &item).await?;
            router.deliver_to_available(&stanza, me);
        }
        "unsubscribe" => {
            let pending = ctx
                .storage
                .rosters
                .remove_pending(host, user, from.as_str())
                .await?;
            if existing.is_some() && has_from {
                item.subscription = Subscription::from_parts(to, false);
                save(ctx, router, me, &item).await?;
                router.deliver_to_available(&stanza, me);
                // §3.3.3: the former subscriber sees the user go offline.
                router.send_presence_of(me, from, true);
            } else if pending {
                router.deliver_to_available(&stanza, me);
            }
        }
        "unsubscribed" if existing.is_some() && (to || item.ask) => {
            item.subscription = Subscription::from_parts(false, has_from);
            item.ask = false;
            save(ctx, router, me, &item).await?;
            router.deliver_to_available(&stanza, me);
        }
        _ => {}
    }
    Ok(())
}

/// Removes `contact` from `me`'s roster (RFC 6121 §2.5): push the removal, and cancel the
/// subscriptions in both directions. `false` if there was no such item.
pub async fn remove_item(
    ctx: &Ctx,
    router: &Router,
    me: &BareJid,
    contact: &BareJid,
) -> Result<bool, StoreError> {
    let (host, user) = account(me);
    let Some(item) = load(ctx, me, contact).await? else {
        return Ok(false);
    };
    let pending = ctx
        .storage
        .rosters
        .remove_pending(host, user, contact.as_str())
        .await?;
    let Some(ver) = ctx
        .storage
        .rosters
        .remove(host, user, contact.as_str())
        .await?
    else {
        return Ok(false);
    };
    push(router, me, &item, true, ver);
    if item.subscription.has_from() || pending {
        router.send_presence_of(me, contact, true);
        router.route(presence("unsubscribed", me, contact)).await;
    }
    if item.subscription.has_to() || item.ask {
        router.route(presence("unsubscribe", me, contact)).await;
    }
    Ok(true)
}
