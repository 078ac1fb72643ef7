//! Promotion: copying the exact digest verified in the source environment into the target
//! environment's repository (placeholder until the copy engine lands).

use anyhow::Result;
use serde::Serialize;

use crate::config::Environment;

#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutcome {
    pub digest: String,
    pub media_type: String,
    pub already_done: bool,
}

pub async fn promote(
    _source_env: &Environment,
    _target_env: &Environment,
    _source_tag: &str,
    _expected_digest: &str,
    _target_tag: &str,
) -> Result<PromoteOutcome> {
    anyhow::bail!("promotion engine not available in this build")
}
