//! One BOSH session (XEP-0124) as the [`Wire`] of a c2s session: HTTP requests come in through
//! a channel, in any order within the window; each is answered once, in `rid` order, when the
//! session has something to send ("the message connection": a held request is answered as soon
//! as a stanza arrives) or when `wait` has passed. What arrives while no request is held waits
//! in a bounded pool; the last answers are kept for a client that asks again (a broken HTTP
//! connection: §14.3 retransmission). A session with no request for `inactivity` is over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Body, Sessions, Settings, terminate, write_body};
use crate::session::c2s::driver::Wire;
use crate::session::c2s::{C2s, Flow, Part, Wires};
use crate::stream::NS_STREAMS;
use crate::xml::{Limits, StreamEvent, StreamHeader, parse_fragment};

/// One HTTP request, as the handler hands it over.
pub struct Request {
    /// The parsed `<body/>`.
    pub body: Body,
    /// Where its answer goes (the bytes of the response's `<body/>`).
    pub reply: oneshot::Sender<Arc<Vec<u8>>>,
}

/// A request waiting for something to send.
struct Held {
    rid: u64,
    reply: oneshot::Sender<Arc<Vec<u8>>>,
    until: Instant,
}

/// The session's side of the HTTP requests.
pub struct Bosh {
    pub(super) sid: String,
    pub(super) rx: mpsc::Receiver<Request>,
    pub(super) settings: Settings,
    pub(super) sessions: Arc<Sessions>,
    /// Set once SASL succeeded: the handler then reads bodies with the bound-session limits.
    pub(super) authenticated: Arc<AtomicBool>,
    /// The `rid` expected next.
    pub(super) next_rid: u64,
    /// Requests that came ahead of their turn (at most `requests` of them).
    pub(super) early: BTreeMap<u64, Request>,
    /// Held requests, oldest first.
    held: VecDeque<Held>,
    /// The last answers, for retransmission.
    answers: VecDeque<(u64, Arc<Vec<u8>>)>,
    /// What waits for a request: the children of the next response, and their bytes.
    pool: Vec<u8>,
    pool_items: Vec<std::ops::Range<usize>>,
    /// The session creation was answered (its response carries the session's attributes).
    created: bool,
    /// The core wants a new stream (after SASL): the next body must say `xmpp:restart`.
    awaiting_restart: bool,
    /// The session ends: the next answers are `type='terminate'`, with this condition.
    terminate: Option<&'static str>,
    /// When the last request came (inactivity counts from the last answer after it).
    last_request: Instant,
    /// When the last empty request was taken (the polling rule of a session with hold 0).
    last_empty: Option<Instant>,
}

impl Bosh {
    /// A new session's wire; the creation request is the first the channel gives.
    pub(super) fn new(
        sid: String,
        rx: mpsc::Receiver<Request>,
        settings: Settings,
        sessions: Arc<Sessions>,
        authenticated: Arc<AtomicBool>,
        first_rid: u64,
    ) -> Self {
        Bosh {
            sid,
            rx,
            settings,
            sessions,
            authenticated,
            next_rid: first_rid,
            early: BTreeMap::new(),
            held: VecDeque::new(),
            answers: VecDeque::new(),
            pool: Vec::new(),
            pool_items: Vec::new(),
            created: false,
            awaiting_restart: false,
            terminate: None,
            last_request: Instant::now(),
            last_empty: None,
        }
    }

    /// Answers the oldest held request with the pool (or nothing).
    fn answer_oldest(&mut self) {
        let Some(h) = self.held.pop_front() else {
            return;
        };
        let mut attrs: Vec<(&str, String)> = Vec::new();
        if !self.created {
            self.created = true;
            attrs.extend(self.settings.creation_attrs(&self.sid));
        }
        if let Some(condition) = self.terminate {
            attrs.push(("type", "terminate".into()));
            if condition != "normal" {
                attrs.push(("condition", condition.into()));
            }
        }
        // §9.1: tell the client which request this answers when it is not the newest.
        if self.settings.ack && h.rid + 1 < self.next_rid {
            attrs.push(("ack", (self.next_rid - 1).to_string()));
        }
        let body = Arc::new(write_body(&attrs, &self.pool));
        self.pool.clear();
        self.pool_items.clear();
        self.answers.push_back((h.rid, body.clone()));
        while self.answers.len() > self.settings.requests as usize {
            self.answers.pop_front();
        }
        // A client that gave up on this request asks again with the same rid: answered from
        // `answers` then.
        let _ = h.reply.send(body);
    }

