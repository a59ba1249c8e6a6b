//! Building and running moat: the shared state that survives reloads, the
//! listeners, the certificate watcher, signal handling, and the drain.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::listener::certs::{self, CertStore};

/// The longest header-read, idle and send timeout of an admin connection.
const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub use crate::stack::Shared;

/// Why moat could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificate problem.
    #[error("{0}")]
    Cert(#[from] certs::CertError),
    /// TLS configuration problem.
    #[error("{0}")]
    Tls(#[from] crate::listener::tls::TlsError),
    /// A listener could not bind.
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}

/// A built, bound, not yet running moat.
pub struct App {
    /// Shared state.
    pub shared: Arc<Shared>,
    https: Vec<TcpListener>,
    admin: TcpListener,
    redirect: Option<TcpListener>,
    acceptor: TlsAcceptor,
    _watchers: Vec<crate::watch::Watch>,
}

impl App {
    /// Loads the certificate, builds TLS, binds every listener. Nothing is
    /// served until [`App::run`].
    pub async fn build(config: Config) -> Result<App, StartError> {
        let ck = match &config.tls.cert {
            Some((c, k)) => certs::load_pair(c, k)?,
            None => {
                let ck = certs::self_signed()?;
                tracing::warn!(
                    fingerprint_sha256 = %certs::fingerprint(&ck),
                    "no tls.cert configured: serving a self-signed development certificate generated at start; configure tls.cert and tls.key for production"
                );
                ck
            }
        };
        let mut sni = Vec::with_capacity(config.tls.certificates.len());
        for e in &config.tls.certificates {
            sni.push((e.hosts.clone(), certs::load_pair(&e.cert, &e.key)?));
        }
        let store = Arc::new(CertStore::with_sni(ck, sni));
        let not_after = store.earliest_not_after();
        let tls_cfg = crate::listener::tls::server_config(&config.tls, store.clone())?;
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 64);
        let https = crate::listener::bind_each(config.listen.https, workers, "listen.https")?;
        let admin = crate::listener::bind(config.listen.admin, "listen.admin").await?;
        let redirect = match config.listen.http_redirect {
            Some(a) => Some(crate::listener::bind(a, "listen.http_redirect").await?),
            None => None,
        };
        let shared = Shared::new(config);
        if let Some(t) = not_after {
            shared.metrics.cert_not_after.set(t);
        }
        let cfg = shared.config.load_full();
        let pairs = cfg.tls.cert.iter().map(|(c, k)| (None, c, k));
        let pairs = pairs.chain(cfg.tls.certificates.iter().enumerate().map(|(i, e)| (Some(i), &e.cert, &e.key)));
        let mut watchers = Vec::new();
        for (slot, c, k) in pairs {
            let (sh, st) = (shared.clone(), store.clone());
            match certs::watch(store.clone(), slot, c.clone(), k.clone(), move || {
                if let Some(t) = st.earliest_not_after() {
                    sh.metrics.cert_not_after.set(t);
                }
            }) {
                Ok(w) => watchers.push(w),
                Err(e) => {
                    tracing::warn!(error = %e, cert = %c.display(), "cannot watch the certificate files; reload of this certificate is off")
                }
            }
        }
        Ok(App { shared, https, admin, redirect, acceptor: TlsAcceptor::from(Arc::new(tls_cfg)), _watchers: watchers })
    }

    /// The bound HTTPS address (useful with port 0).
    pub fn https_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match self.https.first() {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::other("no HTTPS listener")),
        }
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests
    /// for at most `limits.shutdown_grace`.
    pub async fn run(self, shutdown: CancellationToken, reload: tokio::sync::mpsc::Receiver<()>) {
        let App { shared, https, admin, redirect, acceptor, _watchers } = self;
        let tracker = TaskTracker::new();
        let cfg = shared.config.load_full();
        let bound = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let https_addr = https.first().and_then(|l| l.local_addr().ok());
        let serving =
            (https_addr.map(|a| a.to_string()).unwrap_or_default(), bound(&admin), redirect.as_ref().map(bound));
        let https_port = https_addr.map_or(cfg.listen.https.port(), |a| a.port());
        let svc = crate::server::HttpService::new(crate::stack::build(&shared));
        let workers = start_workers(https, acceptor, &shared, svc, &shutdown, &tracker);
        serve_admin(admin, &shared, &cfg, &shutdown, &tracker);
        if let Some(l) = redirect {
            serve_redirect(l, https_port, &cfg, &shutdown, &tracker);
        }
        let _watch = spawn_reloader(&shared, reload, &shutdown).await;
        // Announced once the watchers are in place and the files' digest is
        // taken: a file changed from here on is a reload.
        tracing::info!(
            https = %serving.0,
            admin = %serving.1,
            http_redirect = serving.2,
            upstream = %cfg.upstream.display_url(),
            config = %cfg.source,
            "moat is serving"
        );
        spawn_health_checks(&shared, &shutdown);
        spawn_sweeper(&shared, &shutdown);

        shutdown.cancelled().await;
        drain(&shared, tracker, workers).await;
    }
}

