//! Claims are leases, not locks: the numbers, and the pure rules every reader of a claim
//! applies (the overlap guard of `crate::gate`, the promotion gate's "deploying now", and
//! `--wait-for-idle`). The run side (renewing its claim, releasing it on a signal) is
//! `crate::run::heartbeat`.
//!
//! A running ferry renews its claim every [`RENEW`] (20 s): it re-writes the claim manifest
//! under the same tag with `expires = now + TTL` ([`TTL`], 90 s). A reader treats a claim as
//! live until its `expires` plus a skew margin ([`SKEW`], 30 s). So a run that dies without a
//! word (SIGKILL, a lost runner) stops blocking its environment at most TTL + SKEW = 2 minutes
//! after its last renewal, and a live run is never taken for dead:
//! - **Slow or failed renewals.** TTL is 4.5 renewal periods: three renewals in a row may fail
//!   or stall (each one is bounded by the registry client's request timeouts) before the lease
//!   runs out; a failed renewal is warned and tried again at the next tick.
//! - **Clock skew.** The times in a claim are the writer's clock (the registry stamps nothing),
//!   compared with the reader's. A reader whose clock runs ahead of the writer's by up to
//!   SKEW + TTL − RENEW (100 s) still sees a live claim; a reader whose clock runs behind only
//!   waits longer for a dead one. GitHub's runners keep NTP time, off by well under a second.
//! - **Re-run attempts.** A claim records `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`. GitHub
//!   starts a re-run attempt only after the earlier attempt ended, so a claim of the same run
//!   with a lower attempt is dead at once, whatever its lease says.
//! - **A later run finished past it.** A claim older than a record of the same release that
//!   started after the claim was made belongs to a run that cannot still be deploying it.
//!
//! The durations can be changed for tests only (`FERRY_CLAIM_TTL_SECONDS`,
//! `FERRY_CLAIM_RENEW_SECONDS`, `FERRY_CLAIM_SKEW_SECONDS`); the rules stay the same.

use std::time::Duration;

use anyhow::Result;

use crate::error::Failure;
use crate::records::store::ClaimInfo;
use crate::records::Summary;

/// How long a claim lives after its last renewal.
pub const TTL: Duration = Duration::from_secs(90);
/// How often a running ferry renews its claim.
pub const RENEW: Duration = Duration::from_secs(20);
/// How long past its expiry a reader still counts a claim as live (clock skew).
pub const SKEW: Duration = Duration::from_secs(30);

const TTL_ENV: &str = "FERRY_CLAIM_TTL_SECONDS";
const RENEW_ENV: &str = "FERRY_CLAIM_RENEW_SECONDS";
const SKEW_ENV: &str = "FERRY_CLAIM_SKEW_SECONDS";

/// A lease's durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// How long a claim lives after its last renewal.
    pub ttl: Duration,
    /// How often it is renewed.
    pub renew: Duration,
    /// How long past its expiry a reader still counts it as live.
    pub skew: Duration,
}

impl Default for Times {
    fn default() -> Self {
        Times {
            ttl: TTL,
            renew: RENEW,
            skew: SKEW,
        }
    }
}

impl Times {
    /// The defaults, or the test overrides from the environment.
    pub fn from_env() -> Result<Times> {
        let d = Times::default();
        Ok(Times {
            ttl: Duration::from_secs(env_number(TTL_ENV, d.ttl.as_secs(), 86_400)?.max(1)),
            renew: Duration::from_secs(env_number(RENEW_ENV, d.renew.as_secs(), 3600)?.max(1)),
            skew: Duration::from_secs(env_number(SKEW_ENV, d.skew.as_secs(), 3600)?),
        })
    }
}

/// A number from the environment (`default` when unset), at most `max`.
pub fn env_number(name: &str, default: u64, max: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                Failure::invalid(format!("{name}={v:?} is not a number from 0 to {max}"))
                    .hint(format!("unset {name} to use the default ({default})"))
                    .into()
            }),
        _ => Ok(default),
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// One attempt of one GitHub Actions workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `GITHUB_RUN_ID`.
    pub run_id: String,
    /// `GITHUB_RUN_ATTEMPT` (1 when unset).
    pub attempt: u32,
}

impl Attempt {
    /// This process's run and attempt, in GitHub Actions (`None` outside).
    pub fn from_env() -> Option<Attempt> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string());
        let run_id = var("GITHUB_RUN_ID")
            .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))?;
        let attempt = var("GITHUB_RUN_ATTEMPT")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1);
        Some(Attempt { run_id, attempt })
    }
}