    /// Handles one request in its turn.
    async fn take_turn(&mut self, s: &mut C2s, req: Request) -> Flow {
        self.next_rid += 1;
        let body = req.body;
        // §11: a polling client (hold 0, answered at once) may not send empty requests faster
        // than `polling` seconds apart; it would spin the server.
        let empty = body.children.is_empty() && !body.restart && !body.terminate;
        if empty && self.settings.hold == 0 && self.created {
            let now = Instant::now();
            let polling = Duration::from_secs(super::POLLING_SECS);
            if self
                .last_empty
                .is_some_and(|t| now.duration_since(t) < polling)
            {
                let _ = req.reply.send(Arc::new(terminate("policy-violation")));
                self.terminate = Some("policy-violation");
                return Flow::End;
            }
            self.last_empty = Some(now);
        }
        if let Some(ack) = body.ack {
            self.answers.retain(|(rid, _)| *rid > ack);
        }
        self.held.push_back(Held {
            rid: body.rid,
            reply: req.reply,
            until: Instant::now() + Duration::from_secs(self.settings.wait),
        });
        let mut flow = Flow::Continue;
        if !self.created {
            // The session creation request stands for the stream header (XEP-0206 §3).
            flow = s
                .on_event(StreamEvent::Header(StreamHeader {
                    ns: NS_STREAMS.into(),
                    name: "stream".into(),
                    attrs: vec![
                        ("to".into(), body.to.clone().unwrap_or_default()),
                        ("version".into(), "1.0".into()),
                    ],
                }))
                .await;
        } else if body.restart {
            if !self.awaiting_restart {
                return Flow::Close(crate::stream::StreamError::with_text(
                    crate::stream::Condition::PolicyViolation,
                    "a stream restart was not expected now",
                ));
            }
            self.awaiting_restart = false;
            flow = s
                .on_event(StreamEvent::Header(StreamHeader {
                    ns: NS_STREAMS.into(),
                    name: "stream".into(),
                    attrs: vec![
                        (
                            "to".into(),
                            body.to
                                .clone()
                                .unwrap_or_else(|| self.settings.host.clone()),
                        ),
                        ("version".into(), "1.0".into()),
                    ],
                }))
                .await;
        }
        for el in body.children {
            if !matches!(flow, Flow::Continue) {
                break;
            }
            flow = s.on_event(StreamEvent::Element(el)).await;
            if let Flow::Restart = flow {
                self.awaiting_restart = true;
                self.authenticated.store(true, Ordering::Relaxed);
                s.restart(None);
                flow = Flow::Continue;
            }
        }
        if body.terminate && matches!(flow, Flow::Continue) {
            self.terminate = Some("normal");
            return Flow::End;
        }
        // More held than the client may have: the oldest goes back now (§11).
        while self.held.len() > self.settings.hold as usize {
            self.answer_oldest();
        }
        flow
    }

    /// A request out of turn: a retransmission, one ahead of its turn, or a bad one.
    fn out_of_turn(&mut self, req: Request) -> Option<Flow> {
        let rid = req.body.rid;
        if rid < self.next_rid {
            if let Some(h) = self.held.iter_mut().find(|h| h.rid == rid) {
                // Asked again while held: the new connection gets the answer.
                h.reply = req.reply;
                return None;
            }
            if let Some((_, body)) = self.answers.iter().find(|(r, _)| *r == rid) {
                let _ = req.reply.send(body.clone());
                return None;
            }
        } else if rid < self.next_rid + u64::from(self.settings.requests) {
            self.early.insert(rid, req);
            return None;
        }
        // §14.3: a rid outside the window ends the session.
        let _ = req.reply.send(Arc::new(terminate("item-not-found")));
        self.terminate = Some("item-not-found");
        Some(Flow::End)
    }
}

