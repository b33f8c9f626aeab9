//! The scenarios (S1–S4 of the benchmark) and the account set-up they need. Each prints its
//! figures with [`figure`]; none asserts anything about time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::conn::{Session, Target, login, register};
use crate::stats::{Counters, Span, figure, progress, sample};

/// Runs `f(i)` for every `i` in `indices`, at most `concurrency` at once; returns the successes.
pub async fn run_many<T, F, Fut>(
    label: &'static str,
    indices: Vec<usize>,
    concurrency: usize,
    c: Arc<Counters>,
    f: F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    let shown = Arc::new(AtomicU64::new(0));
    for i in indices {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (fut, c, shown) = (f(i), c.clone(), shown.clone());
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            match r {
                Ok(v) => {
                    Counters::add(&c.ok, 1);
                    Some(v)
                }
                Err(e) => {
                    Counters::add(&c.errors, 1);
                    if shown.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("[{label}] #{i}: {e:#}");
                    }
                    None
                }
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(v)) = r {
            out.push(v);
        }
    }
    out
}

/// Logs users `0..users` in (roster and initial presence, 50 at a time, progress on stderr);
/// an error unless every one of them did.
pub async fn login_all(t: &Arc<Target>, users: usize) -> Result<Vec<Session>> {
    let c = Arc::new(Counters::default());
    let p = progress("login", c.clone());
    let t2 = t.clone();
    let sessions = run_many("login", (0..users).collect(), 50, c, move |i| {
        let t = t2.clone();
        async move { login(&t, i, true).await }
    })
    .await;
    p.abort();
    match sessions.len() == users {
        true => Ok(sessions),
        false => bail!("only {} of {users} users logged in", sessions.len()),
    }
}

/// Creates accounts `0..count` by in-band registration.
pub async fn accounts(t: Arc<Target>, count: usize, concurrency: usize) -> Result<()> {
    let c = Arc::new(Counters::default());
    let p = progress("register", c.clone());
    let span = Span::start(None);
    let t2 = t.clone();
    run_many(
        "register",
        (0..count).collect(),
        concurrency,
        c.clone(),
        move |i| {
            let t = t2.clone();
            async move { register(&t, i).await }
        },
    )
    .await;
    p.abort();
    let (_, _, wall) = span.end();
    figure("register.accounts", Counters::get(&c.ok) as f64, "accounts");
    figure(
        "register.per_s",
        Counters::get(&c.ok) as f64 / wall,
        "accounts/s",
    );
    match Counters::get(&c.errors) {
        0 => Ok(()),
        n => bail!("{n} registrations failed"),
    }
}

/// Logs users in and keeps each session in a task that answers pings until `stop` turns true.
/// Returns the tasks' handles once every login has finished.
async fn log_in_and_hold(
    t: &Arc<Target>,
    indices: Vec<usize>,
    concurrency: usize,
    presence: bool,
    c: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let t2 = t.clone();
    let sessions = run_many("login", indices, concurrency, c, move |i| {
        let t = t2.clone();
        async move { login(&t, i, presence).await }
    })
    .await;
    let mut set = JoinSet::new();
    for s in sessions {
        set.spawn(hold(s, stop.clone()));
    }
    set
}

/// Answers XEP-0199 pings until told to stop, then closes the stream.
async fn hold(mut s: Session, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = s.reader.next() => match r {
                Ok(e) if e.name() == "iq" && e.attr("type") == Some("get")
                    && e.get_child("ping", "urn:xmpp:ping").is_some() => {
                    let id = e.attr("id").unwrap_or_default();
                    let to = e.attr("from").unwrap_or_default();
                    let _ = s.writer.send(&format!("<iq type='result' id='{id}' to='{to}'/>")).await;
                }
                Ok(_) => {}
                Err(_) => return,
            },
            _ = stop.changed() => {
                let _ = s.writer.send("</stream:stream>").await;
                return;
            }
        }
    }
}

/// S1: `count` idle sessions; login rate, server RSS per connection, CPU.
pub async fn idle(
    t: Arc<Target>,
    pid: Option<u32>,
    count: usize,
    conc: usize,
    hold_s: u64,
) -> Result<()> {
    let before = pid.map(|p| sample(Some(p))).unwrap_or_default();
    let c = Arc::new(Counters::default());
    let p = progress("idle", c.clone());
    let (stop_tx, stop) = watch::channel(false);
    let span = Span::start(pid);
    let mut set = log_in_and_hold(&t, (0..count).collect(), conc, true, c.clone(), stop).await;
    let (server_cpu, me_cpu, wall) = span.end();
    tokio::time::sleep(Duration::from_secs(hold_s)).await;
    let after = pid.map(|p| sample(Some(p))).unwrap_or_default();
    let held = set.len();
    p.abort();
    let ok = Counters::get(&c.ok) as f64;
    figure("s1.connections", held as f64, "sessions");
    figure("s1.errors", Counters::get(&c.errors) as f64, "logins");
    figure("s1.login_rate", ok / wall, "logins/s");
    if pid.is_some() && held > 0 {
        let per = after.rss_kib.saturating_sub(before.rss_kib) as f64 / held as f64;
        figure("s1.server_rss_per_conn", per, "KiB");
        figure("s1.server_rss", after.rss_kib as f64 / 1024.0, "MiB");
        figure("s1.server_cpu", server_cpu, "s");
        figure(
            "s1.server_cpu_per_login",
            server_cpu * 1000.0 / ok.max(1.0),
            "ms",
        );
    }
    figure("s1.bench_cpu", me_cpu, "s");
    figure(
        "s1.bench_rss_per_conn",
        sample(None).rss_kib as f64 / held.max(1) as f64,
        "KiB",
    );
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// S4: `count` logins (connect, TLS, SASL, bind, close), `conc` at a time.
pub async fn logins(
    t: Arc<Target>,
    pid: Option<u32>,
    count: usize,
    users: usize,
    conc: usize,
) -> Result<()> {
    let c = Arc::new(Counters::default());
    let p = progress("logins", c.clone());
    let span = Span::start(pid);
    let t2 = t.clone();
    run_many("logins", (0..count).collect(), conc, c.clone(), move |i| {
        let t = t2.clone();
        async move {
            let s = login(&t, i % users.max(1), false).await?;
            s.writer.send("</stream:stream>").await
        }
    })
    .await;
    let (server_cpu, me_cpu, wall) = span.end();
    p.abort();
    let ok = Counters::get(&c.ok) as f64;
    figure("s4.logins_per_s", ok / wall, "logins/s");
    figure("s4.errors", Counters::get(&c.errors) as f64, "logins");
    if pid.is_some() {
        figure(
            "s4.server_cpu_per_login",
            server_cpu * 1000.0 / ok.max(1.0),
            "ms",
        );
    }
    figure(
        "s4.bench_cpu_per_login",
        me_cpu * 1000.0 / ok.max(1.0),
        "ms",
    );
    Ok(())
}
