//! Getting one service ready without changing it: it exists, its deployment controller is one
//! ferry can drive, nothing else is deploying to it, and its container is where the config
//! says. A refusal here happens before any service of the run is touched.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::{DeploymentControllerType, Service};

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
    env: &Environment,
    cfg: &ServiceConfig,
    image: &str,
    opts: &DeployOptions,
) -> Result<Prepared> {
    let mut svc = ecs::describe_service(client, &cfg.cluster, &cfg.service).await?;
    check_controller(&svc, cfg)?;
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
        let deadline = Instant::now() + IDLE_WAIT;
        let mut poll = Poll::with(Duration::from_secs(1), Duration::from_secs(5));
        while let Some(b) = in_flight(&ServiceView::from_sdk(&svc)) {
            if Instant::now() > deadline {
                return Err(Failure::refused(format!(
                    "service {}/{} stayed busy for an hour: {b}",
                    cfg.cluster, cfg.service
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
    if ecs::container_image(&td, &cfg.container).is_none() {
        // render() gives the full message, with the container names.
        taskdef::render(client, &td, &tags, &cfg.container, image, &[])
            .map_err(|e| Failure::invalid(format!("{e}")))?;
    }
    let already = ecs::container_image(&td, &cfg.container) == Some(image);
    let (timeout, timeout_why) =
        timeout::rollout_timeout(&svc, &td, env.file.deploy.rollout_timeout_seconds);
    let (derived, _) = timeout::rollout_timeout(&svc, &td, None);
    Ok(Prepared {
        cfg: cfg.clone(),
        previous_td,
        td,
        tags,
        already,
        timeout,
        timeout_why,
        rollback_timeout: derived.max(timeout),
        known_events: event_ids(&svc),
        known_deployments: svc
            .deployments()
            .iter()
            .filter_map(|d| d.id())
            .map(str::to_string)
            .collect(),
    })
}

/// Blue/green (CodeDeploy) and external controllers ignore `UpdateService`'s task definition.
fn check_controller(svc: &Service, cfg: &ServiceConfig) -> Result<()> {
    if let Some(kind) = svc.deployment_controller().map(|c| c.r#type()) {
        if *kind != DeploymentControllerType::Ecs {
            return Err(Failure::invalid(format!(
                "service {}/{} uses the {} deployment controller; ferry deploys services with the ECS (rolling update) controller",
                cfg.cluster,
                cfg.service,
                kind.as_str()
            ))
            .hint("deploy this service with its own controller (e.g. CodeDeploy), or remove it from the environment's [[services]]")
            .into());
        }
    }
    Ok(())
}

/// The ids of the service's events.
pub fn event_ids(svc: &Service) -> HashSet<String> {
    svc.events()
        .iter()
        .filter_map(|e| e.id())
        .map(str::to_string)
        .collect()
}
