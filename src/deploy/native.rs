//! ECS-native blue/green, linear and canary releases (`deploymentConfiguration.strategy`):
//! the service deployment walks `lifecycleStage` (scale up, test traffic shift, production
//! traffic shift, bake time, clean up). Ferry prints each stage, runs the `[[smoke]] test_url`
//! checks while the test listener serves the new revision and the production checks during
//! bake time (the old revision still runs, so a rollback is a switch back); a failure stops the
//! service deployment with `ROLLBACK`. Then `follow` follows it to its real end, as for a
//! rolling update.
//!
//! A `PAUSE` lifecycle hook at `POST_TEST_TRAFFIC_SHIFT` makes ECS hold production traffic until
//! ferry's test checks pass (`ContinueServiceDeployment` CONTINUE, or ROLLBACK on a failure), and
//! one at `POST_PRODUCTION_TRAFFIC_SHIFT` holds the old revision until the production checks
//! pass. Without such a hook, production traffic may start moving while the checks still run;
//! a failure still rolls back (`StopServiceDeployment`).

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::DeploymentLifecycleHookStatus;

use super::bluegreen::{self, NativeStep};
use super::codedeploy::Context;
use super::{follow, Ended, Prepared, Running};
use crate::aws::ecs;
use crate::aws::{aws_error, AwsError};
use crate::poll::Poll;
use crate::smoke;

/// Consecutive failed reads before leaving the stages to the rollout loop.
const MAX_READ_ERRORS: u32 = 10;

/// Starts and follows one ECS-native blue/green (linear, canary) release.
pub async fn rollout(
    reads: &crate::aws::ecs::Reads,
    ctx: &Context,
    prep: Prepared,
    ferry_tags: &[(&str, String)],
) -> Running {
    let client = reads.client();
    let mut run = Running::new(prep);
    if let Err(e) = super::start(client, &mut run, ferry_tags).await {
        tracing::error!("{}: {e:#}", run.prep.name());
        run.ended = Some(Ended::Failed {
            reason: format!("could not start the deployment: {e:#}"),
            back_on_previous: Some(run.new_td.is_none()),
        });
        run.start_error = Some(e);
        return run;
    }
    let Some(ours) = run.ours.clone() else {
        return run;
    };
    let t0 = Instant::now();
    let deadline = t0 + run.prep.timeout;
    let stopped = stages(reads, ctx, &mut run, deadline).await;
    let left = deadline.saturating_duration_since(Instant::now());
    let ended = follow::follow(reads, &mut run, &ours, left.max(Duration::from_secs(60))).await;
    let ended = match (stopped, ended) {
        (None, e) => e,
        (
            Some(why),
            Ended::Failed {
                reason,
                back_on_previous,
            },
        ) => Ended::Failed {
            reason: format!("{why}; {reason}"),
            back_on_previous,
        },
        (Some(why), Ended::RollbackFailed { reason }) => Ended::RollbackFailed {
            reason: format!("{why}; {reason}"),
        },
        (Some(why), Ended::Succeeded) => Ended::Failed {
            reason: format!("{why}; ECS ended the deployment SUCCESSFUL anyway"),
            back_on_previous: Some(false),
        },
        (Some(why), other) => match other {
            Ended::TimedOut { pending } => Ended::TimedOut {
                pending: format!("{why}; {pending}"),
            },
            Ended::Superseded { reason } => Ended::Superseded {
                reason: format!("{why}; {reason}"),
            },
            e => e,
        },
    };
    let what = format!(
        "{} release",
        run.prep.native.as_deref().unwrap_or("blue/green")
    );
    super::conclude(&mut run, &ours.task_definition, &what, ended, t0);
    run
}

