//! R, group chat: `occupants` users enter one room (the join wave, timed), then `senders` of
//! them post groupchat messages at an offered rate and every occupant counts what reaches it.
//! A delivery is one message reaching one occupant, so a message rate of r makes r × occupants
//! deliveries per second. A ramp doubles the rate until a step fails (< 1% loss, p99 within
//! `max_p99`, no session lost), then bisects between the last step that held and the first
//! that failed to within 10%.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::conn::{Io, Target};
use crate::reader::{Kind, Reader, Writer};
use crate::scenarios::login_all;
use crate::stats::{Lanes, Span, epoch, figure, since};

/// The parameters of R.
pub struct RoomOpts {
    pub occupants: usize,
    pub senders: usize,
    /// First message rate of the ramp (messages per second, all senders together).
    pub start: f64,
    pub step_secs: u64,
    pub grace_secs: u64,
    pub max_p99: f64,
}

/// What the readers share.
#[derive(Default)]
struct Room {
    /// Occupants whose join completed (they got the subject).
    joined: AtomicU64,
    step: AtomicU64,
    received: AtomicU64,
    /// Room messages of any step (to tell when a backlog has drained).
    any: AtomicU64,
    latencies: Lanes,
    /// Readers whose stream ended.
    dropped: AtomicU64,
    /// Joins the room refused, with the first refusal.
    refused: AtomicU64,
    refusal: Mutex<Option<String>>,
}

