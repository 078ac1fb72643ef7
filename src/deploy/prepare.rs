//! Getting one service ready without changing it: it exists, its deployment controller is one
//! ferry can drive, nothing else is deploying to it, and its container is where the config
//! says. A refusal here happens before any service of the run is touched.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentStrategy, Service, TaskDefinition};

use super::bluegreen::Strategy;

use super::judge::{in_flight, ServiceView};
use super::{taskdef, timeout, DeployOptions, Prepared};
use crate::aws::ecs;
use crate::config::{Environment, ServiceConfig};
use crate::error::Failure;
use crate::poll::Poll;

/// How long `--wait-for-idle` waits for somebody else's deployment.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Reads the service and its task definition; refuses what ferry cannot deploy safely.
pub async fn prepare(
    client: &aws_sdk_ecs::Client,
    cd: &aws_sdk_codedeploy::Client,
    env: &Environment,
    cfg: &ServiceConfig,
    pins: taskdef::Pins,
    opts: &DeployOptions,
) -> Result<Prepared> {
    let mut svc = ecs::describe_service(client, &cfg.cluster, &cfg.service).await?;
    let code_deploy = check_controller(&svc, cfg)?;
    // The original task set waiting for its termination after an earlier release of this
    // image is not in the way: then there is nothing to deploy (checked below).
    let current = match svc.task_definition() {
        Some(td) => ecs::describe_task_definition(client, td).await.ok(),
        None => None,
    };
    let runs_image = current.as_ref().is_some_and(|(td, _)| pins.runs(td));
    if code_deploy && svc.task_sets().len() > 1 && !runs_image {
        return Err(Failure::refused(format!(
            "service {}/{} has {} task sets: a CodeDeploy deployment is in flight; deploying on top of it would make its outcome unknowable",
            cfg.cluster,
            cfg.service,
            svc.task_sets().len()
        ))
        .hint("wait for the CodeDeploy deployment to finish (or stop it), then run ferry again")
        .into());
    }
    if let Some(busy) = in_flight(&ServiceView::from_sdk(&svc)) {
        if !opts.wait_for_idle {
            return Err(Failure::refused(format!(
                "service {}/{} has a deployment in flight: {busy}; deploying on top of it would make its outcome unknowable",
                cfg.cluster, cfg.service
            ))
            .hint("wait for it to finish, or run with --wait-for-idle")
            .into());
        }
        tracing::info!(
            "{}/{}: waiting for the deployment in flight to finish: {busy}",
            cfg.cluster,
            cfg.service
        );
        // An hour at most, and never past the point where this rollout (a minute at least),
        // its smoke checks and its rollback still fit before the run deadline: the wait ends
        // while nothing has changed, so that the refusal can say so.
        let wait = match opts.deadline {
            None => IDLE_WAIT,
            Some(d) => {
                let rollback = current.as_ref().map_or(Duration::ZERO, |(td, _)| {
                    let (own, _) =
                        timeout::rollout_timeout(&svc, td, env.file.deploy.rollout_timeout_seconds);
                    let (derived, _) = timeout::rollout_timeout(&svc, td, None);
                    rollback_timeout(&svc, derived, own)
                });
                let keep = crate::deadline::MIN_ROLLOUT + env.smoke_reserve() + rollback;
                IDLE_WAIT.min(d.remaining().saturating_sub(keep))
            }
        };
        let deadline = Instant::now() + wait;
        let mut poll = Poll::with(Duration::from_secs(1), Duration::from_secs(5));
        while let Some(b) = in_flight(&ServiceView::from_sdk(&svc)) {
            if Instant::now() > deadline {
                let why = if wait < IDLE_WAIT {
                    " (all the run deadline allowed)"
                } else {
                    ""
                };
                return Err(Failure::refused(format!(
                    "service {}/{} stayed busy for {}{why}: {b}; nothing was changed",
                    cfg.cluster,
                    cfg.service,
                    crate::deadline::show(wait)
                ))
                .into());
            }
            poll.wait().await;
            svc = ecs::describe_service(client, &cfg.cluster, &cfg.service).await?;
        }
    }
    let previous_td = svc
        .task_definition()
        .ok_or_else(|| {
            anyhow!(
                "service {}/{} has no task definition",
                cfg.cluster,
                cfg.service
            )
        })?
        .to_string();
    let (td, tags) = ecs::describe_task_definition(client, &previous_td).await?;
    if pins
        .iter()
        .any(|(c, _)| ecs::container_image(&td, c).is_none())
    {
        // render() gives the full message, with the container names.
        taskdef::render(client, &td, &tags, &pins, &[])
            .map_err(|e| Failure::invalid(format!("{e}")))?;
    }
    let already = pins.runs(&td);
    let (mut timeout, mut timeout_why) =
        timeout::rollout_timeout(&svc, &td, env.file.deploy.rollout_timeout_seconds);
    let (derived, _) = timeout::rollout_timeout(&svc, &td, None);
    let blue_green = if code_deploy {
        let checks = super::codedeploy::test_checks(&env.file.smoke);
        let has_checks = checks.iter().any(|c| c.tests_service(cfg));
        let target = super::codedeploy::find_target(cd, &svc, cfg, has_checks).await?;
        (timeout, timeout_why) = codedeploy_timeout(&svc, &td, &target, env);
        Some(target)
    } else {
        None
    };
    let native = native_strategy(&svc);
    if native.is_some() {
        (timeout, timeout_why) = native_timeout(&svc, &td, env);
    }
    Ok(Prepared {
        cfg: cfg.clone(),
        label: match &env.target {
            Some(t) => format!("{}:{}/{}", t.name, cfg.cluster, cfg.service),
            None => format!("{}/{}", cfg.cluster, cfg.service),
        },
        previous_td,
        td,
        tags,
        pins,
        already,
        timeout,
        timeout_why,
        rollback_timeout: rollback_timeout(&svc, derived, timeout),
        known_events: event_ids(&svc),
        known_deployments: svc
            .deployments()
            .iter()
            .filter_map(|d| d.id())
            .map(str::to_string)
            .collect(),
        blue_green,
        native,
    })
}

