//! Iq requests the server itself sends to an entity (a client's disco#info about its
//! entity capabilities): each waits under a random id of the server's for the answer from the
//! JID it asked, and nobody else's. Bounded: past `MAX_PENDING` waiting requests a new one is
//! not made (the caller goes without the answer).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::xml::Element;

/// Requests waiting for an answer, at most.
pub const MAX_PENDING: usize = 10_000;

/// The waiting requests.
#[derive(Default)]
pub struct Requests {
    pending: Mutex<HashMap<String, (String, oneshot::Sender<Element>)>>,
}

impl Requests {
    /// Registers a request to `to`: its id, and where its answer will come.
    pub fn open(&self, to: &str) -> Option<(String, oneshot::Receiver<Element>)> {
        let mut p = self.pending.lock().ok()?;
        if p.len() >= MAX_PENDING {
            return None;
        }
        let id = format!("srv-{}", crate::stream::random_id());
        let (tx, rx) = oneshot::channel();
        p.insert(id.clone(), (to.to_string(), tx));
        Some((id, rx))
    }

    /// Waits for the answer to request `id` for at most `timeout`.
    pub async fn wait(
        &self,
        id: &str,
        rx: oneshot::Receiver<Element>,
        timeout: Duration,
    ) -> Option<Element> {
        let answer = tokio::time::timeout(timeout, rx).await.ok()?.ok();
        if answer.is_none()
            && let Ok(mut p) = self.pending.lock()
        {
            p.remove(id);
        }
        answer
    }

    /// An iq result or error addressed to the server: taken if it answers a waiting request
    /// and comes from the JID that was asked.
    pub fn answer(&self, iq: &Element) -> bool {
        let (Some(id), Some(from)) = (iq.attr("id"), iq.attr("from")) else {
            return false;
        };
        let Ok(mut p) = self.pending.lock() else {
            return false;
        };
        match p.get(id) {
            Some((to, _)) if to == from => {}
            _ => return false,
        }
        if let Some((_, tx)) = p.remove(id) {
            let _ = tx.send(iq.clone());
        }
        true
    }
}
