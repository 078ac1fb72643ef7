//! The run deadline: one instant by which the whole run (reads, promotion, rollout, smoke
//! checks and, if needed, the rollback) is over, so ferry ends on its own terms instead of
//! being killed mid-change by the CI job's timeout.
//!
//! Two layers: before the rollout starts, each service's rollout timeout is cut so that the
//! smoke checks and a rollback still fit before the deadline (and a release that cannot fit
//! is refused while nothing has changed); and at the deadline itself the run stops, saying
//! what may be in flight, as it does for SIGTERM.

use std::time::Duration;

use tokio::time::Instant;

/// The default: under GitHub-hosted runners' 6-hour job limit, with room to spare.
pub const DEFAULT: &str = "5h30m";

/// The shortest rollout worth starting: less than this and a healthy release would be
/// declared failed for want of time.
pub const MIN_ROLLOUT: Duration = Duration::from_secs(60);

/// Parses `90`, `90s`, `45m`, `2h`, `1h30m` (whole units, at least one second, at most 7 days).
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a duration: write it like 90s, 45m, 2h or 1h30m (a bare number is seconds)")
    };
    let t = s.trim();
    if t.is_empty() || t.len() > 32 {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return finish(t.parse::<u64>().map_err(|_| bad())?, s);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = u64::MAX;
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        // Units in decreasing order, each once, each after a number.
        if number.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() {
        return Err(bad());
    }
    finish(total, s)
}

fn finish(secs: u64, s: &str) -> Result<Duration, String> {
    const MAX: u64 = 7 * 24 * 3600;
    if secs == 0 || secs > MAX {
        return Err(format!(
            "{s:?}: a run deadline must be between 1 second and 7 days"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// `1h30m`, `45m`, `90s`: how a duration reads back.
pub fn show(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// When this run must be over.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// "the run deadline (45m)", for messages.
    pub fn describe(&self) -> String {
        format!("the run deadline ({})", show(self.total))
    }

    /// Resolves when the deadline passes.
    pub async fn reached(self) {
        tokio::time::sleep_until(self.at).await;
    }
}

/// How long a rollout may run when `remaining` is left before the deadline and `reserve`
/// must stay free after it (smoke checks and a rollback): its own `timeout` when that fits,
/// else what fits; `Err` (the shortfall explained) when less than [`MIN_ROLLOUT`] fits.
pub fn rollout_budget(
    remaining: Duration,
    timeout: Duration,
    reserve: Duration,
) -> Result<Duration, String> {
    let fits = remaining.saturating_sub(reserve);
    if fits >= timeout {
        return Ok(timeout);
    }
    if fits < MIN_ROLLOUT {
        return Err(format!(
            "{} is left, and a rollout needs at least {} plus {} for smoke checks and a rollback",
            show(remaining),
            show(MIN_ROLLOUT),
            show(reserve)
        ));
    }
    Ok(fits)
}

/// One rollout to fit: `cluster/service`, its rollout timeout, its rollback timeout.
pub type Rollout = (String, Duration, Duration);

/// The time each of `rollouts` may take when `remaining` is left and the smoke checks need
/// `smoke` after them: rollouts run side by side, rollbacks one after another, so the reserve
/// is `smoke` plus every rollback timeout. `Err` names the first rollout that cannot fit.
pub fn fit(
    remaining: Duration,
    smoke: Duration,
    rollouts: &[Rollout],
) -> Result<Vec<Duration>, String> {
    let reserve = smoke + rollouts.iter().map(|r| r.2).sum::<Duration>();
    rollouts
        .iter()
        .map(|(name, timeout, _)| {
            rollout_budget(remaining, *timeout, reserve).map_err(|why| format!("{name}: {why}"))
        })
        .collect()
}

/// The refusal of a release that cannot fit before `deadline` (exit 3), saying what was
/// `done` so far ("nothing was changed", or what was).
pub fn refusal(deadline: &Deadline, why: &str, done: &str) -> anyhow::Error {
    crate::error::Failure::refused(format!(
        "not enough time left before {} to deploy and, if needed, roll back: {why}; {done}",
        deadline.describe()
    ))
    .hint("raise --deadline (FERRY_DEADLINE), and the CI job's timeout-minutes with it; or shorten deploy.rollout_timeout_seconds")
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("90", 90),
            ("90s", 90),
            ("45m", 2700),
            ("2h", 7200),
            ("1h30m", 5400),
            ("1h0m5s", 3605),
            (" 5m ", 300),
            ("5h30m", 19800),
        ];
        for (s, secs) in ok {
            assert_eq!(parse(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "",
            "0",
            "0s",
            "m",
            "1.5h",
            "5x",
            "30m1h",
            "1m1m",
            "h5",
            "8d",
            "169h",
            "-5m",
            "99999999999999999999h",
            "5 m",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn durations_read_back() {
        for (secs, text) in [(90, "1m30s"), (2700, "45m"), (19800, "5h30m"), (0, "0s")] {
            assert_eq!(show(Duration::from_secs(secs)), text);
        }
        assert_eq!(parse(DEFAULT).map(show).as_deref(), Ok(DEFAULT));
    }

    #[test]
    fn rollout_budgets() {
        let s = Duration::from_secs;
        // Plenty of time: the rollout keeps its own timeout.
        assert_eq!(rollout_budget(s(3600), s(600), s(300)), Ok(s(600)));
        // Tight: cut to what leaves the reserve free.
        assert_eq!(rollout_budget(s(1000), s(900), s(300)), Ok(s(700)));
        // Exactly the minimum still runs.
        assert_eq!(rollout_budget(s(360), s(900), s(300)), Ok(s(60)));
        // Less than that: refused, saying why.
        let e = rollout_budget(s(359), s(900), s(300)).unwrap_err();
        assert!(
            e.contains("5m59s is left") && e.contains("plus 5m for"),
            "{e}"
        );
        assert!(rollout_budget(Duration::ZERO, s(900), s(300)).is_err());
    }

    #[test]
    fn rollbacks_add_up_in_the_reserve() {
        let s = Duration::from_secs;
        let two = [
            ("c/a".to_string(), s(300), s(300)),
            ("c/b".to_string(), s(200), s(300)),
        ];
        // 20 s of smoke checks + 600 s of rollbacks: 880 s leave 260 s for the rollouts.
        assert_eq!(fit(s(880), s(20), &two), Ok(vec![s(260), s(200)]));
        let e = fit(s(679), s(20), &two).unwrap_err();
        assert!(e.starts_with("c/a: "), "{e}");
        assert_eq!(fit(s(3600), s(20), &[]), Ok(vec![]));
    }
}
