//! What wakes a c2s session's loop, and the helpers its `select!` waits with.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::sm;
use crate::session::SessionMsg;

/// Receives from a channel when there is one; never resolves otherwise.
pub(super) async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Receives from a session's inbox when there is one; never resolves otherwise.
pub(super) async fn recv_inbox(
    rx: &mut Option<crate::session::queue::Inbox>,
) -> Option<crate::session::SessionMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Keeps the count of sessions holding a read buffer: `held` is this session's last state.
pub(super) fn count_buffer(counter: &std::sync::atomic::AtomicUsize, held: &mut bool, now: bool) {
    use std::sync::atomic::Ordering;
    if now != *held {
        *held = now;
        if now {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Waits for a notification when there is a `Notify`; never resolves otherwise.
pub(super) async fn notified(n: &Option<Arc<Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// What woke the loop.
pub(super) enum Wake<I> {
    Shutdown,
    Deadline,
    Idle,
    Kicked,
    Full,
    /// An ack request may be due, or the session quiet since the instant given.
    Tick(Option<Instant>),
    Resume(Option<sm::Request>),
    Inbox(Option<SessionMsg>),
    /// Input from the transport, or `None` when it is gone.
    Read(Option<I>),
}
