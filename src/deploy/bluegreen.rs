//! Pure decisions over CodeDeploy's answers for an ECS blue/green deployment: where the
//! deployment stands (starting, holding the replacement on test traffic, shifting production
//! traffic, shifted, failed), why it failed, whether CodeDeploy's rollback ended, and how long
//! the strategy may take. The loop in `deploy::codedeploy` only feeds these functions; every
//! branch is a row in the tables of `bluegreen_tests.rs`.

use std::time::Duration;

/// A CodeDeploy deployment as `GetDeployment` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentView {
    /// `d-…`
    pub id: String,
    /// Created, Queued, InProgress, Baking, Ready, Succeeded, Failed or Stopped.
    pub status: String,
    /// `errorInformation`: code and message.
    pub error: Option<(String, String)>,
    /// The deployment CodeDeploy started to roll this one back.
    pub rollback_id: Option<String>,
    /// The original task set's termination wait has begun (all traffic shifted).
    pub termination_wait: bool,
}

/// One lifecycle event of the ECS deployment target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventView {
    /// `Install`, `AllowTraffic`, …
    pub name: String,
    /// Pending, InProgress, Succeeded, Failed, Skipped or Unknown.
    pub status: String,
    /// The diagnostics' message, when there is one.
    pub message: Option<String>,
}

/// One task set of the ECS deployment target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSetView {
    /// `Blue` (original) or `Green` (replacement).
    pub label: String,
    /// Share of production traffic, 0-100.
    pub weight: f64,
    /// Tasks running.
    pub running: i64,
    /// Tasks wanted.
    pub desired: i64,
}

/// The ECS deployment target as `GetDeploymentTarget` answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetView {
    /// Its lifecycle events, in order.
    pub events: Vec<EventView>,
    /// The original and replacement task sets.
    pub task_sets: Vec<TaskSetView>,
}

impl TargetView {
    fn event(&self, name: &str) -> Option<&EventView> {
        self.events.iter().find(|e| e.name == name)
    }

    fn green(&self) -> Option<&TaskSetView> {
        self.task_sets.iter().find(|t| t.label == "Green")
    }

    /// Production traffic on the replacement task set, in percent (0 when it has none yet).
    pub fn replacement_weight(&self) -> f64 {
        self.green().map_or(0.0, |g| g.weight)
    }
}

/// Where a CodeDeploy deployment stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Before the replacement serves test traffic.
    Starting {
        /// One line of progress.
        progress: String,
    },
    /// Waiting before rerouting: the replacement serves the test listener, production has not
    /// moved. Smoke-test now, then continue or stop.
    Ready,
    /// Production traffic is moving to the replacement.
    Shifting {
        /// Share of production traffic on the replacement.
        weight: f64,
    },
    /// All production traffic is on the replacement. `termination_wait`: the original task set
    /// still exists (a rollback is still a traffic switch).
    Shifted {
        /// The original task set is waiting for its termination.
        termination_wait: bool,
    },
    /// Failed or stopped.
    Failed {
        /// Why, in CodeDeploy's words.
        reason: String,
        /// CodeDeploy's rollback deployment, when it started one.
        rollback: Option<String>,
    },
}

/// Where the deployment stands, from one read of it and (once it started) its ECS target.
pub fn stage(d: &DeploymentView, target: Option<&TargetView>) -> Stage {
    match d.status.as_str() {
        "Succeeded" => Stage::Shifted {
            termination_wait: false,
        },
        "Failed" | "Stopped" => Stage::Failed {
            reason: failure_reason(d, target),
            rollback: d.rollback_id.clone(),
        },
        "Ready" => Stage::Ready,
        _ => {
            let done = |n: &str| {
                target
                    .and_then(|t| t.event(n))
                    .is_some_and(|e| e.status == "Succeeded")
            };
            if d.termination_wait || (done("AllowTraffic") && done("AfterAllowTraffic")) {
                return Stage::Shifted {
                    termination_wait: true,
                };
            }
            let weight = target.map_or(0.0, TargetView::replacement_weight);
            let shifting = target
                .and_then(|t| t.event("AllowTraffic"))
                .is_some_and(|e| e.status != "Pending");
            if shifting || weight > 0.0 {
                return Stage::Shifting { weight };
            }
            let current = target
                .and_then(|t| t.events.iter().find(|e| e.status == "InProgress"))
                .map(|e| format!("lifecycle event {} in progress", e.name));
            Stage::Starting {
                progress: current.unwrap_or_else(|| format!("deployment {}", d.status)),
            }
        }
    }
}

