//! The ECS calls ferry makes, one thin wrapper each: every error names the operation and the
//! resource (see [`super::AwsResultExt`]), and nothing here decides anything.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{
    CreatedAt, DesiredStatus, Service, ServiceDeployment, ServiceDeploymentBrief,
    StopServiceDeploymentStopType, Tag, Task, TaskDefinition, TaskDefinitionField,
};
use aws_smithy_types::DateTime;

use super::batch::Batcher;
use super::AwsResultExt;
use crate::error::Failure;

/// Tag ferry puts on every revision it registers: the release tag (`v1.4.0`).
pub const TAG_RELEASE: &str = "ferry:release";
/// Tag: the release's version (`1.4.0`).
pub const TAG_VERSION: &str = "ferry:version";
/// Tag: the image digest the revision pins.
pub const TAG_DIGEST: &str = "ferry:digest";
/// Tag: the commit the release was built from.
pub const TAG_COMMIT: &str = "ferry:commit";

/// `family:revision` of a task-definition ARN.
pub fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The value of tag `key`.
pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The release a task definition belongs to, from the tag ferry put on it.
pub fn release_of(tags: &[Tag]) -> Option<&str> {
    tag_value(tags, TAG_RELEASE)
}

/// The image of `container` in `td`.
pub fn container_image<'a>(td: &'a TaskDefinition, container: &str) -> Option<&'a str> {
    td.container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .and_then(|c| c.image())
}

/// The ACTIVE service `cluster`/`service`, or `None` when it (or its cluster) does not exist.
pub async fn find_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Option<Service>> {
    let res = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await;
    if let Err(e) = &res {
        if e.as_service_error()
            .is_some_and(|s| s.is_cluster_not_found_exception())
        {
            return Ok(None);
        }
    }
    let out = res.aws("ecs:DescribeServices", format!("{cluster}/{service}"))?;
    Ok(out
        .services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE"))
        .cloned())
}

/// The ACTIVE service `cluster`/`service`; its absence is invalid configuration (exit 2).
pub async fn describe_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Service> {
    find_service(ecs, cluster, service).await?.ok_or_else(|| {
        Failure::invalid(format!("ECS service {cluster}/{service} does not exist or is not ACTIVE"))
            .hint("create the service first (ferry deploys to existing services), or fix [[services]] in the environment file")
            .into()
    })
}

/// The task definition `arn` with its tags.
pub async fn describe_task_definition(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
) -> Result<(TaskDefinition, Vec<Tag>)> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .aws("ecs:DescribeTaskDefinition", arn)?;
    let td = out
        .task_definition()
        .cloned()
        .ok_or_else(|| anyhow!("ecs:DescribeTaskDefinition {arn} returned nothing"))?;
    Ok((td, out.tags().to_vec()))
}

/// `UpdateService` to `task_definition` (a full ARN); returns the service as ECS answered,
/// the only read that is certain to include the new deployment.
pub async fn update_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<Service> {
    let out = ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .send()
        .await
        .aws("ecs:UpdateService", format!("{cluster}/{service}"))?;
    out.service()
        .cloned()
        .ok_or_else(|| anyhow!("ecs:UpdateService {cluster}/{service} returned no service"))
}

/// Service deployments of `cluster`/`service` created after `since`, newest first.
pub async fn list_service_deployments(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    since: SystemTime,
) -> Result<Vec<ServiceDeploymentBrief>> {
    let out = ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .created_at(CreatedAt::builder().after(DateTime::from(since)).build())
        .send()
        .await
        .aws("ecs:ListServiceDeployments", format!("{cluster}/{service}"))?;
    Ok(out.service_deployments().to_vec())
}

/// The reads that follow rollouts, shared by the services of one environment followed side
/// by side so that they go out batched (`super::batch`): a service's read joins the other
/// services of its cluster in one `DescribeServices`, a service deployment's the others in one
/// `DescribeServiceDeployments`. What a batch does not answer is asked alone.
#[derive(Clone)]
pub struct Reads {
    client: aws_sdk_ecs::Client,
    services: Arc<Batcher<DescribeServicesOutput>>,
    deployments: Arc<Batcher<DescribeServiceDeploymentsOutput>>,
}

