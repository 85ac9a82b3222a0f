//! Per-key token buckets. Every key has a general budget; identity lookups by keys other
//! than admin have a much smaller one, since a till looking up thousands of phone numbers
//! is enumerating members. Buckets are per node: with several nodes the limit multiplies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Tokens per second; 0 turns the limit off.
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Requests,
    Lookups,
}

struct State {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    requests: Limit,
    lookups: Limit,
    buckets: Mutex<HashMap<(String, Bucket), State>>,
}

impl RateLimiter {
    pub fn new(requests: Limit, lookups: Limit) -> Self {
        RateLimiter { requests, lookups, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take one token; `Err(seconds)` says when to retry.
    pub fn check(&self, key_id: &str, bucket: Bucket) -> Result<(), u64> {
        let limit = match bucket {
            Bucket::Requests => self.requests,
            Bucket::Lookups => self.lookups,
        };
        if limit.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let st = map.entry((key_id.to_string(), bucket)).or_insert(State { tokens: limit.burst, last: now });
        let refill = now.duration_since(st.last).as_secs_f64() * limit.per_second;
        st.tokens = (st.tokens + refill).min(limit.burst);
        st.last = now;
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - st.tokens) / limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let rl = RateLimiter::new(Limit { per_second: 0.5, burst: 2.0 }, Limit { per_second: 0.0, burst: 0.0 });
        assert!(rl.check("k", Bucket::Requests).is_ok());
        assert!(rl.check("k", Bucket::Requests).is_ok());
        assert_eq!(rl.check("k", Bucket::Requests), Err(2));
        assert!(rl.check("other", Bucket::Requests).is_ok(), "per key");
        assert!(rl.check("k", Bucket::Lookups).is_ok(), "0 = off");
    }
}
