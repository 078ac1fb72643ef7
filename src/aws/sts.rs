//! Credentials per environment: assume the environment's role on top of the default chain, or,
//! in GitHub Actions with `id-token: write`, exchange the job's OIDC token for that role
//! (`AssumeRoleWithWebIdentity`), so no long-lived AWS keys are stored anywhere.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{
    self, error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use serde::Serialize;

use super::reach::{self, Access, Reach};
use super::{AwsError, SdkErrorExt};
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
/// unless `AWS_MAX_ATTEMPTS` says otherwise); every call has a deadline. A connection gets
/// [`CONNECT_TIMEOUT`], and a call whose connection fails [`reach::CONNECT_ATTEMPTS`] attempts
/// ([`Reach`]): an endpoint that refuses or does not answer is reported in seconds.
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
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(policy.budget + Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}

/// How long a connection to an AWS endpoint may take to open (AWS answers in milliseconds;
/// three attempts of this stay within the 15 s in which ferry says an endpoint is unreachable).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One `SdkConfig` for `env`: its region, and credentials of its role.
pub async fn environment_config(env: &Environment) -> Result<SdkConfig> {
    let base = base_config(&env.file.region).await;
    let role = &env.file.role;
    let provider = match OidcSource::from_env() {
        Some(oidc) => SharedCredentialsProvider::new(WebIdentityProvider {
            sts: sts_client(&base),
            oidc,
            role_arn: role.arn.clone(),
            session_name: env.session_name(),
            duration: role.session_duration_seconds,
        }),
        None => SharedCredentialsProvider::new(AssumeRoleProvider {
            sts: sts_client(&base),
            role_arn: role.arn.clone(),
            session_name: env.session_name(),
            external_id: role.external_id.clone(),
            duration: role.session_duration_seconds,
        }),
    };
    Ok(base.into_builder().credentials_provider(provider).build())
}

/// Why `env`'s role cannot be had, before anything is asked with it.
#[derive(Debug, Clone)]
pub struct NoAccess {
    /// A few words, naming the endpoint and cause when it is one (`plan`'s `unresolved`).
    pub short: String,
    /// The one line a person reads: for missing credentials, where ferry looks for them.
    pub full: String,
}

/// Gets `env`'s credentials once (base credentials, then the role): with none to be had, or
/// no endpoint answering, every AWS lookup would fail the same way, so callers ask this first
/// and report the one cause.
pub async fn check_access(env: &Environment) -> std::result::Result<(), NoAccess> {
    let sdk = environment_config(env).await.map_err(|e| NoAccess {
        short: format!("{e:#}"),
        full: format!("{e:#}"),
    })?;
    let Some(provider) = sdk.credentials_provider() else {
        return Ok(());
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => Err(match Access::of(&e) {
            Some(a) => NoAccess {
                short: a.short(),
                full: a.to_string(),
            },
            None => {
                let line = format!(
                    "cannot assume role {} for environment {}: {}",
                    env.file.role.arn,
                    env.name,
                    reach::chain_line(&e)
                );
                NoAccess {
                    short: line.clone(),
                    full: line,
                }
            }
        }),
    }
}

/// An STS client for `sdk`, with [`Reach`].
fn sts_client(sdk: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(sdk)
            .interceptor(Reach)
            .build(),
    )
}

/// A credentials provider's STS failure as a [`CredentialsError`] whose text is one line:
/// missing base credentials as [`reach::NoBaseCredentials`], a failed connection as the SDK
/// error itself (so [`Access::of`] finds it), anything else as an [`AwsError`].
fn credentials_error<E>(
    operation: &str,
    role_arn: &str,
    e: aws_sdk_sts::error::SdkError<E>,
) -> CredentialsError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(detail) = reach::base_credentials_failure(&e) {
        CredentialsError::provider_error(reach::NoBaseCredentials(detail))
    } else if reach::unreachable_in(&e) {
        CredentialsError::provider_error(e)
    } else {
        CredentialsError::provider_error(AwsError::from_sdk(operation, role_arn, &e))
    }
}

/// `AssumeRole` with the default chain's credentials (as the SDK's own provider does), through
/// an STS client that has [`Reach`] and errors that read as one line.
#[derive(Debug)]
struct AssumeRoleProvider {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    duration: Option<u32>,
}

impl AssumeRoleProvider {
    async fn credentials(&self) -> provider::Result {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .set_duration_seconds(self.duration.map(|d| d as i32))
            .send()
            .await
            .map_err(|e| credentials_error("sts:AssumeRole", &self.role_arn, e))?;
        session(out.credentials, "AssumeRole", "ferry-assume-role")
    }
}

/// The SDK credentials of an STS answer's `credentials` (`operation` names it in the error).
fn session(
    c: Option<aws_sdk_sts::types::Credentials>,
    operation: &str,
    provider: &'static str,
) -> Result<Credentials, CredentialsError> {
    let c = c.ok_or_else(|| {
        CredentialsError::unhandled(format!("{operation} returned no credentials"))
    })?;
    let expiry = SystemTime::try_from(c.expiration).ok();
    Ok(Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        expiry,
        provider,
    ))
}

impl ProvideCredentials for AssumeRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// Proves the role can be assumed and lands in the environment's account.
pub async fn verify_identity(env: &Environment, sdk: &SdkConfig) -> Result<String> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            let why = match Access::of(&e) {
                Some(a) => a.to_string(),
                None => e.human_line(),
            };
            Failure::new(
                crate::error::FailureKind::Error,
                format!(
                    "cannot assume role {} for environment {} ({}): {why}",
                    env.file.role.arn,
                    env.name,
                    env.path.display(),
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
            .map_err(|e| credentials_error("sts:AssumeRoleWithWebIdentity", &self.role_arn, e))?;
        session(
            out.credentials,
            "AssumeRoleWithWebIdentity",
            "ferry-github-oidc",
        )
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
            .interceptor(Reach)
            .build(),
    )
}

/// An ECR client for `sdk` that also retries bare 429s ([`BareThrottling`]).
pub fn ecr_client(sdk: &SdkConfig) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::from_conf(ecr_config(sdk).build())
}

/// The ECR client configuration of [`ecr_client`], to adjust (another region).
pub fn ecr_config(sdk: &SdkConfig) -> aws_sdk_ecr::config::Builder {
    aws_sdk_ecr::config::Builder::from(sdk)
        .retry_classifier(BareThrottling)
        .interceptor(Reach)
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
