//! Whole rosters kept in memory in front of a [`RosterStore`], for presence: every broadcast
//! reads the sender's whole roster, and the profile of a presence wave showed that read (a query
//! and a row conversion per item) as a fifth of the server's instructions.
//!
//! Every write through this store drops the account's entry; a read that raced with a write
//! does not fill the cache (a counter of writes tells). Entries are dropped when an account's
//! last session ends ([`RosterStore::forget`]), so a roster changed behind the server's back
//! (another process, e.g. `xmppd deluser`) is read again at the next login. The cache holds at
//! most `storage.roster_cache` rosters; past that it is emptied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{RosterItem, RosterStore, StoreError, StoreFuture};

/// A roster: its version and every item.
pub type Roster = Arc<(i64, Vec<RosterItem>)>;

/// The cache in front of `inner`.
pub struct CachedRosters {
    inner: Arc<dyn RosterStore>,
    max: usize,
    map: Mutex<HashMap<String, Roster>>,
    /// Bumped by every write: a read that saw it change does not fill the cache.
    writes: AtomicU64,
}

fn key(host: &str, user: &str) -> String {
    format!("{user}@{host}")
}

impl CachedRosters {
    /// Caches at most `max` rosters of `inner`.
    pub fn new(inner: Arc<dyn RosterStore>, max: usize) -> Self {
        CachedRosters {
            inner,
            max,
            map: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Roster>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a write to the roster of `user@host`, then drops its entry.
    async fn write<T>(
        &self,
        host: &str,
        user: &str,
        w: StoreFuture<'_, T>,
    ) -> Result<T, StoreError> {
        let r = w.await;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.map().remove(&key(host, user));
        r
    }

    /// Whether the roster of `user@host` is cached.
    #[cfg(test)]
    fn holds(&self, host: &str, user: &str) -> bool {
        self.map().contains_key(&key(host, user))
    }
}

impl RosterStore for CachedRosters {
    fn items<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, (i64, Vec<RosterItem>)> {
        self.inner.items(host, user)
    }

    fn items_shared<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            let k = key(host, user);
            if let Some(r) = self.map().get(&k) {
                return Ok(r.clone());
            }
            let before = self.writes.load(Ordering::SeqCst);
            let r: Roster = Arc::new(self.inner.items(host, user).await?);
            if self.max > 0 && self.writes.load(Ordering::SeqCst) == before {
                let mut map = self.map();
                if map.len() >= self.max {
                    map.clear();
                }
                map.insert(k, r.clone());
            }
            Ok(r)
        })
    }

    fn forget(&self, host: &str, user: &str) {
        self.map().remove(&key(host, user));
    }

    fn item<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<RosterItem>> {
        self.inner.item(host, user, contact)
    }

    fn put<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        item: &'a RosterItem,
    ) -> StoreFuture<'a, i64> {
        Box::pin(self.write(host, user, self.inner.put(host, user, item)))
    }

    fn put_state<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        item: &'a RosterItem,
    ) -> StoreFuture<'a, i64> {
        Box::pin(self.write(host, user, self.inner.put_state(host, user, item)))
    }

    fn remove<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(self.write(host, user, self.inner.remove(host, user, contact)))
    }

    fn count<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, usize> {
        self.inner.count(host, user)
    }

    fn pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
    ) -> StoreFuture<'a, Vec<(String, String)>> {
        self.inner.pending(host, user)
    }

    fn add_pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
        stanza: &'a str,
    ) -> StoreFuture<'a, ()> {
        self.inner.add_pending(host, user, contact, stanza)
    }

    fn remove_pending<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, bool> {
        self.inner.remove_pending(host, user, contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Subscription, sqlite};

    async fn store(max: usize) -> (tempfile::TempDir, CachedRosters) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.sqlite").display());
        let s = sqlite::open(&url, 2, 256).await.unwrap();
        (dir, CachedRosters::new(s.rosters, max))
    }

    fn contacts(r: &Roster) -> Vec<(String, Subscription)> {
        r.1.iter()
            .map(|i| (i.contact.clone(), i.subscription))
            .collect()
    }

    #[tokio::test]
    async fn every_write_is_seen_by_the_next_read() {
        let (_dir, c) = store(100).await;
        assert!(c.items_shared("x", "alice").await.unwrap().1.is_empty());
        assert!(c.holds("x", "alice"));
        let mut bob = RosterItem::new("bob@x");
        c.put("x", "alice", &bob).await.unwrap();
        assert!(!c.holds("x", "alice"), "a write drops the entry");
        let r = c.items_shared("x", "alice").await.unwrap();
        assert_eq!(contacts(&r), vec![("bob@x".into(), Subscription::None)]);
        bob.subscription = Subscription::Both;
        c.put_state("x", "alice", &bob).await.unwrap();
        let r = c.items_shared("x", "alice").await.unwrap();
        assert_eq!(contacts(&r), vec![("bob@x".into(), Subscription::Both)]);
        assert_eq!(r.0, c.inner.items("x", "alice").await.unwrap().0);
        c.remove("x", "alice", "bob@x").await.unwrap();
        assert!(c.items_shared("x", "alice").await.unwrap().1.is_empty());
        // Another account's write leaves this entry alone; forget drops it.
        c.put("x", "carol", &RosterItem::new("alice@x"))
            .await
            .unwrap();
        assert!(c.holds("x", "alice"));
        c.forget("x", "alice");
        assert!(!c.holds("x", "alice"));
    }

    #[tokio::test]
    async fn the_limit_bounds_the_cache_and_zero_turns_it_off() {
        let (_dir, c) = store(2).await;
        for u in ["a", "b", "c"] {
            c.put("x", u, &RosterItem::new(format!("{u}-friend@x")))
                .await
                .unwrap();
        }
        for u in ["a", "b", "c"] {
            let r = c.items_shared("x", u).await.unwrap();
            assert_eq!(r.1[0].contact, format!("{u}-friend@x"));
        }
        assert!(c.map().len() <= 2);
        assert!(
            c.holds("x", "c"),
            "the newest entry stays after the cache is emptied"
        );
        let (_dir, off) = store(0).await;
        off.items_shared("x", "a").await.unwrap();
        assert!(off.map().is_empty());
    }
}
