//! AWS access: one `SdkConfig` per environment (`sts`), and thin wrappers over the ECR and ECS
//! calls ferry makes. Decisions live elsewhere; these modules only ask and answer.
//!
//! Endpoints are never configured here: the SDK's own `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables redirect it (the local test world uses them).

pub mod autoscaling;
pub mod batch;
pub mod codedeploy;
pub mod ecr;
pub mod ecs;
pub mod kms;
pub mod reach;
pub mod sts;

use std::fmt;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;

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
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
}

impl AwsError {
    /// From an SDK error: never the SDK's debug dump, always one line.
    pub fn from_sdk<E>(operation: &str, resource: &str, err: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsError {
            operation: operation.to_string(),
            resource: resource.to_string(),
            code: match err {
                SdkError::ServiceError(_) => err.code().map(str::to_string),
                _ => None,
            },
            message: err.human_line(),
            status: err.raw_response().map(|r| r.status().as_u16()),
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
        write!(f, ": {}", self.message)
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

/// One human line for an SDK error (the error extension every AWS call site uses).
pub trait SdkErrorExt {
    /// The AWS error code and message and the request id for a service error
    /// (`ServiceNotActiveException: Service was not ACTIVE. (request id …)`), the HTTP status
    /// when the answer carried no code, else what failed on the way; never a debug dump of the
    /// raw response. Callers name the service and operation around it
    /// (`ecs:UpdateService web: …`).
    fn human_line(&self) -> String;
}

impl<E> SdkErrorExt for aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    fn human_line(&self) -> String {
        use aws_sdk_ecs::error::SdkError;
        let line = match self {
            SdkError::ServiceError(se) => {
                let e = se.err();
                let raw = se.raw();
                let mut s = match (e.code(), e.message()) {
                    (Some(code), Some(msg)) => format!("{code}: {msg}"),
                    (Some(code), None) => code.to_string(),
                    (None, Some(msg)) => format!("HTTP {}: {msg}", raw.status().as_u16()),
                    (None, None) => unparsed_answer(raw).unwrap_or_else(|| {
                        format!("HTTP {} without an AWS error code", raw.status().as_u16())
                    }),
                };
                let id = e
                    .meta()
                    .extra("aws_request_id")
                    .map(str::to_string)
                    .or_else(|| request_id(raw));
                if let Some(id) = id {
                    s.push_str(&format!(" (request id {id})"));
                }
                s
            }
            SdkError::TimeoutError(_) => "no answer in time (timeout)".to_string(),
            SdkError::DispatchFailure(_) => {
                format!("could not reach the endpoint: {}", chain_without_head(self))
            }
            SdkError::ResponseError(r) => {
                let id = request_id(r.raw())
                    .map(|id| format!(" (request id {id})"))
                    .unwrap_or_default();
                format!(
                    "HTTP {} with an answer that is not an AWS response{id}",
                    r.raw().status().as_u16()
                )
            }
            _ => chain_without_head(self),
        };
        one_line(&line)
    }
}

/// Renders any error chain as one line (for call sites holding a generic error; SDK errors
/// read better through [`SdkErrorExt::human_line`]).
pub fn describe_sdk_error<E: std::error::Error + 'static>(err: &E) -> String {
    // Not `DisplayErrorContext`: it appends the error's debug dump (the raw response).
    one_line(&reach::chain_line(err))
}

fn request_id(resp: &aws_sdk_ecs::config::http::HttpResponse) -> Option<String> {
    ["x-amzn-requestid", "x-amz-request-id"]
        .iter()
        .find_map(|h| {
            resp.headers()
                .get(*h)
                .map(|v| v.chars().take(100).collect())
        })
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(600)
        .collect()
}

/// The cause chain below an error's own (generic) message.
/// The error an STS call answered, when `e` is one whose answer the SDK could not parse.
fn sts_answer(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_sdk_sts::operation::{
        assume_role::AssumeRoleError,
        assume_role_with_web_identity::AssumeRoleWithWebIdentityError,
        get_caller_identity::GetCallerIdentityError,
    };
    fn raw<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<String> {
        match e {
            SdkError::ServiceError(se) if se.err().code().is_none() => unparsed_answer(se.raw()),
            _ => None,
        }
    }
    let (op, said) = if let Some(x) = e.downcast_ref::<SdkError<AssumeRoleError>>() {
        ("sts:AssumeRole", raw(x)?)
    } else if let Some(x) = e.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError>>() {
        ("sts:AssumeRoleWithWebIdentity", raw(x)?)
    } else if let Some(x) = e.downcast_ref::<SdkError<GetCallerIdentityError>>() {
        ("sts:GetCallerIdentity", raw(x)?)
    } else {
        return None;
    };
    Some(format!("{op}: {said}"))
}

/// `Code: Message` from an error answer the SDK could not parse (an XML `<Code>`/`<Message>`
/// anywhere in it, or a JSON `code`/`message`), read from at most 64 KiB of the body.
fn unparsed_answer(raw: &aws_sdk_ecs::config::http::HttpResponse) -> Option<String> {
    let body = raw.body().bytes()?;
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let a = text.find(&open)? + open.len();
        let b = text[a..].find(&format!("</{name}>"))? + a;
        Some(text[a..b].trim().to_string())
    };
    let (code, message) = match (tag("Code"), tag("Message")) {
        (None, None) => {
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let field = |k: &[&str]| {
                k.iter()
                    .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_string))
            };
            (
                field(&["__type", "code", "Code"]),
                field(&["message", "Message"]),
            )
        }
        found => found,
    };
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(c), None) => Some(c),
        (None, Some(m)) => Some(m),
        (None, None) => None,
    }
    .map(|s| one_line(&s))
}

