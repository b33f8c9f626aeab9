//! A room's archive (XEP-0313 §5.2 on a room JID): the room's messages, stored once in
//! `muc_messages` (read diffusion), queried as an account's archive is
//! (`ext::archive::query`). Who may read it: not an outcast; in a members-only or
//! password-protected room only a member (or admin, owner) or an occupant, as those could
//! read it by joining anyway. The query runs in a task of its own, so the room goes on
//! routing while storage answers; at most `archive.room_queries` such tasks per service
//! (beyond: `resource-constraint`), as each holds up to a page of messages.

use jid::FullJid;

use super::room::Room;
use super::types::Affiliation;
use crate::ext::archive::query;
use crate::stanza::{ErrorCondition, iq_error};
use crate::storage::archive::Owner;
use crate::xml::Element;

impl Room {
    /// Whether `from` may read the room's archive.
    fn may_read_archive(&self, from: &FullJid) -> bool {
        let a = self.affiliation(&from.to_bare());
        if a == Affiliation::Outcast {
            return false;
        }
        let c = &self.stored.config;
        let closed = c.members_only || !c.password.is_empty();
        !closed || a >= Affiliation::Member || self.occupant_of(from).is_some()
    }

    /// An archive request to the room (`urn:xmpp:mam:2`): its form, its metadata, or a query;
    /// `None` when the answer is sent by the query's task.
    pub fn archive_iq(&self, from: &FullJid, iq: &Element) -> Option<Element> {
        if !self.shared.config.archive.enabled {
            return Some(iq_error(iq, ErrorCondition::ServiceUnavailable, None));
        }
        if !self.may_read_archive(from) {
            return Some(iq_error(iq, ErrorCondition::Forbidden, None));
        }
        let el = iq.children().next()?;
        let kind = iq.attr("type");
        match (el.name(), kind) {
            ("query", Some("get")) => return Some(query::fields(iq)),
            ("query", Some("set")) | ("metadata", Some("get")) => {}
            _ => return Some(iq_error(iq, ErrorCondition::FeatureNotImplemented, None)),
        }
        let Ok(permit) = self.shared.archive_queries.clone().try_acquire_owned() else {
            return Some(iq_error(iq, ErrorCondition::ResourceConstraint, None));
        };
        let shared = self.shared.clone();
        let room = self.jid.to_string();
        let iq = iq.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(router) = shared.router.upgrade() else {
                return;
            };
            let owner = Owner::Room(&room);
            if iq.get_child("metadata", crate::stanza::NS_MAM).is_some() {
                let reply = query::metadata(&shared.storage, owner, &iq).await;
                return router.route(reply).await;
            }
            let cfg = &shared.config.archive;
            match query::run(&shared.storage, cfg, owner, Some(&room), &iq).await {
                Ok(batch) => query::deliver(&router, &iq, batch),
                Err(reply) => router.route(reply).await,
            }
        });
        None
    }
}
