//! What `ferry deploy` would change on each service, read live and rendered without
//! registering anything: the task-definition diff, the strategy and its timeouts, a
//! deployment in flight. `ferry plan` shows it.

use anyhow::Result;
use serde::Serialize;

use super::taskdef::{self, FieldChange};
use crate::aws::ecs;
use crate::config::Environment;

/// What `ferry deploy` would change on one service, for `ferry plan`.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePreview {
    /// ECS cluster.
    pub cluster: String,
    /// ECS service.
    pub service: String,
    /// The revision the service runs now.
    pub current_task_definition: String,
    /// The release of that revision, when ferry deployed it.
    pub current_release: Option<String>,
    /// Field changes of the revision deploy would register (empty: already runs the image).
    pub changes: Vec<FieldChange>,
    /// A deployment in flight that would make `deploy` refuse.
    pub in_flight: Option<String>,
    /// How long deploy would follow the rollout.
    pub rollout_timeout_seconds: u64,
    /// How long a rollback of this service may take (kept free before the run deadline).
    pub rollback_timeout_seconds: u64,
    /// The strategy deploy would run, and what it waits for.
    #[serde(skip_serializing_if = "super::bluegreen::Strategy::is_rolling")]
    pub strategy: super::bluegreen::Strategy,
    /// What the preflight checklist finds on the service (`super::preflight`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<super::preflight::Finding>,
}

/// Reads each service and renders the revision `deploy` would register, without registering it.
pub async fn preview(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    pins: &[super::taskdef::Pins],
    ferry_tags: &[(&str, String)],
) -> Result<Vec<ServicePreview>> {
    let client = crate::aws::sts::ecs_client(sdk);
    let mutability = super::preflight::repository_mutability(sdk, env).await;
    let mut out = Vec::new();
    for (cfg, pins) in env.file.services.iter().zip(pins) {
        let svc = ecs::describe_service(&client, &cfg.cluster, &cfg.service).await?;
        let current = svc.task_definition().unwrap_or_default().to_string();
        let (td, td_tags) = ecs::describe_task_definition(&client, &current).await?;
        let (_, changes) = taskdef::render(&client, &td, &td_tags, pins, ferry_tags)?;
        let already = pins.runs(&td);
        let (mut timeout, _) =
            super::timeout::rollout_timeout(&svc, &td, env.file.deploy.rollout_timeout_seconds);
        let (derived, _) = super::timeout::rollout_timeout(&svc, &td, None);
        let strategy = super::prepare::strategy(sdk, env, cfg, &svc, &td).await;
        if let Some(t) = strategy.1 {
            timeout = t;
        }
        let strategy = strategy.0;
        let preflight = super::preflight::for_service(env, cfg, &svc, &td, mutability.as_ref());
        out.push(ServicePreview {
            cluster: cfg.cluster.clone(),
            service: cfg.service.clone(),
            current_release: ecs::release_of(&td_tags).map(str::to_string),
            current_task_definition: current,
            changes: if already { Vec::new() } else { changes },
            in_flight: super::judge::in_flight(&super::judge::ServiceView::from_sdk(&svc)),
            rollout_timeout_seconds: timeout.as_secs(),
            rollback_timeout_seconds: super::prepare::rollback_timeout(&svc, derived, timeout)
                .as_secs(),
            strategy,
            preflight,
        });
    }
    Ok(out)
}
