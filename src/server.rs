//! Wires Config → Storage → Registry → Router → Extensions, binds the listeners, and shuts down
//! gracefully: every stream gets `<system-shutdown/>` and the server waits for sessions to end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::ext::Extensions;
use crate::router::Router;
use crate::session::Registry;
use crate::session::c2s::{self, Shared};
use crate::storage::{Storage, StoreError};
use crate::stream::{Condition, StreamError, random_id, response_header, write_top_level};
use crate::transport::tls::{self, TlsError};
use crate::transport::{ConnLimits, Refusal};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// Certificates.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        err: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    /// Bound STARTTLS listener addresses (with the real ports when 0 was configured).
    pub c2s_addrs: Vec<SocketAddr>,
    /// Bound direct-TLS listener addresses.
    pub tls_addrs: Vec<SocketAddr>,
    /// Bound plain HTTP listener addresses (WebSocket, host-meta, `/health`, `/metrics`).
    pub http_addrs: Vec<SocketAddr>,
    /// Bound HTTPS listener addresses.
    pub https_addrs: Vec<SocketAddr>,
    /// Bound federation listener addresses.
    pub s2s_addrs: crate::s2s::S2sAddrs,
    /// Federation, when it is on (tests add static routes through its resolver).
    pub s2s: Option<Arc<crate::s2s::S2s>>,
    /// The router (tests and the admin use it to look at sessions).
    pub router: Arc<Router>,
    /// The stores.
    pub storage: Storage,
    /// What every client session shares (in-memory sessions for fuzzing start from it).
    pub c2s: Arc<Shared>,
    /// Sessions holding a read buffer now (quiet ones free theirs; tests watch this).
    pub read_buffers: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: watch::Sender<bool>,
    /// Closed when every session and listener task has ended (each holds a sender).
    done: mpsc::Receiver<()>,
    timeout: Duration,
}

