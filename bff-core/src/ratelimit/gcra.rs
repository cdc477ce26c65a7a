//! GCRA (the generic cell rate algorithm), written once: [`decide`] is the math of the in-memory store, and
//! [`SCRIPT`] is the same math, line for line, run atomically inside Redis for the shared store.
//!
//! A bucket's whole state is one number, its **TAT** (theoretical arrival time, microseconds). A limit has an
//! emission interval `T` (= period / rate: one request is earned back every `T`) and a `burst` (how many
//! requests a fresh bucket admits at once). At time `now`, with `tat = max(stored, now)`:
//!
//! - a request is admitted iff `tat + T - burst·T <= now`; admitting stores `tat + T` (expiring when it is
//!   in the past, so an idle bucket takes no memory);
//! - otherwise it must wait `tat + T - burst·T - now` (the `Retry-After`);
//! - `remaining = floor((now + burst·T - tat') / T)` and `reset = tat' - now`, where `tat'` is the stored
//!   TAT after the decision.
//!
//! One decision covers several buckets (every policy matching a request): it is admitted only if every
//! consumed bucket admits it and every peeked bucket could, and then every consumed bucket is charged —
//! all or nothing, so a request refused by one policy costs nothing in the others.

/// One bucket's limit, in the units of the math.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Emission interval `T` in microseconds (period / rate), at least 1.
    pub interval_us: i64,
    /// Requests a fresh bucket admits at once, at least 1.
    pub burst: i64,
}

/// What a decision does to one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Charge one request when the decision admits.
    Consume,
    /// Only require that one request could be admitted now; never charge (the failed-authentication budget
    /// of a client that presents a valid credential).
    Peek,
}

impl Cost {
    /// The cost as sent to the Redis script.
    pub fn weight(self) -> i64 {
        match self {
            Self::Consume => 1,
            Self::Peek => 0,
        }
    }
}

/// One bucket of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The bucket's store key.
    pub key: String,
    /// Its limit.
    pub limit: Limit,
    /// Charge or peek.
    pub cost: Cost,
}

/// The state of one bucket after a decision (for the `RateLimit` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Requests that would be admitted right now.
    pub remaining: i64,
    /// Microseconds until the bucket is full again.
    pub reset_us: i64,
}

/// The result of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// When refused: microseconds until it would be admitted (0 when admitted).
    pub retry_after_us: i64,
    /// Per check, in order.
    pub buckets: Vec<BucketState>,
}

/// Decides at `now` (µs) on buckets whose stored TATs are `stored` (same order as `checks`; `None` = fresh).
/// Returns the decision and the new TATs to store (`Some` only for charged buckets of an admitted request).
pub fn decide(checks: &[Check], stored: &[Option<i64>], now: i64) -> (Decision, Vec<Option<i64>>) {
    let tats: Vec<i64> = stored.iter().map(|t| t.unwrap_or(now).max(now)).collect();
    let mut retry = 0;
    for (check, &tat) in checks.iter().zip(&tats) {
        let Limit { interval_us, burst } = check.limit;
        let allow_at = tat + interval_us - burst * interval_us;
        if allow_at > now {
            retry = retry.max(allow_at - now);
        }
    }
    let allowed = retry == 0;
    let mut writes = Vec::with_capacity(checks.len());
    let mut buckets = Vec::with_capacity(checks.len());
    for (check, &tat) in checks.iter().zip(&tats) {
        let Limit { interval_us, burst } = check.limit;
        let after = if allowed && check.cost == Cost::Consume {
            writes.push(Some(tat + interval_us));
            tat + interval_us
        } else {
            writes.push(None);
            tat
        };
        buckets.push(BucketState {
            remaining: ((now + burst * interval_us - after) / interval_us).max(0),
            reset_us: after - now,
        });
    }
    let decision = Decision {
        allowed,
        retry_after_us: retry,
        buckets,
    };
    (decision, writes)
}

