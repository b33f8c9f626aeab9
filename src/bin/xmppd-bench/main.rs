//! `xmppd-bench`: a load generator that logs real XMPP clients in to any server (xmppd, Prosody,
//! ejabberd, …) and measures the scenarios of `docs/benchmarks.md`. Bounded in count and time,
//! loopback only. Progress goes to stderr; the summary is one `figure <name> <value> <unit>`
//! line per figure on stdout, which `bench/compare.sh` collects.
//!
//!     xmppd-bench --port 5222 --domain localhost register --count 1000
//!     xmppd-bench --server-pid $PID idle --count 10000
//!     xmppd-bench --server-pid $PID chat --users 1000
//!     xmppd-bench rosters --users 1010 --contacts 100 && xmppd-bench fanout --users 1010 --contacts 100
//!     xmppd-bench --user big{} rosters --users 1020 --contacts 1000 --hubs 20
//!     xmppd-bench --server-pid $PID logins --count 2000 --users 1000
//!     xmppd-bench --server-pid $PID rooms --occupants 500 --senders 10
//!     xmppd-bench --server-pid $PID --sm rooms --occupants 500 --senders 10   # XEP-0198 on

mod chat;
mod conn;
mod presence;
mod reader;
mod rooms;
mod scenarios;
mod stats;
mod ws;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use conn::{Mech, Target, TlsMode};

#[derive(Parser)]
#[command(name = "xmppd-bench", about = "XMPP load generator (loopback only)")]
struct Cli {
    /// Server address (must be in 127.0.0.0/8 or ::1).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Client port (5222 for STARTTLS, 5223 for direct TLS).
    #[arg(long, default_value_t = 5222)]
    port: u16,
    /// The server's domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    #[arg(long, value_enum, default_value_t = TlsMode::Starttls)]
    tls: TlsMode,
    /// XMPP over WebSocket at this path (e.g. /xmpp-websocket) of `--port`, with `--tls none`
    /// (ws://) or `--tls direct` (wss://).
    #[arg(long)]
    ws: Option<String>,
    #[arg(long, value_enum, default_value_t = Mech::Auto)]
    mech: Mech,
    /// Account name pattern; `{}` is the user number.
    #[arg(long, default_value = "bench{}")]
    user: String,
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Source addresses to spread connections over: a number N takes 127.0.0.1 … 127.0.0.N.
    #[arg(long, default_value = "1")]
    sources: String,
    /// PID of the server, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 1800)]
    time_limit: u64,
    /// Enable stream management (XEP-0198) on every session, as mobile clients do: each
    /// session answers the server's ack requests, and asks for an ack after each message it
    /// sends.
    #[arg(long)]
    sm: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Create accounts 0..count by in-band registration (XEP-0077).
    Register {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
    },
    /// S1: hold `count` idle sessions; login rate and server RSS per connection.
    Idle {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds to hold the sessions before measuring memory.
        #[arg(long, default_value_t = 5)]
        hold: u64,
    },
    /// S2: one-to-one chat between `users` online users.
    Chat {
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// First rate of the ramp (messages per second, all users together).
        #[arg(long, default_value_t = 500.0)]
        start: f64,
        /// Fixed rates instead of the ramp, e.g. 1000,2000.
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 10)]
        step: u64,
        /// Seconds to wait for late messages after a step.
        #[arg(long, default_value_t = 3)]
        grace: u64,
        /// A step holds only if its 99th percentile latency is at most this many ms.
        #[arg(long, default_value_t = 1000.0)]
        max_p99: f64,
        /// After the ramp, measure latency at these offered rates too, e.g. 1000,5000.
        #[arg(long, value_delimiter = ',')]
        latency_at: Vec<f64>,
    },
    /// Set up S3's rosters: groups of contacts+1 users, all subscribed both ways; or, with
    /// `--hubs H`, H users with `contacts` contacts each (`--users` is then H + contacts).
    Rosters {
        #[arg(long)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        contacts: usize,
        #[arg(long, default_value_t = 0)]
        hubs: usize,
    },
    /// S3: login wave, then presence-change waves.
    Fanout {
        #[arg(long)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        contacts: usize,
        #[arg(long, default_value_t = 0)]
        hubs: usize,
        #[arg(long, default_value_t = 3)]
        waves: u64,
    },
    /// R: `occupants` users in one room, `senders` of them posting; join time and deliveries.
    Rooms {
        #[arg(long, default_value_t = 50)]
        occupants: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// First message rate of the ramp (all senders together).
        #[arg(long, default_value_t = 10.0)]
        start: f64,
        #[arg(long, default_value_t = 5)]
        step: u64,
        #[arg(long, default_value_t = 3)]
        grace: u64,
        #[arg(long, default_value_t = 1000.0)]
        max_p99: f64,
    },
    /// S4: login burst (connect, TLS, SASL, bind, close).
    Logins {
        #[arg(long)]
        count: usize,
        /// Accounts to cycle through.
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
    },
}

