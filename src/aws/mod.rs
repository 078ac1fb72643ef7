//! AWS access: one `SdkConfig` per environment (`sts`), and the ECR and ECS calls ferry makes.
//!
//! Endpoints are never configured here: the SDK's own `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables redirect it (the local test world uses them).

pub mod ecr;
pub mod ecs;
pub mod sts;

pub use crate::secret::Secret;

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
                    (None, None) => {
                        format!("HTTP {} without an AWS error code", raw.status().as_u16())
                    }
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
    one_line(&aws_smithy_types::error::display::DisplayErrorContext(err).to_string())
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
fn chain_without_head(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}
