//! The ECR API calls ferry makes: registry credentials (`GetAuthorizationToken`) and
//! repository checks. Image bytes move through the OCI distribution API (`crate::registry`,
//! whose `auth` module turns the token into a registry client: the arrow points registry → aws).

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;

use super::{SdkErrorExt, Secret};

/// An ECR authorization token, still encoded: base64 `AWS:<password>`
/// (`crate::registry::auth` decodes it).
#[derive(Debug, Clone)]
pub struct EcrToken {
    pub token: Secret,
}

/// `GetAuthorizationToken` for the registry of the SDK config's account. The answer never
/// reaches a log: the SDK's wire logs are filtered (`crate::logging`).
pub async fn authorization(sdk: &SdkConfig) -> Result<EcrToken> {
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let out = super::sts::ecr_client(sdk)
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| anyhow!("{}", e.human_line()))
        .with_context(|| format!("ecr:GetAuthorizationToken in {region}"))?;
    let data = out.authorization_data().first().ok_or_else(|| {
        anyhow!("ecr:GetAuthorizationToken in {region} returned no authorization data")
    })?;
    Ok(EcrToken {
        token: Secret::new(data.authorization_token().unwrap_or_default()),
    })
}

/// Whether `repository` exists in the SDK config's account.
pub async fn repository_exists(sdk: &SdkConfig, repository: &str) -> Result<bool> {
    let res = super::sts::ecr_client(sdk)
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(anyhow!("{}", e.human_line()))
            .with_context(|| format!("ecr:DescribeRepositories {repository}")),
    }
}