fn sources(spec: &str) -> Result<Vec<IpAddr>> {
    if let Ok(n) = spec.parse::<u8>() {
        return Ok((1..=n.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect());
    }
    let v: Vec<IpAddr> = spec.split(',').map(str::parse).collect::<Result<_, _>>()?;
    if v.iter().any(|a| !a.is_loopback()) {
        bail!("--sources must be loopback addresses");
    }
    Ok(v)
}

async fn run(cli: Cli) -> Result<()> {
    if !cli.host.is_loopback() {
        bail!("the load generator only targets loopback addresses (127.0.0.0/8, ::1)");
    }
    let t = Arc::new(Target {
        addr: SocketAddr::new(cli.host, cli.port),
        domain: cli.domain,
        tls: cli.tls,
        ws: cli.ws,
        mech: cli.mech,
        user_pattern: cli.user,
        password: cli.password,
        sources: sources(&cli.sources)?,
        tls_config: conn::tls_config()?,
        salts: Mutex::new(Default::default()),
        sm: cli.sm,
    });
    let pid = cli.server_pid;
    match cli.scenario {
        Scenario::Register { count, concurrency } => {
            scenarios::accounts(t, count, concurrency).await
        }
        Scenario::Idle {
            count,
            concurrency,
            hold,
        } => scenarios::idle(t, pid, count, concurrency, hold).await,
        Scenario::Chat {
            users,
            start,
            rates,
            step,
            grace,
            max_p99,
            latency_at,
        } => {
            let o = chat::ChatOpts {
                users,
                start,
                rates,
                step_secs: step,
                grace_secs: grace,
                max_p99,
                latency_at,
            };
            chat::chat(t, pid, o).await
        }
        Scenario::Rosters {
            users,
            contacts,
            hubs,
        } => presence::rosters(t, presence::Topology::new(users, contacts, hubs)?).await,
        Scenario::Fanout {
            users,
            contacts,
            hubs,
            waves,
        } => {
            let topo = presence::Topology::new(users, contacts, hubs)?;
            presence::fanout(t, pid, topo, waves).await
        }
        Scenario::Logins {
            count,
            users,
            concurrency,
        } => scenarios::logins(t, pid, count, users, concurrency).await,
        Scenario::Rooms {
            occupants,
            senders,
            start,
            step,
            grace,
            max_p99,
        } => {
            let o = rooms::RoomOpts {
                occupants,
                senders,
                start,
                step_secs: step,
                grace_secs: grace,
                max_p99,
            };
            rooms::rooms(t, pid, o).await
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let limit = Duration::from_secs(cli.time_limit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match tokio::time::timeout(limit, run(cli)).await {
            Ok(r) => r,
            Err(_) => bail!("time limit of {}s reached", limit.as_secs()),
        }
    })
}
