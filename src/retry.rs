//! One retry policy for requests to registries and AWS: bounded, exponential with full
//! jitter, honouring `Retry-After`, within a total budget.
//!
//! ```text
//! use crate::retry::Policy;
//! let mut schedule = Policy::REQUESTS.schedule();
//! // after a failed attempt that is worth repeating:
//! if let Some(wait) = schedule.next_delay(None) {
//!     assert!(wait <= Policy::REQUESTS.max_delay);
//! }
//! ```
//!
//! Delays are drawn uniformly from `[0, min(max_delay, first_delay × 2ⁿ)]` ("full jitter"),
//! so many clients throttled at once do not retry in lock step. A server's `Retry-After`
//! replaces the drawn delay when it fits in what is left of the budget; when it does not, or
//! the attempts or the budget are spent, [`Schedule::next_delay`] says stop.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The cap of the first delay; doubles with every attempt.
    pub first_delay: Duration,
    /// No single drawn delay exceeds this (a `Retry-After` may, within the budget).
    pub max_delay: Duration,
    /// Total time from the first attempt after which no retry starts.
    pub budget: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Policy {
    /// Requests to registries and AWS APIs: up to 10 attempts within 30 s.
    pub const REQUESTS: Policy = Policy {
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(8),
        budget: Duration::from_secs(30),
        max_attempts: 10,
    };

    /// A new schedule whose budget starts now.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            policy: *self,
            started: Instant::now(),
            attempts: 1,
        }
    }
}

/// The retries of one operation.
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: Policy,
    started: Instant,
    attempts: u32,
}

impl Schedule {
    /// Attempts made so far (the first counts).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a failed attempt worth repeating: how long to wait before the next one, or
    /// `None` to give up. `retry_after` is the server's `Retry-After`, if it sent one.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let p = &self.policy;
        if self.attempts >= p.max_attempts {
            return None;
        }
        let left = p.budget.checked_sub(self.started.elapsed())?;
        let delay = match retry_after {
            Some(d) => d,
            None => {
                let cap = p
                    .first_delay
                    .saturating_mul(1u32 << self.attempts.saturating_sub(1).min(20))
                    .min(p.max_delay);
                let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(crate::poll::random_below(ms.saturating_add(1)))
            }
        };
        if delay >= left {
            return None;
        }
        self.attempts += 1;
        Some(delay)
    }
}

/// Whether an HTTP status is worth retrying: 408, 429 and the transient 5xx.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value: delta-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). A date in the past is zero; anything else is `None`.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, SystemTime::now())
}

fn parse_retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok().map(Duration::from_secs);
    }
    let at = parse_imf_fixdate(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_imf_fixdate(s: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let mut parts = s.split(' ');
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let (h, m, sec): (u64, u64, u64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if parts.next()? != "GMT"
        || parts.next().is_some()
        || hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * i64::from(mo) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_bounded_and_stop() {
        let p = Policy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            budget: Duration::from_secs(60),
            max_attempts: 6,
        };
        let mut s = p.schedule();
        let mut delays = Vec::new();
        while let Some(d) = s.next_delay(None) {
            delays.push(d);
        }
        assert_eq!(delays.len(), 5, "6 attempts = 5 waits");
        for (i, d) in delays.iter().enumerate() {
            let cap = Duration::from_millis(100 << i).min(p.max_delay);
            assert!(*d <= cap, "wait {i}: {d:?} > {cap:?}");
        }
        // Full jitter: over many draws the delays are not all the same.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            seen.insert(p.schedule().next_delay(None).unwrap());
        }
        assert!(seen.len() > 5, "{seen:?}");
    }

    #[test]
    fn retry_after_wins_within_the_budget_only() {
        let p = Policy {
            budget: Duration::from_secs(10),
            ..Policy::REQUESTS
        };
        let mut s = p.schedule();
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9)),
            "longer than max_delay, but within the budget"
        );
        assert_eq!(s.next_delay(Some(Duration::from_secs(11))), None);
        let spent = Policy {
            budget: Duration::ZERO,
            ..Policy::REQUESTS
        };
        assert_eq!(spent.schedule().next_delay(None), None);
        assert!(Policy::REQUESTS.budget >= Duration::from_secs(20));
    }

    #[test]
    fn retry_after_values() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let at = |v: &str| parse_retry_after_at(v, now);
        assert_eq!(at("3"), Some(Duration::from_secs(3)));
        assert_eq!(at(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            at("Sun, 06 Nov 1994 08:49:47 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "99999999999999999999",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s));
        }
        for s in [200, 201, 400, 401, 403, 404, 501] {
            assert!(!retryable_status(s));
        }
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics(s in "\\PC{0,40}") {
            let _ = parse_retry_after(&s);
        }
    }
}
