//! What `status` shows of a blue/green service: how it is deployed (CodeDeploy or an
//! ECS-native strategy) and a release in flight with its traffic split.

use std::time::SystemTime;

use aws_sdk_ecs::types::Service;

use super::{find_target, sdk};
use crate::aws::codedeploy as api;
use crate::config::ServiceConfig;
use crate::deploy::bluegreen;

/// How a service is deployed now, and a blue/green release in flight with its traffic split,
/// for `status`. Best effort: what cannot be read is left out.
pub async fn live(
    sdk: &aws_config::SdkConfig,
    ecs: &aws_sdk_ecs::Client,
    svc: &Service,
    cfg: &ServiceConfig,
) -> (Option<String>, Option<bluegreen::InFlight>) {
    use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentStrategy};
    if svc.deployment_controller().map(|c| c.r#type())
        == Some(&DeploymentControllerType::CodeDeploy)
    {
        let strategy = Some("CODE_DEPLOY".to_string());
        if svc.task_sets().len() < 2 {
            return (strategy, None);
        }
        let cd = aws_sdk_codedeploy::Client::new(sdk);
        let in_flight = async {
            let t = find_target(&cd, svc, cfg, false).await?;
            let Some(id) = api::active_deployments(&cd, &t.application, &t.group)
                .await?
                .into_iter()
                .next()
            else {
                return anyhow::Ok(None);
            };
            let d = sdk::deployment(&cd, &id).await?;
            let target = sdk::target(&cd, &id, &format!("{}:{}", cfg.cluster, cfg.service))
                .await
                .ok()
                .flatten();
            Ok(Some(bluegreen::InFlight {
                deployment: id,
                status: d.status,
                replacement_weight: target.map(|t| t.replacement_weight()),
                stage: None,
            }))
        };
        return (strategy, in_flight.await.ok().flatten());
    }
    let strategy = svc
        .deployment_configuration()
        .and_then(|d| d.strategy())
        .filter(|s| **s != DeploymentStrategy::Rolling)
        .map(|s| s.as_str().to_string());
    if strategy.is_none() || svc.deployments().len() < 2 {
        return (strategy, None);
    }
    let in_flight = async {
        let briefs = crate::aws::ecs::list_service_deployments(
            ecs,
            &cfg.cluster,
            &cfg.service,
            SystemTime::UNIX_EPOCH,
        )
        .await?;
        for b in briefs {
            let Some(arn) = b.service_deployment_arn() else {
                continue;
            };
            if let Some(sd) = crate::aws::ecs::describe_service_deployment(ecs, arn).await? {
                let status = sd
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                if matches!(
                    status.as_str(),
                    "PENDING"
                        | "IN_PROGRESS"
                        | "ROLLBACK_REQUESTED"
                        | "ROLLBACK_IN_PROGRESS"
                        | "STOP_REQUESTED"
                ) {
                    return anyhow::Ok(Some(bluegreen::InFlight {
                        deployment: arn.to_string(),
                        status,
                        replacement_weight: None,
                        stage: sd.lifecycle_stage().map(|s| s.as_str().to_string()),
                    }));
                }
            }
        }
        Ok(None)
    };
    (strategy, in_flight.await.ok().flatten())
}