/// Watches the stages and runs the checks; `Some(why)` when ferry stopped the deployment
/// with rollback.
async fn stages(
    reads: &crate::aws::ecs::Reads,
    ctx: &Context,
    run: &mut Running,
    deadline: Instant,
) -> Option<String> {
    let name = run.prep.name();
    let new_td = run.new_td.clone()?;
    let client = reads.client();
    let mut poll = Poll::aligned();
    let mut errors = 0;
    let mut last_stage = String::new();
    let (mut test_done, mut prod_done) = (false, false);
    let test_checks: Vec<_> = ctx
        .test_checks
        .iter()
        .filter(|c| c.tests_service(&run.prep.cfg))
        .cloned()
        .collect();
    while Instant::now() < deadline {
        match read(reads, run, &new_td).await {
            Ok(Some((arn, status, stage, paused))) => {
                errors = 0;
                if let Some(s) = &stage {
                    if *s != last_stage {
                        for unseen in bluegreen::stages_between(&last_stage, s) {
                            tracing::info!(
                                "{name}: lifecycle stage {unseen}: not seen (ECS moved from {last_stage} to {s} between two reads)"
                            );
                        }
                        tracing::info!("{name}: lifecycle stage {s} ({status})");
                        last_stage = s.clone();
                        let at = run.started.elapsed().unwrap_or_default().as_secs_f64();
                        run.stages.push((s.clone(), at));
                        // Stages follow each other: read again soon, not at the slow pace a
                        // long stage reached.
                        poll = Poll::aligned();
                    }
                }
                let step = bluegreen::native_step(
                    &status,
                    stage.as_deref(),
                    paused.is_some(),
                    (!test_checks.is_empty(), test_done),
                    (!ctx.production_checks.is_empty(), prod_done),
                );
                let (checks, what) = match step {
                    NativeStep::Wait => {
                        poll.wait().await;
                        continue;
                    }
                    NativeStep::HandOver => return None,
                    NativeStep::Continue => {
                        let hook = paused.unwrap_or_default();
                        tracing::info!(
                            "{name}: continuing past the PAUSE hook at {}",
                            stage.as_deref().unwrap_or("?")
                        );
                        if let Err(e) =
                            ecs::continue_service_deployment(client, &arn, &hook, false).await
                        {
                            tracing::warn!("{name}: {e:#} (will retry)");
                        }
                        poll.wait().await;
                        continue;
                    }
                    NativeStep::CheckTestTraffic => {
                        test_done = true;
                        (&test_checks, "on test traffic")
                    }
                    NativeStep::CheckProduction => {
                        prod_done = true;
                        (
                            &ctx.production_checks,
                            "on production traffic during bake time",
                        )
                    }
                };
                tracing::info!("{name}: running {} check(s) {what}", checks.len());
                let mut results = smoke::run(checks, &ctx.versions).await;
                if step == NativeStep::CheckProduction {
                    for r in &mut results {
                        r.name = format!("{} (bake time)", r.name);
                    }
                }
                let failed: Vec<String> = results
                    .iter()
                    .filter(|s| !s.ok)
                    .map(|s| format!("{}: {}", s.name, s.detail))
                    .collect();
                run.test_smoke.extend(results);
                if !failed.is_empty() {
                    let why = format!(
                        "the smoke check {what} failed at stage {} ({})",
                        stage.as_deref().unwrap_or("?"),
                        failed.join("; ")
                    );
                    // The checks took a while: ECS may have paused at a hook meanwhile.
                    let paused = match read(reads, run, &new_td).await {
                        Ok(Some((_, _, _, now))) => now.or(paused),
                        _ => paused,
                    };
                    let held = paused.as_deref();
                    let why = match (held, step) {
                        (Some(_), NativeStep::CheckTestTraffic) => {
                            format!(
                                "{why}; production traffic never moved (held by the PAUSE hook)"
                            )
                        }
                        _ => why,
                    };
                    tracing::error!("{name}: {why}; rolling the deployment back");
                    let done = match held {
                        Some(hook) => {
                            ecs::continue_service_deployment(client, &arn, hook, true).await
                        }
                        None => ecs::stop_with_rollback(client, &arn).await,
                    };
                    return match done {
                        Ok(()) => Some(why),
                        Err(e) => Some(format!("{why}; the rollback request failed: {e:#}")),
                    };
                }
            }
            Ok(None) => poll.wait().await,
            Err(e) => {
                if aws_error(&e).is_some_and(AwsError::is_not_allowed) {
                    tracing::warn!("{name}: {e:#}; the lifecycle stages cannot be read, so no check runs before the end. Grant ecs:ListServiceDeployments, ecs:DescribeServiceDeployments and ecs:DescribeServiceRevisions");
                    return None;
                }
                errors += 1;
                tracing::warn!("{name}: {e:#} (will retry)");
                if errors >= MAX_READ_ERRORS {
                    return None;
                }
                poll.wait().await;
            }
        }
    }
    None
}

/// This run's service deployment: (ARN, status, lifecycle stage, the PAUSE hook it waits at);
/// `None` until ECS lists it.
async fn read(
    reads: &crate::aws::ecs::Reads,
    run: &mut Running,
    new_td: &str,
) -> anyhow::Result<Option<Read>> {
    let client = reads.client();
    if run.service_deployment_arn.is_none() {
        let cfg = &run.prep.cfg;
        for brief in
            ecs::list_service_deployments(client, &cfg.cluster, &cfg.service, run.started).await?
        {
            let (Some(arn), Some(rev)) = (
                brief.service_deployment_arn(),
                brief.target_service_revision_arn(),
            ) else {
                continue;
            };
            if ecs::service_revision_task_definitions(client, rev)
                .await?
                .iter()
                .any(|t| t == new_td)
            {
                run.service_deployment_arn = Some(arn.to_string());
                break;
            }
        }
    }
    let Some(arn) = run.service_deployment_arn.clone() else {
        return Ok(None);
    };
    Ok(reads.service_deployment(&arn).await?.map(|sd| {
        (
            arn,
            sd.status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            sd.lifecycle_stage().map(|s| s.as_str().to_string()),
            sd.lifecycle_hook_details()
                .iter()
                .find(|h| h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction))
                .and_then(|h| h.hook_id())
                .map(str::to_string),
        )
    }))
}

/// (ARN, status, lifecycle stage, the PAUSE hook it waits at).
type Read = (String, String, Option<String>, Option<String>);
