//! What only AWS knows of an environment's services, for its policies: the task-definition
//! families, the roles passed to tasks, the CodeDeploy deployment groups and the ECS-native
//! blue/green services, read with the environment's role.

use anyhow::{anyhow, Context, Result};

use super::LiveServices;
use crate::config::Environment;

/// Reads the families and roles of `env`'s live services (DescribeServices,
/// DescribeTaskDefinition) with the environment's role.
pub async fn live_services(env: &Environment) -> Result<LiveServices> {
    let sdk = crate::aws::sts::environment_config(env).await?;
    let ecs = crate::aws::sts::ecs_client(&sdk);
    let mut live = LiveServices::default();
    for s in &env.file.services {
        let out = ecs
            .describe_services()
            .cluster(&s.cluster)
            .services(&s.service)
            .send()
            .await
            .map_err(|e| anyhow!("{}", crate::aws::describe_sdk_error(&e)))
            .with_context(|| format!("ecs:DescribeServices {}/{}", s.cluster, s.service))?;
        let svc = out
            .services()
            .iter()
            .find(|svc| svc.task_definition().is_some())
            .ok_or_else(|| {
                anyhow!(
                    "ECS service {}/{} of {} does not exist",
                    s.cluster,
                    s.service,
                    env.name
                )
            })?;
        let td_arn = svc.task_definition().unwrap_or_default().to_string();
        let td = ecs
            .describe_task_definition()
            .task_definition(&td_arn)
            .send()
            .await
            .map_err(|e| anyhow!("{}", crate::aws::describe_sdk_error(&e)))
            .with_context(|| format!("ecs:DescribeTaskDefinition {td_arn}"))?;
        let td = td
            .task_definition()
            .ok_or_else(|| anyhow!("ecs:DescribeTaskDefinition {td_arn} returned nothing"))?;
        // What deploy will do with the service decides what it needs: the same tests.
        if crate::deploy::prepare::uses_code_deploy(svc) {
            let cd = aws_sdk_codedeploy::Client::new(&sdk);
            let t = crate::deploy::codedeploy::find_target(&cd, svc, s, false)
                .await
                .with_context(|| {
                    format!(
                        "finding the CodeDeploy deployment group of {}/{}",
                        s.cluster, s.service
                    )
                })?;
            live.codedeploy_groups.insert((t.application, t.group));
        }
        if crate::deploy::prepare::native_strategy(svc).is_some() {
            live.native_blue_green
                .insert(format!("{}/{}", s.cluster, s.service));
        }
        if let Some(f) = td.family() {
            live.families.insert(f.to_string());
        }
        live.pass_roles.extend(
            [td.task_role_arn(), td.execution_role_arn()]
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
    }
    Ok(live)
}