/// The admin listener (never behind the policy stack). It answers probes:
/// its connections get short timeouts of their own, and idle ones make
/// room at its cap.
fn serve_admin(
    admin: TcpListener,
    shared: &Arc<Shared>,
    cfg: &Config,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let sh = shared.clone();
    let admin_svc = crate::server::HttpService::new(tower::service_fn(move |req| -> crate::policy::BoxFuture {
        Box::pin(crate::admin::handle(sh.clone(), req))
    }));
    let admin_limits = crate::server::ConnLimits {
        header_read_timeout: cfg.limits.header_read_timeout.min(ADMIN_TIMEOUT),
        idle_timeout: cfg.limits.idle_timeout.min(ADMIN_TIMEOUT),
        send_timeout: cfg.limits.send_timeout.min(ADMIN_TIMEOUT),
    };
    tracker.spawn(crate::listener::serve_plain(
        admin,
        admin_svc,
        cfg.limits.clone(),
        admin_limits,
        64,
        shutdown.clone(),
        tracker.clone(),
    ));
}

/// The plain-HTTP listener that redirects to HTTPS on `https_port`.
fn serve_redirect(l: TcpListener, https_port: u16, cfg: &Config, shutdown: &CancellationToken, tracker: &TaskTracker) {
    let svc = crate::server::HttpService::new(tower::service_fn(move |req| -> crate::policy::BoxFuture {
        Box::pin(async move { Ok(crate::admin::redirect(&req, https_port)) })
    }));
    tracker.spawn(crate::listener::serve_plain(
        l,
        svc,
        cfg.limits.clone(),
        crate::server::ConnLimits::from(&cfg.limits),
        1024,
        shutdown.clone(),
        tracker.clone(),
    ));
}

/// The config file and the files it names (upstream CA and client
/// certificates count as config: a rotated file is a reload).
fn watched_files(cfg: &Config) -> Vec<std::path::PathBuf> {
    cfg.path.iter().cloned().chain(cfg.watched_files()).collect()
}

/// The digest of the config's files, read off the runtime (`None` on
/// built-in defaults or when the config file cannot be read).
async fn config_digest(cfg: &Config) -> Option<[u8; 32]> {
    cfg.path.as_ref()?;
    let files = watched_files(cfg);
    tokio::task::spawn_blocking(move || files_digest(&files)).await.ok().flatten()
}

/// Reloads: SIGHUP (`reload`) always; a change of the config's files (see
/// [`crate::watch`]) when their content changed. Returns the watch, which
/// must be kept alive.
async fn spawn_reloader(
    shared: &Arc<Shared>,
    mut reload: tokio::sync::mpsc::Receiver<()>,
    shutdown: &CancellationToken,
) -> Option<crate::watch::Watch> {
    let cfg = shared.config.load_full();
    let (file_tx, mut file_rx) = tokio::sync::mpsc::channel::<()>(1);
    let watch = match crate::watch::watch(&watched_files(&cfg), file_tx) {
        Ok((w, failed)) => {
            for (dir, e) in failed {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory; reload with SIGHUP");
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config files; reload with SIGHUP");
            None
        }
    };
    let mut last_digest = config_digest(&cfg).await;
    let (sh, token) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            let forced = tokio::select! {
                r = reload.recv() => { if r.is_none() { break; } true }
                r = file_rx.recv() => { if r.is_none() { break; } false }
                _ = token.cancelled() => break,
            };
            let digest = config_digest(&sh.config.load_full()).await;
            if !forced && (digest.is_none() || digest == last_digest) {
                continue;
            }
            if reload_config(&sh).await {
                last_digest = digest;
            }
        }
    });
    watch
}

