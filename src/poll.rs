//! The one schedule for waiting on something that changes by itself (a rollout, a rollback,
//! a smoke endpoint, a busy service): quick first looks, then a steady pace. Followers of
//! ECS rollouts poll on one grid shared by the whole process ([`Poll::aligned`]), so that
//! the services of a release look at the same moments and their reads go out as one call
//! (`crate::aws::batch`); other waits are jittered.
//!
//! Retrying a failed *request* is a different thing (`crate::retry`); this paces *looks*.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The slowest pace a throttled follower backs off to.
const THROTTLED_CAP: Duration = Duration::from_secs(8);

/// Poll pacing: starts at `first`, grows by half each time up to `cap`, ±20 % jitter, or on
/// the process's grid.
#[derive(Debug, Clone)]
pub struct Poll {
    next: Duration,
    cap: Duration,
    aligned: bool,
}

/// The process's poll grid starts here: aligned polls of one delay wake at the same instants.
static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

impl Poll {
    /// The default pace for waiting (a busy service, a smoke endpoint, CodeDeploy): 250 ms, then
    /// up to every 750 ms (900 ms at most
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
            aligned: false,
        }
    }

    /// Following ECS rollouts: 250 ms, then up to every 600 ms, on the process's grid and
    /// without jitter: each look comes at the next multiple of its delay (counted from the
    /// first aligned poll of the process) that is at least a quarter of the delay away. Polls
    /// of one delay meet (their reads are batched, so the services of a release cost one read
    /// per look), and an end is noticed within 1.25 × 600 ms plus one read.
    pub fn aligned() -> Self {
        Poll {
            aligned: true,
            ..Self::with(Duration::from_millis(250), Duration::from_millis(600))
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
        if !self.aligned {
            return tokio::time::sleep(self.next_delay()).await;
        }
        let base = self.next;
        self.next = (self.next * 3 / 2).min(self.cap);
        let now = tokio::time::Instant::now();
        let epoch = *EPOCH.get_or_init(|| now);
        tokio::time::sleep_until(epoch + on_grid(now - epoch, base)).await;
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

/// The first multiple of `base` at least `base / 4` after `since` (both from the grid's epoch).
fn on_grid(since: Duration, base: Duration) -> Duration {
    let base_ns = base.as_nanos().max(1);
    let earliest = (since + base / 4).as_nanos();
    let n = earliest.div_ceil(base_ns);
    Duration::from_nanos(u64::try_from(n * base_ns).unwrap_or(u64::MAX))
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
    fn aligned_looks_meet_on_the_grid() {
        let ms = Duration::from_millis;
        // (name, since the epoch, delay, wakes at)
        let cases = [
            ("on a grid point: the next one", ms(1500), ms(750), ms(2250)),
            ("just after one: the next one", ms(1510), ms(750), ms(2250)),
            (
                "too close to the next: the one after",
                ms(2100),
                ms(750),
                ms(3000),
            ),
            (
                "a quarter away exactly: that one",
                ms(2062),
                ms(750),
                ms(2250),
            ),
            ("the first looks: a finer grid", ms(10), ms(250), ms(250)),
        ];
        for (name, since, base, want) in cases {
            let got = on_grid(since, base);
            assert_eq!(got, want, "{name}");
            let wait = got - since;
            assert!(wait >= base / 4 && wait <= base * 5 / 4, "{name}: {wait:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let all: std::collections::HashSet<Duration> =
            (0..20).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(all.len() > 1, "jitter never varied");
    }
}
