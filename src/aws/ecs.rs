//! The ECS API calls ferry makes (filled in by the deploy work).

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;

use super::describe_sdk_error;

/// Whether `cluster`/`service` exists and is ACTIVE.
pub async fn service_exists(sdk: &SdkConfig, cluster: &str, service: &str) -> Result<bool> {
    let out = aws_sdk_ecs::Client::new(sdk)
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await;
    match out {
        Ok(o) => Ok(o.services().iter().any(|s| s.status() == Some("ACTIVE"))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_cluster_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(anyhow!("{}", describe_sdk_error(&e)))
            .with_context(|| format!("ecs:DescribeServices {cluster}/{service}")),
    }
}
