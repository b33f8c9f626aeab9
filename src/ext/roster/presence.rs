//! Presence (RFC 6121 §4): broadcast to contacts with a `from`/`both` subscription and to the
//! user's own resources, probes answered on the contacts' behalf at initial presence (§4.3.2),
//! directed presence remembered and cleaned up (§4.6), unavailable presence when a session
//! ends (§4.5.2), and stored subscription requests re-delivered at login (§3.1.3).
//!
//! Push to friends: each presence change fans out to the roster's subscribers, one stanza per
//! recipient resource (each carries its own `to`), serialised once for all of them
//! ([`crate::stanza::shared`]); the roster comes from the roster cache.

use std::collections::HashSet;

use jid::{BareJid, Jid};

use super::{account, subscription};
use crate::ext::{Ctx, account_str, blocking};
use crate::router::{Route, Router, is_subscription};
use crate::session::{SessionHandle, SessionInfo};
use crate::stanza::shared::SharedStanza;
use crate::stream::NS_CLIENT;
use crate::xml::{Element, Limits, parse_fragment};

pub use crate::ext::hooks::Became;

/// A session sent presence; says what it changed.
pub async fn outbound(
    ctx: &Ctx,
    router: &Router,
    session: &SessionHandle,
    stanza: Element,
) -> Became {
    let kind = stanza.attr("type").map(str::to_string);
    let Some(to) = stanza.attr("to").map(str::to_string) else {
        return match kind.as_deref() {
            None | Some("unavailable") => broadcast(ctx, router, session, stanza).await,
            // Subscription types and probes need a `to` (RFC 6121 §3, §4.3): ignored.
            _ => Became::default(),
        };
    };
    let Ok(to) = Jid::new(&to) else {
        router.bounce(&stanza, crate::stanza::ErrorCondition::JidMalformed);
        return Became::default();
    };
    match kind.as_deref() {
        Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
            let me = session.jid.to_bare();
            subscription::outbound(
                ctx,
                router,
                &me,
                to.to_bare(),
                kind.as_deref().unwrap_or_default(),
                stanza,
            )
            .await;
        }
        // Clients do not probe (§4.3): the server does it for them.
        Some("probe") => {}
        Some("error") => router.route(stanza).await,
        // Directed presence (§4.6): remembered, so that unavailable follows it.
        None | Some("unavailable") => {
            let available = kind.is_none();
            let max = ctx.config.im.max_directed_presences;
            if !router
                .registry
                .set_directed(&session.jid, session.id, to.as_str(), available, max)
            {
                // Not remembered, so its unavailable could never follow: not sent at all.
                router.bounce(&stanza, crate::stanza::ErrorCondition::PolicyViolation);
                return Became::default();
            }
            router.route(stanza).await;
        }
        _ => {}
    }
    Became::default()
}

/// Broadcast presence (no `to`): records it, fans it out, and on initial presence probes the
/// contacts the user is subscribed to.
async fn broadcast(
    ctx: &Ctx,
    router: &Router,
    session: &SessionHandle,
    mut stanza: Element,
) -> Became {
    let available = stanza.attr("type").is_none();
    let me = session.jid.to_bare();
    stanza.set_attr("from", session.jid.to_string());
    let priority = stanza
        .get_child("priority", NS_CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0);
    let directed = router
        .registry
        .info(&session.jid)
        .map(|i| i.directed)
        .unwrap_or_default();
    let before = router.registry.set_presence(
        &session.jid,
        session.id,
        available.then(|| stanza.clone()),
        priority,
    );
    let was_available = before.is_some();
    if !available && !was_available {
        // Never broadcast as available: only the directed-presence recipients learn (§4.6.3).
        send_directed(router, &stanza, &directed).await;
        return Became::default();
    }
    let (host, user) = account(&me);
    let roster = match ctx.storage.rosters.items_shared(host, user).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("roster of {me}: {e}");
            Default::default()
        }
    };
    let items = blocking::presence_peers(ctx, router, &session.jid, &roster.1).await;
    let none = HashSet::new();
    fan_out(
        router,
        &me,
        &stanza,
        &items,
        if available { &none } else { &directed },
    )
    .await;
    let initial = available && !was_available;
    if initial {
        probe_contacts(router, session, &items);
    }
    Became {
        initial,
        reachable: available && priority >= 0 && before.is_none_or(|p| p < 0),
    }
}

/// Sends `stanza` (from a full JID of `me`) to every subscriber, to `me`'s available
/// resources, and to the extra directed-presence recipients.
async fn fan_out(
    router: &Router,
    me: &BareJid,
    stanza: &Element,
    items: &[&crate::storage::RosterItem],
    extra: &HashSet<String>,
) {
    // Serialised once; each recipient's session splices its `to` in.
    let shared = SharedStanza::new(stanza.clone());
    for item in items.iter().filter(|i| i.subscription.has_from()) {
        // Stored contacts are normalised bare JIDs: no need to parse them again.
        let (host, _) = account_str(&item.contact);
        if router.is_local(host) {
            router.deliver_addressed(&shared, &item.contact);
        } else if let Route::Remote = router.route_of(host) {
            // A contact on another server: its server fans it out to its sessions.
            let mut p = stanza.clone();
            p.set_attr("to", item.contact.as_str());
            router.to_remote(p);
        }
    }
    // The user's own available resources, the sender included (§4.2.2, §4.4.2).
    router.deliver_addressed(&shared, me.as_str());
    send_directed(router, stanza, extra).await;
}

