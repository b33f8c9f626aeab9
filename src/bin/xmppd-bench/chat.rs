//! S2, one-to-one chat: `users` online users send to random online users at an offered rate.
//! A ramp of steps finds the highest rate delivered with < 1% loss, then a run at half of it
//! gives the latency percentiles. Bodies carry the step number and the send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::conn::{Io, Target};
use crate::reader::{Kind, Reader, Writer};
use crate::scenarios::login_all;
use crate::stats::{Lanes, Latencies, Span, epoch, figure, since};

/// What one step measured.
struct Outcome {
    offered: f64,
    sent: u64,
    received: u64,
    secs: f64,
    server_cpu: f64,
    bench_cpu: f64,
    lat: Latencies,
    p99: f64,
    dropped: u64,
}

impl Outcome {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
    /// Whether the step held: the offered rate was sent, < 1% was lost, the 99th percentile
    /// of latency stayed within `max_p99` ms (beyond it the server is only queueing), and no
    /// session was lost.
    fn held(&self, max_p99: f64) -> bool {
        self.sent as f64 >= 0.95 * self.offered * self.secs
            && self.loss() < 0.01
            && self.p99 <= max_p99
            && self.dropped == 0
    }
}

/// The parameters of S2.
pub struct ChatOpts {
    pub users: usize,
    pub start: f64,
    pub rates: Vec<f64>,
    pub step_secs: u64,
    pub grace_secs: u64,
    pub max_p99: f64,
    /// Offered rates at which to measure latency after the ramp (equal load for all servers).
    pub latency_at: Vec<f64>,
}

