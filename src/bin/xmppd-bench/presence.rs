//! S3, presence fan-out. Two shapes of roster ([`Topology`]): users in groups of
//! `contacts + 1`, every member subscribed both ways to every other member of its group; or
//! `hubs` users with `contacts` contacts each (the other users, each of whom has the hubs as
//! contacts), for rosters of 1,000 without a million subscriptions. `rosters` sets this up once,
//! through the protocol: the same subscription handshake on every server. `fanout` logs everyone
//! in (the login wave), then every user changes presence once per wave, and each contact counts
//! what it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::conn::{Session, Target};
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

/// Who is whose contact.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    pub users: usize,
    pub contacts: usize,
    /// 0: groups of `contacts + 1`. Otherwise users `0..hubs` have every other user as a
    /// contact, and `users` is `hubs + contacts`.
    pub hubs: usize,
}

impl Topology {
    pub fn new(users: usize, contacts: usize, hubs: usize) -> Result<Topology> {
        if hubs > 0 && users != hubs + contacts {
            bail!(
                "with --hubs, --users must be hubs + contacts ({})",
                hubs + contacts
            );
        }
        Ok(Topology {
            users,
            contacts,
            hubs,
        })
    }

    /// The members of `i`'s group (groups only).
    fn group(&self, i: usize) -> std::ops::Range<usize> {
        let g = i / (self.contacts + 1) * (self.contacts + 1);
        g..(g + self.contacts + 1).min(self.users)
    }

    /// How many contacts user `i` has.
    fn contact_count(&self, i: usize) -> u64 {
        match (self.hubs, i < self.hubs) {
            (0, _) => self.group(i).len() as u64 - 1,
            (_, true) => self.contacts as u64,
            (h, false) => h as u64,
        }
    }

    /// The contacts of `i` with a higher number (whom `i` asks for a subscription).
    fn higher_contacts(&self, i: usize) -> std::ops::Range<usize> {
        match (self.hubs, i < self.hubs) {
            (0, _) => (i + 1)..self.group(i).end,
            (h, true) => h..self.users,
            (_, false) => 0..0,
        }
    }

    /// Presences one wave delivers in all.
    fn per_wave(&self) -> u64 {
        (0..self.users).map(|i| self.contact_count(i)).sum()
    }
}

async fn user_task(
    mut s: Session,
    t: Arc<Target>,
    topo: Topology,
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
                        s.writer.send(&out).await.ok()?;
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
                        s.writer.send(&reply).await.ok()?;
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
                        for j in topo.higher_contacts(me) {
                            out.push_str(&format!("<presence type='subscribe' to='{}'/>", t.jid(j)));
                        }
                        s.writer.send(&out).await.ok()?;
                    }
                    Ctl::Wave(w) => {
                        let p = format!("<presence><status>wave {w}</status></presence>");
                        s.writer.send(&p).await.ok()?;
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
    topo: Topology,
    ctl: &watch::Receiver<Ctl>,
    seen: &Arc<Seen>,
) -> Result<(Vec<tokio::task::JoinHandle<Option<Session>>>, f64)> {
    let t0 = Instant::now();
    let sessions = login_all(t, topo.users).await?;
    let secs = t0.elapsed().as_secs_f64();
    let tasks = sessions
        .into_iter()
        .map(|s| tokio::spawn(user_task(s, t.clone(), topo, ctl.clone(), seen.clone())))
        .collect();
    Ok((tasks, secs))
}

/// Makes every pair of contacts of the topology `both` contacts of each other.
pub async fn rosters(t: Arc<Target>, topo: Topology) -> Result<()> {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = watch::channel(Ctl::Idle);
    let (tasks, _) = log_in_all(&t, topo, &rx, &seen).await?;
    let expected = topo.per_wave();
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
        let (bad, want) = (bad.clone(), topo.contact_count(s.index) as usize);
        set.spawn(async move {
            let q = "<iq type='get' id='check'><query xmlns='jabber:iq:roster'/></iq>";
            let mut ok = false;
            if s.writer.send(q).await.is_ok() {
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
            let _ = s.writer.send("</stream:stream>").await;
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
pub async fn fanout(t: Arc<Target>, pid: Option<u32>, topo: Topology, waves: u64) -> Result<()> {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = watch::channel(Ctl::Idle);
    let span = Span::start(pid);
    let (tasks, login_secs) = log_in_all(&t, topo, &rx, &seen).await?;
    let users = topo.users;
    let (login_cpu, _, _) = span.end();
    figure("s3.login_wave", login_secs, "s");
    figure(
        "s3.server_cpu_per_login",
        login_cpu * 1000.0 / users as f64,
        "ms",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected = topo.per_wave();
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
        if let Ok(Some(s)) = h.await {
            let _ = s.writer.send("</stream:stream>").await;
        }
    }
    Ok(())
}

/// The median of some figures (NaN for none).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
