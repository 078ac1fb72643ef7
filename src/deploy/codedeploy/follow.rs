//! Starting one CodeDeploy release and following it: `CreateDeployment`, then the deployment
//! and its ECS target's lifecycle events until all production traffic is on the replacement;
//! in `Ready` the test-traffic checks decide between `ContinueDeployment` and `StopDeployment`
//! with rollback, and a failed deployment's own CodeDeploy rollback is followed to its end.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _, Result};

use super::target::appspec;
use super::{sdk, CdRun, Context};
use crate::aws::codedeploy as api;
use crate::aws::ecs::short_td;
use crate::aws::{aws_error, AwsError};
use crate::config::SmokeCheck;
use crate::deploy::bluegreen::{self, RollbackStage, Stage};
use crate::deploy::judge::Ours;
use crate::deploy::{Ended, Prepared, Running};
use crate::poll::Poll;
use crate::smoke;

/// Consecutive failed reads before giving up on following.
const MAX_READ_ERRORS: u32 = 10;
/// How long CodeDeploy's rollback may take beyond the rollout's own deadline.
pub const ROLLBACK_GRACE: Duration = Duration::from_secs(900);

/// Starts and follows one CodeDeploy release; like `deploy::rollout`, a failure to start is
/// recorded in the result.
pub async fn rollout(
    ecs: &aws_sdk_ecs::Client,
    ctx: &Context,
    prep: Prepared,
    ferry_tags: &[(&str, String)],
) -> Running {
    let mut run = Running::new(prep);
    let Some(target) = run.prep.blue_green.clone() else {
        run.ended = Some(Ended::Failed {
            reason: "no CodeDeploy deployment group was read for this service".into(),
            back_on_previous: Some(true),
        });
        return run;
    };
    run.codedeploy = Some(CdRun {
        cd: ctx.cd.clone(),
        target,
        deployment_id: None,
        shifted: false,
    });
    let name = run.prep.name();
    if run.prep.already {
        tracing::info!(
            "{name}: already deployed ({} runs {}); no new revision",
            short_td(&run.prep.previous_td),
            run.prep.pins
        );
        return run;
    }
    if let Err(e) = start(ecs, ctx, &mut run, ferry_tags).await {
        tracing::error!("{name}: {e:#}");
        run.ended = Some(Ended::Failed {
            reason: format!("could not start the deployment: {e:#}"),
            back_on_previous: Some(run.new_td.is_none()),
        });
        run.start_error = Some(e);
        return run;
    }
    let t0 = Instant::now();
    let deadline = t0 + run.prep.timeout;
    let checks: Vec<SmokeCheck> = ctx
        .test_checks
        .iter()
        .filter(|c| c.tests_service(&run.prep.cfg))
        .cloned()
        .collect();
    let ended = follow(ctx, &mut run, deadline, &checks).await;
    let failed = !matches!(ended, Ended::Succeeded);
    let td = run.new_td.clone().unwrap_or_default();
    // The same ending line as rolling and ECS-native releases ("… succeeded in 42.0s").
    crate::deploy::conclude(&mut run, &td, "CodeDeploy blue/green release", ended, t0);
    if failed {
        run.evidence = crate::deploy::evidence::explain(ecs, &run).await;
    }
    run
}

