//! S3, presence fan-out: users in groups of `contacts + 1`, every member subscribed both ways
//! to every other member of its group (`rosters` sets this up once, through the protocol: the
//! same subscription handshake on every server). `fanout` logs everyone in (the login wave),
//! then every user changes presence once per wave, and each contact counts what it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::conn::{Session, Target, send};
use crate::scenarios::login_all;
use crate::stats::{Span, figure};

/// What a user task is told to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctl {
    Idle,
    /// Subscribe to the members of the group with a higher number.
    Subscribe,
    /// Send presence with status `wave N`.
    Wave(u64),
    /// Give the session back.
    Stop,
}

/// Shared counters of the user tasks.
#[derive(Default)]
struct Seen {
    subscribed: AtomicU64,
    wave: AtomicU64,
    current: AtomicU64,
    /// Sessions that ended (the server closed them).
    lost: AtomicU64,
    /// Subscription requests received (progress while no approval has come back yet).
    requests: AtomicU64,
}

/// The members of `i`'s group.
fn group(i: usize, contacts: usize, users: usize) -> std::ops::Range<usize> {
    let g = i / (contacts + 1) * (contacts + 1);
    g..(g + contacts + 1).min(users)
}

/// How many contacts user `i` has.
fn contact_count(i: usize, contacts: usize, users: usize) -> u64 {
    group(i, contacts, users).len() as u64 - 1
}

async fn user_task(
    mut s: Session,
    t: Arc<Target>,
    contacts: usize,
    users: usize,
    mut ctl: watch::Receiver<Ctl>,
    seen: Arc<Seen>,
) -> Option<Session> {
    let me = s.index;
    loop {
        tokio::select! {
            r = s.reader.next() => {
                let e = match r {
                    Ok(e) => e,
                    Err(err) => {
                        if seen.lost.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("[presence] session of user {me} ended: {err:#}");
                        }
                        return None;
                    }
                };
                let from = e.attr("from").unwrap_or_default().to_string();
                let bare = from.split('/').next().unwrap_or_default();
                match (e.name(), e.attr("type")) {
                    ("presence", Some("subscribe")) => {
                        seen.requests.fetch_add(1, Ordering::Relaxed);
                        let mut out = format!("<presence type='subscribed' to='{bare}'/>");
                        if t.index_of(bare).is_some_and(|x| x < me) {
                            out.push_str(&format!("<presence type='subscribe' to='{bare}'/>"));
                        }
                        send(&mut s.writer, &out).await.ok()?;
                    }
                    ("presence", Some("subscribed")) => {
                        seen.subscribed.fetch_add(1, Ordering::Relaxed);
                    }
                    ("presence", None) if bare != t.jid(me) => {
                        let w = seen.current.load(Ordering::Relaxed);
                        let status = e.get_child("status", "jabber:client").map(|s| s.text());
                        if w > 0 && status.as_deref() == Some(&format!("wave {w}")) {
                            seen.wave.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    ("iq", Some("get")) => {
                        let id = e.attr("id").unwrap_or_default();
                        let reply = format!("<iq type='result' id='{id}' to='{from}'/>");
                        send(&mut s.writer, &reply).await.ok()?;
                    }
                    _ => {}
                }
            }
            r = ctl.changed() => {
                r.ok()?;
                let c = *ctl.borrow_and_update();
                match c {
                    Ctl::Subscribe => {
                        let mut out = String::new();
                        for j in group(me, contacts, users).filter(|j| *j > me) {
                            out.push_str(&format!("<presence type='subscribe' to='{}'/>", t.jid(j)));
                        }
                        send(&mut s.writer, &out).await.ok()?;
                    }
                    Ctl::Wave(w) => {
                        let p = format!("<presence><status>wave {w}</status></presence>");
                        send(&mut s.writer, &p).await.ok()?;
                    }
                    Ctl::Stop => return Some(s),
                    Ctl::Idle => {}
                }
            }
        }
    }
}

/// Logs `users` users in with roster and presence; each runs [`user_task`].
async fn log_in_all(
    t: &Arc<Target>,
    users: usize,
    contacts: usize,
    ctl: &watch::Receiver<Ctl>,
    seen: &Arc<Seen>,
) -> Result<(Vec<tokio::task::JoinHandle<Option<Session>>>, f64)> {
    let t0 = Instant::now();
    let sessions = login_all(t, users).await?;
    let secs = t0.elapsed().as_secs_f64();
    let tasks = sessions
        .into_iter()
        .map(|s| {
            tokio::spawn(user_task(
                s,
                t.clone(),
                contacts,
                users,
                ctl.clone(),
                seen.clone(),
            ))
        })
        .collect();
    Ok((tasks, secs))
}

/// Makes every member of each group a `both` contact of every other member.
pub async fn rosters(t: Arc<Target>, users: usize, contacts: usize) -> Result<()> {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = watch::channel(Ctl::Idle);
    let (tasks, _) = log_in_all(&t, users, contacts, &rx, &seen).await?;
    let expected: u64 = (0..users).map(|i| contact_count(i, contacts, users)).sum();
    let t0 = Instant::now();
    let _ = tx.send(Ctl::Subscribe);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = seen.subscribed.load(Ordering::Relaxed);
        eprintln!(
            "[rosters {:>4.0}s] subscribed {n} of {expected}",
            t0.elapsed().as_secs_f64()
        );
        // Give up after a minute without any subscription traffic (a slow server first works
        // through every request, then the approvals come back).
        if n >= expected || since.elapsed() > Duration::from_secs(60) {
            break;
        }
        let progress = n + seen.requests.load(Ordering::Relaxed);
        if progress != last {
            (last, since) = (progress, Instant::now());
        }
    }
    let _ = tx.send(Ctl::Stop);
    let mut sessions = Vec::new();
    for h in tasks {
        if let Ok(Some(s)) = h.await {
            sessions.push(s);
        }
    }
    // Check every roster: each contact must be `both`.
    let bad = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for mut s in sessions {
        let (bad, want) = (
            bad.clone(),
            contact_count(s.index, contacts, users) as usize,
        );
        set.spawn(async move {
            let q = "<iq type='get' id='check'><query xmlns='jabber:iq:roster'/></iq>";
            let mut ok = false;
            if send(&mut s.writer, q).await.is_ok() {
                while let Ok(e) = s.reader.next().await {
                    if e.attr("id") == Some("check") {
                        let items = e.get_child("query", "jabber:iq:roster");
                        let both = items.map_or(0, |q| {
                            q.children()
                                .filter(|i| i.attr("subscription") == Some("both"))
                                .count()
                        });
                        ok = both == want;
                        break;
                    }
                }
            }
            if !ok {
                bad.fetch_add(1, Ordering::Relaxed);
            }
            let _ = send(&mut s.writer, "</stream:stream>").await;
        });
    }
    while set.join_next().await.is_some() {}
    let bad = bad.load(Ordering::Relaxed);
    figure("rosters.setup", t0.elapsed().as_secs_f64(), "s");
    figure("rosters.incomplete", bad as f64, "users");
    match bad {
        0 => Ok(()),
        n => bail!("{n} rosters are incomplete"),
    }
}

