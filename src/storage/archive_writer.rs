//! Group commit for the archive: every `append` goes to one writer task through a bounded
//! queue (`archive.write_queue`); the writer takes what is waiting, up to
//! `archive.write_batch` messages, writes them in one transaction and then answers each
//! caller. A caller returns only once its messages are committed, so a message is never
//! acknowledged (stamped with its archive id, counted in a stream-management `<a h>`) before
//! it is durable; and under load one commit carries many messages instead of one each. A full
//! queue makes the caller wait (backpressure on the sending session), never drop.
//!
//! Also here: the accounts' archiving preferences, cached (they are read for every archived
//! message), at most `storage.roster_cache` accounts; past that the cache is emptied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::archive::{
    ArchiveEntry, ArchivePage, ArchiveQuery, ArchiveStore, Archived, Owner, Prefs,
};
use super::inbox::{Conversation, Received, RoomMark};
use super::{StoreError, StoreFuture};

struct Job {
    entries: Vec<ArchiveEntry>,
    /// The ids the entries were given, in order.
    done: oneshot::Sender<Result<Vec<i64>, String>>,
}

type PrefsCache = HashMap<(String, String), Option<Prefs>>;

/// The archive store behind a group-commit writer and a preferences cache.
pub struct Batched {
    inner: Arc<dyn ArchiveStore>,
    tx: mpsc::Sender<Job>,
    prefs: Mutex<PrefsCache>,
    prefs_cap: usize,
}

impl Batched {
    /// Wraps `inner`, starting its writer (on the current runtime).
    pub fn new(
        inner: Arc<dyn ArchiveStore>,
        queue: usize,
        batch: usize,
        prefs_cap: usize,
    ) -> Batched {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(write_loop(inner.clone(), rx, batch.max(1)));
        Batched {
            inner,
            tx,
            prefs: Mutex::new(HashMap::new()),
            prefs_cap,
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<Option<Prefs>> {
        self.prefs.lock().ok()?.get(key).cloned()
    }

    /// Caches `p`; a read (`overwrite` false) never replaces what a write cached meanwhile.
    fn remember(&self, key: (String, String), p: Option<Prefs>, overwrite: bool) {
        if self.prefs_cap == 0 {
            return;
        }
        if let Ok(mut c) = self.prefs.lock() {
            if c.len() >= self.prefs_cap {
                c.clear();
            }
            if overwrite {
                c.insert(key, p);
            } else {
                c.entry(key).or_insert(p);
            }
        }
    }
}

/// Takes what is waiting, commits it at once, answers each caller.
async fn write_loop(inner: Arc<dyn ArchiveStore>, mut rx: mpsc::Receiver<Job>, batch: usize) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut entries: Vec<ArchiveEntry> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut n = first.entries.len();
        jobs.push(first);
        while n < batch {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.entries.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut sizes = Vec::with_capacity(jobs.len());
        for j in &mut jobs {
            sizes.push(j.entries.len());
            entries.append(&mut j.entries);
        }
        let start = std::time::Instant::now();
        let r = inner.append(&mut entries).await.map_err(|e| e.to_string());
        match &r {
            Ok(()) => crate::metrics::archive_commit(start.elapsed(), entries.len() as u64),
            Err(e) => tracing::error!(messages = entries.len(), "archive write failed: {e}"),
        }
        let mut ids = entries.drain(..).map(|e| e.id);
        for (j, n) in jobs.drain(..).zip(sizes) {
            let mine: Vec<i64> = ids.by_ref().take(n).collect();
            let _ = j.done.send(r.clone().map(|()| mine));
        }
    }
}

impl ArchiveStore for Batched {
    fn append<'a>(&'a self, entries: &'a mut [ArchiveEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (done, answer) = oneshot::channel();
            let job = Job {
                entries: entries.to_vec(),
                done,
            };
            let gone = || StoreError::Io("the archive writer has stopped".into());
            self.tx.send(job).await.map_err(|_| gone())?;
            match answer.await.map_err(|_| gone())? {
                Ok(ids) => {
                    for (e, id) in entries.iter_mut().zip(ids) {
                        e.id = id;
                    }
                    Ok(())
                }
                Err(e) => Err(StoreError::Io(format!("archive write: {e}"))),
            }
        })
    }

    fn contains<'a>(&'a self, owner: Owner<'a>, stanza_id: &'a str) -> StoreFuture<'a, bool> {
        self.inner.contains(owner, stanza_id)
    }

    fn query<'a>(
        &'a self,
        owner: Owner<'a>,
        q: &'a ArchiveQuery,
    ) -> StoreFuture<'a, Option<ArchivePage>> {
        self.inner.query(owner, q)
    }

    fn bounds<'a>(&'a self, owner: Owner<'a>) -> StoreFuture<'a, Option<(Archived, Archived)>> {
        self.inner.bounds(owner)
    }

    fn prefs<'a>(&'a self, host: &'a str, user: &'a str) -> StoreFuture<'a, Option<Prefs>> {
        Box::pin(async move {
            let key = (host.to_string(), user.to_string());
            if let Some(p) = self.cached(&key) {
                return Ok(p);
            }
            let p = self.inner.prefs(host, user).await?;
            self.remember(key, p.clone(), false);
            Ok(p)
        })
    }

    fn set_prefs<'a>(&'a self, host: &'a str, user: &'a str, p: &'a Prefs) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = (host.to_string(), user.to_string());
            // Forgotten first: a failed write must not leave the cache saying otherwise.
            if let Ok(mut c) = self.prefs.lock() {
                c.remove(&key);
            }
            self.inner.set_prefs(host, user, p).await?;
            self.remember(key, Some(p.clone()), true);
            Ok(())
        })
    }

    fn forget(&self, host: &str, user: &str) {
        if let Ok(mut c) = self.prefs.lock() {
            c.remove(&(host.to_string(), user.to_string()));
        }
    }

    fn purge<'a>(&'a self, before_ms: i64, keep: u64) -> StoreFuture<'a, u64> {
        self.inner.purge(before_ms, keep)
    }

    fn inbox<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        limit: usize,
        count_cap: u64,
    ) -> StoreFuture<'a, Vec<Conversation>> {
        self.inner.inbox(host, user, limit, count_cap)
    }

    fn inbox_received<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        with: &'a str,
        before: Option<i64>,
        n: usize,
    ) -> StoreFuture<'a, Option<(u64, i64, Vec<Received>)>> {
        self.inner.inbox_received(host, user, with, before, n)
    }

    fn inbox_set_unread<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        with: &'a str,
        unread: u64,
        last_id: i64,
    ) -> StoreFuture<'a, bool> {
        self.inner
            .inbox_set_unread(host, user, with, unread, last_id)
    }

    fn inbox_room<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        room: &'a str,
        mark: &'a RoomMark,
    ) -> StoreFuture<'a, ()> {
        self.inner.inbox_room(host, user, room, mark)
    }

    fn inbox_reset<'a>(
        &'a self,
        host: &'a str,
        user: &'a str,
        jid: &'a str,
    ) -> StoreFuture<'a, bool> {
        self.inner.inbox_reset(host, user, jid)
    }
}
