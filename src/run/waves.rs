//! A release to an environment of several targets (`[[targets]]`): wave by wave, the targets of
//! a wave side by side, each deployed exactly as an environment of one is (its own claim, plan,
//! promotion, rollouts, smoke checks, rollback and record: [`super::claim`], [`super::deploy`]).
//! After each wave the scheduler (`crate::wave`) decides: the next wave, done, or stop. A
//! target it sends back is redeployed with the release it ran before this run, as a rollback
//! by re-run is (from its own records), so that its record says so too.

use anyhow::Result;

use crate::config::{Environment, Environments};
use crate::deploy::DeployOptions;
use crate::github::deployments::{DeploymentRequest, Session};
use crate::github::event::{Trigger, TriggerSource};
use crate::plan::PlanOptions;
use crate::report::{DeployReport, Outcome, TargetReport, TargetState};
use crate::tag::ReleaseTag;
use crate::wave::{self, Ended, Next};

/// How one target's run went.
struct Ran {
    ended: Ended,
    /// What ran there before this run (by its records or task definitions).
    previous: Option<String>,
    report: Option<DeployReport>,
    error: Option<anyhow::Error>,
    /// (start, seconds) since the release started.
    span: (f64, f64),
}

/// Deploys `tag` to every target of `env`, wave by wave, once [`precheck`] passed; one report
/// for the environment.
#[allow(clippy::too_many_arguments)]
pub async fn deploy(
    envs: &Environments,
    env: &Environment,
    trigger: &Trigger,
    tag: &ReleaseTag,
    plan_opts: &PlanOptions,
    opts: &DeployOptions,
    gh: &mut Session,
    gh_request: &DeploymentRequest,
) -> Result<DeployReport> {
    let waves = env.waves();
    let on_failure = env.on_failure();
    let mut done: Vec<Vec<Ran>> = Vec::new();
    let mut started = false;
    let t0 = std::time::Instant::now();
    let mut stop = None;
    loop {
        let ended: Vec<Vec<Ended>> = done
            .iter()
            .map(|w| w.iter().map(|r| r.ended).collect())
            .collect();
        match wave::next(&ended, waves.len(), on_failure) {
            Next::Done => break,
            Next::Stop { roll_back } => {
                stop = Some(roll_back);
                break;
            }
            Next::Wave(n) => {
                let names: Vec<String> = waves[n].iter().map(|t| t.display_name()).collect();
                tracing::info!(
                    "wave {} of {}: {} to {}",
                    n + 1,
                    waves.len(),
                    tag.tag,
                    names.join(", ")
                );
                let ran = futures_util::future::join_all(
                    waves[n]
                        .iter()
                        .map(|t| timed(t0, one(envs, t, trigger, tag, plan_opts, opts))),
                )
                .await;
                // GitHub shows the environment's deployment once a target got past its
                // refusals (a release refused everywhere leaves none, as for one target).
                if !started && ran.iter().any(|r| r.ended != Ended::Refused) {
                    gh.start(gh_request).await;
                    started = true;
                }
                done.push(ran);
            }
        }
    }
    // The targets the scheduler sends back, each to what it ran before, side by side.
    let roll_back = stop.clone().unwrap_or_default();
    if stop.is_some() {
        // As for an environment of one, GitHub hears that the release failed before the end.
        gh.progress(&stopping(&waves, &done, &roll_back)).await;
    }
    let reverts = futures_util::future::join_all(roll_back.iter().map(|&(w, i)| {
        let t = waves[w][i];
        let previous = done[w][i].previous.clone();
        let began = t0.elapsed().as_secs_f64();
        async move {
            let r = revert(envs, t, previous, plan_opts, opts).await;
            (r, (began, t0.elapsed().as_secs_f64() - began))
        }
    }))
    .await;

    let mut targets = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        for (i, t) in wave.iter().enumerate() {
            let ran = done.get(w).and_then(|r| r.get(i));
            let revert = roll_back
                .iter()
                .position(|&p| p == (w, i))
                .map(|k| &reverts[k]);
            targets.push(target_report(t, w, ran, revert));
        }
    }
    combine(env, tag, on_failure, done, targets, stop.is_some())
}

