//! Accept loops: the connection cap, the TLS handshake in its own task under
//! a deadline, then [`crate::server::serve`]. Also the plain-HTTP redirect
//! listener. Every listener binds exactly the address the config names.

pub(crate) mod certs;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::ctx::ConnInfo;
use crate::server::HttpService;

/// Binds a TCP listener (with a clear error naming the address).
pub(crate) async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}")))
}

/// Binds `n` listening sockets on one address with `SO_REUSEPORT`, one per
/// worker, so the kernel spreads new connections evenly over the workers
/// instead of waking them all for each one (with port 0, the first socket's
/// port is used for the others). A probe bound first without
/// `SO_REUSEPORT` makes a port another process already listens on (even
/// another moat of the same user) fail at start, as without the option.
pub(crate) fn bind_each(addr: SocketAddr, n: usize, what: &str) -> Result<Vec<TcpListener>, std::io::Error> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"));
    let fresh = || if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
    let at = {
        let probe = fresh().map_err(named)?;
        probe.set_reuseaddr(true).map_err(named)?;
        probe.bind(addr).map_err(named)?;
        probe.local_addr().map_err(named)?
    };
    let mut out: Vec<TcpListener> = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let socket = fresh().map_err(named)?;
        socket.set_reuseaddr(true).map_err(named)?;
        socket.set_reuseport(true).map_err(named)?;
        socket.bind(at).map_err(named)?;
        out.push(socket.listen(1024).map_err(named)?);
    }
    Ok(out)
}

async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((s, a)) => {
            let _ = s.set_nodelay(true);
            Some((s, a))
        }
        Err(e) => {
            // EMFILE and friends: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Accepts connections until `shutdown` and hands each one, once a
/// connection slot is free, to `on_conn` with its slot.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    on_conn: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            a = accept(&listener) => match a { Some(x) => x, None => continue },
            _ = shutdown.cancelled() => break,
        };
        // Accept, then wait for a slot: each worker has its own socket, so a
        // worker that waited for a slot before accepting could take a slot
        // freed elsewhere while the waiting connection sits in another
        // worker's queue. At the cap a worker holds at most this one
        // connection, not yet handshaken.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            },
        };
        let conn = on_conn(tcp, peer);
        tracker.spawn(async move {
            let _permit = permit;
            conn.await;
        });
    }
}

/// What a worker's HTTPS listener serves with.
pub(crate) struct TlsServing {
    /// The TLS acceptor (its certificate store reloads in place).
    pub acceptor: TlsAcceptor,
    /// The config the listener started with (connection limits, handshake timeout).
    pub config: Arc<Config>,
    /// Connection and handshake metrics.
    pub metrics: Arc<Metrics>,
    /// The request stack.
    pub svc: HttpService,
}

/// Serves HTTPS on `listener` until `shutdown`. `slots` is the connection
/// cap shared by every worker (each accepting on its own socket).
pub(crate) async fn serve_tls(
    listener: TcpListener,
    serving: TlsServing,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let TlsServing { acceptor, config: cfg, metrics, svc } = serving;
    let limits = &cfg.limits;
    let builder = Arc::new(crate::server::builder(limits));
    let handshake_timeout = cfg.tls.handshake_timeout;
    let conn_limits = crate::server::ConnLimits::from(limits);
    accept_loop(listener, slots, &shutdown.clone(), &tracker, |tcp, peer| {
        let acceptor = acceptor.clone();
        let svc = svc.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let metrics = metrics.clone();
        async move {
            metrics.active_connections.inc();
            let _gauge = scopeguard(|| {
                metrics.active_connections.dec();
            });
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.tls_handshake_errors.inc();
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake_errors.inc();
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
            let info = ConnInfo { peer, tls: true };
            crate::server::serve(tls, info, svc, &builder, conn_limits, shutdown).await;
        }
    })
    .await;
}

/// Serves plain HTTP on `listener` with `svc` (redirect and admin listeners).
///
/// At most `max_conns` connections are served at once; when the cap is
/// reached, the oldest connection with no request in flight is closed to
/// make room, so idle or silent clients can never lock out a health probe.
pub(crate) async fn serve_plain(
    listener: TcpListener,
    svc: HttpService,
    limits: crate::config::Limits,
    conn_limits: crate::server::ConnLimits,
    max_conns: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut limits = limits;
    limits.header_read_timeout = conn_limits.header_read_timeout;
    let builder = Arc::new(crate::server::builder(&limits));
    let slots = Arc::new(Semaphore::new(max_conns));
    let registry = Arc::new(crate::server::Registry::default());
    loop {
        let (tcp, peer) = tokio::select! {
            a = accept(&listener) => match a { Some(x) => x, None => continue },
            _ = shutdown.cancelled() => break,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                registry.evict_one();
                let wait = tokio::time::timeout(conn_limits.header_read_timeout, slots.clone().acquire_owned());
                tokio::select! {
                    p = wait => match p {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => break,
                        // Every slot is busy with a request: refuse this connection.
                        Err(_) => continue,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let (svc, builder, shutdown, registry) = (svc.clone(), builder.clone(), shutdown.clone(), registry.clone());
        tracker.spawn(async move {
            let _permit = permit;
            let (id, activity, evict) = registry.add();
            let info = ConnInfo { peer, tls: false };
            crate::server::serve_evictable(tcp, info, svc, &builder, conn_limits, shutdown, Some((activity, evict)))
                .await;
            registry.remove(id);
        });
    }
}

/// Runs a closure when dropped.
pub(crate) fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
