//! AWS access: one `SdkConfig` per environment (`sts`), and thin wrappers over the ECR and ECS
//! calls ferry makes. Decisions live elsewhere; these modules only ask and answer.
//!
//! Endpoints are never configured here: the SDK's own `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables redirect it (the local test world uses them).

pub mod codedeploy;
pub mod ecr;
pub mod ecs;
pub mod sts;

use std::fmt;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::RequestId;

pub use crate::secret::Secret;

/// One failed AWS call, as one human line: operation, resource, code, message, request id.
///
/// It travels inside `anyhow::Error`; callers that branch on the kind of failure (access
/// denied, throttled) find it with [`aws_error`].
#[derive(Debug, Clone)]
pub struct AwsError {
    /// `service:Operation`, e.g. `ecs:DescribeServices`.
    pub operation: String,
    /// What was asked about (cluster/service, repository, ARN); may be empty.
    pub resource: String,
    /// The service's error code (`AccessDeniedException`), when it sent one.
    pub code: Option<String>,
    /// The service's message, or why no answer came.
    pub message: String,
    /// AWS request id, for support cases.
    pub request_id: Option<String>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
}

impl AwsError {
    /// From an SDK error: never the SDK's debug dump, always one line.
    pub fn from_sdk<E>(operation: &str, resource: &str, err: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (code, message) = match err {
            SdkError::ServiceError(_) => (
                err.code().map(str::to_string),
                err.message()
                    .map(str::to_string)
                    .unwrap_or_else(|| "no message".into()),
            ),
            SdkError::TimeoutError(_) => (None, "the request timed out".into()),
            SdkError::DispatchFailure(d) => (
                None,
                format!(
                    "could not reach the service: {}",
                    first_line(&describe_sdk_error(
                        d.as_connector_error()
                            .map_or(err as &dyn std::error::Error, |c| c
                                as &dyn std::error::Error)
                    ))
                ),
            ),
            SdkError::ResponseError(_) => (
                None,
                "the answer could not be read (not the expected AWS response)".into(),
            ),
            SdkError::ConstructionFailure(_) => (
                None,
                format!(
                    "the request could not be built: {}",
                    first_line(&describe_sdk_error(err))
                ),
            ),
            _ => (None, first_line(&describe_sdk_error(err))),
        };
        AwsError {
            operation: operation.to_string(),
            resource: resource.to_string(),
            code,
            message,
            request_id: err.request_id().map(str::to_string),
            status,
        }
    }

    /// Access denied, or an operation this endpoint does not know: asking again will not help.
    pub fn is_not_allowed(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "AccessDeniedException"
                    | "AccessDenied"
                    | "UnauthorizedOperation"
                    | "UnknownOperationException"
            )
        ) || self.status == Some(403)
    }

    /// Throttled (with or without an AWS error code): asking later will help.
    pub fn is_throttled(&self) -> bool {
        self.status == Some(429)
            || matches!(
                self.code.as_deref(),
                Some(
                    "ThrottlingException"
                        | "Throttling"
                        | "TooManyRequestsException"
                        | "RequestLimitExceeded"
                )
            )
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if !self.resource.is_empty() {
            write!(f, " {}", self.resource)?;
        }
        write!(f, ": ")?;
        if let Some(c) = &self.code {
            write!(f, "{c}: ")?;
        } else if let Some(s) = self.status {
            write!(f, "HTTP {s}: ")?;
        }
        write!(f, "{}", self.message.trim_end_matches('.'))?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

/// The one extension that turns every SDK result into an `anyhow` result with an [`AwsError`].
pub trait AwsResultExt<T> {
    /// `operation` is `service:Operation`; `resource` names what was asked about.
    fn aws(self, operation: &str, resource: impl fmt::Display) -> anyhow::Result<T>;
}

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, operation: &str, resource: impl fmt::Display) -> anyhow::Result<T> {
        self.map_err(|e| AwsError::from_sdk(operation, &resource.to_string(), &e).into())
    }
}

/// The [`AwsError`] in an error's cause chain, if any.
pub fn aws_error(err: &anyhow::Error) -> Option<&AwsError> {
    err.chain().find_map(|e| e.downcast_ref::<AwsError>())
}

/// Renders an SDK error with its whole cause chain (the SDK's `Display` alone says only
/// "service error"). For errors that are not `SdkError`s (credential providers).
pub fn describe_sdk_error<E: std::error::Error + ?Sized>(err: &E) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        source = e.source();
    }
    s
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, status: Option<u16>) -> AwsError {
        AwsError {
            operation: "ecs:ListServiceDeployments".into(),
            resource: "web/api".into(),
            code: code.map(str::to_string),
            message: "User is not authorized.".into(),
            request_id: Some("r-1".into()),
            status,
        }
    }

    #[test]
    fn one_human_line() {
        assert_eq!(
            err(Some("AccessDeniedException"), Some(400)).to_string(),
            "ecs:ListServiceDeployments web/api: AccessDeniedException: User is not authorized (request id r-1)"
        );
        assert_eq!(
            err(None, Some(429)).to_string(),
            "ecs:ListServiceDeployments web/api: HTTP 429: User is not authorized (request id r-1)"
        );
    }

    #[test]
    fn kinds() {
        assert!(err(Some("AccessDeniedException"), Some(400)).is_not_allowed());
        assert!(err(Some("UnknownOperationException"), Some(400)).is_not_allowed());
        assert!(!err(Some("ThrottlingException"), Some(400)).is_not_allowed());
        assert!(err(Some("ThrottlingException"), Some(400)).is_throttled());
        assert!(err(None, Some(429)).is_throttled());
        assert!(!err(None, Some(500)).is_throttled());
    }

    #[test]
    fn found_through_context() {
        use anyhow::Context;
        let e = Err::<(), _>(anyhow::Error::from(err(Some("X"), None)))
            .context("following web/api")
            .unwrap_err();
        assert_eq!(aws_error(&e).and_then(|a| a.code.as_deref()), Some("X"));
    }
}
