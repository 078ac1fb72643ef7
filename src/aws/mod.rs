//! AWS access: one `SdkConfig` per environment (`sts`), and the ECR and ECS calls ferry makes.
//!
//! Endpoints are never configured here: the SDK's own `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables redirect it (the local test world uses them).

pub mod ecr;
pub mod ecs;
pub mod sts;

pub use crate::secret::Secret;

/// Renders an SDK error with its whole cause chain (the SDK's `Display` alone says only
/// "service error").
pub fn describe_sdk_error<E: std::error::Error + 'static>(err: &E) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}