/// Every target's plan, before anything changes: a target that would be refused refuses the
/// whole release (what `ferry plan` says), and the waves, one after another, must fit the run
/// deadline together (each wave: its longest rollout, its rollbacks and its smoke checks).
/// Returns the release's digest (its first image's, the same in every target): what GitHub's
/// deployment and the notifications name, as for an environment of one.
pub async fn precheck(
    envs: &Environments,
    env: &Environment,
    trigger: &Trigger,
    tag: &ReleaseTag,
    plan_opts: &PlanOptions,
) -> Result<Option<String>> {
    let waves = env.waves();
    let plans = futures_util::future::try_join_all(
        waves
            .iter()
            .flatten()
            .map(|t| crate::plan::plan_target(trigger, envs, t, tag, plan_opts)),
    )
    .await?;
    let digest = plans.first().and_then(|p| p.source.digest.clone());
    let Some(deadline) = plan_opts.deadline else {
        return Ok(digest);
    };
    let secs = std::time::Duration::from_secs;
    let mut plans = plans.iter();
    let mut need = std::time::Duration::ZERO;
    for wave in &waves {
        let longest = wave
            .iter()
            .zip(plans.by_ref())
            .map(|(t, p)| {
                let changing = p.changes.iter().filter(|c| !c.changes.is_empty());
                let rollout = changing
                    .clone()
                    .map(|c| secs(c.rollout_timeout_seconds))
                    .max()
                    .unwrap_or_default();
                let rollbacks: std::time::Duration =
                    changing.map(|c| secs(c.rollback_timeout_seconds)).sum();
                rollout + rollbacks + t.smoke_reserve()
            })
            .max()
            .unwrap_or_default();
        need += longest;
    }
    let left = deadline.remaining();
    if need > left {
        let why = format!(
            "its {} waves run one after another and may need {} (each wave's longest rollout, its rollbacks and smoke checks), {} is left",
            waves.len(),
            crate::deadline::show(need),
            crate::deadline::show(left)
        );
        return Err(crate::deadline::refusal(
            &deadline,
            &why,
            "nothing was changed",
        ));
    }
    Ok(digest)
}

/// What GitHub's deployment says when the release stops: where it failed, what goes back.
fn stopping(
    waves: &[Vec<&Environment>],
    done: &[Vec<Ran>],
    roll_back: &[(usize, usize)],
) -> String {
    let failed: Vec<String> = done
        .iter()
        .zip(waves)
        .flat_map(|(ran, wave)| ran.iter().zip(wave))
        .filter(|(r, _)| !matches!(r.ended, Ended::Passed { .. }))
        .map(|(_, t)| t.display_name())
        .collect();
    let back: Vec<String> = roll_back
        .iter()
        .map(|&(w, i)| waves[w][i].display_name())
        .collect();
    if back.is_empty() {
        format!("failed in {}; the release stopped", failed.join(", "))
    } else {
        format!(
            "failed in {}; rolling back {}",
            failed.join(", "),
            back.join(", ")
        )
    }
}

/// `run` with when it started and how long it took, since `t0`.
async fn timed(t0: std::time::Instant, run: impl std::future::Future<Output = Ran>) -> Ran {
    let began = t0.elapsed().as_secs_f64();
    let mut ran = run.await;
    ran.span = (began, t0.elapsed().as_secs_f64() - began);
    ran
}

