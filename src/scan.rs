//! Malware scanning of uploads by ClamAV's `clamd`.
//!
//! # Threat
//!
//! An upload route fronts an app that stores or parses what clients send.
//! Type and structure checks (see `crate::upload`) confirm that a PDF is a
//! PDF; they cannot tell a clean PDF from one carrying a known exploit, nor a
//! text file from the EICAR test string. MinerU-API's security policy asks
//! operators to scan uploads for malware before they are stored or
//! processed; the app does not do it itself.
//!
//! # What this module does
//!
//! With a `[scan]` section and `upload = { ..., scan = true }` on a route,
//! each file part of a multipart body (and a raw upload body) is streamed to
//! clamd with the `INSTREAM` command while it passes through moat
//! ([`Scanning::start`] spawns one task per file, holding one clamd
//! connection). The inspector keeps the body's last chunk back until every
//! file's verdict is in (see `crate::upload::inspect`), so the upstream never
//! receives the complete body of an upload that was not scanned clean:
//!
//! * `FOUND` → the upload is refused with 403 `upload_malware`; the signature
//!   name is logged (with the request id), never sent to the client;
//! * clamd unreachable, too slow (`timeout`), or answering an error →
//!   `on_error`: `deny` (the default) refuses with 503 `scan_unavailable` and
//!   `retry-after`, `allow` lets the file through (logged and counted);
//! * a file larger than `max_file_size` is not scanned; `on_too_large`
//!   decides: `deny` (the default) refuses with 413, `allow` lets it through
//!   unscanned (counted as `skipped`).
//!
//! clamd refuses a stream longer than its `StreamMaxLength` (25 MiB by
//! default); set it to at least `max_file_size`, which also defaults to
//! 25 MiB, or every larger file becomes a scan error.
//!
//! # Memory and connections
//!
//! File bytes are handed to the file's task as reference-counted `Bytes`
//! (no copy). The bytes handed over but not yet written to clamd are counted
//! per request ([`Gate`]); above [`QUEUE_LIMIT`] the request body is not read
//! further until clamd has taken them, so a slow clamd slows the client
//! instead of growing moat's memory. At most `pool_size` clamd connections
//! are open at once; a file waits for a free one (within `timeout`) while
//! its first bytes queue. Each connection carries one file and is closed by
//! clamd after its verdict.
//!
//! # Metrics
//!
//! `moat_scans_total{result="clean|infected|error|skipped"}` and
//! `moat_scan_duration_seconds`, the time from a file's last byte to its
//! verdict: what scanning adds to an upload's latency.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clamav_client::tokio::TransportProtocol;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_io_timeout::TimeoutStream;

use crate::metrics::ScanMetrics;

/// Bytes handed to a request's scan tasks but not yet written to clamd,
/// above which the request body is not read further.
pub(crate) const QUEUE_LIMIT: usize = 4 << 20;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://host:port`
    Tcp(String),
    /// `unix:/path/to/clamd.ctl`
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `tcp://host:port` or `unix:/path`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let port_ok =
                rest.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(format!("\"{s}\": use tcp://HOST:PORT, e.g. tcp://127.0.0.1:3310"));
            }
            return Ok(Self::Tcp(rest.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!("\"{s}\": use unix:/absolute/path/to/clamd.ctl"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        Err(format!("\"{s}\": use tcp://HOST:PORT or unix:/path/to/clamd.ctl"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "tcp://{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What to do with a file that could not be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse the upload.
    Deny,
    /// Let the file through unscanned (logged and counted).
    Allow,
}

impl Fallback {
    /// Parses `deny` or `allow`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deny" => Some(Self::Deny),
            "allow" => Some(Self::Allow),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

/// The `[scan]` section.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// clamd's address (`clamd`).
    pub endpoint: Endpoint,
    /// Longest wait for a connection, a write to clamd, or the verdict after
    /// a file's last byte (`timeout`).
    pub timeout: Duration,
    /// Largest file that is scanned (`max_file_size`).
    pub max_file_size: u64,
    /// A file over `max_file_size` (`on_too_large`).
    pub on_too_large: Fallback,
    /// clamd down, too slow, or answering an error (`on_error`).
    pub on_error: Fallback,
    /// Most clamd connections open at once (`pool_size`).
    pub pool_size: usize,
    /// `/readyz` also needs clamd to answer `PING` (`required_for_ready`).
    pub required_for_ready: bool,
    pool: Arc<Semaphore>,
}

impl ScanConfig {
    /// The default `max_file_size`: clamd's default `StreamMaxLength`.
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 25 << 20;
    /// The default `timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default `pool_size`.
    pub const DEFAULT_POOL_SIZE: usize = 16;

    /// A config with the defaults for everything but the endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            timeout: Self::DEFAULT_TIMEOUT,
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
            on_too_large: Fallback::Deny,
            on_error: Fallback::Deny,
            pool_size: Self::DEFAULT_POOL_SIZE,
            required_for_ready: false,
            pool: Arc::new(Semaphore::new(Self::DEFAULT_POOL_SIZE)),
        }
    }

    /// Sets `pool_size` (at least 1).
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self.pool = Arc::new(Semaphore::new(self.pool_size));
        self
    }

    fn transport(&self) -> Transport<'_> {
        Transport { endpoint: &self.endpoint, timeout: self.timeout }
    }
}

