//! When AWS cannot be asked at all: no credentials, or an endpoint that does not answer.
//!
//! [`Reach`] is an SDK interceptor on every client ferry builds (STS, ECS, ECR): it notes the
//! endpoint each attempt goes to, prints one progress line per retry after a failed
//! connection, and cuts the retries of a connection error to [`CONNECT_ATTEMPTS`] (a refused
//! or unroutable connection is not worth the SDK's ten attempts and 40 s of backoff).
//! [`Access`] turns a credentials failure into the one line a person reads: which of the two,
//! the endpoint and the cause, never the SDK's debug dump.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Mutex;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sts::error::{BoxError, ConnectorError};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use aws_smithy_types::retry::RetryConfig;

/// Attempts of one call whose connection fails (refused, unreachable, connect timeout).
pub const CONNECT_ATTEMPTS: u32 = 3;

/// Where ferry looks for credentials, as said when it finds none (README "Credentials").
pub const WHERE_CREDENTIALS_COME_FROM: &str = "ferry looks for AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
then a profile (AWS_PROFILE, else `default`, in ~/.aws/credentials and ~/.aws/config), \
then a web identity (AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE), \
then the ECS task role and the EC2 instance role; \
in GitHub Actions it uses the job's OIDC token instead (ACTIONS_ID_TOKEN_REQUEST_URL, set by `permissions: id-token: write`)";

/// Why AWS could not be asked anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No source of credentials had any; `detail` is what the last source said, when it
    /// failed rather than had nothing.
    NoCredentials { detail: Option<String> },
    /// The endpoint did not accept a connection.
    Unreachable { endpoint: String, cause: String },
}

impl Access {
    /// The credentials failure behind `err`, if that is what it is.
    pub fn of(err: &(dyn StdError + 'static)) -> Option<Access> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(c) = e.downcast_ref::<ConnectorError>() {
                if c.is_io() || c.is_timeout() {
                    let (endpoint, _) = last_unreachable().unwrap_or_default();
                    return Some(Access::Unreachable {
                        endpoint: if endpoint.is_empty() {
                            "the AWS endpoint".into()
                        } else {
                            endpoint
                        },
                        cause: root_cause(c),
                    });
                }
            }
            if let Some(NoBaseCredentials(detail)) = e.downcast_ref::<NoBaseCredentials>() {
                return Some(Access::NoCredentials {
                    detail: detail.clone(),
                });
            }
            if let Some(CredentialsError::CredentialsNotLoaded(_)) =
                e.downcast_ref::<CredentialsError>()
            {
                return Some(Access::NoCredentials { detail: None });
            }
            cur = e.source();
        }
        None
    }

    /// The short form, for the plan's `unresolved` list.
    pub fn short(&self) -> String {
        match self {
            Access::NoCredentials { .. } => "no AWS credentials found".into(),
            Access::Unreachable { endpoint, cause } => {
                format!("cannot reach {endpoint} ({cause})")
            }
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::NoCredentials { detail } => {
                write!(f, "no AWS credentials found: {WHERE_CREDENTIALS_COME_FROM}")?;
                if let Some(d) = detail {
                    write!(f, "; the last source tried said: {d}")?;
                }
                Ok(())
            }
            Access::Unreachable { endpoint, cause } => write!(
                f,
                "cannot reach {endpoint}: {cause} (after {CONNECT_ATTEMPTS} attempts; AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> choose the endpoint)"
            ),
        }
    }
}

/// The base credentials (those that assume the environment's role) could not be loaded.
/// Carries one line of what the failing source said, never its debug dump.
#[derive(Debug)]
pub struct NoBaseCredentials(pub Option<String>);

impl fmt::Display for NoBaseCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no AWS credentials found")?;
        if let Some(d) = &self.0 {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl StdError for NoBaseCredentials {}

/// Whether an SDK error came from loading the caller's own credentials (nothing was sent):
/// `Some(detail)` then, `detail` being what a failing source said.
pub fn base_credentials_failure(err: &(dyn StdError + 'static)) -> Option<Option<String>> {
    if unreachable_in(err) {
        // A source that itself calls AWS (a profile's role, a web identity) could not connect:
        // that is an unreachable endpoint, not missing credentials.
        return None;
    }
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::CredentialsNotLoaded(_) => None,
                // Past the generic "an error occurred while loading credentials".
                other => Some(chain_line(other.source().unwrap_or(other))),
            });
        }
        cur = e.source();
    }
    None
}