/// Runs R.
pub async fn rooms(t: Arc<Target>, pid: Option<u32>, o: RoomOpts) -> Result<()> {
    if o.senders == 0 || o.senders > o.occupants {
        bail!("--senders must be between 1 and --occupants");
    }
    let n = o.occupants;
    let sessions = login_all(&t, n).await?;
    let room = format!(
        "bench{n}-{}@conference.{}",
        epoch().elapsed().as_nanos() % 1_000_000_007,
        t.domain
    );
    eprintln!("[rooms] {n} users logged in; room {room}");
    let state = Arc::new(Room {
        latencies: Lanes::new(n),
        ..Room::default()
    });
    let mut writers = Vec::new();
    for (k, mut s) in sessions.into_iter().enumerate() {
        if k == 0 {
            create(&mut s.reader, &s.writer, &room).await?;
            state.joined.fetch_add(1, Ordering::Relaxed);
        }
        tokio::spawn(reader(s.reader, k, state.clone(), k == 0));
        writers.push(s.writer);
    }
    // The join wave: everyone else enters, at most 50 joins in flight.
    let span = Span::start(pid);
    let mut shown = Instant::now();
    for (k, w) in writers.iter_mut().enumerate().skip(1) {
        while (k as u64).saturating_sub(state.joined.load(Ordering::Relaxed)) > 50 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if state.refused.load(Ordering::Relaxed) > 0
                || state.dropped.load(Ordering::Relaxed) > 0
            {
                break;
            }
            if shown.elapsed() > Duration::from_secs(5) {
                shown = Instant::now();
                let j = state.joined.load(Ordering::Relaxed);
                eprintln!("[rooms] join wave: {k} sent, {j} joined");
            }
        }
        w.send(&join(&room, k)).await?;
    }
    while state.joined.load(Ordering::Relaxed) < n as u64 {
        if state.dropped.load(Ordering::Relaxed) > 0 {
            bail!("a session ended during the join wave");
        }
        if state.refused.load(Ordering::Relaxed) > 0 {
            let why = state.refusal.lock().ok().and_then(|r| r.clone());
            bail!("the room refused a join: {}", why.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (join_cpu, _, join_secs) = span.end();
    eprintln!("[rooms] {n} occupants joined in {join_secs:.2}s (server cpu {join_cpu:.2}s)");
    figure("room.join_secs", join_secs, "s");
    figure("room.join_server_cpu", join_cpu, "s");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = Arc::new(AtomicU64::new(0));
    let (ctl_tx, ctl) = watch::channel((0u64, 0.0f64));
    for w in writers.drain(..o.senders) {
        tokio::spawn(writer(w, room.clone(), ctl.clone(), sent.clone()));
    }
    let mut k = 0u64;
    let mut run = async |rate: f64| -> Step {
        k += 1;
        state.step.store(k, Ordering::Relaxed);
        state.received.store(0, Ordering::Relaxed);
        state.latencies.take();
        let sent0 = sent.load(Ordering::Relaxed);
        let span = Span::start(pid);
        let _ = ctl_tx.send((k, rate / o.senders as f64));
        tokio::time::sleep(Duration::from_secs(o.step_secs)).await;
        let _ = ctl_tx.send((k, 0.0));
        let secs = span.end().2;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let msgs = sent.load(Ordering::Relaxed) - sent0;
        let want = msgs * n as u64;
        let deadline = Instant::now() + Duration::from_secs(o.grace_secs);
        while state.received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (server_cpu, _, _) = span.end();
        let got = state.received.load(Ordering::Relaxed);
        let mut lat = state.latencies.take();
        let (p50, p99, _) = lat.summary();
        // Let a backlog drain before the next step: until nothing arrives for a second (a
        // failed step leaves one, which would fail the steps after it too).
        let drain_until = Instant::now() + Duration::from_secs(60);
        let mut last = state.any.load(Ordering::Relaxed);
        while Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = state.any.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let step = Step {
            rate,
            msgs,
            delivered: got,
            want,
            secs,
            server_cpu,
            p50,
            p99,
            dropped: state.dropped.load(Ordering::Relaxed),
        };
        eprintln!(
            "[rooms] offered {rate:.1} msg/s: sent {msgs}, deliveries {got} of {want}, \
             p50 {p50:.1} ms p99 {p99:.1} ms, server cpu {server_cpu:.2}s, sessions lost {}",
            step.dropped
        );
        step
    };
    let mut best: Option<Step> = None;
    let mut failed: Option<f64> = None;
    let mut rate = o.start;
    while failed.is_none() {
        let s = run(rate).await;
        if s.dropped > 0 {
            break;
        }
        match s.held(o.max_p99) {
            true => best = Some(s),
            false => failed = Some(rate),
        }
        rate *= 2.0;
    }
    // Bisect between what held and what failed, to within 10%.
    while let (Some(b), Some(f)) = (&best, failed) {
        if f <= b.rate * 1.1 {
            break;
        }
        let mid = (b.rate + f) / 2.0;
        let s = run(mid).await;
        if s.dropped > 0 {
            break;
        }
        match s.held(o.max_p99) {
            true => best = Some(s),
            false => failed = Some(mid),
        }
    }
    let Some(b) = best else {
        figure("room.max_deliveries", 0.0, "deliveries/s");
        bail!("no step delivered its offered rate");
    };
    figure("room.max_msgs", b.msgs as f64 / b.secs, "msg/s");
    figure(
        "room.max_deliveries",
        b.delivered as f64 / b.secs,
        "deliveries/s",
    );
    figure(
        "room.server_cpu_per_delivery",
        b.server_cpu * 1e6 / b.delivered.max(1) as f64,
        "us",
    );
    figure("room.p50", b.p50, "ms");
    figure("room.p99", b.p99, "ms");
    Ok(())
}

/// What one step measured.
struct Step {
    rate: f64,
    msgs: u64,
    delivered: u64,
    want: u64,
    secs: f64,
    server_cpu: f64,
    p50: f64,
    p99: f64,
    dropped: u64,
}

impl Step {
    fn held(&self, max_p99: f64) -> bool {
        self.msgs as f64 >= 0.95 * self.rate * self.secs
            && self.delivered as f64 >= 0.99 * self.want as f64
            && self.p99 <= max_p99
    }
}

/// The join presence of occupant `k` (no history: the steps count live messages only).
fn join(room: &str, k: usize) -> String {
    format!(
        "<presence to='{room}/u{k}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    )
}

/// Creates the room as occupant 0 and accepts the default configuration (an instant room).
async fn create(
    r: &mut Reader<tokio::io::ReadHalf<Box<dyn Io>>>,
    w: &Writer,
    room: &str,
) -> Result<()> {
    w.send(&join(room, 0)).await?;
    loop {
        let e = r.next().await?;
        if e.name() == "presence" && e.attr("type") == Some("error") {
            bail!("creating {room}: {}", e.to_string_in(""));
        }
        if e.name() == "message" && e.get_child("subject", "jabber:client").is_some() {
            break;
        }
    }
    w.send(&format!(
        "<iq type='set' id='instant' to='{room}'><query \
             xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' \
             type='submit'/></query></iq>"
    ))
    .await?;
    loop {
        let e = r.next().await?;
        if e.attr("id") == Some("instant") {
            match e.attr("type") {
                Some("result") => return Ok(()),
                _ => bail!("configuring {room}: {}", e.to_string_in("")),
            }
        }
    }
}

/// Reads one occupant's stream: its join (the subject ends it), then the room's messages.
async fn reader(
    mut r: Reader<tokio::io::ReadHalf<Box<dyn Io>>>,
    lane: usize,
    room: Arc<Room>,
    joined: bool,
) {
    let mut joined = joined;
    while let Ok(e) = r.next_raw().await {
        if !joined && e.kind == Kind::Presence && e.error {
            if room.refused.fetch_add(1, Ordering::Relaxed) == 0
                && let Ok(mut r) = room.refusal.lock()
            {
                *r = Some(format!("occupant {lane}: presence of type error"));
            }
            continue;
        }
        if e.kind != Kind::Message {
            continue;
        }
        if !joined {
            if e.subject {
                joined = true;
                room.joined.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let Some((k, ns)) = e.stamp else {
            continue;
        };
        room.any.fetch_add(1, Ordering::Relaxed);
        if k != room.step.load(Ordering::Relaxed) {
            continue;
        }
        room.received.fetch_add(1, Ordering::Relaxed);
        room.latencies.push(lane, since(ns));
    }
    room.dropped.fetch_add(1, Ordering::Relaxed);
}

/// Posts to the room at `rate` (messages/s for this sender) while the step is on.
async fn writer(
    w: Writer,
    room: String,
    mut ctl: watch::Receiver<(u64, f64)>,
    sent: Arc<AtomicU64>,
) {
    loop {
        let (step, rate) = *ctl.borrow_and_update();
        if rate <= 0.0 {
            if ctl.changed().await.is_err() {
                return;
            }
            continue;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let ns = epoch().elapsed().as_nanos() as u64;
                    let m = format!(
                        "<message type='groupchat' to='{room}'><body>{step} {ns}</body></message>"
                    );
                    if w.stanza(&m).await.is_err() { return; }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                r = ctl.changed() => { if r.is_err() { return; } break; }
            }
        }
    }
}
