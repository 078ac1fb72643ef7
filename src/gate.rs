//! The release memory's decisions, as pure functions over what the records say (read by
//! `plan`), table-tested in `gate_tests.rs`:
//! - [`promotion`]: which release candidate a final release promotes, and only if the source
//!   environment's record says that exact digest passed (and soaked, when asked);
//! - [`run_kind`]: deploy, redeploy, or rollback by re-running an older release from this
//!   environment's own record; downgrade and delayed-run refusals;
//! - [`overlap`]: which of several simultaneous runs for one environment may go on (among
//!   the live claims: `crate::lease`).

use serde::Serialize;

use crate::github::event::TriggerSource;
use crate::lease::Reader;
use crate::records::store::ClaimInfo;
use crate::records::{RecordResult, RunKind, Summary};

/// A refusal: exit 3, with a message that names what and a hint that says how to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What is refused, and why.
    pub message: String,
    /// How to go on.
    pub hint: String,
}

/// A refusal as a failure (exit 3), for `map_err`.
pub fn refused(r: Refusal) -> anyhow::Error {
    crate::error::Failure::refused(r.message)
        .hint(r.hint)
        .into()
}

impl Refusal {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Refusal {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// One release candidate of the version being promoted, as the source environment knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `vX.Y.Z-rc.N`
    pub tag: String,
    /// Its version, for ordering.
    pub version: semver::Version,
    /// What the tag points at in the source repository now (`None`: the tag is gone).
    pub tag_digest: Option<String>,
    /// The source environment's records of this tag, oldest first.
    pub records: Vec<Summary>,
    /// A run is deploying it right now (a live claim no later run finished past:
    /// `crate::lease::deploying`).
    pub in_flight: bool,
}

/// Where a candidate stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum CandidateState {
    /// Its last run succeeded with the digest the tag still points at (or the tag expired).
    Passed,
    /// Its last run failed.
    Failed {
        /// How.
        result: RecordResult,
    },
    /// No record: pushed but never deployed there.
    NeverDeployed,
    /// A run is deploying it now.
    InFlight,
    /// It passed, but the tag now points at other bytes.
    Moved {
        /// The digest that passed.
        verified: String,
    },
}

impl CandidateState {
    /// A few words, for listings.
    pub fn words(&self) -> String {
        match self {
            CandidateState::Passed => "passed".into(),
            CandidateState::Failed { result } => format!("failed ({})", result.as_str()),
            CandidateState::NeverDeployed => "never deployed".into(),
            CandidateState::InFlight => "deploying now".into(),
            CandidateState::Moved { verified } => {
                format!("tag moved after it passed (verified {verified})")
            }
        }
    }
}

/// A candidate with its state, as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidateView {
    /// The rc tag.
    pub tag: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: CandidateState,
    /// What the tag points at now.
    pub digest: Option<String>,
}

/// The state of one candidate.
pub fn candidate_state(c: &Candidate) -> CandidateState {
    if c.in_flight {
        return CandidateState::InFlight;
    }
    let Some(last) = c.records.iter().max_by_key(|r| (r.ended_at, r.started_at)) else {
        return CandidateState::NeverDeployed;
    };
    if last.result != RecordResult::Succeeded {
        return CandidateState::Failed {
            result: last.result,
        };
    }
    match &c.tag_digest {
        Some(d) if *d != last.digest => CandidateState::Moved {
            verified: last.digest.clone(),
        },
        _ => CandidateState::Passed,
    }
}

/// What the promotion gate is asked.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    /// `X.Y.Z` being released.
    pub version: &'a semver::Version,
    /// The source environment's name.
    pub source: &'a str,
    /// Every candidate of that version (from tags and records).
    pub candidates: Vec<Candidate>,
    /// `--from vX.Y.Z-rc.N`.
    pub from: Option<&'a str>,
    /// `promote.soak_minutes`.
    pub soak_minutes: Option<u64>,
    /// Every record of the source environment (to know when a candidate stopped being live).
    pub source_history: &'a [Summary],
    /// Unix seconds.
    pub now: u64,
}

