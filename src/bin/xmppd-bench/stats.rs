//! Figures: counters shared by connection tasks, latency percentiles, and the CPU time and
//! resident memory of a process read from `/proc` (the server's and the load generator's own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters the connection tasks update and the progress line reads.
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// CPU seconds (user + system) and resident set size of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>`; `None` for this process. Missing data reads as zero.
pub fn sample(pid: Option<u32>) -> ProcSample {
    let dir = pid.map_or("/proc/self".to_string(), |p| format!("/proc/{p}"));
    let rss_kib = std::fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
    let cpu_secs = std::fs::read_to_string(format!("{dir}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / CLOCK_TICKS)
        })
        .unwrap_or(0.0);
    ProcSample { cpu_secs, rss_kib }
}

/// `sysconf(_SC_CLK_TCK)` on Linux for every architecture this runs on.
const CLOCK_TICKS: f64 = 100.0;

/// Latencies in microseconds.
#[derive(Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
    /// (p50, p99, max) in milliseconds; zeros when empty.
    pub fn summary(&mut self) -> (f64, f64, f64) {
        if self.0.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
            self.0[i] as f64 / 1000.0
        };
        (at(0.50), at(0.99), at(1.0))
    }
}

/// Latencies kept per reader (one uncontended lock each: hundreds of readers pushing into
/// one shared list at 100,000 deliveries a second spent more time waiting than measuring).
#[derive(Default)]
pub struct Lanes(Vec<std::sync::Mutex<Latencies>>);

impl Lanes {
    pub fn new(n: usize) -> Self {
        Lanes((0..n).map(|_| Default::default()).collect())
    }
    pub fn push(&self, lane: usize, d: Duration) {
        if let Some(Ok(mut l)) = self.0.get(lane).map(|l| l.lock()) {
            l.push(d);
        }
    }
    /// Everything pushed since the last take, together; the lanes are left empty.
    pub fn take(&self) -> Latencies {
        let mut all = Latencies::default();
        for l in &self.0 {
            if let Ok(mut l) = l.lock() {
                all.0.append(&mut l.0);
            }
        }
        all
    }
}

/// The load generator's clock: message bodies carry nanoseconds since this instant.
pub fn epoch() -> &'static Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

/// The step and the send time (nanoseconds since [`epoch`]) that a scenario's message body
/// carries (`"<step> <ns>"`), if the body is one of ours.
pub fn stamp(body: &str) -> Option<(u64, u64)> {
    let mut parts = body.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// How long ago a stamp's send time was.
pub fn since(ns: u64) -> Duration {
    Duration::from_nanos((epoch().elapsed().as_nanos() as u64).saturating_sub(ns))
}

/// Prints one figure of the summary on stdout: `figure <name> <value> <unit>`.
pub fn figure(name: &str, value: f64, unit: &str) {
    println!("figure {name} {value:.3} {unit}");
}

/// A process's resources over an interval.
pub struct Span {
    pid: Option<u32>,
    start: ProcSample,
    me: ProcSample,
    at: Instant,
}

impl Span {
    pub fn start(pid: Option<u32>) -> Span {
        Span {
            pid,
            start: pid.map(|p| sample(Some(p))).unwrap_or_default(),
            me: sample(None),
            at: Instant::now(),
        }
    }
    /// (server CPU seconds, load generator CPU seconds, wall seconds) since `start`.
    pub fn end(&self) -> (f64, f64, f64) {
        let server = self
            .pid
            .map(|p| sample(Some(p)).cpu_secs - self.start.cpu_secs);
        let me = sample(None).cpu_secs - self.me.cpu_secs;
        (
            server.unwrap_or(f64::NAN),
            me,
            self.at.elapsed().as_secs_f64(),
        )
    }
}

/// Prints a progress line on stderr every two seconds until dropped.
pub fn progress(label: &'static str, c: std::sync::Arc<Counters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let t0 = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!(
                "[{label} {:>5.0}s] ok {} errors {} sent {} received {}",
                t0.elapsed().as_secs_f64(),
                Counters::get(&c.ok),
                Counters::get(&c.errors),
                Counters::get(&c.sent),
                Counters::get(&c.received),
            );
        }
    })
}
