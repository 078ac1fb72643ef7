//! Blue/green through AWS CodeDeploy, for services with the `CODE_DEPLOY` deployment
//! controller: the release is smoke-tested on the **test listener** before any production
//! traffic moves.
//!
//! 1. Find the service's application and deployment group (by the ECS service the group
//!    names, or `[services.codedeploy]`), its "wait before rerouting" option and its
//!    deployment configuration (`find_target`, in `prepare`).
//! 2. Register the revision as for a rolling update, then `CreateDeployment` with an AppSpec
//!    naming it and the live service's load-balancer container and port (hooks and capacity
//!    provider strategy when present).
//! 3. Follow `GetDeployment` and the ECS target's lifecycle events. In `Ready` (the
//!    replacement serves the test listener, production has not moved) run the `[[smoke]]
//!    test_url` checks: pass → `ContinueDeployment`; fail → `StopDeployment` with rollback.
//! 4. Follow the traffic shift (all at once, canary, linear) until all production traffic is on
//!    the replacement; the original task set's termination wait is reported, not waited out:
//!    the production smoke checks run then (`crate::run`), and a failure there is still a
//!    traffic switch back (`roll_back`).
//!
//! Decisions are `deploy::bluegreen`'s pure functions; this module only reads and acts.
//!
//! The files: `target` finds the deployment group and writes the AppSpec (step 1, and the
//! AppSpec of step 2); `follow` starts a release and follows it (steps 2-4, and CodeDeploy's own
//! rollback); `rollback` brings a service back after a failed release; `live` tells `status`
//! about a release in flight; `sdk` turns CodeDeploy's answers into `deploy::bluegreen`'s views.

mod follow;
mod live;
mod rollback;
mod sdk;
mod target;

pub use follow::{rollout, ROLLBACK_GRACE};
pub use live::live;
pub use rollback::roll_back;
pub use target::find_target;

use super::bluegreen::{ReadyOption, Routing};
use crate::config::SmokeCheck;

/// The CodeDeploy deployment group that deploys a service, and what it will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The CodeDeploy application.
    pub application: String,
    /// Its deployment group.
    pub group: String,
    /// The group's deployment configuration.
    pub config: String,
    /// How that configuration moves production traffic.
    pub routing: Routing,
    /// The group's "wait before rerouting" option.
    pub ready: ReadyOption,
    /// Minutes the original task set stays after the shift.
    pub termination_wait_minutes: i32,
    /// The load balancer's container (from the live service).
    pub container: String,
    /// The load balancer's container port.
    pub port: i32,
    /// The service's capacity provider strategy: (provider, weight, base).
    pub capacity_providers: Vec<(String, i32, i32)>,
    /// AppSpec hooks from the config: event → Lambda function.
    pub hooks: Vec<(String, String)>,
}

/// What a CodeDeploy rollout needs beyond the service: the client, the test-traffic checks and
/// the versions they accept.
#[derive(Debug, Clone)]
pub struct Context {
    /// The environment's CodeDeploy client.
    pub cd: aws_sdk_codedeploy::Client,
    /// The `[[smoke]]` checks with a `test_url`, pointed at it.
    pub test_checks: Vec<SmokeCheck>,
    /// The environment's production checks (ECS-native strategies run them during bake time).
    pub production_checks: Vec<SmokeCheck>,
    /// The values the version field may hold.
    pub versions: Vec<String>,
}

/// A running service's CodeDeploy side.
#[derive(Debug, Clone)]
pub struct CdRun {
    /// The client, for the rollback.
    pub cd: aws_sdk_codedeploy::Client,
    /// Where it deploys.
    pub target: Target,
    /// This run's deployment, once created.
    pub deployment_id: Option<String>,
    /// All production traffic reached the replacement.
    pub shifted: bool,
}

/// The `[[smoke]]` checks that have a `test_url`, pointed at it.
pub fn test_checks(checks: &[SmokeCheck]) -> Vec<SmokeCheck> {
    checks
        .iter()
        .filter_map(|c| {
            let url = c.test_url.clone()?;
            let mut t = c.clone();
            t.name = Some(format!(
                "{} (test listener)",
                c.name.clone().unwrap_or_else(|| c.url.clone())
            ));
            t.url = url;
            t.test_url = None;
            Some(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_checks_point_at_the_test_listener() {
        let check = |url: &str, test: Option<&str>| SmokeCheck {
            name: None,
            url: url.into(),
            expect_status: 200,
            version_field: Some("version".into()),
            deadline_seconds: 10,
            timeout_seconds: 2,
            follow_redirects: false,
            consecutive: 3,
            test_url: test.map(str::to_string),
            service: None,
        };
        let out = test_checks(&[
            check("https://shop/health", Some("https://shop:8443/health")),
            check("https://other/health", None),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].url, "https://shop:8443/health");
        assert_eq!(
            out[0].name.as_deref(),
            Some("https://shop/health (test listener)")
        );
        assert_eq!(out[0].test_url, None);
    }
}
