//! A registry client for an ECR registry: the one place that joins the ECR host grammar and
//! token (`auth`) to the OCI client (`client`).

use std::sync::Arc;

use anyhow::{bail, Result};
use aws_config::SdkConfig;

use super::auth::{ecr_credentials, EcrHost};
use super::client::{Refresh, RegistryClient};

/// A registry client for the ECR registry `host`, authenticated with `GetAuthorizationToken`
/// from `sdk` (an environment's role: the registry's own, or one its repository policy lets
/// pull). `host` must be an ECR host ([`EcrHost`]); it may be mapped elsewhere by
/// `FERRY_REGISTRY_ENDPOINTS` (the local test world).
pub async fn ecr_client(sdk: &SdkConfig, host: &str) -> Result<RegistryClient> {
    let Some(ecr) = EcrHost::parse(host) else {
        bail!("{host:?} is not an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com): no ECR token is sent there");
    };
    let base = super::endpoint_url(host)?;
    let creds = ecr_credentials(sdk, &ecr).await?;
    let sdk = sdk.clone();
    let ecr = Arc::new(ecr);
    // A 401 in the middle of a long copy: ask ECR for a new token, once.
    let refresh: Refresh = Arc::new(move || {
        let (sdk, ecr) = (sdk.clone(), ecr.clone());
        Box::pin(async move { ecr_credentials(&sdk, &ecr).await })
    });
    Ok(RegistryClient::new(base, creds)?.with_refresh(refresh))
}