/// Whether clamd answers `PING` with `PONG` within the scan timeout.
pub(crate) async fn ping(cfg: &ScanConfig) -> bool {
    let ping = clamav_client::tokio::ping(cfg.transport());
    matches!(tokio::time::timeout(cfg.timeout, ping).await, Ok(Ok(r)) if r == clamav_client::PONG)
}

/// A byte stream to clamd, TCP or unix.
trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

/// Connects to clamd with a connect timeout, and gives the connection read
/// and write timeouts: a clamd that stops reading, or sends no verdict, fails
/// the scan after `timeout` instead of holding the upload.
struct Transport<'a> {
    endpoint: &'a Endpoint,
    timeout: Duration,
}

impl TransportProtocol for Transport<'_> {
    type Stream = Pin<Box<TimeoutStream<Pin<Box<dyn Io>>>>>;

    async fn connect(&self) -> io::Result<Self::Stream> {
        let connect = async {
            let io: Pin<Box<dyn Io>> = match self.endpoint {
                Endpoint::Tcp(addr) => {
                    let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
                    s.set_nodelay(true)?;
                    Box::pin(s)
                }
                Endpoint::Unix(path) => Box::pin(tokio::net::UnixStream::connect(path).await?),
            };
            Ok::<_, io::Error>(io)
        };
        let io = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect to clamd timed out"))??;
        let mut s = TimeoutStream::new(io);
        s.set_read_timeout(Some(self.timeout));
        s.set_write_timeout(Some(self.timeout));
        Ok(Box::pin(s))
    }
}

/// The bytes of a request's files that wait to be written to clamd.
#[derive(Debug, Default)]
pub struct Gate {
    queued: AtomicUsize,
    waker: AtomicWaker,
}

impl Gate {
    fn add(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::AcqRel);
    }

    fn release(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before > QUEUE_LIMIT && before.saturating_sub(n) <= QUEUE_LIMIT {
            self.waker.wake();
        }
    }

    /// Ready when the request body may be read further.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.queued.load(Ordering::Acquire) <= QUEUE_LIMIT {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.queued.load(Ordering::Acquire) <= QUEUE_LIMIT {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Bytes waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// One request's scanning: the config, the metrics and the request's
/// [`Gate`]. Cheap to clone.
#[derive(Clone)]
pub struct Scanning {
    config: Arc<ScanConfig>,
    metrics: Arc<ScanMetrics>,
    gate: Arc<Gate>,
    request_id: Arc<str>,
}

impl fmt::Debug for Scanning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanning").field("endpoint", &self.config.endpoint).finish_non_exhaustive()
    }
}

/// What clamd said about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `OK`.
    Clean,
    /// `FOUND`.
    Infected,
    /// No verdict: clamd unreachable, too slow, or answering an error.
    Failed,
}

impl Outcome {
    /// The `result` label of `moat_scans_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Infected => "infected",
            Outcome::Failed => "error",
        }
    }
}