/// Whether a failed connection (refused, unreachable, connect timeout) is in `err`'s chain.
pub fn unreachable_in(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ConnectorError>() {
            if c.is_io() || c.is_timeout() {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// Every message of an error chain joined with `: ` (the `Display`s only, no debug dumps).
pub fn chain_line(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(600)
        .collect()
}

/// The innermost message of a connection error (`Connection refused (os error 111)`).
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

static LAST_UNREACHABLE: Mutex<Option<(String, String)>> = Mutex::new(None);

/// The endpoint (and cause) of the latest failed connection in this process.
pub fn last_unreachable() -> Option<(String, String)> {
    LAST_UNREACHABLE.lock().ok()?.clone()
}

/// `scheme://host:port` of a request URI (no path, no query: nothing that could carry a secret).
fn origin(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => "the AWS endpoint".into(),
        },
        Err(_) => "the AWS endpoint".into(),
    }
}

/// The endpoint this call's attempts go to.
#[derive(Debug, Clone)]
struct Target(String);

impl Storable for Target {
    type Storer = StoreReplace<Self>;
}

/// Failed connections of this call so far.
#[derive(Debug, Clone, Copy)]
struct ConnectFailures(u32);

impl Storable for ConnectFailures {
    type Storer = StoreReplace<Self>;
}

/// The interceptor described in the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reach;

impl Intercept for Reach {
    fn name(&self) -> &'static str {
        "ferry: unreachable endpoints"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = origin(ctx.request().uri());
        cfg.interceptor_state().store_put(Target(target));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Err(e)) = ctx.output_or_error() else {
            return Ok(());
        };
        let Some(conn) = e.as_connector_error() else {
            return Ok(());
        };
        if !(conn.is_io() || conn.is_timeout()) {
            return Ok(());
        }
        let endpoint = cfg
            .load::<Target>()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| "the AWS endpoint".into());
        if let Ok(mut last) = LAST_UNREACHABLE.lock() {
            *last = Some((endpoint.clone(), root_cause(conn)));
        }
        let failures = cfg.load::<ConnectFailures>().map_or(0, |f| f.0) + 1;
        cfg.interceptor_state().store_put(ConnectFailures(failures));
        let Some(retry) = cfg.load::<RetryConfig>().cloned() else {
            return Ok(());
        };
        let cap = retry.max_attempts().min(CONNECT_ATTEMPTS);
        if retry.max_attempts() > cap {
            cfg.interceptor_state()
                .store_put(retry.with_max_attempts(cap));
        }
        if failures < cap {
            tracing::warn!(
                "no connection to {endpoint}; trying again (attempt {} of {cap})",
                failures + 1
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_keeps_no_path_or_query() {
        assert_eq!(
            origin("https://sts.us-east-1.amazonaws.com/?Action=AssumeRole&X-Amz-Security-Token=s"),
            "https://sts.us-east-1.amazonaws.com"
        );
        assert_eq!(origin("http://127.0.0.1:1/"), "http://127.0.0.1:1");
        assert_eq!(origin("not a uri"), "the AWS endpoint");
    }

    #[test]
    fn no_credentials_is_one_line_that_says_where_ferry_looked() {
        let line = Access::NoCredentials { detail: None }.to_string();
        assert!(!line.contains('\n'), "{line}");
        for place in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "id-token: write",
        ] {
            assert!(line.contains(place), "{place}: {line}");
        }
        let not_loaded = CredentialsError::not_loaded("no providers in chain provided credentials");
        assert_eq!(
            Access::of(&not_loaded),
            Some(Access::NoCredentials { detail: None })
        );
        let other = CredentialsError::provider_error("something else");
        assert_eq!(Access::of(&other), None);
    }
}