impl Wire for Bosh {
    type Input = Request;

    async fn read(&mut self) -> Option<Request> {
        loop {
            let hold_until = self.held.front().map(|h| h.until);
            let gone_at = self
                .held
                .is_empty()
                .then(|| self.last_request + Duration::from_secs(self.settings.inactivity));
            let wake_at = hold_until.or(gone_at).unwrap_or_else(Instant::now);
            tokio::select! {
                r = self.rx.recv() => {
                    self.last_request = Instant::now();
                    return r;
                }
                _ = tokio::time::sleep_until(wake_at) => {
                    if hold_until.is_some() {
                        // `wait` passed with nothing to send: an empty answer.
                        self.answer_oldest();
                        if self.held.is_empty() {
                            self.last_request = Instant::now();
                        }
                    } else {
                        // §12: the client went away.
                        return None;
                    }
                }
            }
        }
    }

    async fn feed(&mut self, s: &mut C2s, req: Request) -> Flow {
        if req.body.rid != self.next_rid {
            return self.out_of_turn(req).unwrap_or(Flow::Continue);
        }
        let mut flow = self.take_turn(s, req).await;
        // Requests that came early, now in turn.
        while matches!(flow, Flow::Continue) {
            let Some(req) = self.early.remove(&self.next_rid) else {
                break;
            };
            flow = self.take_turn(s, req).await;
        }
        flow
    }

    async fn flush(&mut self, s: &mut C2s, _wires: &Wires) -> std::io::Result<()> {
        for (part, bytes) in s.output().take_messages() {
            match part {
                // The session creation's answer carries the stream's attributes instead.
                Part::Header => {}
                Part::Close => {
                    self.terminate.get_or_insert("normal");
                }
                Part::Element => {
                    if self.terminate.is_none() && bytes.starts_with(b"<stream:error") {
                        self.terminate = Some("remote-stream-error");
                    }
                    let start = self.pool.len();
                    self.pool.extend_from_slice(&bytes);
                    self.pool_items.push(start..self.pool.len());
                }
            }
        }
        if (!self.pool.is_empty() || self.terminate.is_some()) && !self.held.is_empty() {
            self.answer_oldest();
        }
        if self.terminate.is_some() {
            while !self.held.is_empty() {
                self.answer_oldest();
            }
        }
        // A client that does not come back for what is queued: as a TCP client that stops
        // reading (`c2s.session_queue_bytes`).
        if self.pool.len() > self.settings.max_pool {
            return Err(std::io::Error::other(
                "too much waiting for the BOSH client to poll",
            ));
        }
        Ok(())
    }

    fn release_idle(&mut self) {
        if self.pool.is_empty() {
            self.pool = Vec::new();
            self.pool_items = Vec::new();
        }
    }

    fn holds_buffer(&self) -> bool {
        self.pool.capacity() > 0
    }

    async fn shutdown(&mut self, s: &mut C2s) {
        self.sessions.remove(&self.sid);
        self.terminate.get_or_insert("normal");
        while !self.held.is_empty() {
            self.answer_oldest();
        }
        // Requests still queued get the end too.
        self.rx.close();
        while let Ok(req) = self.rx.try_recv() {
            let _ = req
                .reply
                .send(Arc::new(write_body(&[("type", "terminate".into())], &[])));
        }
        // Stanzas no request came for: routed again (offline storage, another resource).
        let pool = std::mem::take(&mut self.pool);
        for range in std::mem::take(&mut self.pool_items) {
            let Ok(text) = std::str::from_utf8(&pool[range]) else {
                continue;
            };
            if let Ok(el) = parse_fragment(text, Limits::stored()) {
                s.undelivered(el);
            }
        }
    }
}