enum Msg {
    Data(Bytes),
    End,
}

impl Scanning {
    /// Scanning for one request.
    pub fn new(config: Arc<ScanConfig>, metrics: Arc<ScanMetrics>, request_id: &str) -> Self {
        Self { config, metrics, gate: Arc::new(Gate::default()), request_id: request_id.into() }
    }

    /// The config.
    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    /// The request's gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Starts scanning one file (`name` for the log): spawns its task, which
    /// takes a clamd connection and streams what [`FileScan::push`] gives it.
    pub fn start(&self, name: &str) -> FileScan {
        let (tx, rx) = mpsc::unbounded_channel();
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let task = Task {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            gate: self.gate.clone(),
            request_id: self.request_id.clone(),
            file: name.into(),
        };
        tokio::spawn(task.run(rx, verdict_tx));
        FileScan { tx, verdict: verdict_rx, size: 0, scanning: self.clone() }
    }
}

/// A file being streamed to clamd.
pub struct FileScan {
    tx: mpsc::UnboundedSender<Msg>,
    verdict: oneshot::Receiver<Outcome>,
    size: u64,
    scanning: Scanning,
}

impl fmt::Debug for FileScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileScan").field("size", &self.size).finish_non_exhaustive()
    }
}

/// The file is larger than `max_file_size`: it will not be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl FileScan {
    /// The `[scan]` config.
    pub fn config(&self) -> &ScanConfig {
        &self.scanning.config
    }

    /// Hands the next bytes of the file to its task. Fails once the file is
    /// over `max_file_size`; the caller then refuses the upload or calls
    /// [`FileScan::skip`], as `on_too_large` says.
    pub fn push(&mut self, data: &Bytes) -> Result<(), TooLarge> {
        self.size = self.size.saturating_add(data.len() as u64);
        if self.size > self.scanning.config.max_file_size {
            return Err(TooLarge);
        }
        let gate = &self.scanning.gate;
        gate.add(data.len());
        if self.tx.send(Msg::Data(data.clone())).is_err() {
            // The task has ended (it failed early); its verdict says so.
            gate.release(data.len());
        }
        Ok(())
    }

    /// The file's last byte was pushed: the verdict follows.
    pub fn finish(self) -> PendingOutcome {
        let _ = self.tx.send(Msg::End);
        PendingOutcome { rx: Some(self.verdict), done: None }
    }

    /// Gives up scanning a file over `max_file_size` (`on_too_large =
    /// "allow"`); counted as `skipped`.
    pub fn skip(self) {
        self.scanning.metrics.skipped();
        tracing::info!(
            request_id = %self.scanning.request_id,
            max_file_size = self.scanning.config.max_file_size,
            "upload file over scan.max_file_size passed unscanned (on_too_large = \"allow\")"
        );
        // Dropping the sender without `End` aborts the task's stream.
    }
}

/// A file's verdict, pending until its task answers.
#[derive(Debug)]
pub struct PendingOutcome {
    rx: Option<oneshot::Receiver<Outcome>>,
    done: Option<Outcome>,
}

impl PendingOutcome {
    /// The outcome, once it is in. A task that ended without one (it cannot
    /// panic, but if it did) counts as [`Outcome::Failed`].
    pub fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(o) = self.done {
            return Poll::Ready(o);
        }
        let Some(rx) = self.rx.as_mut() else { return Poll::Ready(Outcome::Failed) };
        let o = match Pin::new(rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(o)) => o,
            Poll::Ready(Err(_)) => Outcome::Failed,
        };
        self.rx = None;
        self.done = Some(o);
        Poll::Ready(o)
    }
}

/// One file's scan.
struct Task {
    config: Arc<ScanConfig>,
    metrics: Arc<ScanMetrics>,
    gate: Arc<Gate>,
    request_id: Arc<str>,
    file: Box<str>,
}

/// Why a stream to clamd ended without the file's last byte.
#[derive(Debug, thiserror::Error)]
#[error("upload stream ended before the file did")]
struct Aborted;