/// Where a claim stands, as one reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its run may still be deploying.
    Live,
    /// Not renewed for longer than its lease and the skew margin.
    Lapsed,
    /// An earlier attempt of the reader's own workflow run: ended before this attempt began.
    EarlierAttempt,
}

/// What a reader knows when it judges claims: the time, its skew margin, and who it is.
#[derive(Debug, Clone)]
pub struct Reader {
    /// Unix ms, by the reader's clock.
    pub now_ms: u64,
    /// How long past its expiry a claim still counts as live.
    pub skew_ms: u64,
    /// The reader's own workflow run and attempt.
    pub me: Option<Attempt>,
}

impl Reader {
    /// Now, with the skew margin from the environment and this process's run attempt.
    pub fn now() -> Result<Reader> {
        Ok(Reader {
            now_ms: now_ms(),
            skew_ms: Times::from_env()?.skew.as_millis() as u64,
            me: Attempt::from_env(),
        })
    }

    /// Where `claim` stands.
    pub fn standing(&self, claim: &ClaimInfo) -> Standing {
        if let (Some(me), Some(run), Some(attempt)) = (&self.me, &claim.run_id, claim.attempt) {
            if *run == me.run_id && attempt < me.attempt {
                return Standing::EarlierAttempt;
            }
        }
        if claim.expires_ms.saturating_add(self.skew_ms) > self.now_ms {
            Standing::Live
        } else {
            Standing::Lapsed
        }
    }

    /// Whether `claim`'s run may still be deploying.
    pub fn is_live(&self, claim: &ClaimInfo) -> bool {
        self.standing(claim) == Standing::Live
    }

    /// Whether `claim` lapsed so long ago (a whole lease past its margin) that removing it is
    /// safe even for a reader whose clock runs well ahead: its run died without releasing it.
    pub fn long_gone(&self, claim: &ClaimInfo, ttl: Duration) -> bool {
        self.standing(claim) == Standing::Lapsed
            && self.lapses_at(claim).saturating_add(ttl.as_millis() as u64) < self.now_ms
    }

    /// When `claim` stops counting, by this reader's clock (Unix ms).
    pub fn lapses_at(&self, claim: &ClaimInfo) -> u64 {
        claim.expires_ms.saturating_add(self.skew_ms)
    }
}

