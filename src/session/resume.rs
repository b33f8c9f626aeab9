//! Resumable sessions (XEP-0198 §5): resumption id → the task that owns the session, and the
//! `h` of sessions that expired recently, so a late `<resume/>` still learns which of its
//! stanzas were handled (`<failed h='…'/>`).
//!
//! A session's task stays the owner while its client is connected and while it waits detached;
//! a new connection asks it, through a channel, to hand the session over.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use jid::BareJid;
use tokio::sync::{mpsc, oneshot};

/// Expired sessions whose `h` is remembered.
const EXPIRED_KEPT: usize = 10_000;
/// Time a new connection waits for the owner to hand a session over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an owner receives resumption requests.
pub type Requests<T> = mpsc::Receiver<ResumeRequest<T>>;

/// Why a resumption was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown id, another account's id, or a session that ended (`item-not-found`).
    NotFound,
    /// The client acknowledged more than was sent (`undefined-condition`).
    BadAck,
}

/// A request to take a session over, sent to its owner.
#[derive(Debug)]
pub struct ResumeRequest<T> {
    /// The account the new connection authenticated as.
    pub bare: BareJid,
    /// The `h` the client sent: what it handled of ours.
    pub h: u32,
    /// Where the owner sends the session, or why not.
    pub reply: oneshot::Sender<Result<T, Refusal>>,
}

/// Expired ids → (account, final `h`), and their order for eviction.
type Expired = (HashMap<String, (BareJid, u32)>, VecDeque<String>);

struct Live<T> {
    bare: BareJid,
    tx: mpsc::Sender<ResumeRequest<T>>,
}

/// The table of resumable sessions of this node. `T` is what a handover carries.
pub struct Resumptions<T> {
    live: Mutex<HashMap<String, Live<T>>>,
    expired: Mutex<Expired>,
}

impl<T> Default for Resumptions<T> {
    fn default() -> Self {
        Resumptions {
            live: Mutex::new(HashMap::new()),
            expired: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }
}

impl<T> Resumptions<T> {
    /// Registers a resumable session; its owner receives requests on the returned channel.
    pub fn register(&self, id: String, bare: BareJid) -> mpsc::Receiver<ResumeRequest<T>> {
        let (tx, rx) = mpsc::channel(4);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(id, Live { bare, tx });
        rx
    }

    /// The owner's channel for `id`, if `bare` owns it.
    pub fn lookup(&self, id: &str, bare: &BareJid) -> Option<mpsc::Sender<ResumeRequest<T>>> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id)
            .filter(|l| &l.bare == bare)
            .map(|l| l.tx.clone())
    }

    /// Asks the owner of `id` (if `bare` owns it) to hand its session over, with the client's
    /// `h`; waits (bounded) for the answer. `None`: no owner answered.
    pub async fn take_over(&self, id: &str, bare: &BareJid, h: u32) -> Option<Result<T, Refusal>> {
        let owner = self.lookup(id, bare)?;
        let (reply, answer) = oneshot::channel();
        let req = ResumeRequest {
            bare: bare.clone(),
            h,
            reply,
        };
        owner.send(req).await.ok()?;
        tokio::time::timeout(HANDOVER_TIMEOUT, answer)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The session ended: it can no longer be resumed; its final `h` is remembered for a while.
    pub fn expire(&self, id: &str, h: u32) {
        let gone = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.remove(id)
        };
        let Some(gone) = gone else { return };
        let mut ex = self.expired.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *ex;
        if map.insert(id.to_string(), (gone.bare, h)).is_none() {
            order.push_back(id.to_string());
        }
        while order.len() > EXPIRED_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// The final `h` of an expired session of `bare`.
    pub fn expired_h(&self, id: &str, bare: &BareJid) -> Option<u32> {
        let ex = self.expired.lock().unwrap_or_else(|p| p.into_inner());
        ex.0.get(id).filter(|(b, _)| b == bare).map(|(_, h)| *h)
    }

    /// Resumable sessions now.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is resumable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_account_finds_a_session_and_expiry_keeps_h() {
        let r: Resumptions<()> = Resumptions::default();
        let alice = BareJid::new("alice@h").unwrap();
        let bob = BareJid::new("bob@h").unwrap();
        let _rx = r.register("x".into(), alice.clone());
        assert!(r.lookup("x", &alice).is_some());
        assert!(r.lookup("x", &bob).is_none());
        r.expire("x", 7);
        assert!(r.lookup("x", &alice).is_none());
        assert_eq!(r.expired_h("x", &alice), Some(7));
        assert_eq!(r.expired_h("x", &bob), None);
        assert!(r.is_empty());
    }
}