/// The gate's answer: promote `record.digest`, verified as `tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The rc tag promoted.
    pub tag: String,
    /// The source record it was verified by (its digest is what is promoted).
    pub record: Summary,
    /// Every candidate, for the plan.
    pub candidates: Vec<CandidateView>,
}

/// Which candidate a final release promotes, and only if the source verified its exact digest.
pub fn promotion(input: &GateInput) -> Result<Promotion, Refusal> {
    let mut cands = input.candidates.clone();
    cands.sort_by(|a, b| a.version.cmp(&b.version));
    let views: Vec<CandidateView> = cands
        .iter()
        .map(|c| CandidateView {
            tag: c.tag.clone(),
            state: candidate_state(c),
            digest: c.tag_digest.clone(),
        })
        .collect();
    let listing = || {
        if views.is_empty() {
            return "  (none)".to_string();
        }
        views
            .iter()
            .map(|v| {
                format!(
                    "  {:<16} {:<22} {}",
                    v.tag,
                    v.state.words(),
                    v.digest.as_deref().unwrap_or("(tag gone)")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let v = input.version;
    let hint = format!(
        "publish a new release candidate (v{v}-rc.N) and let it pass {src}, or pass --from v{v}-rc.N naming one that passed",
        src = input.source
    );
    let chosen = match input.from {
        Some(from) => cands.iter().position(|c| c.tag == from).ok_or_else(|| {
            Refusal::new(
                format!(
                    "--from {from}: {} has no release candidate {from} of v{v}; its candidates:\n{}",
                    input.source,
                    listing()
                ),
                hint.clone(),
            )
        })?,
        None => {
            if cands.is_empty() {
                return Err(Refusal::new(
                    format!(
                        "no release candidate of v{v} was deployed to {}: production only ships what {} verified",
                        input.source, input.source
                    ),
                    format!("release v{v}-rc.N to {} first", input.source),
                ));
            }
            cands.len() - 1
        }
    };
    let c = &cands[chosen];
    let which = if input.from.is_some() {
        "the candidate named by --from"
    } else {
        "the highest candidate"
    };
    let state = &views[chosen].state;
    if *state != CandidateState::Passed {
        return Err(Refusal::new(
            format!(
                "v{v} is not promoted: {which}, {}, {} in {}; candidates of v{v}:\n{}",
                c.tag,
                state.words(),
                input.source,
                listing()
            ),
            hint,
        ));
    }
    let record = c
        .records
        .iter()
        .max_by_key(|r| (r.ended_at, r.started_at))
        .cloned()
        .ok_or_else(|| Refusal::new(format!("{}: no record", c.tag), hint.clone()))?;
    if let Some(min) = input.soak_minutes.filter(|m| *m > 0) {
        let live_until = input
            .source_history
            .iter()
            .filter(|r| {
                r.result == RecordResult::Succeeded
                    && r.digest != record.digest
                    && r.ended_at > record.ended_at
            })
            .map(|r| r.ended_at)
            .min()
            .unwrap_or(input.now);
        let lived = live_until.saturating_sub(record.ended_at);
        if lived < min * 60 {
            let still_live = live_until == input.now;
            return Err(Refusal::new(
                format!(
                    "v{v} is not promoted: {} {} live in {} for {} of the {min} minutes promote.soak_minutes asks",
                    c.tag,
                    if still_live { "has been" } else { "was" },
                    input.source,
                    minutes(lived)
                ),
                if still_live {
                    format!(
                        "wait {} and run again, or pass --from naming a candidate that soaked",
                        minutes(min * 60 - lived)
                    )
                } else {
                    "it was replaced before it soaked: release a candidate and let it soak".into()
                },
            ));
        }
    }
    Ok(Promotion {
        tag: c.tag.clone(),
        record,
        candidates: views,
    })
}

/// `secs` as minutes and seconds (`2m00s`).
pub(crate) fn minutes(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// What the run-kind decision is asked.
#[derive(Debug, Clone)]
pub struct RunInput<'a> {
    /// The environment.
    pub environment: &'a str,
    /// The release tag and its version.
    pub tag: &'a str,
    /// Its version.
    pub version: &'a semver::Version,
    /// What started the run.
    pub trigger: TriggerSource,
    /// `GITHUB_RUN_ATTEMPT` (1 outside Actions).
    pub run_attempt: u32,
    /// `--allow-downgrade`.
    pub allow_downgrade: bool,
    /// What runs now by the records: the last record that succeeded here.
    pub live: Option<&'a Summary>,
    /// This environment's last successful record of this very tag.
    pub own: Option<&'a Summary>,
    /// Where this environment was seen running the release before ferry's first record (its
    /// task-definition history, what ferry's first deploy replaced), when it was.
    pub ran_before: Option<&'a str>,
}

/// Where the digest comes from, and what kind of run it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDecision {
    /// Deploy, redeploy or rollback.
    pub kind: RunKind,
    /// This environment's own record, when the digest comes from it (redeploy, rollback).
    pub own: Option<Summary>,
    /// The release that runs now (for "rollback from v1.1.0 to v1.0.0").
    pub from: Option<String>,
    /// A downgrade to a release never deployed here, allowed by `--allow-downgrade`.
    pub downgrade: bool,
}

/// Deploy, redeploy or roll back; refuses downgrades and delayed runs.
pub fn run_kind(
    input: &RunInput,
    live_version: Option<&semver::Version>,
) -> Result<RunDecision, Refusal> {
    let from = input.live.map(|l| l.tag.clone());
    let older = matches!(live_version, Some(lv) if input.version < lv);
    if older {
        let live = from.clone().unwrap_or_default();
        let deliberate = !(input.trigger == TriggerSource::Release && input.run_attempt <= 1);
        if !deliberate {
            return Err(Refusal::new(
                format!(
                    "{} is older than {live}, which {} runs now: a newer release is live, and this is the first attempt of a release-event run that started late; nothing was changed",
                    input.tag, input.environment
                ),
                format!(
                    "a newer release is live; re-run or dispatch to roll back (re-run this workflow run, or run the workflow with tag = {})",
                    input.tag
                ),
            ));
        }
        if let Some(own) = input.own {
            return Ok(RunDecision {
                kind: RunKind::Rollback,
                own: Some(own.clone()),
                from,
                downgrade: false,
            });
        }
        // A release the environment ran before ferry remembered it: going back is a rollback.
        if input.ran_before.is_some() {
            return Ok(RunDecision {
                kind: RunKind::Rollback,
                own: None,
                from,
                downgrade: false,
            });
        }
        if !input.allow_downgrade {
            return Err(Refusal::new(
                format!(
                    "{} was never deployed to {}, which runs {live}: neither ferry's records nor the services' task-definition history show it ran there, and going back to a release this environment never ran is a downgrade",
                    input.tag, input.environment
                ),
                format!(
                    "roll back to a release {} ran before (`ferry status {}` lists them), or deploy {} anyway with --allow-downgrade (in GitHub: run the workflow with tag = {} and allow-downgrade = true)",
                    input.environment, input.environment, input.tag, input.tag
                ),
            ));
        }
        return Ok(RunDecision {
            kind: RunKind::Rollback,
            own: None,
            from,
            downgrade: true,
        });
    }
    match input.own {
        Some(own) => Ok(RunDecision {
            kind: RunKind::Redeploy,
            own: Some(own.clone()),
            from,
            downgrade: false,
        }),
        None => Ok(RunDecision {
            kind: RunKind::Deploy,
            own: None,
            from,
            downgrade: false,
        }),
    }
}

/// Among the live claims (`crate::lease`: renewed recently, not an earlier attempt of the
/// reader's own workflow run), the first (by time, then nonce) goes on; `mine` refuses when it
/// is not that one. With no claim of ours (plan, or a run before it claims), any live claim
/// refuses.
pub fn overlap(
    environment: &str,
    claims: &[ClaimInfo],
    mine: Option<&str>,
    reader: &Reader,
) -> Result<(), Refusal> {
    let mut live: Vec<&ClaimInfo> = claims.iter().filter(|c| reader.is_live(c)).collect();
    live.sort_by(|a, b| (a.claimed_ms, &a.tag.nonce).cmp(&(b.claimed_ms, &b.tag.nonce)));
    match live.first() {
        Some(other) if mine != Some(other.tag.tag.as_str()) => {
            Err(busy(environment, other, reader))
        }
        _ => Ok(()),
    }
}

/// What the first read of the claims after a run's own claim became visible says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLook {
    /// No other live claim: the run marks its claim held and goes on at once.
    Alone,
    /// Other runs claimed at about the same time: the settle window decides ([`settled`]).
    Settle,
}

/// The claim protocol's first look (`crate::run::memory`). The run read no live claim before
/// it claimed, so every other live claim here was made at about the same time as `mine`. A
/// held one went on already: refused. None: alone. Otherwise, wait for the settle window.
///
/// Why going on alone is safe without a window: of two runs, the one whose claim became
/// visible second sees the first one's claim in this read, so at most one run is alone. The
/// other one settles, and the alone run marks its claim held before the window can end
/// (`crate::run::memory` bounds that, else it settles too), so [`settled`] refuses it.
pub fn first_look(
    environment: &str,
    claims: &[ClaimInfo],
    mine: &str,
    reader: &Reader,
) -> Result<FirstLook, Refusal> {
    let others: Vec<&ClaimInfo> = claims
        .iter()
        .filter(|c| c.tag.tag != mine && reader.is_live(c))
        .collect();
    if let Some(h) = others.iter().find(|c| c.held) {
        return Err(busy(environment, h, reader));
    }
    Ok(if others.is_empty() {
        FirstLook::Alone
    } else {
        FirstLook::Settle
    })
}

/// After the settle window: another run's held claim refuses (it went on); otherwise the
/// oldest live claim goes on ([`overlap`]), which holds when the runs' clocks differ by less
/// than the window.
pub fn settled(
    environment: &str,
    claims: &[ClaimInfo],
    mine: &str,
    reader: &Reader,
) -> Result<(), Refusal> {
    if let Some(h) = claims
        .iter()
        .find(|c| c.held && c.tag.tag != mine && reader.is_live(c))
    {
        return Err(busy(environment, h, reader));
    }
    overlap(environment, claims, Some(mine), reader)
}

/// The refusal for `other`'s live claim.
fn busy(environment: &str, other: &ClaimInfo, reader: &Reader) -> Refusal {
    let now = reader.now_ms;
    Refusal::new(
        format!(
            "another run is deploying {} to {environment} (claim {}, {} ago{}); nothing was changed",
            other.tag.release,
            other.tag.tag,
            minutes(now.saturating_sub(other.claimed_ms) / 1000),
            other
                .run_url
                .as_deref()
                .map(|u| format!(", {u}"))
                .unwrap_or_default()
        ),
        format!(
            "wait for it to finish and run again, or run with --wait-for-idle to wait for it; a running ferry renews its claim, and if that run died the claim lapses within {} of its last renewal (in {} unless renewed); a re-run of the same GitHub workflow run takes over its earlier attempt's claim at once; or delete the tag {} from the repository",
            minutes((crate::lease::TTL + crate::lease::SKEW).as_secs()),
            minutes(reader.lapses_at(other).saturating_sub(now).div_ceil(1000)),
            other.tag.tag
        ),
    )
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
