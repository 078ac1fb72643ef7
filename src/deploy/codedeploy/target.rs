//! Which CodeDeploy deployment group deploys a service and what it will do (`find_target`, read
//! by `prepare`), and the AppSpec a deployment of a revision sends (`appspec`).

use anyhow::Result;
use aws_sdk_ecs::types::Service;

use super::{sdk, Target};
use crate::aws::codedeploy as api;
use crate::config::ServiceConfig;
use crate::deploy::bluegreen::{self, ReadyOption};
use crate::error::Failure;

/// Finds the deployment group that deploys `svc` and reads what it will do; refuses what
/// ferry cannot drive safely.
pub async fn find_target(
    cd: &aws_sdk_codedeploy::Client,
    svc: &Service,
    cfg: &ServiceConfig,
    has_test_checks: bool,
) -> Result<Target> {
    let name = format!("{}/{}", cfg.cluster, cfg.service);
    let lb = svc.load_balancers().first().ok_or_else(|| {
        Failure::invalid(format!(
            "service {name} uses the CODE_DEPLOY deployment controller but has no load balancer"
        ))
        .hint("a CodeDeploy blue/green service needs a load balancer with two target groups")
    })?;
    let (Some(container), Some(port)) = (lb.container_name(), lb.container_port()) else {
        return Err(Failure::invalid(format!(
            "service {name}: its load balancer names no container name and port for the AppSpec"
        ))
        .into());
    };
    let cdc = cfg.codedeploy.clone().unwrap_or_default();
    let group = match (&cdc.application, &cdc.deployment_group) {
        (Some(app), Some(group)) => {
            let g = api::deployment_group(cd, app, group).await?;
            if !api::names_service(&g, &cfg.cluster, &cfg.service) {
                return Err(Failure::invalid(format!(
                    "deployment group {app}/{group} (services.codedeploy) does not deploy {name}"
                ))
                .hint("name the deployment group whose ecsServices lists this service")
                .into());
            }
            g
        }
        _ => {
            let mut found = Vec::new();
            for app in api::list_applications(cd).await? {
                for g in api::deployment_groups(cd, &app).await? {
                    if api::names_service(&g, &cfg.cluster, &cfg.service) {
                        found.push(g);
                    }
                }
            }
            match found.len() {
                1 => found.remove(0),
                0 => {
                    return Err(Failure::invalid(format!(
                        "service {name} uses the CODE_DEPLOY deployment controller, but no CodeDeploy deployment group names it"
                    ))
                    .hint("create the deployment group (ecsServices = this service), or name it in [services.codedeploy] application/deployment_group")
                    .into())
                }
                _ => {
                    let names: Vec<String> = found
                        .iter()
                        .map(|g| {
                            format!(
                                "{}/{}",
                                g.application_name().unwrap_or("?"),
                                g.deployment_group_name().unwrap_or("?")
                            )
                        })
                        .collect();
                    return Err(Failure::invalid(format!(
                        "service {name}: several CodeDeploy deployment groups name it: {}",
                        names.join(", ")
                    ))
                    .hint("choose one in [services.codedeploy] application/deployment_group")
                    .into());
                }
            }
        }
    };
    let application = group.application_name().unwrap_or_default().to_string();
    let group_name = group
        .deployment_group_name()
        .unwrap_or_default()
        .to_string();
    let config = group
        .deployment_config_name()
        .unwrap_or("CodeDeployDefault.ECSAllAtOnce")
        .to_string();
    let ready = ReadyOption::from_sdk(&group);
    if let Some(why) = bluegreen::refuse_without_hold(ready, has_test_checks) {
        return Err(Failure::invalid(format!(
            "service {name}: deployment group {application}/{group_name}: {why}"
        ))
        .hint("set the group's deploymentReadyOption to STOP_DEPLOYMENT with a wait time (ferry continues the deployment once the checks pass), or remove test_url")
        .into());
    }
    let routing = sdk::routing(cd, &config).await?;
    Ok(Target {
        application,
        group: group_name,
        config,
        routing,
        ready,
        termination_wait_minutes: api::termination_wait_minutes(&group),
        container: container.to_string(),
        port,
        capacity_providers: svc
            .capacity_provider_strategy()
            .iter()
            .map(|c| (c.capacity_provider().to_string(), c.weight(), c.base()))
            .collect(),
        hooks: cdc.hooks.into_iter().collect(),
    })
}

/// The ECS AppSpec (JSON, which is YAML too) for `td`.
pub fn appspec(target: &Target, td: &str) -> String {
    let mut props = serde_json::json!({
        "TaskDefinition": td,
        "LoadBalancerInfo": {"ContainerName": target.container, "ContainerPort": target.port},
    });
    if !target.capacity_providers.is_empty() {
        props["CapacityProviderStrategy"] = target
            .capacity_providers
            .iter()
            .map(|(p, w, b)| serde_json::json!({"CapacityProvider": p, "Weight": w, "Base": b}))
            .collect();
    }
    let mut spec = serde_json::json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": props}}],
    });
    if !target.hooks.is_empty() {
        spec["Hooks"] = target
            .hooks
            .iter()
            .map(|(e, f)| serde_json::json!({ e.as_str(): f }))
            .collect();
    }
    spec.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::bluegreen::Routing;

    fn target(hooks: Vec<(String, String)>, capacity: Vec<(String, i32, i32)>) -> Target {
        Target {
            application: "shop".into(),
            group: "web".into(),
            config: "CodeDeployDefault.ECSAllAtOnce".into(),
            routing: Routing::AllAtOnce,
            ready: ReadyOption {
                stop: true,
                wait_minutes: 60,
            },
            termination_wait_minutes: 5,
            container: "web".into(),
            port: 8080,
            capacity_providers: capacity,
            hooks,
        }
    }

    #[test]
    fn appspec_names_the_revision_and_the_load_balancer() {
        let td = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:7";
        let spec: serde_json::Value =
            serde_json::from_str(&appspec(&target(Vec::new(), Vec::new()), td)).unwrap();
        let props = &spec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Type"],
            "AWS::ECS::Service"
        );
        assert_eq!(props["TaskDefinition"], td);
        assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "web");
        assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert!(props.get("CapacityProviderStrategy").is_none());
        assert!(spec.get("Hooks").is_none());
    }

    #[test]
    fn appspec_carries_hooks_and_capacity_providers() {
        let t = target(
            vec![("AfterAllowTestTraffic".into(), "check-web".into())],
            vec![("FARGATE_SPOT".into(), 3, 1)],
        );
        let spec: serde_json::Value = serde_json::from_str(&appspec(&t, "td")).unwrap();
        assert_eq!(
            spec["Hooks"],
            serde_json::json!([{"AfterAllowTestTraffic": "check-web"}])
        );
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Properties"]["CapacityProviderStrategy"],
            serde_json::json!([{"CapacityProvider": "FARGATE_SPOT", "Weight": 3, "Base": 1}])
        );
    }
}