fn chain_without_head(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        // A credentials provider's STS call whose error answer the SDK could not parse
        // (moto, some proxies): its body still says what was refused.
        if let Some(said) = sts_answer(e) {
            parts.push(said);
            break;
        }
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, status: Option<u16>) -> AwsError {
        AwsError {
            operation: "ecs:ListServiceDeployments".into(),
            resource: "web/api".into(),
            code: code.map(str::to_string),
            message: format!(
                "{}: User is not authorized. (request id r-1)",
                code.unwrap_or("HTTP 429")
            ),
            status,
        }
    }

    #[test]
    fn one_human_line() {
        assert_eq!(
            err(Some("AccessDeniedException"), Some(400)).to_string(),
            "ecs:ListServiceDeployments web/api: AccessDeniedException: User is not authorized. (request id r-1)"
        );
        assert_eq!(
            err(None, Some(429)).to_string(),
            "ecs:ListServiceDeployments web/api: HTTP 429: User is not authorized. (request id r-1)"
        );
    }

    #[test]
    fn an_answer_the_sdk_could_not_parse_still_says_what_it_says() {
        use aws_sdk_ecs::config::http::HttpResponse as Response;
        use aws_smithy_types::body::SdkBody;
        let xml = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: u is not authorized to perform: sts:AssumeRole</Message></Error></Errors></ErrorResponse>";
        let resp = Response::new(403u16.try_into().unwrap(), SdkBody::from(xml));
        assert_eq!(
            unparsed_answer(&resp).as_deref(),
            Some("AccessDenied: User: u is not authorized to perform: sts:AssumeRole")
        );
        let json = r#"{"__type": "ThrottlingException", "message": "Rate exceeded"}"#;
        let resp = Response::new(400u16.try_into().unwrap(), SdkBody::from(json));
        assert_eq!(
            unparsed_answer(&resp).as_deref(),
            Some("ThrottlingException: Rate exceeded")
        );
        let resp = Response::new(
            500u16.try_into().unwrap(),
            SdkBody::from("<html>oops</html>"),
        );
        assert_eq!(unparsed_answer(&resp), None);
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