/// Active health checks: every address of an upstream with
/// `health_interval`, probed concurrently; a failure takes it out of the
/// balancing until a probe passes.
fn spawn_health_checks(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let (sh, token) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut last: std::collections::HashMap<Arc<str>, std::time::Instant> = Default::default();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => break,
            }
            let cfg = sh.config.load_full();
            let now = std::time::Instant::now();
            let due: Vec<&Arc<crate::config::Upstream>> = std::iter::once(&cfg.upstream)
                .chain(cfg.upstreams.values())
                .filter(|u| {
                    u.health_interval.is_some_and(|iv| last.get(&u.name).is_none_or(|t| now.duration_since(*t) >= iv))
                })
                .collect();
            if due.is_empty() {
                continue;
            }
            last.retain(|n, _| cfg.upstream_names().any(|m| m == n));
            for u in &due {
                last.insert(u.name.clone(), now);
            }
            futures_util::future::join_all(due.iter().flat_map(|u| probe_all(&sh, u))).await;
        }
    });
}

/// One health probe per address of `u`, each logging a change of its state.
fn probe_all<'a>(
    sh: &'a Shared,
    u: &'a crate::config::Upstream,
) -> impl Iterator<Item = impl std::future::Future<Output = ()> + 'a> + 'a {
    u.pool.addrs().iter().enumerate().map(move |(i, a)| async move {
        let passed = crate::admin::address_ready(sh, u, &a.authority).await;
        if u.pool.probed(i, passed) {
            if passed {
                tracing::info!(upstream = %u.name, address = %a.authority, "upstream address passed its health check again");
            } else {
                tracing::warn!(upstream = %u.name, address = %a.authority, "upstream address failed its health check: it takes no requests until it passes");
            }
        }
    })
}

/// Rate-limit sweeper: drops full buckets, returns memory, exports the key count.
fn spawn_sweeper(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let (sh, token) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let cfg = sh.config.load_full();
                    let mut live: Vec<String> = cfg.routes.iter().map(|r| r.name.clone()).collect();
                    live.push(cfg.default_route.name.clone());
                    let n = sh.limiters.sweep(&live);
                    sh.metrics.ratelimit_keys.set(n as i64);
                    sh.auth.sweep(cfg.auth.failure_window, cfg.auth.forward.as_ref().map(|f| f.cache_ttl));
                }
                _ = token.cancelled() => break,
            }
        }
    });
}

/// After shutdown: waits for the in-flight requests and the workers, for at
/// most `limits.shutdown_grace`.
async fn drain(shared: &Shared, tracker: TaskTracker, workers: Vec<std::thread::JoinHandle<()>>) {
    tracker.close();
    let grace = shared.config.load().limits.shutdown_grace;
    let drained = async {
        tracker.wait().await;
        for w in workers {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    };
    if tokio::time::timeout(grace + std::time::Duration::from_secs(1), drained).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed with requests still in flight");
    } else {
        tracing::info!("all connections drained");
    }
}

