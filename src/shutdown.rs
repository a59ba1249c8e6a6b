//! Signals: SIGTERM and SIGINT start a graceful shutdown (stop accepting,
//! let in-flight requests finish within `limits.shutdown_grace`, exit 0);
//! SIGHUP asks for a config reload.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM/SIGINT; sends on `reload` for each SIGHUP.
pub fn install(token: CancellationToken, reload: mpsc::Sender<()>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); token.cancel(); break; }
                _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); token.cancel(); break; }
                _ = hup.recv() => { let _ = reload.try_send(()); }
            }
        }
    });
    Ok(())
}
