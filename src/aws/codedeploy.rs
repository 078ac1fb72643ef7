//! The CodeDeploy calls ferry makes for ECS blue/green, one thin wrapper each: every error
//! names the operation and the resource (see [`super::AwsResultExt`]); the answers become the
//! plain views `deploy::bluegreen` decides on.

use anyhow::{anyhow, Result};
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentGroupInfo, DeploymentReadyAction, DeploymentWaitType,
    RevisionLocation, RevisionLocationType, TrafficRoutingType,
};
use aws_sdk_codedeploy::Client;

use super::AwsResultExt;
use crate::deploy::bluegreen::{
    DeploymentView, EventView, ReadyOption, Routing, TargetView, TaskSetView,
};

/// Most pages of applications or deployment groups read while searching (100 names each).
const MAX_PAGES: usize = 20;

/// Every application name (bounded).
pub async fn list_applications(cd: &Client) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let page = cd
            .list_applications()
            .set_next_token(token)
            .send()
            .await
            .aws("codedeploy:ListApplications", "")?;
        out.extend(page.applications().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Every deployment group of `app`, described (bounded).
pub async fn deployment_groups(cd: &Client, app: &str) -> Result<Vec<DeploymentGroupInfo>> {
    let mut names = Vec::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let page = cd
            .list_deployment_groups()
            .application_name(app)
            .set_next_token(token)
            .send()
            .await
            .aws("codedeploy:ListDeploymentGroups", app)?;
        names.extend(page.deployment_groups().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for chunk in names.chunks(100) {
        let got = cd
            .batch_get_deployment_groups()
            .application_name(app)
            .set_deployment_group_names(Some(chunk.to_vec()))
            .send()
            .await
            .aws("codedeploy:BatchGetDeploymentGroups", app)?;
        out.extend(got.deployment_groups_info().iter().cloned());
    }
    Ok(out)
}

/// One deployment group.
pub async fn deployment_group(cd: &Client, app: &str, group: &str) -> Result<DeploymentGroupInfo> {
    cd.get_deployment_group()
        .application_name(app)
        .deployment_group_name(group)
        .send()
        .await
        .aws("codedeploy:GetDeploymentGroup", format!("{app}/{group}"))?
        .deployment_group_info()
        .cloned()
        .ok_or_else(|| anyhow!("codedeploy:GetDeploymentGroup {app}/{group} answered no group"))
}

/// Whether `g` deploys `cluster`/`service`.
pub fn names_service(g: &DeploymentGroupInfo, cluster: &str, service: &str) -> bool {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    g.ecs_services().iter().any(|s| {
        s.service_name().map(last).as_deref() == Some(service)
            && s.cluster_name().map(last).as_deref() == Some(cluster)
    })
}

/// The group's "wait before rerouting" option.
pub fn ready_option(g: &DeploymentGroupInfo) -> ReadyOption {
    let r = g
        .blue_green_deployment_configuration()
        .and_then(|b| b.deployment_ready_option());
    ReadyOption {
        stop: r.and_then(|r| r.action_on_timeout()) == Some(&DeploymentReadyAction::StopDeployment),
        wait_minutes: r.map_or(0, |r| r.wait_time_in_minutes()),
    }
}

/// Minutes the original task set waits before its termination.
pub fn termination_wait_minutes(g: &DeploymentGroupInfo) -> i32 {
    g.blue_green_deployment_configuration()
        .and_then(|b| b.terminate_blue_instances_on_deployment_success())
        .map_or(0, |t| t.termination_wait_time_in_minutes())
}

/// How the named deployment configuration moves traffic.
pub async fn routing(cd: &Client, config: &str) -> Result<Routing> {
    let out = cd
        .get_deployment_config()
        .deployment_config_name(config)
        .send()
        .await
        .aws("codedeploy:GetDeploymentConfig", config)?;
    let trc = out
        .deployment_config_info()
        .and_then(|i| i.traffic_routing_config());
    Ok(match trc.and_then(|t| t.r#type()) {
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
    })
}

/// Creates a deployment of `appspec` (JSON); returns its id.
pub async fn create_deployment(
    cd: &Client,
    app: &str,
    group: &str,
    appspec: &str,
    description: &str,
) -> Result<String> {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(appspec.as_bytes()));
    let out = cd
        .create_deployment()
        .application_name(app)
        .deployment_group_name(group)
        .description(description)
        .revision(
            RevisionLocation::builder()
                .revision_type(RevisionLocationType::AppSpecContent)
                .app_spec_content(
                    AppSpecContent::builder()
                        .content(appspec)
                        .sha256(sha)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .aws("codedeploy:CreateDeployment", format!("{app}/{group}"))?;
    out.deployment_id().map(str::to_string).ok_or_else(|| {
        anyhow!("codedeploy:CreateDeployment {app}/{group} answered no deployment id")
    })
}

/// The deployment, as a view.
pub async fn get_deployment(cd: &Client, id: &str) -> Result<DeploymentView> {
    let out = cd
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .aws("codedeploy:GetDeployment", id)?;
    let d = out
        .deployment_info()
        .ok_or_else(|| anyhow!("codedeploy:GetDeployment {id} answered no deployment"))?;
    Ok(DeploymentView {
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
    })
}

/// The deployment's ECS target (`cluster:service`), as a view; `None` before it started.
pub async fn get_target(cd: &Client, id: &str, target: &str) -> Result<Option<TargetView>> {
    let out = match cd
        .get_deployment_target()
        .deployment_id(id)
        .target_id(target)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_deployment_not_started_exception()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).aws("codedeploy:GetDeploymentTarget", format!("{id} {target}")),
    };
    let Some(t) = out.deployment_target().and_then(|t| t.ecs_target()) else {
        return Ok(None);
    };
    Ok(Some(TargetView {
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
    }))
}

/// Reroutes production traffic now (`READY_WAIT`).
pub async fn continue_deployment(cd: &Client, id: &str) -> Result<()> {
    cd.continue_deployment()
        .deployment_id(id)
        .deployment_wait_type(DeploymentWaitType::ReadyWait)
        .send()
        .await
        .aws("codedeploy:ContinueDeployment", id)?;
    Ok(())
}

/// Stops the deployment with CodeDeploy's rollback.
pub async fn stop_with_rollback(cd: &Client, id: &str) -> Result<()> {
    cd.stop_deployment()
        .deployment_id(id)
        .auto_rollback_enabled(true)
        .send()
        .await
        .aws("codedeploy:StopDeployment", id)?;
    Ok(())
}

/// The group's deployments that have not ended, newest first.
pub async fn active_deployments(cd: &Client, app: &str, group: &str) -> Result<Vec<String>> {
    use aws_sdk_codedeploy::types::DeploymentStatus as S;
    let out = cd
        .list_deployments()
        .application_name(app)
        .deployment_group_name(group)
        .set_include_only_statuses(Some(vec![
            S::Created,
            S::Queued,
            S::InProgress,
            S::Ready,
            S::Baking,
        ]))
        .send()
        .await
        .aws("codedeploy:ListDeployments", format!("{app}/{group}"))?;
    Ok(out.deployments().to_vec())
}