/// S3: the login wave, then `waves` presence changes by every user.
pub async fn fanout(
    t: Arc<Target>,
    pid: Option<u32>,
    users: usize,
    contacts: usize,
    waves: u64,
) -> Result<()> {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = watch::channel(Ctl::Idle);
    let span = Span::start(pid);
    let (tasks, login_secs) = log_in_all(&t, users, contacts, &rx, &seen).await?;
    let (login_cpu, _, _) = span.end();
    figure("s3.login_wave", login_secs, "s");
    figure(
        "s3.server_cpu_per_login",
        login_cpu * 1000.0 / users as f64,
        "ms",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected: u64 = (0..users).map(|i| contact_count(i, contacts, users)).sum();
    let (mut rates, mut cpus, mut missing) = (Vec::new(), Vec::new(), 0);
    for w in 1..=waves {
        seen.current.store(w, Ordering::Relaxed);
        seen.wave.store(0, Ordering::Relaxed);
        let span = Span::start(pid);
        let _ = tx.send(Ctl::Wave(w));
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.wave.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (cpu, me, secs) = span.end();
        let got = seen.wave.load(Ordering::Relaxed);
        missing += expected - got.min(expected);
        eprintln!(
            "[fanout] wave {w}: {got} of {expected} in {secs:.3}s, server cpu {cpu:.2}s, bench cpu {me:.2}s"
        );
        rates.push(got as f64 / secs);
        cpus.push(cpu * 1000.0 / users as f64);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    figure("s3.deliveries_per_s", median(&mut rates), "presences/s");
    figure("s3.server_cpu_per_change", median(&mut cpus), "ms");
    figure("s3.missing", missing as f64, "presences");
    figure(
        "s3.sessions_lost",
        seen.lost.load(Ordering::Relaxed) as f64,
        "sessions",
    );
    let _ = tx.send(Ctl::Stop);
    for h in tasks {
        if let Ok(Some(mut s)) = h.await {
            let _ = send(&mut s.writer, "</stream:stream>").await;
        }
    }
    Ok(())
}

/// The median of some figures (NaN for none).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