/// Runs S2. `rates` empty: ramp from `start` doubling, then refine; otherwise the given rates.
pub async fn chat(t: Arc<Target>, pid: Option<u32>, o: ChatOpts) -> Result<()> {
    let ChatOpts {
        users,
        start,
        rates,
        step_secs,
        grace_secs,
        max_p99,
        latency_at,
    } = o;
    if users < 2 {
        bail!("chat needs at least two users");
    }
    let sessions = login_all(&t, users).await?;
    eprintln!("[chat] {users} users logged in");
    let step = Arc::new(Step {
        id: AtomicU64::new(0),
        received: AtomicU64::new(0),
        latencies: Lanes::new(users),
        any: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let sent = Arc::new(AtomicU64::new(0));
    let (ctl_tx, ctl) = watch::channel((0u64, 0.0f64));
    for s in sessions {
        tokio::spawn(chat_reader(s.reader, s.index, step.clone()));
        tokio::spawn(chat_writer(
            s.writer,
            t.clone(),
            users,
            s.index,
            ctl.clone(),
            sent.clone(),
        ));
    }
    // Let the logins' presence traffic settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut k = 0u64;
    let mut run = |rate: f64| {
        k += 1;
        let (ctl_tx, step, sent) = (&ctl_tx, step.clone(), sent.clone());
        let id = k;
        async move {
            step.id.store(id, Ordering::Relaxed);
            step.received.store(0, Ordering::Relaxed);
            step.latencies.take();
            let sent0 = sent.load(Ordering::Relaxed);
            let span = Span::start(pid);
            let _ = ctl_tx.send((id, rate / users as f64));
            tokio::time::sleep(Duration::from_secs(step_secs)).await;
            let _ = ctl_tx.send((id, 0.0));
            let secs = span.end().2;
            // Writers in the middle of a send finish it before they see the pause.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let n = sent.load(Ordering::Relaxed) - sent0;
            // Wait for stragglers, but not longer than the grace period.
            let deadline = Instant::now() + Duration::from_secs(grace_secs);
            while step.received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (server_cpu, bench_cpu, _) = span.end();
            let mut lat = step.latencies.take();
            let received = step.received.load(Ordering::Relaxed);
            // Let a backlog drain before the next step: until nothing arrives for a second.
            let drain_until = Instant::now() + Duration::from_secs(60);
            let mut last = step.any.load(Ordering::Relaxed);
            while Instant::now() < drain_until {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = step.any.load(Ordering::Relaxed);
                if now == last {
                    break;
                }
                last = now;
            }
            let p99 = lat.summary().1;
            let o = Outcome {
                offered: rate,
                sent: n,
                received,
                secs,
                p99,
                dropped: step.dropped.load(Ordering::Relaxed),
                server_cpu,
                bench_cpu,
                lat,
            };
            eprintln!(
                "[chat] offered {rate:.0}/s sent {} received {} loss {:.2}% p99 {:.1} ms \
                 server cpu {:.2}s bench cpu {:.2}s sessions lost {}",
                o.sent,
                o.received,
                o.loss() * 100.0,
                o.p99,
                o.server_cpu,
                o.bench_cpu,
                o.dropped
            );
            o
        }
    };
    let mut best: Option<Outcome> = None;
    if rates.is_empty() {
        // Up by doubling until a step fails; if the first fails, down by halving until one
        // holds (a server that cannot take the start rate still gets its figure).
        let (mut rate, mut failed) = (start, None::<f64>);
        loop {
            let o = run(rate).await;
            if o.held(max_p99) {
                best = Some(o);
                if failed.is_some() {
                    break;
                }
                rate *= 2.0;
            } else {
                failed = Some(failed.map_or(rate, |f| f.min(rate)));
                if best.is_some() || rate < start / 64.0 {
                    break;
                }
                rate /= 2.0;
            }
        }
        // Bisect between the last step that held and the first that failed, to within 10%
        // (a ramp alone knows a server's limit only within a factor of two).
        while let (Some(b), Some(f)) = (&best, failed) {
            if f <= b.offered * 1.1 {
                break;
            }
            let mid = (b.offered + f) / 2.0;
            let o = run(mid).await;
            match o.held(max_p99) {
                true => best = Some(o),
                false => failed = Some(mid),
            }
        }
    } else {
        for r in rates {
            let o = run(r).await;
            if o.held(max_p99) && best.as_ref().is_none_or(|b| b.offered < o.offered) {
                best = Some(o);
            }
        }
    }
    let Some(b) = best else {
        figure("s2.max_rate", 0.0, "msg/s");
        bail!("no step delivered its offered rate with < 1% loss");
    };
    figure("s2.max_rate", b.received as f64 / b.secs, "msg/s");
    figure(
        "s2.server_cpu_per_msg",
        b.server_cpu * 1e6 / b.received.max(1) as f64,
        "us",
    );
    figure(
        "s2.bench_cpu_per_msg",
        b.bench_cpu * 1e6 / b.received.max(1) as f64,
        "us",
    );
    let mut half = run(b.offered / 2.0).await;
    let (p50, p99, max) = half.lat.summary();
    figure("s2.half_rate", half.received as f64 / half.secs, "msg/s");
    figure("s2.half_loss", half.loss() * 100.0, "%");
    figure("s2.p50", p50, "ms");
    figure("s2.p99", p99, "ms");
    // The same offered rates for every server: latency compared at equal load.
    for r in latency_at {
        let mut o = run(r).await;
        let (_, p99, _) = o.lat.summary();
        figure(&format!("s2.p99_at_{r:.0}"), p99, "ms");
        // CPU per message at a rate every server is asked to carry, next to the one at its max.
        figure(
            &format!("s2.server_cpu_per_msg_at_{r:.0}"),
            o.server_cpu * 1e6 / o.received.max(1) as f64,
            "us",
        );
        figure(&format!("s2.loss_at_{r:.0}"), o.loss() * 100.0, "%");
    }
    figure("s2.max", max, "ms");
    Ok(())
}

/// Shared by the chat readers: which step is measured and what arrived for it.
struct Step {
    id: AtomicU64,
    received: AtomicU64,
    latencies: Lanes,
    /// Chat messages of any step (to tell when a backlog has drained).
    any: AtomicU64,
    /// Sessions whose stream ended during the run.
    dropped: AtomicU64,
}

/// Reads a chat session: counts messages of the current step and their latency.
async fn chat_reader(
    mut s: Reader<tokio::io::ReadHalf<Box<dyn Io>>>,
    lane: usize,
    step: Arc<Step>,
) {
    while let Ok(e) = s.next_raw().await {
        if e.kind != Kind::Message {
            continue;
        }
        step.any.fetch_add(1, Ordering::Relaxed);
        let Some((k, ns)) = e.stamp else {
            continue;
        };
        if k != step.id.load(Ordering::Relaxed) {
            continue;
        }
        step.received.fetch_add(1, Ordering::Relaxed);
        step.latencies.push(lane, since(ns));
    }
    step.dropped.fetch_add(1, Ordering::Relaxed);
}

/// Sends chat messages to random other users at `rate` (messages/s for this sender) while the
/// step is on; `rate == 0` pauses.
async fn chat_writer(
    w: Writer,
    t: Arc<Target>,
    users: usize,
    me: usize,
    mut ctl: watch::Receiver<(u64, f64)>,
    sent: Arc<AtomicU64>,
) {
    use rand::RngExt;
    let mut seq = 0u64;
    loop {
        let (step, rate) = *ctl.borrow_and_update();
        if rate <= 0.0 {
            if ctl.changed().await.is_err() {
                return;
            }
            continue;
        }
        let period = Duration::from_secs_f64(1.0 / rate);
        let phase = rand::rng().random_range(0.0..1.0) * period.as_secs_f64();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs_f64(phase),
            period,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let mut to = rand::rng().random_range(0..users - 1);
                    if to >= me { to += 1; }
                    seq += 1;
                    let ns = epoch().elapsed().as_nanos() as u64;
                    let msg = format!(
                        "<message type='chat' to='{}' id='m{seq}'><body>{step} {ns}</body></message>",
                        t.jid(to)
                    );
                    if w.stanza(&msg).await.is_err() { return; }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                r = ctl.changed() => { if r.is_err() { return; } break; }
            }
        }
    }
}
