//! The Redis backend: the same GCRA, decided atomically in one round trip
//! by a Lua script (loaded once, then called by its SHA), so every replica
//! sharing the Redis shares the limit. Keys live under `moat:rl:` and expire
//! when their bucket would be full again. The connection is a multiplexed
//! `ConnectionManager` created lazily (moat starts while Redis is down) that
//! reconnects by itself; every call has a short timeout. When Redis is down
//! or slow, the caller applies `rate_limit.on_backend_error`.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Rule;
use crate::policy::ctx::BucketState;

/// GCRA in Redis. KEYS[1] = bucket; ARGV[1] = emission interval (µs);
/// ARGV[2] = burst. Returns {allowed, remaining, retry_after_us, reset_us}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tau = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tau
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((now + tau - new_tat) / interval)
return {1, remaining, 0, new_tat - now}
"#;

/// Why a Redis decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The call did not finish within `rate_limit.redis_timeout`.
    #[error("redis call timed out")]
    Timeout,
    /// Redis refused or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A shared Redis limiter.
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
}

impl RedisLimiter {
    /// Prepares the connection (lazily: nothing is dialled yet).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, cfg)?;
        Ok(Self { conn, script: redis::Script::new(GCRA), timeout })
    }

    /// Decides one request for `key` under `rule`.
    pub async fn check(&self, key: &str, rule: &Rule) -> Result<BucketState, BackendError> {
        let interval_us = rule.interval().as_micros().max(1) as u64;
        let mut conn = self.conn.clone();
        let mut inv = self.script.key(key);
        inv.arg(interval_us).arg(rule.burst);
        let call = inv.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        let (allowed, remaining, retry_us, reset_us) =
            tokio::time::timeout(self.timeout, call).await.map_err(|_| BackendError::Timeout)??;
        Ok(BucketState {
            allowed: allowed == 1,
            limit: rule.burst,
            remaining: remaining.max(0) as u32,
            reset: Duration::from_micros(reset_us.max(0) as u64),
            retry_after: Duration::from_micros(retry_us.max(0) as u64),
        })
    }
}