/// Whether a live claim on `release` means a run is deploying it now: not when a record of
/// that release started after the claim was made (a later run finished past it).
pub fn deploying(
    release: &str,
    claims: &[ClaimInfo],
    records: &[Summary],
    reader: &Reader,
) -> bool {
    claims.iter().any(|c| {
        c.tag.release == release
            && reader.is_live(c)
            && !records
                .iter()
                .any(|r| r.tag == release && r.started_at.saturating_mul(1000) > c.claimed_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::store::NamedTag;
    use crate::records::{RecordResult, RunKind};

    const NOW: u64 = 1_800_000_000_000;

    fn claim(release: &str, claimed: u64, expires: u64, run: Option<(&str, u32)>) -> ClaimInfo {
        ClaimInfo {
            tag: NamedTag {
                tag: format!("ferry-claim_staging_{release}_{claimed}_00"),
                environment: "staging".into(),
                release: release.into(),
                time: claimed.to_string(),
                nonce: "00".into(),
            },
            claimed_ms: claimed,
            expires_ms: expires,
            run_url: None,
            digest: String::new(),
            run_id: run.map(|r| r.0.to_string()),
            attempt: run.map(|r| r.1),
            held: false,
        }
    }

    fn reader(me: Option<(&str, u32)>) -> Reader {
        Reader {
            now_ms: NOW,
            skew_ms: SKEW.as_millis() as u64,
            me: me.map(|(r, a)| Attempt {
                run_id: r.into(),
                attempt: a,
            }),
        }
    }

    #[test]
    fn the_numbers_keep_their_promises() {
        // A dead run blocks at most two minutes after its last renewal.
        assert!(TTL + SKEW <= Duration::from_secs(120));
        // Three renewals in a row may fail before a live run's lease runs out.
        assert!(TTL > RENEW * 4);
    }

    /// A claim counts until its expiry plus the skew margin, and not a millisecond longer.
    #[test]
    fn liveness_has_a_skew_margin() {
        let r = reader(None);
        let skew = SKEW.as_millis() as u64;
        let cases = [
            ("not yet expired", NOW + 1, Standing::Live),
            ("expired, within the margin", NOW - skew + 1, Standing::Live),
            (
                "expired exactly the margin ago",
                NOW - skew,
                Standing::Lapsed,
            ),
            ("long gone", NOW - 3_600_000, Standing::Lapsed),
        ];
        for (name, expires, want) in cases {
            let c = claim("v1.0.0-rc.1", expires - 90_000, expires, None);
            assert_eq!(r.standing(&c), want, "{name}");
        }
        assert_eq!(
            r.lapses_at(&claim("v1", 0, NOW, None)),
            NOW + skew,
            "lapses_at"
        );
    }

    /// A dead claim is removed only a whole lease after it lapsed.
    #[test]
    fn a_claim_is_long_gone_a_lease_after_it_lapsed() {
        let r = reader(None);
        let (skew, ttl) = (SKEW.as_millis() as u64, TTL.as_millis() as u64);
        let cases = [
            ("live", NOW + 1, false),
            ("just lapsed", NOW - skew, false),
            ("lapsed a lease ago, to the ms", NOW - skew - ttl, false),
            ("lapsed longer than a lease ago", NOW - skew - ttl - 1, true),
        ];
        for (name, expires, want) in cases {
            let c = claim("v1.0.0-rc.1", expires - ttl, expires, None);
            assert_eq!(r.long_gone(&c, TTL), want, "{name}");
        }
    }

    /// Only a higher attempt of the same workflow run takes over, and at once.
    #[test]
    fn a_rerun_attempt_takes_over_its_earlier_attempts() {
        let live = NOW + 60_000;
        let cases = [
            (
                "attempt 1 seen by attempt 2",
                Some(("7", 1)),
                Some(("7", 2)),
                Standing::EarlierAttempt,
            ),
            (
                "attempt 1 seen by attempt 5",
                Some(("7", 1)),
                Some(("7", 5)),
                Standing::EarlierAttempt,
            ),
            (
                "same attempt",
                Some(("7", 2)),
                Some(("7", 2)),
                Standing::Live,
            ),
            (
                "a later attempt is not ours to take",
                Some(("7", 3)),
                Some(("7", 2)),
                Standing::Live,
            ),
            (
                "another workflow run",
                Some(("8", 1)),
                Some(("7", 2)),
                Standing::Live,
            ),
            (
                "a claim outside Actions",
                None,
                Some(("7", 2)),
                Standing::Live,
            ),
            (
                "a reader outside Actions",
                Some(("7", 1)),
                None,
                Standing::Live,
            ),
        ];
        for (name, theirs, me, want) in cases {
            let c = claim("v1.0.0-rc.1", NOW - 1000, live, theirs);
            assert_eq!(reader(me).standing(&c), want, "{name}");
        }
    }

    fn record(tag: &str, started: u64) -> Summary {
        Summary {
            images: Default::default(),
            environment: "staging".into(),
            tag: tag.into(),
            digest: "sha256:aa".into(),
            result: RecordResult::Succeeded,
            kind: RunKind::Deploy,
            run: "r".into(),
            started_at: started,
            ended_at: started + 60,
            record: "sha256:bb".into(),
            trust: crate::records::sign::Trust::Unchecked,
        }
    }

    /// "Deploying now" only for a live claim that no later run of the release finished past.
    #[test]
    fn a_dead_claim_is_never_deploying_now() {
        let r = reader(None);
        let rc = "v1.1.0-rc.1";
        let claimed = NOW - 100_000;
        let live = claim(rc, claimed, NOW + 60_000, None);
        let lapsed = claim(rc, claimed, NOW - 60_000, None);
        let own_record = record(rc, claimed / 1000);
        let later_record = record(rc, claimed / 1000 + 5);
        let cases: Vec<(&str, Vec<ClaimInfo>, Vec<Summary>, bool)> = vec![
            ("a live claim", vec![live.clone()], vec![], true),
            ("a lapsed claim", vec![lapsed], vec![], false),
            (
                "a record that started before the claim",
                vec![live.clone()],
                vec![own_record],
                true,
            ),
            (
                "a later run finished past the claim",
                vec![live.clone()],
                vec![later_record.clone()],
                false,
            ),
            (
                "a later record of another release",
                vec![live.clone()],
                vec![record("v1.1.0-rc.2", claimed / 1000 + 5)],
                true,
            ),
            ("a claim of another release", vec![live], vec![], false),
        ];
        for (name, claims, records, want) in cases {
            let release = if name == "a claim of another release" {
                "v1.1.0-rc.2"
            } else {
                rc
            };
            assert_eq!(deploying(release, &claims, &records, &r), want, "{name}");
        }
    }
}
