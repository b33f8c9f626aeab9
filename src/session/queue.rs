//! A session's inbox, bounded twice: in messages (`c2s.session_queue`, the channel's capacity)
//! and in bytes (`c2s.session_queue_bytes`), so that what one slow client makes the server hold
//! is known whatever the size of its stanzas. The sender side ([`Outbox`], inside each
//! [`super::SessionHandle`]) adds a message's size before queueing it; the receiver side
//! ([`Inbox`], the session's) subtracts it when it takes the message out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::registry::SessionMsg;

impl SessionMsg {
    /// What this message holds in memory, as the queue counts it: the element tree of a
    /// stanza, the serialised bytes of a shared stanza. A batch (the offline messages handed
    /// over at login) counts nothing here: it comes from the server's own storage, bounded by
    /// `im.offline_quota_bytes`, and the session takes it out at its next turn; counted, it
    /// would make the first live stanza behind it look like an overflow.
    pub fn bytes(&self) -> usize {
        match self {
            SessionMsg::Stanza(el) => el.deep_cost(),
            SessionMsg::Shared(a) => a.bytes(),
            SessionMsg::Batch(_) | SessionMsg::Close(_) => 0,
        }
    }
}

/// Why a message was not queued.
#[derive(Debug)]
pub enum Refused {
    /// Over the message or the byte bound.
    Full(SessionMsg),
    /// The session is gone.
    Closed(SessionMsg),
}

/// The sending side of a session's inbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<SessionMsg>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving side of a session's inbox.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<SessionMsg>,
    queued: Arc<AtomicUsize>,
}

/// A new inbox holding at most `messages` messages and `max_bytes` bytes.
pub fn inbox(messages: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            max_bytes,
        },
        Inbox { rx, queued },
    )
}

impl Outbox {
    /// Queues `msg` without waiting. A message that alone exceeds the byte bound still goes
    /// into an empty queue (one stanza is bounded by the stanza limits), so that a large
    /// stanza reaches an idle session.
    pub fn try_send(&self, msg: SessionMsg) -> Result<(), Refused> {
        let n = msg.bytes();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.max_bytes {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Refused::Full(msg));
        }
        self.tx.try_send(msg).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(m) => Refused::Full(m),
                mpsc::error::TrySendError::Closed(m) => Refused::Closed(m),
            }
        })
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl Inbox {
    fn took(&self, msg: Option<SessionMsg>) -> Option<SessionMsg> {
        if let Some(m) = &msg {
            self.queued.fetch_sub(m.bytes(), Ordering::AcqRel);
        }
        msg
    }

    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<SessionMsg> {
        let m = self.rx.recv().await;
        self.took(m)
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Option<SessionMsg> {
        let m = self.rx.try_recv().ok();
        self.took(m)
    }

    /// Refuses further messages; those already queued can still be taken.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::Element;

    fn msg(body: usize) -> SessionMsg {
        SessionMsg::Stanza(Box::new(
            Element::new("message", "jabber:client").with_text("x".repeat(body)),
        ))
    }

    #[tokio::test]
    async fn bounded_in_messages_and_in_bytes() {
        let (tx, mut rx) = inbox(100, 10_000);
        // A stanza bigger than the byte bound still reaches an empty queue ...
        assert!(tx.try_send(msg(20_000)).is_ok());
        // ... but nothing more fits behind it.
        assert!(matches!(tx.try_send(msg(10)), Err(Refused::Full(_))));
        assert!(rx.recv().await.is_some());
        assert_eq!(tx.queued_bytes(), 0);
        let mut n = 0;
        while tx.try_send(msg(1000)).is_ok() {
            n += 1;
        }
        assert!((8..10).contains(&n), "{n} of ~1 KiB in 10,000 bytes");
        while rx.try_recv().is_some() {}
        assert_eq!(tx.queued_bytes(), 0);
        // The message bound holds for tiny messages.
        let (tx, _rx) = inbox(3, 1 << 20);
        for _ in 0..3 {
            tx.try_send(msg(1)).unwrap();
        }
        assert!(matches!(tx.try_send(msg(1)), Err(Refused::Full(_))));
    }
}