impl Task {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Msg>, mut verdict: oneshot::Sender<Outcome>) {
        let last_byte = Arc::new(std::sync::OnceLock::new());
        let scanned = self.scan(&mut rx, &last_byte);
        // The request is gone (refused, or the client left): stop at once.
        let result = tokio::select! {
            r = scanned => Some(r),
            () = verdict.closed() => None,
        };
        rx.close();
        while let Ok(m) = rx.try_recv() {
            if let Msg::Data(d) = m {
                self.gate.release(d.len());
            }
        }
        let Some(result) = result else { return };
        let took = last_byte.get().map_or(Duration::ZERO, |t: &Instant| t.elapsed());
        let outcome = match result {
            Err(e) if e.get_ref().is_some_and(|i| i.is::<Aborted>()) => return,
            Err(e) => {
                tracing::warn!(
                    request_id = %self.request_id,
                    file = %self.file,
                    clamd = %self.config.endpoint,
                    error = %e,
                    on_error = self.config.on_error.as_str(),
                    "upload scan failed"
                );
                Outcome::Failed
            }
            Ok(reply) => self.read_reply(&reply),
        };
        self.metrics.observe(outcome.label(), (outcome != Outcome::Failed).then_some(took));
        let _ = verdict.send(outcome);
    }

    async fn scan(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        last_byte: &Arc<std::sync::OnceLock<Instant>>,
    ) -> io::Result<Vec<u8>> {
        let permit = tokio::time::timeout(self.config.timeout, self.config.pool.clone().acquire_owned())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no clamd connection free within scan.timeout"))?
            .map_err(io::Error::other)?;
        let gate = self.gate.clone();
        let last = last_byte.clone();
        let input = futures_util::stream::poll_fn(move |cx| match rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Data(d))) => {
                gate.release(d.len());
                Poll::Ready(Some(Ok(d)))
            }
            Poll::Ready(Some(Msg::End)) => {
                let _ = last.set(Instant::now());
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::other(Aborted)))),
            Poll::Pending => Poll::Pending,
        });
        let reply = clamav_client::tokio::scan_stream(input, self.config.transport(), Some(1 << 20)).await;
        drop(permit);
        reply
    }

    fn read_reply(&self, reply: &[u8]) -> Outcome {
        let text = String::from_utf8_lossy(reply);
        let text = text.trim_end_matches(['\0', '\n', '\r']);
        let body = text.strip_prefix("stream: ").unwrap_or(text);
        if body == "OK" {
            return Outcome::Clean;
        }
        if let Some(signature) = body.strip_suffix(" FOUND") {
            tracing::warn!(
                request_id = %self.request_id,
                file = %self.file,
                signature,
                "malware found in upload; refused"
            );
            return Outcome::Infected;
        }
        tracing::warn!(
            request_id = %self.request_id,
            file = %self.file,
            clamd = %self.config.endpoint,
            reply = %text.chars().take(200).collect::<String>(),
            on_error = self.config.on_error.as_str(),
            "upload scan failed: clamd answered an error (is its StreamMaxLength below scan.max_file_size?)"
        );
        Outcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:3310"), Ok(Endpoint::Tcp("127.0.0.1:3310".into())));
        assert_eq!(Endpoint::parse("tcp://clamav:3310/"), Ok(Endpoint::Tcp("clamav:3310".into())));
        assert_eq!(Endpoint::parse("unix:/run/clamav/clamd.ctl"), Ok(Endpoint::Unix("/run/clamav/clamd.ctl".into())));
        assert_eq!(Endpoint::parse("unix:///run/c.ctl"), Ok(Endpoint::Unix("/run/c.ctl".into())));
        for bad in ["127.0.0.1:3310", "tcp://127.0.0.1", "tcp://:3310", "tcp://h:0", "unix:relative", "http://x:1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gate_wakes_when_room_returns() {
        let gate = Gate::default();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        gate.add(QUEUE_LIMIT + 10);
        assert!(gate.poll_room(&mut cx).is_pending());
        gate.release(10);
        assert!(gate.poll_room(&mut cx).is_ready());
        assert_eq!(gate.queued(), QUEUE_LIMIT);
    }
}