impl Reads {
    /// Reads through `client` (one environment's account and region).
    pub fn new(client: &aws_sdk_ecs::Client) -> Self {
        Reads {
            client: client.clone(),
            // The API's limits: 10 services, 20 service deployments per call.
            services: Arc::new(Batcher::new(10)),
            deployments: Arc::new(Batcher::new(20)),
        }
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_ecs::Client {
        &self.client
    }

    /// [`describe_service`], batched with the other services of `cluster`.
    pub async fn service(&self, cluster: &str, service: &str) -> Result<Service> {
        let (client, c) = (self.client.clone(), cluster.to_string());
        let batch = self
            .services
            .read(cluster, service, |names| async move {
                let call = client
                    .describe_services()
                    .cluster(c)
                    .set_services(Some(names));
                call.send().await.ok()
            })
            .await;
        let name = service.rsplit('/').next().unwrap_or(service);
        let found = batch.and_then(|out| {
            out.services()
                .iter()
                .find(|s| s.service_name() == Some(name) && s.status() == Some("ACTIVE"))
                .cloned()
        });
        match found {
            Some(s) => Ok(s),
            None => describe_service(&self.client, cluster, service).await,
        }
    }

    /// [`describe_service_deployment`], batched with the other service deployments read now.
    pub async fn service_deployment(&self, arn: &str) -> Result<Option<ServiceDeployment>> {
        let client = self.client.clone();
        let batch = self
            .deployments
            .read("", arn, |arns| async move {
                let call = client
                    .describe_service_deployments()
                    .set_service_deployment_arns(Some(arns));
                call.send().await.ok()
            })
            .await;
        if let Some(out) = batch {
            let mine = |a: Option<&str>| a == Some(arn);
            if let Some(sd) = out
                .service_deployments()
                .iter()
                .find(|d| mine(d.service_deployment_arn()))
            {
                return Ok(Some(sd.clone()));
            }
            // Not known (yet), as a call of its own would say.
            if out
                .failures()
                .iter()
                .any(|f| mine(f.arn()) && f.reason() == Some("MISSING"))
            {
                return Ok(None);
            }
        }
        describe_service_deployment(&self.client, arn).await
    }
}

/// One service deployment by ARN; `None` when ECS does not (yet) know it.
pub async fn describe_service_deployment(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
) -> Result<Option<ServiceDeployment>> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .aws("ecs:DescribeServiceDeployments", arn)?;
    Ok(out.service_deployments().first().cloned())
}

/// The task definitions a service revision runs.
pub async fn service_revision_task_definitions(
    ecs: &aws_sdk_ecs::Client,
    revision_arn: &str,
) -> Result<Vec<String>> {
    let out = ecs
        .describe_service_revisions()
        .service_revision_arns(revision_arn)
        .send()
        .await
        .aws("ecs:DescribeServiceRevisions", revision_arn)?;
    Ok(out
        .service_revisions()
        .iter()
        .filter_map(|r| r.task_definition().map(str::to_string))
        .collect())
}

/// `ContinueServiceDeployment`: go on past the PAUSE hook `hook_id` (`rollback`: roll back instead).
pub async fn continue_service_deployment(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    hook_id: &str,
    rollback: bool,
) -> Result<()> {
    use aws_sdk_ecs::types::DeploymentLifecycleHookAction as A;
    ecs.continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook_id)
        .action(if rollback { A::Rollback } else { A::Continue })
        .send()
        .await
        .aws("ecs:ContinueServiceDeployment", arn)?;
    Ok(())
}

/// `StopServiceDeployment` with `ROLLBACK`.
pub async fn stop_with_rollback(ecs: &aws_sdk_ecs::Client, arn: &str) -> Result<()> {
    ecs.stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .aws("ecs:StopServiceDeployment", arn)?;
    Ok(())
}

/// Up to 100 stopped tasks of the service, described.
pub async fn stopped_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Vec<Task>> {
    let listed = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .aws("ecs:ListTasks", format!("{cluster}/{service}"))?;
    let arns: Vec<String> = listed.task_arns().iter().take(100).cloned().collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .aws("ecs:DescribeTasks", format!("{cluster}/{service}"))?;
    Ok(out.tasks().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(
            short_td("arn:aws:ecs:us-east-1:1:task-definition/web:7"),
            "web:7"
        );
        let tags = vec![
            Tag::builder().key("team").value("shop").build(),
            Tag::builder().key(TAG_RELEASE).value("v1.0.0").build(),
        ];
        assert_eq!(release_of(&tags), Some("v1.0.0"));
        assert_eq!(tag_value(&tags, TAG_DIGEST), None);
    }
}
