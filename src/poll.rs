//! The one schedule for waiting on something that changes by itself (a rollout, a rollback,
//! a smoke endpoint, a busy service): quick first looks, then a steady pace, with jitter so
//! that several services followed at once do not poll in lockstep.
//!
//! Retrying a failed *request* is a different thing (`crate::retry`); this paces *looks*.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The slowest pace a throttled follower backs off to.
const THROTTLED_CAP: Duration = Duration::from_secs(8);

/// Poll pacing: starts at `first`, grows by half each time up to `cap`, ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Poll {
    next: Duration,
    cap: Duration,
}

impl Poll {
    /// The default pace for following ECS: 250 ms, then up to every 750 ms (900 ms at most
    /// with the jitter), so an end is noticed within a second. A throttled follower slows
    /// itself down ([`Poll::back_off`]).
    pub fn new() -> Self {
        Self::with(Duration::from_millis(250), Duration::from_millis(750))
    }

    /// A pace from `first` up to `cap`.
    pub fn with(first: Duration, cap: Duration) -> Self {
        Poll {
            next: first,
            cap: cap.max(first),
        }
    }

    /// The next delay (jittered), advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 3 / 2).min(self.cap);
        jitter(base)
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Slows down after a throttle: the cap doubles (up to 8 s) and the next looks come at
    /// it, so many services followed at once settle at a pace the API allows.
    pub fn back_off(&mut self) {
        self.cap = (self.cap * 2).min(THROTTLED_CAP).max(self.cap);
        self.next = self.cap;
    }
}

impl Default for Poll {
    fn default() -> Self {
        Self::new()
    }
}

/// `d` ± 20 %.
fn jitter(d: Duration) -> Duration {
    let r = random_below(401) as f64 / 1000.0; // 0.0 ..= 0.4
    d.mul_f64(0.8 + r)
}

/// A random number in `0..n` (0 when `n` is 0), for jitter: the standard library's random
/// hasher keys are enough, and need no dependency.
pub fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u64(now.map_or(0, |d| d.as_nanos() as u64));
    h.finish() % n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_bounded_jitter() {
        let mut p = Poll::with(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<Duration> = (0..8).map(|_| p.next_delay()).collect();
        for (d, base) in delays
            .iter()
            .zip([100u64, 150, 225, 337, 400, 400, 400, 400])
        {
            let lo = Duration::from_millis(base * 8 / 10);
            let hi = Duration::from_millis(base * 12 / 10 + 1);
            assert!(*d >= lo && *d <= hi, "{d:?} not within {lo:?}..{hi:?}");
        }
        p.back_off();
        assert!(
            p.next_delay() >= Duration::from_millis(640),
            "a throttle doubles the cap"
        );
    }

    #[test]
    fn the_default_notices_an_end_within_a_second_and_a_throttle_slows_it_to_8s() {
        let mut p = Poll::new();
        for _ in 0..50 {
            assert!(p.next_delay() <= Duration::from_millis(900));
        }
        for _ in 0..10 {
            p.back_off();
        }
        let d = p.next_delay();
        assert!(
            d >= Duration::from_millis(6400) && d <= Duration::from_millis(9600),
            "{d:?}"
        );
    }

    #[test]
    fn jitter_varies() {
        let all: std::collections::HashSet<Duration> =
            (0..20).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(all.len() > 1, "jitter never varied");
    }
}