/// One target's run: claim, plan, deploy (nothing of waves below here).
async fn one(
    envs: &Environments,
    t: &Environment,
    trigger: &Trigger,
    tag: &ReleaseTag,
    plan_opts: &PlanOptions,
    opts: &DeployOptions,
) -> Ran {
    let claimed = super::claim(t, &tag.tag, opts, || {
        crate::plan::plan_target(trigger, envs, t, tag, plan_opts)
    })
    .await;
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{}: {e:#}", t.display_name());
            return Ran {
                ended: Ended::Refused,
                previous: None,
                report: None,
                error: Some(e),
                span: (0.0, 0.0),
            };
        }
    };
    let previous = claimed.plan.live_release.clone();
    // From its own records the target is its own source; a promotion reads the source env.
    let source_env = match envs.get(&claimed.plan.source.environment) {
        Ok(src) if src.name != t.name => src,
        _ => t,
    };
    // The environment's one GitHub deployment is the release's (`deploy`'s caller finishes it).
    let mut gh = Session::new(Err(
        "one GitHub deployment per environment: the release's, not each target's".into(),
    ));
    let request = DeploymentRequest::new(
        tag,
        &t.name,
        claimed.plan.source.digest.as_deref().unwrap_or_default(),
    );
    match super::deploy(claimed, t, source_env, opts, &mut gh, &request).await {
        Ok(report) => Ran {
            ended: match report.outcome {
                Outcome::Deployed => Ended::Passed { changed: true },
                Outcome::AlreadyDeployed => Ended::Passed { changed: false },
                Outcome::RolledBack | Outcome::NeedsAttention => Ended::Failed,
            },
            previous,
            report: Some(report),
            error: None,
            span: (0.0, 0.0),
        },
        Err(e) => {
            tracing::error!("{}: {e:#}", t.display_name());
            Ran {
                ended: Ended::Failed,
                previous,
                report: None,
                error: Some(e),
                span: (0.0, 0.0),
            }
        }
    }
}

/// Sends a target back to `previous` (a rollback by re-run of that release).
async fn revert(
    envs: &Environments,
    t: &Environment,
    previous: Option<String>,
    plan_opts: &PlanOptions,
    opts: &DeployOptions,
) -> Result<DeployReport> {
    let previous = previous.ok_or_else(|| {
        anyhow::anyhow!(
            "no earlier release of {} is known (no record and no release tag on what it ran), so it keeps the new release",
            t.display_name()
        )
    })?;
    let tag = crate::tag::parse(&previous, &envs.prerelease_words())
        .map_err(|e| anyhow::anyhow!("{previous}: {e}"))?;
    tracing::info!("{}: rolling back to {previous}", t.display_name());
    let trigger = Trigger {
        tag: previous.clone(),
        source: TriggerSource::Cli,
        release_prerelease: None,
        repository: None,
        release_url: None,
    };
    let mut plan_opts = plan_opts.clone();
    plan_opts.from = None;
    plan_opts.allow_downgrade = false;
    let ran = one(envs, t, &trigger, &tag, &plan_opts, opts).await;
    match (ran.report, ran.error) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(e),
        (None, None) => Err(anyhow::anyhow!("the rollback run ended without a report")),
    }
}

fn target_report(
    t: &Environment,
    wave: usize,
    ran: Option<&Ran>,
    revert: Option<&(Result<DeployReport>, (f64, f64))>,
) -> TargetReport {
    let revert_span = revert.map(|(_, span)| *span);
    let revert = revert.map(|(r, _)| r);
    let (state, error) = match ran {
        None => (TargetState::NotStarted, None),
        Some(r) => match (&r.report, &r.error) {
            (Some(rep), _) => (TargetState::of(rep.outcome), None),
            (None, Some(e)) => {
                let state = match r.ended {
                    Ended::Refused => TargetState::Refused,
                    _ => TargetState::Failed,
                };
                (state, Some(format!("{e:#}")))
            }
            (None, None) => (TargetState::Failed, None),
        },
    };
    let (state, reverted, revert_error) = match revert {
        None => (state, None, None),
        Some(Ok(r)) if matches!(r.outcome, Outcome::Deployed | Outcome::AlreadyDeployed) => {
            (TargetState::Reverted, Some(Box::new(r.clone())), None)
        }
        Some(Ok(r)) => (
            TargetState::NeedsAttention,
            Some(Box::new(r.clone())),
            Some(r.verdict.clone()),
        ),
        Some(Err(e)) => (TargetState::NeedsAttention, None, Some(format!("{e:#}"))),
    };
    TargetReport {
        target: t.target.as_ref().map_or(t.name.clone(), |x| x.name.clone()),
        wave: wave + 1,
        account_id: t.file.account_id.clone(),
        region: t.file.region.clone(),
        state,
        previous_release: ran.and_then(|r| r.previous.clone()),
        report: ran.and_then(|r| r.report.clone()).map(Box::new),
        error,
        reverted,
        revert_error,
        started_seconds: ran.map_or(0.0, |r| r.span.0),
        seconds: ran.map_or(0.0, |r| r.span.1),
        revert_started_seconds: revert_span.map(|s| s.0),
        revert_seconds: revert_span.map(|s| s.1),
    }
}

