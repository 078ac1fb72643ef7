//! `[[smoke]]`: the HTTP checks that gate a release's success.

use serde::{Deserialize, Serialize};

use super::ServiceConfig;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    /// Shown in output; defaults to the URL.
    pub name: Option<String>,
    pub url: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Dotted path of a JSON field that must equal the release version (e.g. `version` or
    /// `build.version`), so an old task still answering does not pass.
    pub version_field: Option<String>,
    /// Keep retrying until this many seconds after the rollout ended.
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub follow_redirects: bool,
    /// Answers in a row that must pass (a load balancer may still mix old and new tasks).
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// The same check through the load balancer's test listener: a blue/green release is
    /// checked here, on test traffic, before any production traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_url: Option<String>,
    /// The blue/green service whose test listener `test_url` reaches (`service` or
    /// `cluster/service`); without it the check runs for every blue/green service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl SmokeCheck {
    /// Whether this check's `test_url` belongs to the service `cfg`.
    pub fn tests_service(&self, cfg: &ServiceConfig) -> bool {
        self.service
            .as_deref()
            .is_none_or(|s| s == cfg.service || s == format!("{}/{}", cfg.cluster, cfg.service))
    }
}

fn default_consecutive() -> u32 {
    3
}

fn default_status() -> u16 {
    200
}
fn default_deadline() -> u64 {
    120
}
fn default_timeout() -> u64 {
    5
}