/// Sends `stanza` to each directed-presence recipient (full or bare JIDs): local accounts'
/// sessions directly, services (a group-chat room: its occupant leaves) through their route.
async fn send_directed(router: &Router, stanza: &Element, recipients: &HashSet<String>) {
    for d in recipients {
        let Ok(j) = Jid::new(d) else { continue };
        let mut p = stanza.clone();
        p.set_attr("to", j.to_string());
        if let Route::Service(s) = router.route_of(j.domain().as_str()) {
            s.handle(router, p).await;
            continue;
        }
        match j.try_into_full() {
            Ok(full) if !router.is_local(full.domain().as_str()) => router.route(p).await,
            Ok(full) => {
                if let Some(h) = router.registry.get(&full) {
                    router.deliver(&h, p);
                }
            }
            Err(bare) if router.is_local(bare.domain().as_str()) => {
                router.deliver_to_available(&p, &bare)
            }
            Err(_) => router.route(p).await,
        }
    }
}

/// §4.3.2: the server answers the probes of an initial presence itself, with the last
/// presence of each available resource of every local contact the user is subscribed to; a
/// contact on another server is sent a probe from the user's bare JID (§4.3.1).
fn probe_contacts(router: &Router, session: &SessionHandle, items: &[&crate::storage::RosterItem]) {
    let to = session.jid.to_string();
    for item in items.iter().filter(|i| i.subscription.has_to()) {
        let (host, _) = account_str(&item.contact);
        if !router.is_local(host) {
            if let Route::Remote = router.route_of(host) {
                let probe = Element::new("presence", NS_CLIENT)
                    .with_attr("type", "probe")
                    .with_attr("from", session.jid.to_bare().to_string())
                    .with_attr("to", item.contact.as_str());
                router.to_remote(probe);
            }
            continue;
        }
        // A stored contact is a normalised bare JID: its sessions are found as it is.
        for p in router.registry.presences(&item.contact) {
            let mut p = (*p).clone();
            p.set_attr("to", to.clone());
            router.deliver(session, p);
        }
    }
}

/// A presence reached local account `to`: subscription handling, probes, or delivery.
pub async fn inbound(ctx: &Ctx, router: &Router, stanza: Element, to: BareJid) {
    let Some(from) = stanza.attr("from").and_then(|f| Jid::new(f).ok()) else {
        return;
    };
    if is_subscription(&stanza) {
        return subscription::inbound(ctx, router, stanza, to, from.to_bare()).await;
    }
    if stanza.attr("type") == Some("probe") {
        // A probe from a subscriber gets the current presence of every available resource.
        let (host, user) = account(&to);
        if let Ok(Some(item)) = ctx
            .storage
            .rosters
            .item(host, user, from.to_bare().as_str())
            .await
            && item.subscription.has_from()
        {
            for s in router.registry.sessions(&to) {
                if let Some(p) = s.presence {
                    let mut p = (*p).clone();
                    p.set_attr("to", from.to_string());
                    router.route(p).await;
                }
            }
        }
        return;
    }
    router.deliver_to_available(&stanza, &to);
}

/// A session ended: if it was available, its contacts, its other resources and the entities
/// it sent directed presence to see it go unavailable (§4.5.2). The account's last session
/// also takes its cached roster with it.
pub async fn session_closed(ctx: &Ctx, router: &Router, last: SessionInfo) {
    let me = last.handle.jid.to_bare();
    went_unavailable(ctx, router, &me, last).await;
    if router.registry.sessions(&me).is_empty() {
        let (host, user) = account(&me);
        ctx.storage.rosters.forget(host, user);
    }
}

async fn went_unavailable(ctx: &Ctx, router: &Router, me: &BareJid, last: SessionInfo) {
    if last.presence.is_none() {
        // Directed presence alone still gets its unavailable (§4.6.3).
        let unavailable = Element::new("presence", NS_CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", last.handle.jid.to_string());
        send_directed(router, &unavailable, &last.directed).await;
        return;
    }
    let (host, user) = account(me);
    let roster = match ctx.storage.rosters.items_shared(host, user).await {
        Ok(r) => r,
        Err(e) => {
            // Contacts keep seeing the last presence until they probe again; logged.
            tracing::error!("roster of {me} for its unavailable presence: {e}");
            Default::default()
        }
    };
    let items = blocking::presence_peers(ctx, router, &last.handle.jid, &roster.1).await;
    let unavailable = Element::new("presence", NS_CLIENT)
        .with_attr("type", "unavailable")
        .with_attr("from", last.handle.jid.to_string());
    fan_out(router, me, &unavailable, &items, &last.directed).await;
}

/// Re-delivers the stored subscription requests to a session at its initial presence.
pub async fn deliver_pending_requests(ctx: &Ctx, router: &Router, session: &SessionHandle) {
    let me = session.jid.to_bare();
    let (host, user) = account(&me);
    let pending = match ctx.storage.rosters.pending(host, user).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("pending subscription requests of {me}: {e}");
            return;
        }
    };
    for (from, xml) in pending {
        match parse_fragment(&xml, Limits::stored()) {
            Ok(p) => {
                router.deliver(session, p);
            }
            // Stored by this server, so it parsed once; the request is still pending in the
            // roster (the contact shows as asking) and is kept.
            Err(e) => tracing::error!("stored subscription request from {from} to {me}: {e}"),
        }
    }
}
