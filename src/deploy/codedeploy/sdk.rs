//! CodeDeploy's answers, as read through the thin wrappers in `aws::codedeploy`, turned into
//! the plain views `deploy::bluegreen` decides on (the way `deploy::judge::ServiceView` is made
//! from ECS's `Service`).

use anyhow::Result;
use aws_sdk_codedeploy::types::{
    DeploymentGroupInfo, DeploymentInfo, DeploymentReadyAction, EcsTarget, TrafficRoutingConfig,
    TrafficRoutingType,
};
use aws_sdk_codedeploy::Client;

use crate::aws::codedeploy as api;
use crate::deploy::bluegreen::{
    DeploymentView, EventView, ReadyOption, Routing, TargetView, TaskSetView,
};

/// The deployment `id`, as a view.
pub(super) async fn deployment(cd: &Client, id: &str) -> Result<DeploymentView> {
    Ok(DeploymentView::from_sdk(
        id,
        &api::get_deployment(cd, id).await?,
    ))
}

/// The deployment's ECS target (`cluster:service`), as a view; `None` before it started.
pub(super) async fn target(cd: &Client, id: &str, target: &str) -> Result<Option<TargetView>> {
    Ok(api::get_target(cd, id, target)
        .await?
        .as_ref()
        .map(TargetView::from_sdk))
}

/// How the named deployment configuration moves traffic.
pub(super) async fn routing(cd: &Client, config: &str) -> Result<Routing> {
    Ok(Routing::from_sdk(
        api::traffic_routing(cd, config).await?.as_ref(),
    ))
}

impl ReadyOption {
    /// The group's "wait before rerouting" option.
    pub fn from_sdk(g: &DeploymentGroupInfo) -> Self {
        let r = g
            .blue_green_deployment_configuration()
            .and_then(|b| b.deployment_ready_option());
        ReadyOption {
            stop: r.and_then(|r| r.action_on_timeout())
                == Some(&DeploymentReadyAction::StopDeployment),
            wait_minutes: r.map_or(0, |r| r.wait_time_in_minutes()),
        }
    }
}

impl Routing {
    /// How a deployment configuration's traffic routing moves traffic (none: all at once).
    pub fn from_sdk(trc: Option<&TrafficRoutingConfig>) -> Self {
        match trc.and_then(|t| t.r#type()) {
            Some(TrafficRoutingType::TimeBasedCanary) => {
                let c = trc.and_then(|t| t.time_based_canary());
                Routing::Canary {
                    percent: c.map_or(0, |c| c.canary_percentage()),
                    minutes: c.map_or(0, |c| c.canary_interval()),
                }
            }
            Some(TrafficRoutingType::TimeBasedLinear) => {
                let c = trc.and_then(|t| t.time_based_linear());
                Routing::Linear {
                    percent: c.map_or(0, |c| c.linear_percentage()),
                    minutes: c.map_or(0, |c| c.linear_interval()),
                }
            }
            _ => Routing::AllAtOnce,
        }
    }
}

impl DeploymentView {
    /// The deployment `id` as `GetDeployment` answered.
    pub fn from_sdk(id: &str, d: &DeploymentInfo) -> Self {
        DeploymentView {
            id: id.to_string(),
            status: d
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            error: d.error_information().map(|e| {
                (
                    e.code().map(|c| c.as_str().to_string()).unwrap_or_default(),
                    e.message().unwrap_or_default().to_string(),
                )
            }),
            rollback_id: d
                .rollback_info()
                .and_then(|r| r.rollback_deployment_id())
                .map(str::to_string),
            termination_wait: d.instance_termination_wait_time_started(),
        }
    }
}

impl TargetView {
    /// The ECS deployment target as `GetDeploymentTarget` answered.
    pub fn from_sdk(t: &EcsTarget) -> Self {
        TargetView {
            events: t
                .lifecycle_events()
                .iter()
                .map(|e| EventView {
                    name: e.lifecycle_event_name().unwrap_or_default().to_string(),
                    status: e
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    message: e
                        .diagnostics()
                        .and_then(|d| d.message())
                        .filter(|m| !m.is_empty())
                        .map(str::to_string),
                })
                .collect(),
            task_sets: t
                .task_sets_info()
                .iter()
                .map(|s| TaskSetView {
                    label: s
                        .task_set_label()
                        .map(|l| l.as_str().to_string())
                        .unwrap_or_default(),
                    weight: s.traffic_weight(),
                    running: s.running_count(),
                    desired: s.desired_count(),
                })
                .collect(),
        }
    }
}
