//! The CodeDeploy calls ferry makes for ECS blue/green, one thin wrapper each: every error
//! names the operation and the resource (see [`super::AwsResultExt`]). The answers are the
//! SDK's own types; `deploy` turns them into the views it decides on.

use anyhow::{anyhow, Result};
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentGroupInfo, DeploymentInfo, DeploymentWaitType, EcsTarget,
    RevisionLocation, RevisionLocationType, TrafficRoutingConfig,
};
use aws_sdk_codedeploy::Client;

use super::AwsResultExt;

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

/// Minutes the original task set waits before its termination.
pub fn termination_wait_minutes(g: &DeploymentGroupInfo) -> i32 {
    g.blue_green_deployment_configuration()
        .and_then(|b| b.terminate_blue_instances_on_deployment_success())
        .map_or(0, |t| t.termination_wait_time_in_minutes())
}

/// How the named deployment configuration moves traffic (`None`: all at once).
pub async fn traffic_routing(cd: &Client, config: &str) -> Result<Option<TrafficRoutingConfig>> {
    let out = cd
        .get_deployment_config()
        .deployment_config_name(config)
        .send()
        .await
        .aws("codedeploy:GetDeploymentConfig", config)?;
    Ok(out
        .deployment_config_info()
        .and_then(|i| i.traffic_routing_config())
        .cloned())
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

/// The deployment.
pub async fn get_deployment(cd: &Client, id: &str) -> Result<DeploymentInfo> {
    let out = cd
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .aws("codedeploy:GetDeployment", id)?;
    out.deployment_info()
        .cloned()
        .ok_or_else(|| anyhow!("codedeploy:GetDeployment {id} answered no deployment"))
}

/// The deployment's ECS target (`cluster:service`); `None` before it started.
pub async fn get_target(cd: &Client, id: &str, target: &str) -> Result<Option<EcsTarget>> {
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
    Ok(out
        .deployment_target()
        .and_then(|t| t.ecs_target())
        .cloned())
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