/// Starts one worker thread per HTTPS socket (one per CPU, see
/// [`crate::listener::bind_each`]), each with its own single-threaded
/// runtime accepting on its own socket: the kernel spreads new connections
/// over the sockets, and a request and its upstream exchange stay on one
/// thread (no cross-thread wake-ups), like nginx's workers with `reuseport`.
/// The connection cap, config, limiters and metrics are shared. A worker
/// keeps its runtime until the drain is over, so in-flight requests finish.
fn start_workers(
    https: Vec<TcpListener>,
    acceptor: TlsAcceptor,
    shared: &Arc<Shared>,
    svc: crate::server::HttpService,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Vec<std::thread::JoinHandle<()>> {
    let cfg = shared.config.load_full();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_connections));
    let mut handles = Vec::with_capacity(https.len());
    for (i, listener) in https.into_iter().enumerate() {
        // Detach from the runtime that bound it; the worker registers it with its own.
        let listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot hand an HTTPS socket to its worker");
                shutdown.cancel();
                continue;
            }
        };
        let (acceptor, shared, svc, slots) = (acceptor.clone(), shared.clone(), svc.clone(), slots.clone());
        let (stop, tracker) = (shutdown.clone(), tracker.clone());
        let spawned = std::thread::Builder::new().name(format!("moat-worker-{i}")).spawn(move || {
            let shutdown = stop;
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a worker runtime");
                    shutdown.cancel();
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "worker cannot register the HTTPS socket");
                        shutdown.cancel();
                        return;
                    }
                };
                let grace = shared.config.load().limits.shutdown_grace;
                let serving = crate::listener::TlsServing {
                    acceptor,
                    config: shared.config.load_full(),
                    metrics: shared.metrics.clone(),
                    svc,
                };
                crate::listener::serve_tls(listener, serving, slots, shutdown, tracker.clone()).await;
                // Keep this runtime (and the connections it drives) alive until the drain ends.
                let _ = tokio::time::timeout(grace, tracker.wait()).await;
            });
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                tracing::error!(error = %e, "cannot start a worker thread");
                shutdown.cancel();
            }
        }
    }
    handles
}

/// SHA-256 over the contents of `files` (following symlinks); `None` when
/// the first (the config file) cannot be read. A missing other file counts
/// as empty, so its return is a change too.
fn files_digest(files: &[std::path::PathBuf]) -> Option<[u8; 32]> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (i, f) in files.iter().enumerate() {
        match std::fs::read(f) {
            Ok(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(&b);
            }
            Err(_) if i > 0 => h.update(u64::MAX.to_le_bytes()),
            Err(_) => return None,
        }
    }
    Some(h.finalize().into())
}

/// Re-reads the config file; swaps it in if valid, else keeps the old one.
/// Returns whether a new config was applied.
pub async fn reload_config(shared: &Arc<Shared>) -> bool {
    let old = shared.config.load_full();
    let Some(path) = old.path.clone() else {
        tracing::info!("reload requested, but moat runs on built-in defaults: nothing to reload");
        return false;
    };
    let p2 = path.clone();
    let loaded = tokio::task::spawn_blocking(move || crate::config::load(Some(&p2))).await;
    match loaded {
        Ok(Ok(new)) => {
            if new.listen != old.listen {
                tracing::warn!("listen addresses changed: they take effect only after a restart");
            }
            if new.tls != old.tls {
                tracing::warn!(
                    "[tls] settings changed: certificate files reload by themselves; other tls settings need a restart"
                );
            }
            if new.upstream.connect_timeout != old.upstream.connect_timeout
                || new.upstream.pool_idle_timeout != old.upstream.pool_idle_timeout
                || new.upstream.pool_max_idle != old.upstream.pool_max_idle
                || new.upstream.pool_purge_interval != old.upstream.pool_purge_interval
                || new.limits.max_connections != old.limits.max_connections
                || new.limits.header_read_timeout != old.limits.header_read_timeout
                || new.limits.max_header_bytes != old.limits.max_header_bytes
                || new.limits.h2_max_concurrent_streams != old.limits.h2_max_concurrent_streams
                || new.limits.idle_timeout != old.limits.idle_timeout
            {
                tracing::warn!("connection-level settings changed (upstream pool and connect timeout, max_connections, header limits, idle_timeout, h2 streams): they take effect only after a restart");
            }
            for w in crate::check::warnings(&new) {
                tracing::warn!(warning = %w, "unsafe or surprising config");
            }
            shared.metrics.init_upstreams(new.upstream_names());
            shared.config.store(Arc::new(new));
            shared.metrics.reload("ok");
            tracing::info!(config = %path.display(), "config reloaded");
            true
        }
        Ok(Err(e)) => {
            shared.metrics.reload("error");
            for p in &e.problems {
                tracing::error!(problem = %p, "config reload refused; the previous config keeps serving");
            }
            false
        }
        Err(_) => {
            shared.metrics.reload("error");
            tracing::error!("config reload task failed");
            false
        }
    }
}
