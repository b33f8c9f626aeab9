//! Coalesced notifications: a headline message (RFC 6121 §5.2.2: a notification, not a
//! conversation: news, alerts, a bot's status) for an account with no available resource is
//! stored, but only the newest of its kind, so that a user away for a week gets one of each
//! at login, not a backlog. Its kind is its sender's bare JID and what it carries: the
//! namespace of its first payload element, and for a pubsub event its node. PEP events are
//! not stored this way: a session coming online gets the last item of each node it follows
//! (`pep::notify`), which is the same rule.
//!
//! RFC 6121 §8.5.2.2.1 says to ignore a headline that finds no resource; this server keeps
//! the newest of each kind instead (`im.offline_headlines`, on by default; off gives the RFC's
//! behaviour). A headline that cannot be stored is dropped without an error, as the RFC has it.

use jid::{BareJid, Jid};

use super::{Ctx, account};
use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// The kind of a notification: `sender|namespace[|node]`.
pub fn kind(m: &Element) -> String {
    let from = m
        .attr("from")
        .and_then(|f| Jid::new(f).ok())
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default();
    let payload = m
        .children()
        .find(|c| !matches!(c.name(), "body" | "subject" | "thread") || c.ns() != NS_CLIENT);
    match payload {
        Some(p) => {
            let node = p
                .children()
                .find_map(|c| c.attr("node"))
                .map(|n| format!("|{n}"))
                .unwrap_or_default();
            format!("{from}|{}{node}", p.ns())
        }
        None => format!("{from}|{NS_CLIENT}"),
    }
}

/// Keeps `m` as the newest notification of its kind for `to`.
pub async fn store(ctx: &Ctx, m: Element, to: &BareJid) {
    let (host, user) = account(to);
    match ctx.storage.accounts.exists(host, user).await {
        Ok(true) => {}
        _ => return,
    }
    let xml = m.to_string_in(NS_CLIENT);
    let key = kind(&m);
    let stored = ctx
        .storage
        .offline
        .store_latest(host, user, &key, &xml, ctx.offline_quota())
        .await;
    match stored {
        Ok(true) => crate::metrics::offline_store(std::time::Duration::ZERO, true),
        Ok(false) => tracing::debug!(%to, "offline storage full: a notification dropped"),
        Err(e) => tracing::warn!(%to, "a notification not stored: {e}"),
    }
}