/// Why a deployment failed: CodeDeploy's error and the failed lifecycle event's diagnostics.
pub fn failure_reason(d: &DeploymentView, target: Option<&TargetView>) -> String {
    let mut s = format!("CodeDeploy deployment {} {}", d.id, d.status);
    if let Some((code, message)) = &d.error {
        s.push_str(&format!(": {code}: {}", message.trim_end_matches('.')));
    }
    for e in target
        .into_iter()
        .flat_map(|t| &t.events)
        .filter(|e| e.status == "Failed")
    {
        s.push_str(&format!("; lifecycle event {} failed", e.name));
        if let Some(m) = &e.message {
            s.push_str(&format!(": {}", m.trim_end_matches('.')));
        }
    }
    s
}

/// How CodeDeploy's rollback deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackStage {
    /// Still rerouting traffic back.
    InProgress,
    /// Traffic is back on the original task set.
    Succeeded,
    /// The rollback failed: traffic is wherever it was.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Where CodeDeploy's rollback deployment stands.
pub fn rollback_stage(d: &DeploymentView) -> RollbackStage {
    match d.status.as_str() {
        "Succeeded" => RollbackStage::Succeeded,
        "Failed" | "Stopped" => RollbackStage::Failed {
            reason: failure_reason(d, None),
        },
        _ => RollbackStage::InProgress,
    }
}

/// A line on the traffic split, for the log: `production traffic: 10% replacement, 90% original`.
pub fn traffic_line(t: &TargetView) -> String {
    let w = t.replacement_weight();
    format!(
        "production traffic: {w:.0}% on the replacement, {:.0}% on the original",
        100.0 - w
    )
}

/// How a deployment configuration moves production traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Routing {
    /// All at once.
    AllAtOnce,
    /// `percent` first, the rest after `minutes`.
    Canary {
        /// First step.
        percent: i32,
        /// Minutes before the rest.
        minutes: i32,
    },
    /// `percent` more every `minutes`.
    Linear {
        /// Step.
        percent: i32,
        /// Minutes between steps.
        minutes: i32,
    },
}

impl Routing {
    /// How long shifting all production traffic takes.
    pub fn shift_time(self) -> Duration {
        let minutes = match self {
            Routing::AllAtOnce => 0,
            Routing::Canary { minutes, .. } => minutes.max(0) as u64,
            Routing::Linear { percent, minutes } => {
                let steps = (100 / percent.clamp(1, 100) as u64)
                    + u64::from(100 % percent.clamp(1, 100) != 0);
                steps.saturating_sub(1) * minutes.max(0) as u64
            }
        };
        Duration::from_secs(minutes * 60)
    }

    /// In words, for the plan and the log.
    pub fn describe(self) -> String {
        match self {
            Routing::AllAtOnce => "all production traffic at once".into(),
            Routing::Canary { percent, minutes } => {
                format!("{percent}% of production traffic, the rest {minutes} min later")
            }
            Routing::Linear { percent, minutes } => {
                format!("{percent}% more production traffic every {minutes} min")
            }
        }
    }
}

/// Which strategy `deploy` will run for a service, and what it will wait for (for `plan`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    /// An ECS rolling update.
    #[default]
    Rolling,
    /// Blue/green through CodeDeploy.
    CodeDeploy {
        /// The application.
        application: String,
        /// The deployment group.
        deployment_group: String,
        /// The deployment configuration.
        config: String,
        /// How it moves production traffic.
        routing: Routing,
        /// The group holds the replacement on test traffic before rerouting.
        holds: bool,
        /// `test_url` checks ferry runs while it holds.
        test_checks: usize,
        /// Minutes the original task set stays after the shift (reported, not waited for).
        termination_wait_minutes: i32,
    },
    /// An ECS-native strategy, followed stage by stage.
    Native {
        /// `BLUE_GREEN`, `LINEAR` or `CANARY`.
        strategy: String,
        /// How it moves production traffic.
        routing: Routing,
        /// Bake time, minutes.
        bake_minutes: i32,
        /// `test_url` checks ferry runs during the test-traffic stages.
        test_checks: usize,
        /// The stages where a PAUSE lifecycle hook holds the deployment for ferry's decision.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pauses: Vec<String>,
    },
    /// `deploy` would refuse this service.
    Refused {
        /// Why.
        why: String,
    },
}

impl Strategy {
    /// A rolling update (the default, left out of the plan's JSON).
    pub fn is_rolling(&self) -> bool {
        *self == Strategy::Rolling
    }
}

/// A blue/green release in flight, as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InFlight {
    /// The CodeDeploy deployment id or the service deployment ARN.
    pub deployment: String,
    /// Its status.
    pub status: String,
    /// Production traffic on the replacement, when CodeDeploy reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement_weight: Option<f64>,
    /// The ECS lifecycle stage (ECS-native strategies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// The group's "wait before rerouting" option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadyOption {
    /// `STOP_DEPLOYMENT`: hold until `ContinueDeployment` (stopped after `wait_minutes`).
    pub stop: bool,
    /// Minutes to wait.
    pub wait_minutes: i32,
}

impl ReadyOption {
    /// Whether CodeDeploy holds the replacement on test traffic before rerouting production.
    pub fn holds(self) -> bool {
        self.stop || self.wait_minutes > 0
    }
}

