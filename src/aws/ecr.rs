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

/// `GetAuthorizationToken`, called with the SDK config's identity in `region`, for the
/// registry of account `registry_id`: the identity's own, or another account's whose
/// repository policy lets it pull (production reading staging's verified image). The answer
/// never reaches a log: the SDK's wire logs are filtered (`crate::logging`).
pub async fn authorization(sdk: &SdkConfig, registry_id: &str, region: &str) -> Result<EcrToken> {
    let client = aws_sdk_ecr::Client::from_conf(
        super::sts::ecr_config(sdk)
            .region(aws_config::Region::new(region.to_string()))
            .build(),
    );
    // `registryIds` is deprecated: ECR's token serves every registry the identity may read,
    // and naming one "doesn't change the permissions scope" (the SDK's note). It is still
    // accepted, and emulators that issue one token per registry (moto) need it.
    #[allow(deprecated)]
    let out = client
        .get_authorization_token()
        .registry_ids(registry_id)
        .send()
        .await
        .map_err(|e| anyhow!("{}", e.human_line()))
        .with_context(|| {
            format!("ecr:GetAuthorizationToken in {region} for registry {registry_id}")
        })?;
    let data = out.authorization_data().first().ok_or_else(|| {
        anyhow!("ecr:GetAuthorizationToken in {region} returned no authorization data")
    })?;
    Ok(EcrToken {
        token: Secret::new(data.authorization_token().unwrap_or_default()),
    })
}

/// Whether `repository` exists in the SDK config's account.
pub async fn repository_exists(sdk: &SdkConfig, repository: &str) -> Result<bool> {
    Ok(describe(sdk, repository).await?.is_some())
}

/// The repository's tag mutability (`MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, …)
/// and its exclusion filters (wildcards), `None` when the repository does not exist.
pub async fn tag_mutability(
    sdk: &SdkConfig,
    repository: &str,
) -> Result<Option<(String, Vec<String>)>> {
    Ok(describe(sdk, repository).await?.and_then(|r| {
        let setting = r.image_tag_mutability()?.as_str().to_string();
        let exclusions = r
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| f.filter().to_string())
            .collect();
        Some((setting, exclusions))
    }))
}

/// `DescribeRepositories` of one repository, `None` when it does not exist.
async fn describe(
    sdk: &SdkConfig,
    repository: &str,
) -> Result<Option<aws_sdk_ecr::types::Repository>> {
    let res = super::sts::ecr_client(sdk)
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .repositories()
            .iter()
            .find(|r| r.repository_name() == Some(repository))
            .cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow!("{}", e.human_line()))
            .with_context(|| format!("ecr:DescribeRepositories {repository}")),
    }
}
