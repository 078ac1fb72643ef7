//! `ferry status`: what each environment's services run now, and which release that is
//! (read from the tags ferry put on the task definition).

use std::path::Path;

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::aws::describe_sdk_error;
use crate::aws::ecs::{TAG_DIGEST, TAG_RELEASE};
use crate::report::OutputFormat;

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub environment: String,
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub release: Option<String>,
    pub digest: Option<String>,
    pub image: Option<String>,
    pub running: i32,
    pub desired: i32,
    pub deployments: Vec<String>,
}

pub async fn run(dir: &Path, only: Option<&str>, output: OutputFormat) -> Result<()> {
    let envs = crate::config::load(dir)?;
    let selected: Vec<_> = match only {
        Some(name) => vec![envs.get(name)?],
        None => envs.envs.values().collect(),
    };
    let mut rows = Vec::new();
    for env in selected {
        let sdk = crate::aws::sts::environment_config(env).await?;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        for s in &env.file.services {
            let out = ecs
                .describe_services()
                .cluster(&s.cluster)
                .services(&s.service)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "ecs:DescribeServices {}/{}: {}",
                        s.cluster,
                        s.service,
                        describe_sdk_error(&e)
                    )
                })?;
            let Some(svc) = out.services().first() else {
                return Err(anyhow!(
                    "service {}/{} not found in {}",
                    s.cluster,
                    s.service,
                    env.name
                ));
            };
            let td_arn = svc.task_definition().unwrap_or_default().to_string();
            let (td, tags) = crate::deploy::describe_task_definition(&ecs, &td_arn).await?;
            let tag = |k: &str| {
                tags.iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .map(str::to_string)
            };
            rows.push(ServiceStatus {
                environment: env.name.clone(),
                cluster: s.cluster.clone(),
                service: s.service.clone(),
                release: tag(TAG_RELEASE),
                digest: tag(TAG_DIGEST),
                image: crate::aws::ecs::container_image(&td, &s.container).map(str::to_string),
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
                            crate::deploy::short_td(d.task_definition().unwrap_or("?")),
                            d.rollout_state().map(|r| r.as_str()).unwrap_or("?")
                        )
                    })
                    .collect(),
            });
        }
    }
    match output {
        OutputFormat::Json => crate::report::print_json(&rows)?,
        OutputFormat::Human => {
            for r in &rows {
                println!(
                    "{:<12} {}/{}: {} ({}), {}/{} running [{}]",
                    r.environment,
                    r.cluster,
                    r.service,
                    r.release.as_deref().unwrap_or("not deployed by ferry"),
                    crate::deploy::short_td(&r.task_definition),
                    r.running,
                    r.desired,
                    r.deployments.join("; ")
                );
            }
        }
    }
    Ok(())
}
