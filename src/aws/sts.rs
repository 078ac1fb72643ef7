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

use super::SdkErrorExt;
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
/// The SDK's retries follow [`crate::retry::Policy::REQUESTS`] (its backoff, and its attempts
/// unless `AWS_MAX_ATTEMPTS` says otherwise); every call has a deadline.
pub async fn base_config(region: &str) -> SdkConfig {
    let policy = crate::retry::Policy::REQUESTS;
    let attempts = std::env::var("AWS_MAX_ATTEMPTS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(policy.max_attempts);
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(
            aws_smithy_types::retry::RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(policy.first_delay)
                .with_max_backoff(policy.max_delay),
        )
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(policy.budget + Duration::from_secs(30))
                .build(),
        )
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
                    e.human_line()
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

/// Retries a bare HTTP 429 (no AWS error code, which the SDK's own classifiers do not
/// recognise) as throttling, honouring `Retry-After` when present. Attach it to every service
/// client: [`ecs_client`], [`ecr_client`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BareThrottling;

impl aws_sdk_ecs::config::retry::ClassifyRetry for BareThrottling {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_ecs::config::interceptors::InterceptorContext,
    ) -> aws_sdk_ecs::config::retry::RetryAction {
        use aws_sdk_ecs::config::retry::RetryAction;
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        if resp.status().as_u16() != 429 {
            return RetryAction::NoActionIndicated;
        }
        match resp
            .headers()
            .get("retry-after")
            .and_then(crate::retry::parse_retry_after)
        {
            Some(d) if d <= crate::retry::Policy::REQUESTS.max_delay => {
                RetryAction::retryable_error_with_explicit_delay(
                    aws_smithy_types::retry::ErrorKind::ThrottlingError,
                    d,
                )
            }
            _ => RetryAction::throttling_error(),
        }
    }

    fn name(&self) -> &'static str {
        "ferry: bare HTTP 429 is throttling"
    }
}

/// An ECS client for `sdk` that also retries bare 429s ([`BareThrottling`]).
pub fn ecs_client(sdk: &SdkConfig) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(sdk)
            .retry_classifier(BareThrottling)
            .build(),
    )
}

/// An ECR client for `sdk` that also retries bare 429s ([`BareThrottling`]).
pub fn ecr_client(sdk: &SdkConfig) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::from_conf(ecr_config(sdk).build())
}

/// The ECR client configuration of [`ecr_client`], to adjust (another region).
pub fn ecr_config(sdk: &SdkConfig) -> aws_sdk_ecr::config::Builder {
    aws_sdk_ecr::config::Builder::from(sdk).retry_classifier(BareThrottling)
}

#[cfg(test)]
mod throttling_tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A real HTTP server: a bare 429 (no error code, empty body), then a valid answer.
    fn serve(count: Arc<AtomicUsize>) -> String {
        serve_seq(
            count,
            vec![
                ("429 Too Many Requests", ""),
                ("200 OK", r#"{"clusterArns":[]}"#),
            ],
        )
    }

    /// Answers the `n`th request with `answers[n]` (the last one repeated).
    fn serve_seq(count: Arc<AtomicUsize>, answers: Vec<(&'static str, &'static str)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { break };
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answers[n.min(answers.len() - 1)];
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nRetry-After: 0\r\nx-amzn-RequestId: req-123\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    fn sdk(url: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("a", "b", None, None, "test"),
                ),
            )
            .retry_config(
                aws_smithy_types::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(10)),
            )
            .build()
    }

    #[tokio::test]
    async fn a_bare_429_is_retried() {
        let count = Arc::new(AtomicUsize::new(0));
        let url = serve(count.clone());
        let sdk = sdk(&url);
        let out = super::ecs_client(&sdk).list_clusters().send().await;
        assert!(out.is_ok(), "{out:?}");
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // Without the classifier the SDK gives up on the first answer.
        count.store(0, Ordering::SeqCst);
        let plain = aws_sdk_ecs::Client::new(&sdk).list_clusters().send().await;
        use crate::aws::SdkErrorExt;
        let line = plain.unwrap_err().human_line();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(
            line,
            "HTTP 429 with an answer that is not an AWS response (request id req-123)"
        );
    }

    #[tokio::test]
    async fn sdk_errors_are_one_human_line() {
        use crate::aws::SdkErrorExt;
        let count = Arc::new(AtomicUsize::new(0));
        let url = serve_seq(
            count,
            vec![(
                "400 Bad Request",
                r#"{"__type":"ServiceNotActiveException","message":"Service was not ACTIVE."}"#,
            )],
        );
        let err = super::ecs_client(&sdk(&url))
            .update_service()
            .cluster("c")
            .service("s")
            .send()
            .await
            .unwrap_err();
        let line = err.human_line();
        assert_eq!(
            line,
            "ServiceNotActiveException: Service was not ACTIVE. (request id req-123)"
        );
        let dump = format!("{:?}", err);
        assert!(
            dump.contains("raw"),
            "the debug dump is what the line replaces"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unreachable = super::ecs_client(&sdk(&format!("http://127.0.0.1:{port}")))
            .list_clusters()
            .send()
            .await
            .unwrap_err()
            .human_line();
        assert!(
            unreachable.starts_with("could not reach the endpoint:"),
            "{unreachable}"
        );
        assert!(
            !unreachable.contains('\n') && !unreachable.contains("Response {"),
            "{unreachable}"
        );
    }
}
