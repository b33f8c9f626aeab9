//! The owner and admin lists in the configuration form (XEP-0045 §10.2:
//! `muc#roomconfig_roomowners`, `muc#roomconfig_roomadmins`, `jid-multi`): shown with the
//! room's current owners and admins, and a submitted list makes the affiliations what it says
//! (a JID added gets the affiliation, one left out loses it), as the `muc#admin` lists would.
//! A room keeps at least one owner; the affiliations stay within `muc.max_affiliations`.

use std::collections::{BTreeMap, BTreeSet};

use jid::{BareJid, Jid};

use super::room::Room;
use super::types::Affiliation;
use crate::router::Router;
use crate::stanza::form;
use crate::xml::Element;

const OWNERS: &str = "muc#roomconfig_roomowners";
const ADMINS: &str = "muc#roomconfig_roomadmins";

impl Room {
    /// The two list fields of the form, with the current owners and admins.
    pub fn list_fields(&self) -> [Element; 2] {
        let of = |a: Affiliation| -> Vec<&str> {
            let mut v: Vec<&str> = self
                .affiliations
                .iter()
                .filter(|(_, (x, _))| *x == a)
                .map(|(j, _)| j.as_str())
                .collect();
            v.sort_unstable();
            v
        };
        [
            form::field(
                OWNERS,
                Some("jid-multi"),
                Some("Room owners"),
                &of(Affiliation::Owner),
            ),
            form::field(
                ADMINS,
                Some("jid-multi"),
                Some("Room admins"),
                &of(Affiliation::Admin),
            ),
        ]
    }

    /// The affiliation changes a submitted form's lists ask for (none when it has neither).
    pub fn list_changes(&self, x: &Element) -> Result<Vec<(BareJid, Affiliation)>, &'static str> {
        let has = |var: &str| {
            x.children()
                .any(|f| f.is("field", form::NS) && f.attr("var") == Some(var))
        };
        let read = |var: &str| -> Result<BTreeSet<BareJid>, &'static str> {
            form::values(x, var)
                .iter()
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    Jid::new(v.trim())
                        .map(|j| j.to_bare())
                        .map_err(|_| "a malformed JID")
                })
                .collect()
        };
        let (owners, admins) = (
            has(OWNERS).then(|| read(OWNERS)),
            has(ADMINS).then(|| read(ADMINS)),
        );
        let owners = owners.transpose()?;
        let admins = admins.transpose()?;
        if owners.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err("a room needs an owner");
        }
        // What each JID concerned ends up as: a listed owner is an owner; a listed admin an
        // admin; one of a list it was on and is no longer, nothing.
        let mut fin: BTreeMap<BareJid, Affiliation> = BTreeMap::new();
        for (j, (a, _)) in &self.affiliations {
            let Ok(j) = BareJid::new(j) else { continue };
            let dropped = (*a == Affiliation::Owner && owners.is_some())
                || (*a == Affiliation::Admin && admins.is_some());
            if dropped {
                fin.insert(j, Affiliation::None);
            }
        }
        for j in admins.iter().flatten() {
            fin.insert(j.clone(), Affiliation::Admin);
        }
        for j in owners.iter().flatten() {
            fin.insert(j.clone(), Affiliation::Owner);
        }
        let changes: Vec<(BareJid, Affiliation)> = fin
            .into_iter()
            .filter(|(j, a)| self.affiliation(j) != *a)
            .collect();
        let added = changes
            .iter()
            .filter(|(j, a)| *a != Affiliation::None && self.affiliation(j) == Affiliation::None)
            .count();
        if self.affiliations.len() + added > self.shared.config.muc.max_affiliations {
            return Err("too many affiliations");
        }
        Ok(changes)
    }

    /// Stores list changes; the JIDs changed with their affiliations before, or `None` if
    /// storage failed (what was stored stays).
    pub async fn store_list_changes(
        &mut self,
        changes: Vec<(BareJid, Affiliation)>,
    ) -> Option<Vec<(BareJid, Affiliation)>> {
        let mut done = Vec::with_capacity(changes.len());
        for (jid, a) in changes {
            let before = self.affiliation(&jid);
            if !self.set_affiliation(&jid, a, "").await {
                return None;
            }
            done.push((jid, before));
        }
        Some(done)
    }

    /// What the occupants of changed JIDs see (after the form's result).
    pub async fn lists_changed(&mut self, router: &Router, done: Vec<(BareJid, Affiliation)>) {
        for (jid, before) in done {
            self.affiliation_changed(router, &jid, before).await;
        }
    }
}
