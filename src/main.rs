//! The `xmppd` command: run the server, manage accounts, check a configuration.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use xmppd::config::{self, Config};
use xmppd::server::Server;
use xmppd::storage::Storage;
use xmppd::stream::sasl::scram::{DEFAULT_ITERATIONS, ScramCredentials};

/// xmppd: an XMPP server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: ./xmppd.toml if it exists, else the built-in defaults).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Create an account, e.g. `xmppd adduser alice@localhost`.
    Adduser {
        /// The account's JID.
        jid: String,
        /// The password (prompted for when omitted; read from standard input when it is not a terminal).
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account and everything stored for it.
    Deluser {
        /// The account's JID.
        jid: String,
    },
    /// Change an account's password.
    Passwd {
        /// The account's JID.
        jid: String,
        /// The new password (prompted for when omitted).
        #[arg(long)]
        password: Option<String>,
    },
    /// List the accounts of a domain (default: every served domain).
    Listusers {
        /// The domain.
        domain: Option<String>,
    },
    /// Check a configuration file and print every error with its key path.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s) in the configuration", errors.len());
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Check) = cli.command {
        println!(
            "configuration OK: serving {}",
            config.server.hosts.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, Vec<config::ConfigError>> {
    match path {
        Some(p) => config::load_file(p),
        None if Path::new("xmppd.toml").exists() => config::load_file(Path::new("xmppd.toml")),
        None => Ok(Config::default()),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cmd: Command, config: Config) -> Result<()> {
    match cmd {
        Command::Serve | Command::Check => serve(config).await,
        Command::Adduser { jid, password } => {
            let (user, host) = split_jid(&jid, &config)?;
            let password = password_from(password, true)?;
            let creds = ScramCredentials::new_set(&password, DEFAULT_ITERATIONS).map_err(|_| {
                anyhow::anyhow!("the password contains characters SASLprep forbids")
            })?;
            let storage = Storage::open(&config).await?;
            if !storage.accounts.create(&host, &user, &creds).await? {
                bail!("{user}@{host} already exists");
            }
            println!("created {user}@{host}");
            Ok(())
        }
        Command::Deluser { jid } => {
            let (user, host) = split_jid(&jid, &config)?;
            let storage = Storage::open(&config).await?;
            if !storage.accounts.delete(&host, &user).await? {
                bail!("{user}@{host} does not exist");
            }
            println!("deleted {user}@{host}");
            Ok(())
        }
        Command::Passwd { jid, password } => {
            let (user, host) = split_jid(&jid, &config)?;
            let storage = Storage::open(&config).await?;
            if !storage.accounts.exists(&host, &user).await? {
                bail!("{user}@{host} does not exist");
            }
            let password = password_from(password, true)?;
            let creds = ScramCredentials::new_set(&password, DEFAULT_ITERATIONS).map_err(|_| {
                anyhow::anyhow!("the password contains characters SASLprep forbids")
            })?;
            storage
                .accounts
                .set_credentials(&host, &user, &creds)
                .await?;
            println!("password changed for {user}@{host}");
            Ok(())
        }
        Command::Listusers { domain } => {
            let storage = Storage::open(&config).await?;
            let domains = match domain {
                Some(d) => vec![d],
                None => config.server.hosts.clone(),
            };
            for d in domains {
                for u in storage.accounts.list(&d).await? {
                    println!("{u}@{d}");
                }
            }
            Ok(())
        }
    }
}

/// `user@domain` → (normalised localpart, domain), checking that the domain is served here.
fn split_jid(s: &str, config: &Config) -> Result<(String, String)> {
    let jid = jid::BareJid::new(s).with_context(|| format!("{s:?} is not a valid JID"))?;
    let Some(node) = jid.node() else {
        bail!(
            "{s:?} has no user part: write it as user@{}",
            config.default_host()
        );
    };
    let domain = jid.domain().as_str().to_string();
    if !config.serves(&domain) {
        bail!(
            "{domain} is not served here (server.hosts is {:?})",
            config.server.hosts
        );
    }
    Ok((node.as_str().to_string(), domain))
}

/// The password from the flag, a prompt (twice), or one line of standard input.
fn password_from(flag: Option<String>, confirm: bool) -> Result<String> {
    let pw = match flag {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => {
            let p = rpassword::prompt_password("Password: ")?;
            if confirm && rpassword::prompt_password("Again: ")? != p {
                bail!("the passwords differ");
            }
            p
        }
        None => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if pw.is_empty() {
        bail!("the password is empty");
    }
    Ok(pw)
}

async fn serve(config: Config) -> Result<()> {
    let server = Server::start(config).await?;
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
