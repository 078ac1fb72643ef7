//! `ferry status`: what each environment's services run now, and which release that is (read
//! from the tags ferry put on the task definition).

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::aws::ecs::{self, short_td, TAG_DIGEST};
use crate::report::ServiceStatus;

/// One row per configured service of `only` (or of every environment).
pub async fn read(dir: &Path, only: Option<&str>) -> Result<Vec<ServiceStatus>> {
    let envs = crate::config::load(dir)?;
    let selected: Vec<_> = match only {
        Some(name) => vec![envs.get(name)?],
        None => envs.envs.values().collect(),
    };
    let mut rows = Vec::new();
    for env in selected {
        let sdk = crate::aws::sts::environment_config(env).await?;
        let client = crate::aws::sts::ecs_client(&sdk);
        for s in &env.file.services {
            let svc = ecs::find_service(&client, &s.cluster, &s.service)
                .await?
                .ok_or_else(|| {
                    anyhow!(
                        "service {}/{} not found (or not ACTIVE) in {}",
                        s.cluster,
                        s.service,
                        env.name
                    )
                })?;
            let td_arn = svc.task_definition().unwrap_or_default().to_string();
            let (td, tags) = ecs::describe_task_definition(&client, &td_arn).await?;
            let (strategy, in_flight) =
                crate::deploy::codedeploy::live(&sdk, &client, &svc, s).await;
            rows.push(ServiceStatus {
                environment: env.name.clone(),
                cluster: s.cluster.clone(),
                service: s.service.clone(),
                release: ecs::release_of(&tags).map(str::to_string),
                digest: ecs::tag_value(&tags, TAG_DIGEST).map(str::to_string),
                image: ecs::container_image(&td, &s.container).map(str::to_string),
                task_definition: td_arn,
                running: svc.running_count(),
                desired: svc.desired_count(),
                deployments: svc
                    .deployments()
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} {}",
                            d.status().unwrap_or("?"),
                            short_td(d.task_definition().unwrap_or("?")),
                            d.rollout_state().map(|r| r.as_str()).unwrap_or("?")
                        )
                    })
                    .collect(),
                strategy,
                in_flight,
            });
        }
    }
    Ok(rows)
}
