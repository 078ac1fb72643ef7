//! The ECR API calls ferry makes: registry credentials (`GetAuthorizationToken`) and
//! repository checks. Image bytes move through the OCI distribution API (`crate::registry`).

use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use base64::Engine as _;

use super::{describe_sdk_error, Secret};

/// Basic-auth credentials for one ECR registry.
#[derive(Debug, Clone)]
pub struct EcrAuth {
    pub username: String,
    pub password: Secret,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`
    pub proxy_endpoint: String,
    /// Past for moto (it answers 2015), so callers must not loop refreshing on it.
    pub expires_at: Option<SystemTime>,
}

/// `GetAuthorizationToken` for the registry of the SDK config's account.
pub async fn authorization(sdk: &SdkConfig) -> Result<EcrAuth> {
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let out = aws_sdk_ecr::Client::new(sdk)
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| anyhow!("{}", describe_sdk_error(&e)))
        .with_context(|| format!("ecr:GetAuthorizationToken in {region}"))?;
    let data = out.authorization_data().first().ok_or_else(|| {
        anyhow!("ecr:GetAuthorizationToken in {region} returned no authorization data")
    })?;
    let token = data.authorization_token().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| anyhow!("ecr:GetAuthorizationToken in {region} returned a token that is not base64 user:password"))?;
    let (user, pass) = decoded.split_once(':').ok_or_else(|| {
        anyhow!("ecr:GetAuthorizationToken in {region} returned a token without user:password")
    })?;
    Ok(EcrAuth {
        username: user.to_string(),
        password: Secret::new(pass),
        proxy_endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
        expires_at: data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok()),
    })
}

/// Whether `repository` exists in the SDK config's account.
pub async fn repository_exists(sdk: &SdkConfig, repository: &str) -> Result<bool> {
    let res = aws_sdk_ecr::Client::new(sdk)
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
        Err(e) => Err(anyhow!("{}", describe_sdk_error(&e)))
            .with_context(|| format!("ecr:DescribeRepositories {repository}")),
    }
}

/// A registry client for an ECR registry host, authenticated with `GetAuthorizationToken`
/// from `sdk` (the environment's role). The host may be mapped elsewhere by
/// `FERRY_REGISTRY_ENDPOINTS` (the local test world).
pub async fn registry_client(
    sdk: &SdkConfig,
    host: &str,
) -> Result<crate::registry::RegistryClient> {
    let auth = authorization(sdk).await?;
    let base = crate::registry::endpoint_url(host)?;
    let sdk = sdk.clone();
    // A 401 in the middle of a long copy: ask ECR for a new token, once.
    let refresh: crate::registry::client::Refresh = std::sync::Arc::new(move || {
        let sdk = sdk.clone();
        Box::pin(async move {
            let a = authorization(&sdk).await?;
            Ok(crate::registry::Credentials::Basic {
                username: a.username,
                password: a.password,
            })
        })
    });
    Ok(crate::registry::RegistryClient::new(
        base,
        crate::registry::Credentials::Basic {
            username: auth.username,
            password: auth.password,
        },
    )?
    .with_refresh(refresh))
}