impl Server {
    /// Opens storage, sets up TLS and binds every listener; sessions are served from then on.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let config = Arc::new(config);
        let storage = Storage::open(&config).await?;
        // Claims on offline messages belong to sessions of a previous run (one that crashed
        // between delivering them and their acknowledgement): they are delivered again.
        let released = storage.offline.release_all().await?;
        if released > 0 {
            tracing::info!(
                released,
                "offline messages from an earlier run to deliver again"
            );
        }
        let tls = Some(tls::acceptors(&config)?);
        let registry = Arc::new(Registry::new());
        let router = Router::shared(registry, config.server.hosts.clone());
        router.set_hooks(Arc::new(Extensions::new(storage.clone(), config.clone())));
        if config.muc.enabled {
            for host in &config.server.hosts {
                let domain = format!("{}.{host}", config.muc.subdomain);
                let muc = crate::ext::muc::MucService::start(
                    storage.clone(),
                    config.clone(),
                    &domain,
                    &router,
                )
                .await;
                router.routes.add(&domain, Arc::new(muc));
                info!(%domain, "group chat");
            }
        }
        let limits = ConnLimits::new(config.limits.clone());
        let shared = Arc::new(Shared::new(
            config.clone(),
            tls,
            storage.clone(),
            router.clone(),
            limits,
        ));
        let (shutdown, _) = watch::channel(false);
        let (alive, done) = mpsc::channel(1);
        let mut server = Server {
            c2s_addrs: Vec::new(),
            tls_addrs: Vec::new(),
            http_addrs: Vec::new(),
            https_addrs: Vec::new(),
            s2s_addrs: Default::default(),
            s2s: None,
            router,
            storage,
            read_buffers: shared.read_buffers.clone(),
            c2s: shared.clone(),
            shutdown,
            done,
            timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
        };
        // Rooms' messages are kept within the same bounds even with the accounts' archive off.
        tokio::spawn(crate::ext::archive::retention::purge_loop(
            server.storage.clone(),
            config.archive.clone(),
            server.shutdown.subscribe(),
        ));
        for (list, direct) in [(&config.c2s.listen, false), (&config.c2s.tls_listen, true)] {
            for addr in list {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|err| StartError::Bind {
                        addr: addr.clone(),
                        err,
                    })?;
                let local = l.local_addr().map_err(|err| StartError::Bind {
                    addr: addr.clone(),
                    err,
                })?;
                info!(%local, direct_tls = direct, "listening for clients");
                if direct {
                    server.tls_addrs.push(local);
                } else {
                    server.c2s_addrs.push(local);
                }
                let rx = server.shutdown.subscribe();
                tokio::spawn(accept_loop(l, shared.clone(), direct, rx, alive.clone()));
            }
        }
        if config.s2s.enabled {
            server.start_s2s(&config, &alive).await?;
        }
        if config.http.metrics {
            // Installed now, so that what happens before the first scrape is counted.
            let _ = crate::metrics::handle();
        }
        let web = !config.http.listen.is_empty() || !config.http.tls_listen.is_empty();
        if config.upload.enabled && !web {
            warn!("file upload is enabled but no HTTP listener is configured: upload is off");
        }
        let uploads = (config.upload.enabled && web)
            .then(|| crate::http::upload::Uploads::new(server.storage.clone(), config.clone()));
        let http = Arc::new(crate::http::HttpState {
            c2s: shared.clone(),
            metrics: config.http.metrics,
            proxies: crate::http::proxy::Proxies::new(&config.http.trusted_proxies),
            shutdown: server.shutdown.subscribe(),
            alive: alive.clone(),
            bosh: Default::default(),
            uploads: uploads.clone(),
        });
        let https = shared.tls.as_ref().map(|t| t.https.clone());
        for (list, tls) in [
            (&config.http.listen, None),
            (&config.http.tls_listen, https),
        ] {
            for addr in list {
                let bind_err = |err| StartError::Bind {
                    addr: addr.clone(),
                    err,
                };
                let l = TcpListener::bind(addr).await.map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                info!(%local, tls = tls.is_some(), "listening for HTTP");
                match tls {
                    Some(_) => server.https_addrs.push(local),
                    None => server.http_addrs.push(local),
                }
                let rx = server.shutdown.subscribe();
                let (state, alive, tls) = (http.clone(), alive.clone(), tls.clone());
                let timeout = Duration::from_secs(config.http.request_timeout_secs);
                tokio::spawn(async move {
                    crate::http::serve(l, state, tls, timeout, rx).await;
                    drop(alive);
                });
            }
        }
        if let Some(u) = uploads {
            server.add_upload_services(&config, u);
        }
        Ok(server)
    }

    /// Federation: the router's remote route and the incoming listeners.
    async fn start_s2s(
        &mut self,
        config: &Arc<Config>,
        alive: &mpsc::Sender<()>,
    ) -> Result<(), StartError> {
        let s2s = crate::s2s::S2s::new(
            config.clone(),
            &self.router,
            self.shutdown.subscribe(),
            alive.clone(),
        )?;
        self.router
            .set_remote(Arc::new(crate::s2s::RemoteRoute(s2s.clone())));
        for (list, direct) in [(&config.s2s.listen, false), (&config.s2s.tls_listen, true)] {
            for addr in list {
                let bind_err = |err| StartError::Bind {
                    addr: addr.clone(),
                    err,
                };
                let l = TcpListener::bind(addr).await.map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                info!(%local, direct_tls = direct, "listening for servers");
                match direct {
                    true => self.s2s_addrs.direct.push(local),
                    false => self.s2s_addrs.plain.push(local),
                }
                s2s.listen(l, direct);
            }
        }
        self.s2s = Some(s2s);
        Ok(())
    }

    /// `upload.<host>` for each host, with URLs on the public URL or the first HTTPS (else
    /// plain HTTP) listener; and the purge of expired files.
    fn add_upload_services(&self, config: &Config, u: Arc<crate::http::upload::Uploads>) {
        for host in &config.server.hosts {
            let base = if !config.upload.public_url.is_empty() {
                config.upload.public_url.clone()
            } else if let Some(a) = self.https_addrs.first() {
                format!("https://{host}:{}", a.port())
            } else if let Some(a) = self.http_addrs.first() {
                // Plain HTTP is loopback unless configured otherwise: reachable by that address.
                let ip = if a.ip().is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    a.ip()
                };
                format!("http://{}", SocketAddr::new(ip, a.port()))
            } else {
                continue;
            };
            let domain = format!("{}.{host}", config.upload.subdomain);
            let service = crate::http::upload::UploadService::new(u.clone(), host, &domain, &base);
            self.router.routes.add(&domain, Arc::new(service));
            info!(%domain, %base, "file upload");
        }
        tokio::spawn(crate::http::upload::files::purge_loop(
            u,
            self.shutdown.subscribe(),
        ));
    }

    /// A receiver of the shutdown signal (in-memory sessions listen to it).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Closes every stream with `<system-shutdown/>` and waits (bounded) for the sessions.
    pub async fn shutdown(mut self) {
        info!("shutting down");
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(self.timeout, self.done.recv())
            .await
            .is_err()
        {
            warn!("some sessions did not close within {:?}", self.timeout);
        }
    }
}

async fn accept_loop(
    l: TcpListener,
    shared: Arc<Shared>,
    direct: bool,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let Some((tcp, peer)) = crate::transport::accept(&l, &mut shutdown, "c2s").await else {
            return;
        };
        match shared.limits.admit(peer.ip()) {
            Ok(guard) => {
                let (shared, rx, alive) = (shared.clone(), shutdown.clone(), alive.clone());
                let open = crate::metrics::open(if direct { "c2s_tls" } else { "c2s" });
                tokio::spawn(async move {
                    c2s::run(shared, tcp, peer, direct, rx, guard).await;
                    drop((alive, open));
                });
            }
            Err(why) => {
                warn!(%peer, ?why, "connection refused by limits");
                if !direct {
                    let host = shared.config.default_host().to_string();
                    tokio::spawn(refuse(tcp, host, why));
                }
            }
        }
    }
}

/// Tells a refused plain-TCP client why, as a stream error (RFC 6120 §4.9.3.14 / §4.9.3.17).
async fn refuse(mut tcp: TcpStream, host: String, why: Refusal) {
    let (cond, text) = match why {
        Refusal::Total => (
            Condition::ResourceConstraint,
            "the server has too many connections",
        ),
        Refusal::PerIp => (
            Condition::PolicyViolation,
            "too many connections from your address",
        ),
        Refusal::Rate => (
            Condition::PolicyViolation,
            "connecting too fast from your address",
        ),
    };
    let mut out = Vec::new();
    response_header(&mut out, &host, None, &random_id());
    write_top_level(&StreamError::with_text(cond, text).to_element(), &mut out);
    out.extend_from_slice(b"</stream:stream>");
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&out)).await;
}