/// The same decision inside Redis, atomically (one `EVALSHA`). `KEYS` = the buckets; `ARGV` = per bucket
/// `interval_us, burst, cost` (cost 1 = consume, 0 = peek). The clock is Redis's own (`TIME`), so every
/// gateway instance decides on the same time line. Admitted charges are written with `SET .. PX ttl`, the TTL
/// being when the TAT falls into the past (a key that expires is exactly a fresh bucket, so state stays
/// bounded). Returns `{allowed, retry_after_us, remaining_1, reset_us_1, remaining_2, reset_us_2, ...}`.
/// All numbers are integers below 2^53, exact in Lua's doubles.
pub const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local retry = 0
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tat = tonumber(stored)
    if tat < now then tat = now end
  end
  tats[i] = tat
  local allow_at = tat + interval - burst * interval
  if allow_at > now and allow_at - now > retry then retry = allow_at - now end
end
local allowed = 0
if retry == 0 then allowed = 1 end
local out = {allowed, retry}
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local after = tats[i]
  if allowed == 1 and cost == 1 then
    after = tats[i] + interval
    local ttl_ms = math.ceil((after - now) / 1000)
    if ttl_ms < 1 then ttl_ms = 1 end
    redis.call('SET', KEYS[i], string.format('%d', after), 'PX', ttl_ms)
  end
  local remaining = math.floor((now + burst * interval - after) / interval)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = after - now
end
return out
";

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, interval_us: i64, burst: i64, cost: Cost) -> Check {
        Check {
            key: key.into(),
            limit: Limit { interval_us, burst },
            cost,
        }
    }

    /// Applies decisions like a store would, returning the admitted flags.
    fn run(checks: &[Check], state: &mut [Option<i64>], times: &[i64]) -> Vec<bool> {
        times
            .iter()
            .map(|&now| {
                let (d, writes) = decide(checks, state, now);
                for (s, w) in state.iter_mut().zip(writes) {
                    if w.is_some() {
                        *s = w;
                    }
                }
                d.allowed
            })
            .collect()
    }

    /// A fresh bucket admits `burst` at once, then one per interval; the refusal says how long to wait.
    #[test]
    fn burst_then_one_per_interval() {
        let checks = [check("k", 1_000, 3, Cost::Consume)];
        let mut state = vec![None];
        assert_eq!(
            run(&checks, &mut state, &[0, 0, 0, 0]),
            [true, true, true, false]
        );
        let (d, _) = decide(&checks, &state, 10);
        assert_eq!(d.retry_after_us, 990);
        assert_eq!(
            run(&checks, &mut state, &[999, 1_000, 1_001]),
            [false, true, false]
        );
        assert_eq!(
            run(&checks, &mut state, &[10_000, 10_000, 10_000, 10_000]),
            [true, true, true, false]
        );
    }

    /// `remaining` counts down to 0 and `reset` is the time until the bucket is full.
    #[test]
    fn remaining_and_reset() {
        let checks = [check("k", 1_000, 3, Cost::Consume)];
        let (d, w) = decide(&checks, &[None], 0);
        assert_eq!(
            d.buckets[0],
            BucketState {
                remaining: 2,
                reset_us: 1_000
            }
        );
        let (d, w) = decide(&checks, &w, 0);
        assert_eq!(
            d.buckets[0],
            BucketState {
                remaining: 1,
                reset_us: 2_000
            }
        );
        let (d, w) = decide(&checks, &w, 0);
        assert_eq!(
            d.buckets[0],
            BucketState {
                remaining: 0,
                reset_us: 3_000
            }
        );
        let (d, _) = decide(&checks, &w, 0);
        assert!(!d.allowed);
        assert_eq!(
            d.buckets[0],
            BucketState {
                remaining: 0,
                reset_us: 3_000
            }
        );
    }

    /// A request refused by one bucket charges none of the others; a peeked bucket is never charged.
    #[test]
    fn all_or_nothing_and_peek() {
        let checks = [
            check("a", 1_000, 5, Cost::Consume),
            check("b", 1_000, 1, Cost::Consume),
            check("c", 1_000, 1, Cost::Peek),
        ];
        let (d, w) = decide(&checks, &[None, None, None], 0);
        assert!(d.allowed);
        assert_eq!(w, [Some(1_000), Some(1_000), None]);
        let (d, w) = decide(&checks, &[Some(1_000), Some(1_000), None], 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, 1_000);
        assert_eq!(w, [None, None, None]);
        // An exhausted peeked bucket refuses without being charged further.
        let (d, w) = decide(&checks, &[None, None, Some(1_000)], 0);
        assert!(!d.allowed);
        assert_eq!(w, [None, None, None]);
    }
}
