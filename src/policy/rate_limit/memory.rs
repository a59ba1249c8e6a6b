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
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use super::{RlKey, Rule};
use crate::policy::ctx::BucketState;

/// A bounded keyed state store (see the module docs).
pub struct CappedStore {
    map: DashMap<RlKey, InMemoryState>,
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
    type Key = RlKey;

    fn measure_and_replace<T, F, E>(&self, key: &RlKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let key = if self.count.load(Ordering::Relaxed) >= self.cap { RlKey::Overflow } else { key.clone() };
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

impl ShrinkableKeyedStateStore<RlKey> for CappedStore {
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

type Limiter = RateLimiter<RlKey, CappedStore, QuantaClock, StateInformationMiddleware>;

/// One route's limiter.
pub struct MemoryLimiter {
    /// The rule it enforces (a changed rule on reload gets a new limiter).
    pub rule: Rule,
    limiter: Limiter,
    clock: QuantaClock,
    interval: Duration,
}

impl MemoryLimiter {
    /// A limiter for `rule` tracking at most `max_keys` keys.
    pub fn new(rule: Rule, max_keys: usize) -> Self {
        let interval = rule.interval();
        let burst = NonZeroU32::new(rule.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(interval.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let clock = QuantaClock::default();
        let limiter =
            RateLimiter::<RlKey, CappedStore, QuantaClock>::new(quota, CappedStore::new(max_keys), clock.clone())
                .with_middleware::<StateInformationMiddleware>();
        Self { rule, limiter, clock, interval }
    }

    /// Decides one request.
    pub fn check(&self, key: &RlKey) -> BucketState {
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

    fn rule(count: u32, per: u64, burst: u32) -> Rule {
        Rule { key: KeyKind::Ip, rate: Rate { count, per: Duration::from_secs(per) }, burst }
    }

    #[test]
    fn burst_then_refuse() {
        let l = MemoryLimiter::new(rule(5, 1, 5), 100);
        let k = RlKey::Ip("192.0.2.1".parse().unwrap());
        let passed = (0..20).filter(|_| l.check(&k).allowed).count();
        assert_eq!(passed, 5);
        let d = l.check(&k);
        assert!(!d.allowed);
        assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(200));
        // Another key has its own bucket.
        assert!(l.check(&RlKey::Ip("192.0.2.2".parse().unwrap())).allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let l = MemoryLimiter::new(rule(10, 60, 3), 100);
        let k = RlKey::Route;
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
            l.check(&RlKey::Ip(ip.into()));
        }
        // 1000 tracked keys plus the shared overflow bucket.
        assert!(l.len() <= 1001, "{}", l.len());
        // New keys past the cap share the overflow bucket, which is exhausted by now.
        assert!(!l.check(&RlKey::Ip("198.51.100.1".parse().unwrap())).allowed);
    }

    #[test]
    fn sweep_drops_full_buckets() {
        let l = MemoryLimiter::new(
            Rule { key: KeyKind::Ip, rate: Rate { count: 1000, per: Duration::from_secs(1) }, burst: 1 },
            1000,
        );
        for i in 0..500u32 {
            l.check(&RlKey::Ip(std::net::Ipv4Addr::from(i).into()));
        }
        assert_eq!(l.len(), 500);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(l.sweep(), 0);
    }
}
