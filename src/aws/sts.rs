//! Credentials per environment: assume the environment's role on top of the default chain, or,
//! in GitHub Actions with `id-token: write`, exchange the job's OIDC token for that role
//! (`AssumeRoleWithWebIdentity`), so no long-lived AWS keys are stored anywhere.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{
    self, error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use serde::Serialize;

use super::describe_sdk_error;
use crate::config::Environment;
use crate::error::Failure;
use crate::github::oidc::OidcSource;

/// How ferry authenticates to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// `AssumeRole` with the default credential chain.
    AssumeRole,
    /// GitHub Actions OIDC token → `AssumeRoleWithWebIdentity`.
    GithubOidc,
}

/// Which authentication an environment will use in this process.
pub fn auth_mode() -> AuthMode {
    if OidcSource::from_env().is_some() {
        AuthMode::GithubOidc
    } else {
        AuthMode::AssumeRole
    }
}

/// The default chain, pinned to `region`.
pub async fn base_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .load()
        .await
}

/// One `SdkConfig` for `env`: its region, and credentials of its role.
pub async fn environment_config(env: &Environment) -> Result<SdkConfig> {
    let base = base_config(&env.file.region).await;
    let role = &env.file.role;
    let provider = match OidcSource::from_env() {
        Some(oidc) => SharedCredentialsProvider::new(WebIdentityProvider {
            sts: aws_sdk_sts::Client::new(&base),
            oidc,
            role_arn: role.arn.clone(),
            session_name: env.session_name(),
            duration: role.session_duration_seconds,
        }),
        None => {
            let mut b = AssumeRoleProvider::builder(role.arn.clone())
                .session_name(env.session_name())
                .configure(&base);
            if let Some(x) = &role.external_id {
                b = b.external_id(x.clone());
            }
            if let Some(d) = role.session_duration_seconds {
                b = b.session_length(Duration::from_secs(d.into()));
            }
            SharedCredentialsProvider::new(b.build().await)
        }
    };
    Ok(base.into_builder().credentials_provider(provider).build())
}

/// Proves the role can be assumed and lands in the environment's account.
pub async fn verify_identity(env: &Environment, sdk: &SdkConfig) -> Result<String> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            Failure::new(
                crate::error::FailureKind::Error,
                format!(
                    "cannot assume role {} for environment {} ({}): {}",
                    env.file.role.arn,
                    env.name,
                    env.path.display(),
                    describe_sdk_error(&e)
                ),
            )
            .hint(match auth_mode() {
                AuthMode::GithubOidc => "check the role's trust policy allows token.actions.githubusercontent.com for this repository and that the job has `permissions: id-token: write`",
                AuthMode::AssumeRole => "check the base credentials (AWS_PROFILE / AWS_ACCESS_KEY_ID) and that the role's trust policy lets them assume it",
            })
        })?;
    let account = out.account().unwrap_or_default().to_string();
    if account != env.file.account_id {
        return Err(Failure::invalid(format!(
            "role {} landed in account {account}, but environment {} expects account {} ({})",
            env.file.role.arn,
            env.name,
            env.file.account_id,
            env.path.display()
        ))
        .into());
    }
    Ok(out.arn().unwrap_or_default().to_string())
}

/// Credentials from the GitHub OIDC token. Fetches a fresh token at every refresh: the
/// token lives minutes, the session it buys up to hours.
#[derive(Debug)]
struct WebIdentityProvider {
    sts: aws_sdk_sts::Client,
    oidc: OidcSource,
    role_arn: String,
    session_name: String,
    duration: Option<u32>,
}

impl WebIdentityProvider {
    async fn credentials(&self) -> provider::Result {
        let token = self
            .oidc
            .fetch()
            .await
            .map_err(|e| CredentialsError::provider_error(e.into_boxed_dyn_error()))?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.expose())
            .set_duration_seconds(self.duration.map(|d| d as i32))
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let c = out.credentials.ok_or_else(|| {
            CredentialsError::unhandled("AssumeRoleWithWebIdentity returned no credentials")
        })?;
        let expiry = SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "ferry-github-oidc",
        ))
    }
}

impl ProvideCredentials for WebIdentityProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}