/// Whether ferry may run this release through the group, and why not: test-traffic checks
/// need the group to hold the replacement on test traffic first.
pub fn refuse_without_hold(ready: ReadyOption, has_test_checks: bool) -> Option<String> {
    (has_test_checks && !ready.holds()).then(|| {
        "its deployment group reroutes production traffic without waiting (deploymentReadyOption CONTINUE_DEPLOYMENT, 0 minutes), so the [[smoke]] test_url checks could not run before production traffic moves".to_string()
    })
}

/// How long a CodeDeploy release may take: installing the replacement (the rolling-update
/// estimate for one batch), the test-traffic checks, shifting traffic. The termination wait is
/// not waited out.
pub fn timeout(
    install: Duration,
    smoke: Duration,
    routing: Routing,
    override_secs: Option<u64>,
) -> (Duration, String) {
    if let Some(s) = override_secs {
        return (
            Duration::from_secs(s),
            "set by deploy.rollout_timeout_seconds".into(),
        );
    }
    let hooks = Duration::from_secs(300);
    let shift = routing.shift_time();
    let total = install + smoke + shift + hooks;
    (
        total,
        format!(
            "{}s install + {}s test-traffic checks + {}s traffic shift ({}) + {}s lifecycle hooks",
            install.as_secs(),
            smoke.as_secs(),
            shift.as_secs(),
            routing.describe(),
            hooks.as_secs()
        ),
    )
}

/// What ferry does at one read of an ECS-native blue/green, linear or canary deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeStep {
    /// Nothing yet.
    Wait,
    /// The test listener serves the new revision: run the `test_url` checks.
    CheckTestTraffic,
    /// Bake time: production serves the new revision, the old one still runs. Run the
    /// production checks while a rollback is still a switch back.
    CheckProduction,
    /// Paused at a PAUSE hook after ferry's checks passed (or with none to run): continue.
    Continue,
    /// Nothing left to check: the rollout loop follows it to its end.
    HandOver,
}

/// The lifecycle stages of an ECS-native blue/green, linear or canary deployment, in ECS's
/// order (`ServiceDeployment.lifecycleStage`, ECS API reference).
const LIFECYCLE: &[&str] = &[
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

/// The stages strictly between `from` and `to` in ECS's order: those the deployment moved
/// through unseen between two reads (a stage can be shorter than the poll). Empty when either
/// is unknown or `to` does not come later.
pub fn stages_between(from: &str, to: &str) -> &'static [&'static str] {
    let at = |s: &str| LIFECYCLE.iter().position(|x| *x == s);
    match (at(from), at(to)) {
        (Some(a), Some(b)) if b > a + 1 => &LIFECYCLE[a + 1..b],
        _ => &[],
    }
}

/// The stages in which the test listener serves the new revision.
const TEST_STAGES: &[&str] = &[
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// What to do, from the service deployment's status and `lifecycleStage`, whether it is paused
/// at a PAUSE hook, and which checks exist and already ran. A pause after the test-traffic
/// shift holds production traffic until ferry's test checks pass; a pause after the
/// production shift holds the old revision until the production checks pass. A pause
/// anywhere else is not ferry's to lift.
pub fn native_step(
    status: &str,
    stage: Option<&str>,
    paused: bool,
    test: (bool, bool),
    production: (bool, bool),
) -> NativeStep {
    let (has_test, test_done) = test;
    let (has_prod, prod_done) = production;
    if !matches!(status, "PENDING" | "IN_PROGRESS") {
        return NativeStep::HandOver;
    }
    let Some(stage) = stage else {
        return NativeStep::Wait;
    };
    if paused {
        return match stage {
            "TEST_TRAFFIC_SHIFT" | "POST_TEST_TRAFFIC_SHIFT" if has_test && !test_done => {
                NativeStep::CheckTestTraffic
            }
            "TEST_TRAFFIC_SHIFT" | "POST_TEST_TRAFFIC_SHIFT" => NativeStep::Continue,
            "PRODUCTION_TRAFFIC_SHIFT" | "POST_PRODUCTION_TRAFFIC_SHIFT"
                if has_prod && !prod_done =>
            {
                NativeStep::CheckProduction
            }
            "PRODUCTION_TRAFFIC_SHIFT" | "POST_PRODUCTION_TRAFFIC_SHIFT" => NativeStep::Continue,
            _ => NativeStep::Wait,
        };
    }
    if has_test && !test_done && TEST_STAGES.contains(&stage) {
        return NativeStep::CheckTestTraffic;
    }
    match stage {
        "BAKE_TIME" if has_prod && !prod_done => NativeStep::CheckProduction,
        "BAKE_TIME" | "CLEAN_UP" => NativeStep::HandOver,
        _ => NativeStep::Wait,
    }
}

#[cfg(test)]
#[path = "bluegreen_tests.rs"]
mod tests;
