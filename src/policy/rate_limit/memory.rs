//! The in-memory backend: governor's GCRA over a key map that stays bounded.
//!
//! governor's keyed limiters grow with every new key and evict nothing by
//! themselves. Here the map is a [`CappedStore`]: once it holds `max_keys`
//! keys, requests with a key not yet tracked share one overflow bucket
//! (a flood of fresh addresses is limited as one client, while clients
//! already tracked keep their own buckets). A sweeper drops keys whose bucket
//! is full again (`retain_recent`) and returns the memory (`shrink_to_fit`).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::clock::{Clock, QuantaClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use super::{BucketKey, Rule};
use crate::policy::ctx::BucketState;

/// A bounded keyed state store (see the module docs).
pub struct CappedStore {
    map: DashMap<BucketKey, InMemoryState>,
    cap: usize,
    count: AtomicUsize,
}

impl CappedStore {
    /// A store holding at most `cap` keys (plus the overflow bucket).
    pub fn new(cap: usize) -> Self {
        Self { map: DashMap::new(), cap, count: AtomicUsize::new(0) }
    }
}

fn tat(state: &InMemoryState) -> Option<Nanos> {
    // Read the stored theoretical arrival time without changing it.
    match state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>) {
        Err(t) => t,
        Ok(()) => None,
    }
}

impl StateStore for CappedStore {
    type Key = BucketKey;

    fn measure_and_replace<T, F, E>(&self, key: &BucketKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let key = if self.count.load(Ordering::Relaxed) >= self.cap { BucketKey::Overflow } else { key.clone() };
        let entry = match self.map.entry(key) {
            Entry::Occupied(o) => o.into_ref(),
            Entry::Vacant(v) => {
                self.count.fetch_add(1, Ordering::Relaxed);
                v.insert(InMemoryState::default())
            }
        };
        entry.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<BucketKey> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain(|_, v| tat(v).is_some_and(|t| t > drop_below));
        self.count.store(self.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl std::fmt::Debug for CappedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CappedStore({} keys)", self.map.len())
    }
}

/// One route's limiter. The clock is governor's: the monotonic
/// [`QuantaClock`] in service, a `FakeRelativeClock` in tests, so a test
/// moves time instead of waiting for it.
pub struct MemoryLimiter<C: Clock = QuantaClock> {
    /// The rule it enforces (a changed rule on reload gets a new limiter).
    pub rule: Rule,
    limiter: RateLimiter<BucketKey, CappedStore, C, StateInformationMiddleware>,
    clock: C,
    interval: Duration,
}

impl MemoryLimiter {
    /// A limiter for `rule` tracking at most `max_keys` keys.
    pub fn new(rule: Rule, max_keys: usize) -> Self {
        Self::with_clock(rule, max_keys, QuantaClock::default())
    }
}

impl<C: Clock + Clone> MemoryLimiter<C> {
    /// [`MemoryLimiter::new`] on `clock`.
    pub fn with_clock(rule: Rule, max_keys: usize, clock: C) -> Self {
        let interval = rule.interval();
        let burst = NonZeroU32::new(rule.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(interval.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let limiter = RateLimiter::<BucketKey, CappedStore, C, NoOpMiddleware<C::Instant>>::new(
            quota,
            CappedStore::new(max_keys),
            clock.clone(),
        )
        .with_middleware::<StateInformationMiddleware>();
        Self { rule, limiter, clock, interval }
    }

    /// Decides one request.
    pub fn check(&self, key: &BucketKey) -> BucketState {
        let limit = self.rule.burst;
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = limit.saturating_sub(remaining);
                BucketState {
                    allowed: true,
                    limit,
                    remaining,
                    reset: self.interval * used,
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                BucketState { allowed: false, limit, remaining: 0, reset: self.interval * limit, retry_after: wait }
            }
        }
    }

    /// Drops keys whose bucket is full again; returns the keys still tracked.
    pub fn sweep(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::KeyKind;
    use super::*;
    use crate::config::units::Rate;
    use governor::clock::FakeRelativeClock;

    fn rule(count: u32, per: u64, burst: u32) -> Rule {
        Rule { key: KeyKind::Ip, rate: Rate { count, per: Duration::from_secs(per) }, burst }
    }

    #[test]
    fn burst_then_refuse() {
        let l = MemoryLimiter::new(rule(5, 1, 5), 100);
        let k = BucketKey::Ip("192.0.2.1".parse().unwrap());
        let passed = (0..20).filter(|_| l.check(&k).allowed).count();
        assert_eq!(passed, 5);
        let d = l.check(&k);
        assert!(!d.allowed);
        assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(200));
        // Another key has its own bucket.
        assert!(l.check(&BucketKey::Ip("192.0.2.2".parse().unwrap())).allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let l = MemoryLimiter::new(rule(10, 60, 3), 100);
        let k = BucketKey::Route;
        assert_eq!(l.check(&k).remaining, 2);
        assert_eq!(l.check(&k).remaining, 1);
        assert_eq!(l.check(&k).remaining, 0);
        assert!(!l.check(&k).allowed);
    }

    #[test]
    fn key_map_is_bounded() {
        let l = MemoryLimiter::new(rule(1, 3600, 1), 1000);
        for i in 0..200_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            l.check(&BucketKey::Ip(ip.into()));
        }
        // 1000 tracked keys plus the shared overflow bucket.
        assert!(l.len() <= 1001, "{}", l.len());
        // New keys past the cap share the overflow bucket, which is exhausted by now.
        assert!(!l.check(&BucketKey::Ip("198.51.100.1".parse().unwrap())).allowed);
    }

    #[test]
    fn sweep_drops_full_buckets() {
        let clock = FakeRelativeClock::default();
        let l = MemoryLimiter::with_clock(rule(1, 1, 1), 1000, clock.clone());
        for i in 0..500u32 {
            l.check(&BucketKey::Ip(std::net::Ipv4Addr::from(i).into()));
        }
        assert_eq!(l.len(), 500);
        // Not full again yet: kept.
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(l.sweep(), 500);
        // governor drops a key once its state is indistinguishable from a fresh one.
        clock.advance(Duration::from_millis(600));
        assert_eq!(l.sweep(), 0);
    }

    #[test]
    fn a_refused_key_passes_again_after_its_wait() {
        let clock = FakeRelativeClock::default();
        let l = MemoryLimiter::with_clock(rule(1, 10, 2), 100, clock.clone());
        let k = BucketKey::Ip("192.0.2.1".parse().unwrap());
        assert!(l.check(&k).allowed);
        assert!(l.check(&k).allowed);
        let refused = l.check(&k);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        assert_eq!(refused.reset, Duration::from_secs(20));
        clock.advance(Duration::from_millis(9_999));
        assert!(!l.check(&k).allowed);
        clock.advance(Duration::from_millis(1));
        let again = l.check(&k);
        assert!(again.allowed);
        assert_eq!(again.remaining, 0);
    }
}