/// How long bringing `svc` back may take: the derived rollout timeout (`derived`), never
/// less than the release's `timeout`; a CodeDeploy rollback is followed for the release's
/// timeout plus a grace period (`codedeploy::ROLLBACK_GRACE`).
pub fn rollback_timeout(svc: &Service, derived: Duration, timeout: Duration) -> Duration {
    if uses_code_deploy(svc) {
        timeout + super::codedeploy::ROLLBACK_GRACE
    } else {
        derived.max(timeout)
    }
}

/// Whether CodeDeploy deploys `svc` (the `CODE_DEPLOY` deployment controller).
pub fn uses_code_deploy(svc: &Service) -> bool {
    svc.deployment_controller()
        .is_some_and(|c| *c.r#type() == DeploymentControllerType::CodeDeploy)
}

/// The strategy `deploy` will run for `svc`, with the timeout it implies when it is not a
/// rolling update (for `plan`: a refusal is shown, not returned).
pub async fn strategy(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    cfg: &ServiceConfig,
    svc: &Service,
    td: &TaskDefinition,
) -> (Strategy, Option<Duration>) {
    let code_deploy = match check_controller(svc, cfg) {
        Ok(c) => c,
        Err(e) => {
            return (
                Strategy::Refused {
                    why: format!("{e:#}"),
                },
                None,
            )
        }
    };
    let checks: Vec<_> = super::codedeploy::test_checks(&env.file.smoke)
        .into_iter()
        .filter(|c| c.tests_service(cfg))
        .collect();
    if code_deploy {
        let cd = aws_sdk_codedeploy::Client::new(sdk);
        return match super::codedeploy::find_target(&cd, svc, cfg, !checks.is_empty()).await {
            Ok(t) => (
                Strategy::CodeDeploy {
                    application: t.application.clone(),
                    deployment_group: t.group.clone(),
                    config: t.config.clone(),
                    routing: t.routing,
                    holds: t.ready.holds(),
                    test_checks: checks.len(),
                    termination_wait_minutes: t.termination_wait_minutes,
                },
                Some(codedeploy_timeout(svc, td, &t, env).0),
            ),
            Err(e) => (
                Strategy::Refused {
                    why: format!("{e:#}"),
                },
                None,
            ),
        };
    }
    match native_strategy(svc) {
        Some(strategy) => (
            Strategy::Native {
                strategy,
                routing: native_routing(svc),
                bake_minutes: svc
                    .deployment_configuration()
                    .and_then(|d| d.bake_time_in_minutes())
                    .unwrap_or(0),
                test_checks: checks.len(),
                pauses: pause_stages(svc),
            },
            Some(native_timeout(svc, td, env).0),
        ),
        None => (Strategy::Rolling, None),
    }
}

/// A CodeDeploy release: install (one rolling batch), the test-traffic checks, the shift.
fn codedeploy_timeout(
    svc: &Service,
    td: &TaskDefinition,
    target: &super::codedeploy::Target,
    env: &Environment,
) -> (Duration, String) {
    let (install, _) = timeout::rollout_timeout(svc, td, None);
    let smoke = super::codedeploy::test_checks(&env.file.smoke)
        .iter()
        .map(|c| Duration::from_secs(c.deadline_seconds))
        .max()
        .unwrap_or_default();
    super::bluegreen::timeout(
        install,
        smoke,
        target.routing,
        env.file.deploy.rollout_timeout_seconds,
    )
}

/// An ECS-native release: the rolling estimate (with bake time) plus the traffic shift.
fn native_timeout(svc: &Service, td: &TaskDefinition, env: &Environment) -> (Duration, String) {
    let (install, _) = timeout::rollout_timeout(svc, td, None);
    super::bluegreen::timeout(
        install,
        Duration::ZERO,
        native_routing(svc),
        env.file.deploy.rollout_timeout_seconds,
    )
}

/// The stages where a PAUSE lifecycle hook waits for ferry's decision.
fn pause_stages(svc: &Service) -> Vec<String> {
    use aws_sdk_ecs::types::{
        DeploymentLifecycleHookStage as S, DeploymentLifecycleHookTargetType,
    };
    svc.deployment_configuration()
        .map(|d| d.lifecycle_hooks())
        .unwrap_or_default()
        .iter()
        .filter(|h| h.target_type() == Some(&DeploymentLifecycleHookTargetType::Pause))
        .flat_map(|h| h.lifecycle_stages())
        .filter(|s| matches!(s, S::PostTestTrafficShift | S::PostProductionTrafficShift))
        .map(|s| s.as_str().to_string())
        .collect()
}

/// `BLUE_GREEN`, `LINEAR` or `CANARY`; `None` for a rolling update.
pub fn native_strategy(svc: &Service) -> Option<String> {
    svc.deployment_configuration()
        .and_then(|d| d.strategy())
        .filter(|s| **s != DeploymentStrategy::Rolling)
        .map(|s| s.as_str().to_string())
}

/// How an ECS-native strategy moves production traffic.
fn native_routing(svc: &Service) -> super::bluegreen::Routing {
    use super::bluegreen::Routing;
    let dc = svc.deployment_configuration();
    match dc.and_then(|d| d.strategy()) {
        Some(DeploymentStrategy::Canary) => {
            let c = dc.and_then(|d| d.canary_configuration());
            Routing::Canary {
                percent: c.and_then(|c| c.canary_percent()).unwrap_or(5.0) as i32,
                minutes: c
                    .and_then(|c| c.canary_bake_time_in_minutes())
                    .unwrap_or(10),
            }
        }
        Some(DeploymentStrategy::Linear) => {
            let c = dc.and_then(|d| d.linear_configuration());
            Routing::Linear {
                percent: c.and_then(|c| c.step_percent()).unwrap_or(10.0) as i32,
                minutes: c.and_then(|c| c.step_bake_time_in_minutes()).unwrap_or(6),
            }
        }
        _ => Routing::AllAtOnce,
    }
}

/// External controllers ignore `UpdateService`'s task definition; CodeDeploy-controlled
/// services are deployed through CodeDeploy (`true`).
fn check_controller(svc: &Service, cfg: &ServiceConfig) -> Result<bool> {
    if let Some(kind) = svc.deployment_controller().map(|c| c.r#type()) {
        if *kind == DeploymentControllerType::CodeDeploy {
            return Ok(true);
        }
        if *kind != DeploymentControllerType::Ecs {
            return Err(Failure::invalid(format!(
                "service {}/{} uses the {} deployment controller; ferry deploys services with the ECS (rolling update, blue/green) or CODE_DEPLOY controller",
                cfg.cluster,
                cfg.service,
                kind.as_str()
            ))
            .hint("deploy this service with its own controller, or remove it from the environment's [[services]]")
            .into());
        }
    }
    Ok(false)
}

/// The ids of the service's events.
pub fn event_ids(svc: &Service) -> HashSet<String> {
    svc.events()
        .iter()
        .filter_map(|e| e.id())
        .map(str::to_string)
        .collect()
}

/// Fits every rollout before `deadline` ([`crate::deadline::fit`]). With `cut`, a rollout
/// that does not fit is shortened (and says so); `Err` explains a rollout that cannot fit.
pub fn fit_deadline(
    prepared: &mut [Prepared],
    smoke: Duration,
    deadline: &crate::deadline::Deadline,
    cut: bool,
) -> Result<(), String> {
    use crate::deadline::show;
    let rollouts: Vec<crate::deadline::Rollout> = prepared
        .iter()
        .filter(|p| !p.already)
        .map(|p| (p.name(), p.timeout, p.rollback_timeout))
        .collect();
    let fits = crate::deadline::fit(deadline.remaining(), smoke, &rollouts)?;
    if !cut {
        return Ok(());
    }
    for (p, fits) in prepared.iter_mut().filter(|p| !p.already).zip(fits) {
        if fits < p.timeout {
            tracing::warn!(
                "{}: rollout timeout cut from {} to {} by {}",
                p.name(),
                show(p.timeout),
                show(fits),
                deadline.describe()
            );
            p.timeout_why = format!(
                "{}, cut from {} by {}",
                p.timeout_why,
                show(p.timeout),
                deadline.describe()
            );
            p.timeout = fits;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::DeploymentController;

    /// The rollback reserve the run deadline keeps: a rolling service's derived timeout (never
    /// less than the release's), a CodeDeploy service's timeout plus CodeDeploy's grace.
    #[test]
    fn rollback_timeouts() {
        let s = Duration::from_secs;
        let rolling = Service::builder().build();
        assert_eq!(rollback_timeout(&rolling, s(300), s(120)), s(300));
        assert_eq!(rollback_timeout(&rolling, s(300), s(600)), s(600));
        let cd = Service::builder()
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::CodeDeploy)
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(
            rollback_timeout(&cd, s(300), s(600)),
            s(600) + crate::deploy::codedeploy::ROLLBACK_GRACE
        );
    }
}