/// One report for the release: the first target's image and promotion, every target's state,
/// one verdict. A release refused before anything changed anywhere is that refusal (its exit
/// code), as for an environment of one.
fn combine(
    env: &Environment,
    tag: &ReleaseTag,
    on_failure: crate::config::OnFailure,
    mut done: Vec<Vec<Ran>>,
    targets: Vec<TargetReport>,
    stopped: bool,
) -> Result<DeployReport> {
    let changed_any = targets.iter().any(|t| {
        t.report
            .as_ref()
            .is_some_and(|r| r.outcome != Outcome::AlreadyDeployed)
    });
    if !changed_any {
        if let Some(e) = done.iter_mut().flatten().find_map(|r| r.error.take()) {
            return Err(e);
        }
    }
    let template = targets
        .iter()
        .find_map(|t| t.report.as_deref().cloned())
        .ok_or_else(|| anyhow::anyhow!("no target of {} ran", env.name))?;
    let outcome = if !stopped {
        if changed_any {
            Outcome::Deployed
        } else {
            Outcome::AlreadyDeployed
        }
    } else if targets.iter().all(|t| {
        use TargetState as S;
        matches!(
            t.state,
            S::RolledBack | S::Refused | S::Reverted | S::NotStarted | S::AlreadyDeployed
        ) || (t.state == S::Deployed && on_failure == crate::config::OnFailure::KeepEarlier)
    }) {
        Outcome::RolledBack
    } else {
        Outcome::NeedsAttention
    };
    let lines: Vec<String> = targets
        .iter()
        .map(|t| {
            let what = match t.state {
                TargetState::Reverted => format!(
                    "rolled back to {}",
                    t.previous_release
                        .as_deref()
                        .unwrap_or("its previous release")
                ),
                TargetState::Refused => format!(
                    "refused: {}",
                    t.error
                        .as_deref()
                        .and_then(|e| e.lines().next())
                        .unwrap_or_default()
                ),
                TargetState::NeedsAttention if t.revert_error.is_some() => format!(
                    "rollback to {} failed, needs a person: {}",
                    t.previous_release.as_deref().unwrap_or("?"),
                    t.revert_error.as_deref().unwrap_or_default()
                ),
                s => s.words().to_string(),
            };
            format!("{}/{} (wave {}): {what}", env.name, t.target, t.wave)
        })
        .collect();
    let head = match outcome {
        Outcome::Deployed => format!("{} runs {} in every target", env.name, tag.tag),
        Outcome::AlreadyDeployed => format!("{} already ran {} in every target", env.name, tag.tag),
        Outcome::RolledBack => format!(
            "{} failed in {}; the release stopped ({}) and every target it changed is back",
            tag.tag,
            env.name,
            on_failure.as_str()
        ),
        Outcome::NeedsAttention => format!(
            "{} failed in {}; the release stopped ({}), and not every target is back on a known release",
            tag.tag,
            env.name,
            on_failure.as_str()
        ),
    };
    Ok(DeployReport {
        environment: env.name.clone(),
        outcome,
        verdict: format!("{head}: {}", lines.join("; ")),
        services: Vec::new(),
        smoke: Vec::new(),
        record: None,
        record_error: None,
        targets,
        ..template
    })
}
