//! Choosing one of an upstream's addresses (`urls = [...]`): round-robin or
//! least-in-flight, skipping an address that failed to connect for
//! `fail_timeout` (passive health). When every address is marked down, the
//! one marked down longest ago is tried, so an upstream that comes back is
//! found without waiting for the back-off to end everywhere. With active
//! health checks (`health_interval`), an address that fails its probe is
//! skipped until a probe passes again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How an address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each address in turn.
    RoundRobin,
    /// The address with the fewest requests in flight (ties in turn).
    LeastInFlight,
}

/// One address and what is known of it.
#[derive(Debug)]
pub struct Addr {
    /// `host:port`.
    pub authority: http::uri::Authority,
    /// Milliseconds since the pool's epoch until which it is skipped (0: up).
    down_until: AtomicU64,
    /// Failed its last active health check.
    probe_failed: AtomicBool,
    in_flight: AtomicUsize,
}

/// An upstream's addresses, shared by every request.
#[derive(Debug)]
pub struct Pool {
    addrs: Vec<Addr>,
    next: AtomicUsize,
    balance: Balance,
    fail_timeout: Duration,
    epoch: Instant,
}

impl Pool {
    /// A pool of `addrs` (at least one).
    pub fn new(addrs: Vec<http::uri::Authority>, balance: Balance, fail_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            addrs: addrs
                .into_iter()
                .map(|authority| Addr {
                    authority,
                    down_until: AtomicU64::new(0),
                    probe_failed: AtomicBool::new(false),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            balance,
            fail_timeout,
            epoch: Instant::now(),
        })
    }

    /// The addresses.
    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_up(&self, i: usize, now: u64) -> bool {
        !self.addrs[i].probe_failed.load(Ordering::Relaxed) && self.addrs[i].down_until.load(Ordering::Relaxed) <= now
    }

    /// Whether address `i` takes requests now.
    pub fn is_up_now(&self, i: usize) -> bool {
        i < self.addrs.len() && self.is_up(i, self.now_ms())
    }

    /// Records the result of an active health check of `i`; returns
    /// whether that changed its state.
    pub fn probed(&self, i: usize, passed: bool) -> bool {
        let Some(a) = self.addrs.get(i) else { return false };
        let was_failed = a.probe_failed.swap(!passed, Ordering::Relaxed);
        if passed {
            a.down_until.store(0, Ordering::Relaxed);
        }
        was_failed == passed
    }

    /// The address for the next request, not `except` when another exists.
    pub fn pick(&self, except: Option<usize>) -> usize {
        let n = self.addrs.len();
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n).map(|k| (start + k) % n).filter(|&i| Some(i) != except);
        let up: Vec<usize> = candidates.clone().filter(|&i| self.is_up(i, now)).collect();
        let chosen = match self.balance {
            Balance::RoundRobin => up.first().copied(),
            Balance::LeastInFlight => {
                up.iter().copied().min_by_key(|&i| self.addrs[i].in_flight.load(Ordering::Relaxed))
            }
        };
        chosen.or_else(|| candidates.min_by_key(|&i| self.addrs[i].down_until.load(Ordering::Relaxed))).unwrap_or(0)
    }

    /// `i` failed to connect: skip it for `fail_timeout`.
    pub fn mark_down(&self, i: usize) {
        let until = self.now_ms().saturating_add(u64::try_from(self.fail_timeout.as_millis()).unwrap_or(u64::MAX));
        self.addrs[i].down_until.store(until, Ordering::Relaxed);
    }

    /// `i` answered: it is up.
    pub fn mark_up(&self, i: usize) {
        if self.addrs[i].down_until.load(Ordering::Relaxed) != 0 {
            self.addrs[i].down_until.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a request in flight on `i` until the guard is dropped.
    pub fn enter(self: &Arc<Self>, i: usize) -> InFlight {
        self.addrs[i].in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { pool: self.clone(), i }
    }
}

/// A request in flight on one address.
#[derive(Debug)]
pub struct InFlight {
    pool: Arc<Pool>,
    i: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool.addrs[self.i].in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, b: Balance) -> Arc<Pool> {
        let addrs = (0..n).map(|i| format!("127.0.0.1:{}", 9000 + i).parse().unwrap()).collect();
        Pool::new(addrs, b, Duration::from_secs(60))
    }

    #[test]
    fn round_robin_skips_an_address_marked_down() {
        let p = pool(3, Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| p.pick(None)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        p.mark_down(1);
        assert!((0..6).map(|_| p.pick(None)).all(|i| i != 1));
        p.mark_up(1);
        assert!((0..6).map(|_| p.pick(None)).any(|i| i == 1));
    }

    #[test]
    fn every_address_down_still_picks_one_and_except_is_avoided() {
        let p = pool(2, Balance::RoundRobin);
        p.mark_down(0);
        p.mark_down(1);
        let i = p.pick(None);
        assert!(i < 2);
        assert_eq!(p.pick(Some(0)), 1);
        assert_eq!(p.pick(Some(1)), 0);
    }

    #[test]
    fn a_failed_probe_takes_the_address_out_until_one_passes() {
        let p = pool(2, Balance::RoundRobin);
        assert!(p.probed(0, false));
        assert!(!p.probed(0, false));
        assert!(!p.is_up_now(0));
        assert!((0..4).all(|_| p.pick(None) == 1));
        p.mark_down(1);
        assert!(!p.is_up_now(1));
        assert!(!p.probed(1, true), "its probe state did not change");
        assert!(p.is_up_now(1), "a passing probe ends the passive back-off");
        assert!(p.probed(0, true));
        assert!((0..4).any(|_| p.pick(None) == 0));
    }

    #[test]
    fn least_in_flight_prefers_the_idle_address() {
        let p = pool(2, Balance::LeastInFlight);
        let busy = p.enter(0);
        assert!((0..4).all(|_| p.pick(None) == 1));
        drop(busy);
        let _b = p.enter(1);
        assert!((0..4).all(|_| p.pick(None) == 0));
    }
}