async fn start(
    ecs: &aws_sdk_ecs::Client,
    ctx: &Context,
    run: &mut Running,
    ferry_tags: &[(&str, String)],
) -> Result<()> {
    let name = run.prep.name();
    let new_td = crate::deploy::register(ecs, run, ferry_tags).await?;
    let target = run
        .codedeploy
        .as_ref()
        .map(|c| c.target.clone())
        .ok_or_else(|| anyhow!("{name}: no CodeDeploy target"))?;
    run.started = SystemTime::now() - Duration::from_secs(5);
    crate::inflight::updating(&name);
    let id = api::create_deployment(
        &ctx.cd,
        &target.application,
        &target.group,
        &appspec(&target, &new_td),
        &format!("ferry: {} for {name}", short_td(&new_td)),
    )
    .await
    .with_context(|| {
        format!(
            "registered {}; the service was not changed and still runs {}",
            short_td(&new_td),
            short_td(&run.prep.previous_td)
        )
    })?;
    tracing::info!(
        "{name}: CodeDeploy deployment {id} of {} ({}/{}, {}: {}); following it for up to {}s ({})",
        short_td(&new_td),
        target.application,
        target.group,
        target.config,
        target.routing.describe(),
        run.prep.timeout.as_secs(),
        run.prep.timeout_why
    );
    run.new_td = Some(new_td.clone());
    run.ours = Some(Ours {
        deployment_id: None,
        task_definition: new_td,
        previous_task_definition: run.prep.previous_td.clone(),
        known_before: Default::default(),
    });
    crate::inflight::rolling_out(&name, Some(&id));
    if let Some(c) = run.codedeploy.as_mut() {
        c.deployment_id = Some(id);
    }
    Ok(())
}
/// Follows this run's CodeDeploy deployment until all production traffic is on the
/// replacement, or it failed (and CodeDeploy's rollback ended), or `deadline`.
pub(super) async fn follow(
    ctx: &Context,
    run: &mut Running,
    deadline: Instant,
    checks: &[SmokeCheck],
) -> Ended {
    let name = run.prep.name();
    let target_id = format!("{}:{}", run.prep.cfg.cluster, run.prep.cfg.service);
    let Some(id) = run
        .codedeploy
        .as_ref()
        .and_then(|c| c.deployment_id.clone())
    else {
        return Ended::Failed {
            reason: "no CodeDeploy deployment to follow".into(),
            back_on_previous: None,
        };
    };
    let mut poll = Poll::new();
    let mut errors = 0;
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut last = String::new();
    let mut smoke_failure: Option<String> = None;
    let mut continued = false;
    loop {
        let read = async {
            let d = sdk::deployment(&ctx.cd, &id).await?;
            let t = sdk::target(&ctx.cd, &id, &target_id).await?;
            anyhow::Ok((d, t))
        };
        match read.await {
            Ok((d, t)) => {
                errors = 0;
                for e in t.iter().flat_map(|t| &t.events) {
                    if e.status != "Pending" && seen.get(&e.name) != Some(&e.status) {
                        tracing::info!("{name}: {id}: lifecycle event {} {}", e.name, e.status);
                        seen.insert(e.name.clone(), e.status.clone());
                    }
                }
                match bluegreen::stage(&d, t.as_ref()) {
                    Stage::Starting { progress } => progress_line(&name, &mut last, progress),
                    Stage::Shifting { .. } => {
                        if let Some(t) = &t {
                            progress_line(&name, &mut last, bluegreen::traffic_line(t));
                        }
                    }
                    Stage::Ready if smoke_failure.is_none() && !continued => {
                        if checks.is_empty() {
                            tracing::info!("{name}: the replacement serves the test listener; no [[smoke]] test_url checks, rerouting production traffic");
                        } else {
                            tracing::info!("{name}: the replacement serves the test listener; production traffic has not moved; running {} check(s) on test traffic", checks.len());
                            let results = smoke::run(checks, &ctx.versions).await;
                            let failed: Vec<String> = results
                                .iter()
                                .filter(|s| !s.ok)
                                .map(|s| format!("{}: {}", s.name, s.detail))
                                .collect();
                            run.test_smoke = results;
                            if !failed.is_empty() {
                                let reason = format!(
                                    "the smoke check on test traffic failed ({}); production traffic never moved to {}",
                                    failed.join("; "),
                                    run.new_td.as_deref().map(short_td).unwrap_or("the release")
                                );
                                tracing::error!("{name}: {reason}; stopping {id} with rollback");
                                if let Err(e) = api::stop_with_rollback(&ctx.cd, &id).await {
                                    tracing::error!("{name}: {e:#}");
                                    return Ended::Failed {
                                        reason: format!("{reason}; and StopDeployment failed: {e:#}; the deployment still holds the replacement on test traffic"),
                                        back_on_previous: None,
                                    };
                                }
                                smoke_failure = Some(reason);
                                poll.wait().await;
                                continue;
                            }
                            tracing::info!(
                                "{name}: test traffic passed; rerouting production traffic ({})",
                                run.codedeploy
                                    .as_ref()
                                    .map(|c| c.target.routing.describe())
                                    .unwrap_or_default()
                            );
                        }
                        match api::continue_deployment(&ctx.cd, &id).await {
                            Ok(()) => continued = true,
                            Err(e) => tracing::warn!("{name}: {e:#} (will retry)"),
                        }
                    }
                    Stage::Ready => {}
                    Stage::Shifted { termination_wait } => {
                        if let Some(reason) = smoke_failure {
                            // Stopped after the checks failed, yet shifted: say so, never succeed.
                            return Ended::Failed {
                                reason: format!(
                                    "{reason}; but CodeDeploy shifted the traffic anyway"
                                ),
                                back_on_previous: Some(false),
                            };
                        }
                        if let Some(c) = run.codedeploy.as_mut() {
                            c.shifted = true;
                            if termination_wait {
                                tracing::info!(
                                    "{name}: production traffic 100% on the replacement; CodeDeploy keeps the original task set for {} min before terminating it (a rollback until then is a traffic switch)",
                                    c.target.termination_wait_minutes
                                );
                            }
                        }
                        return Ended::Succeeded;
                    }
                    Stage::Failed { reason, rollback } => {
                        let reason = smoke_failure.take().unwrap_or(reason);
                        let moved = t.as_ref().map_or(0.0, |t| t.replacement_weight());
                        return match rollback {
                            Some(rid) => {
                                tracing::warn!("{name}: CodeDeploy is rolling back with deployment {rid}");
                                follow_rollback(ctx, &name, &rid, reason, deadline + ROLLBACK_GRACE).await
                            }
                            None => Ended::Failed {
                                reason: format!("{reason}; CodeDeploy did not roll back (the group's automatic rollback is off)"),
                                back_on_previous: Some(moved == 0.0),
                            },
                        };
                    }
                }
            }
            Err(e) => {
                if aws_error(&e).is_some_and(AwsError::is_throttled) {
                    poll.back_off();
                } else {
                    errors += 1;
                }
                tracing::warn!("{name}: {e:#} (will retry)");
                if errors >= MAX_READ_ERRORS {
                    return Ended::Failed {
                        reason: format!("lost track of CodeDeploy deployment {id}: {e:#}"),
                        back_on_previous: None,
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            return Ended::TimedOut {
                pending: format!("CodeDeploy deployment {id}: {last}"),
            };
        }
        poll.wait().await;
    }
}

fn progress_line(name: &str, last: &mut String, line: String) {
    if *last != line {
        tracing::info!("{name}: {line}");
        *last = line;
    }
}

/// Follows CodeDeploy's rollback deployment `rid` to its end.
pub(super) async fn follow_rollback(
    ctx: &Context,
    name: &str,
    rid: &str,
    reason: String,
    deadline: Instant,
) -> Ended {
    let mut poll = Poll::new();
    let mut errors = 0;
    loop {
        match sdk::deployment(&ctx.cd, rid).await {
            Ok(d) => match bluegreen::rollback_stage(&d) {
                RollbackStage::Succeeded => {
                    tracing::info!("{name}: CodeDeploy rolled back ({rid}): traffic is on the original task set");
                    return Ended::Failed {
                        reason: format!("{reason}; CodeDeploy rolled it back ({rid})"),
                        back_on_previous: Some(true),
                    };
                }
                RollbackStage::Failed { reason: r } => {
                    return Ended::RollbackFailed {
                        reason: format!("{reason}; CodeDeploy's rollback FAILED too: {r}"),
                    }
                }
                RollbackStage::InProgress => {}
            },
            Err(e) => {
                errors += 1;
                tracing::warn!("{name}: {e:#} (will retry)");
                if errors >= MAX_READ_ERRORS {
                    return Ended::RollbackFailed {
                        reason: format!(
                            "{reason}; lost track of CodeDeploy's rollback {rid}: {e:#}"
                        ),
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            return Ended::RollbackFailed {
                reason: format!("{reason}; CodeDeploy's rollback {rid} did not finish in time"),
            };
        }
        poll.wait().await;
    }
}
