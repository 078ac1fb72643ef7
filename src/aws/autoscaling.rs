//! The Application Auto Scaling calls ferry makes: an ECS service's scalable target
//! (`ecs:service:DesiredCount`), its suspended state, and the tag that marks a hold ferry made
//! (`crate::deploy::hold` decides what to suspend and restore).

use std::collections::HashMap;

use anyhow::Result;
use aws_config::SdkConfig;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};

use super::AwsResultExt;

/// Which of a target's scaling processes are suspended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suspended {
    /// Dynamic scale-in (target tracking and step policies removing tasks).
    pub scale_in: bool,
    /// Dynamic scale-out.
    pub scale_out: bool,
    /// Scheduled actions.
    pub scheduled: bool,
}

/// An ECS service's scalable target, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `service/<cluster>/<service>`.
    pub resource_id: String,
    /// Its ARN (for tags), when the API gave one.
    pub arn: Option<String>,
    /// What is suspended now.
    pub suspended: Suspended,
}

/// The resource id of an ECS service's scalable target.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// An Application Auto Scaling client for `sdk` (endpoint:
/// `AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING`), retrying bare 429s and reporting an
/// unreachable endpoint like the other clients.
pub fn client(sdk: &SdkConfig) -> aws_sdk_applicationautoscaling::Client {
    aws_sdk_applicationautoscaling::Client::from_conf(
        aws_sdk_applicationautoscaling::config::Builder::from(sdk)
            .retry_classifier(super::sts::BareThrottling)
            .interceptor(super::reach::Reach)
            .build(),
    )
}

/// The service's scalable target, `None` when it has none (the service does not scale).
pub async fn target(
    client: &aws_sdk_applicationautoscaling::Client,
    cluster: &str,
    service: &str,
) -> Result<Option<Target>> {
    let id = resource_id(cluster, service);
    let out = client
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(&id)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .aws("application-autoscaling:DescribeScalableTargets", &id)?;
    Ok(out
        .scalable_targets()
        .iter()
        .find(|t| t.resource_id() == id)
        .map(|t| {
            let s = t.suspended_state();
            Target {
                resource_id: id.clone(),
                arn: t.scalable_target_arn().map(str::to_string),
                suspended: Suspended {
                    scale_in: s.and_then(|s| s.dynamic_scaling_in_suspended()) == Some(true),
                    scale_out: s.and_then(|s| s.dynamic_scaling_out_suspended()) == Some(true),
                    scheduled: s.and_then(|s| s.scheduled_scaling_suspended()) == Some(true),
                },
            }
        }))
}

/// Sets the target's suspended state (`RegisterScalableTarget` is an upsert: the capacity
/// bounds and the role are kept).
pub async fn set_suspended(
    client: &aws_sdk_applicationautoscaling::Client,
    resource_id: &str,
    s: Suspended,
) -> Result<()> {
    client
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(resource_id)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .suspended_state(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(s.scale_in)
                .dynamic_scaling_out_suspended(s.scale_out)
                .scheduled_scaling_suspended(s.scheduled)
                .build(),
        )
        .send()
        .await
        .aws(
            "application-autoscaling:RegisterScalableTarget",
            resource_id,
        )?;
    Ok(())
}

/// The target's tags.
pub async fn tags(
    client: &aws_sdk_applicationautoscaling::Client,
    arn: &str,
) -> Result<HashMap<String, String>> {
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .aws("application-autoscaling:ListTagsForResource", arn)?;
    Ok(out.tags().cloned().unwrap_or_default())
}

/// Sets one tag on the target.
pub async fn tag(
    client: &aws_sdk_applicationautoscaling::Client,
    arn: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    client
        .tag_resource()
        .resource_arn(arn)
        .tags(key, value)
        .send()
        .await
        .aws("application-autoscaling:TagResource", arn)?;
    Ok(())
}

/// Removes one tag from the target.
pub async fn untag(
    client: &aws_sdk_applicationautoscaling::Client,
    arn: &str,
    key: &str,
) -> Result<()> {
    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys(key)
        .send()
        .await
        .aws("application-autoscaling:UntagResource", arn)?;
    Ok(())
}
