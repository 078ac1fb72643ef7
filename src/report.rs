//! What a run did, as data: the deploy report, each service's part in it, and the status and
//! validation rows. Printed by `crate::render` (human text, Markdown) or as JSON; nothing here
//! writes anywhere.

use serde::Serialize;

use crate::deploy::taskdef::FieldChange;
use crate::deploy::ServiceState;
use crate::github::deployments::GithubReport;
use crate::records::store::Written;
use crate::records::RunKind;
use crate::registry::copy::CopyOutcome;
use crate::smoke::SmokeResult;

/// What `ferry deploy` did, for stdout, JSON and the step summary.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The release tag.
    pub tag: String,
    /// Its version.
    pub version: String,
    /// The environment deployed to.
    pub environment: String,
    /// Its AWS region.
    pub region: String,
    /// The GitHub Actions run, when ferry ran in one.
    pub run_url: Option<String>,
    /// The image every service is pinned to (`registry/repo@sha256:…`).
    pub image: String,
    /// A release of several images: each image's name and what it is pinned to.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub images: std::collections::BTreeMap<String, String>,
    /// The promotion copy, when the image was promoted from another environment.
    pub promotion: Option<CopyOutcome>,
    /// How long promoting the whole release took (its images copied side by side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_seconds: Option<f64>,
    /// Each service.
    pub services: Vec<ServiceReport>,
    /// The smoke checks (empty when the rollout failed first).
    pub smoke: Vec<SmokeResult>,
    /// How it ended.
    pub outcome: Outcome,
    /// One paragraph: what failed, the evidence, and what state the environment is in now.
    pub verdict: String,
    /// Deploy, redeploy, or rollback (an older release this environment ran before).
    pub kind: RunKind,
    /// For a rollback: the release that ran before it.
    pub rollback_from: Option<String>,
    /// The release record written next to the image.
    pub record: Option<Written>,
    /// Why no record could be written (the outcome above still stands).
    pub record_error: Option<String>,
    /// The run's GitHub deployment, when ferry had a token (never fails the deploy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubReport>,
    /// An environment of several targets: each target's run, in wave order (the fields above
    /// are then the first target's image and promotion, and the release's outcome and verdict).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetReport>,
}

/// Where one target of a release in waves stands at the end (kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// It runs the release.
    Deployed,
    /// It ran the release already; nothing changed.
    AlreadyDeployed,
    /// Its own run failed and went back.
    RolledBack,
    /// Not back on a known release: a person must look.
    NeedsAttention,
    /// Its run refused before changing anything.
    Refused,
    /// Its run failed without a report (an error before its rollout).
    Failed,
    /// It passed, and went back to its previous release when a later target failed.
    Reverted,
    /// An earlier wave failed before its turn.
    NotStarted,
}

impl TargetState {
    /// The state its run's outcome means.
    pub fn of(o: Outcome) -> TargetState {
        match o {
            Outcome::Deployed => TargetState::Deployed,
            Outcome::AlreadyDeployed => TargetState::AlreadyDeployed,
            Outcome::RolledBack => TargetState::RolledBack,
            Outcome::NeedsAttention => TargetState::NeedsAttention,
        }
    }

    /// In words (`already deployed`).
    pub fn words(self) -> &'static str {
        match self {
            TargetState::Deployed => "deployed",
            TargetState::AlreadyDeployed => "already deployed",
            TargetState::RolledBack => "rolled back",
            TargetState::NeedsAttention => "needs attention",
            TargetState::Refused => "refused",
            TargetState::Failed => "failed",
            TargetState::Reverted => "reverted",
            TargetState::NotStarted => "not started",
        }
    }

    /// Whether it runs the release now (it passed, or ran it already).
    pub fn runs_release(self) -> bool {
        matches!(self, TargetState::Deployed | TargetState::AlreadyDeployed)
    }
}

/// One target's part in a release of several targets.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Its `[[targets]]` name.
    pub target: String,
    /// Its wave, 1 first.
    pub wave: usize,
    pub account_id: String,
    pub region: String,
    /// Where it stands after the release.
    pub state: TargetState,
    /// The release it ran before this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    /// Its run's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<DeployReport>>,
    /// Why its run ended without a report (a refusal, an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run that sent it back to `previous_release`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Box<DeployReport>>,
    /// Why sending it back failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_error: Option<String>,
    /// When its run started and how long it took (seconds since the release started).
    pub started_seconds: f64,
    pub seconds: f64,
    /// The same for the run that sent it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_started_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_seconds: Option<f64>,
}

/// How a deploy ended; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Rolled out and verified.
    Deployed,
    /// Nothing to do: every service already ran it.
    AlreadyDeployed,
    /// Failed; every service this run changed is back on its previous revision.
    RolledBack,
    /// Failed; the environment is not known to be good.
    NeedsAttention,
}

/// One service's part in a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// ECS cluster.
    pub cluster: String,
    /// ECS service.
    pub service: String,
    /// The revision it ran before.
    pub previous_task_definition: String,
    /// The revision this run registered, if any.
    pub task_definition: Option<String>,
    /// What ECS says the service runs at the end of the run.
    pub final_task_definition: Option<String>,
    /// The release `previous_task_definition` belongs to, when ferry deployed it.
    pub previous_release: Option<String>,
    /// The image `previous_task_definition` runs (what this run replaced, maybe from before
    /// ferry).
    pub previous_image: Option<String>,
    /// Field changes of the new revision.
    pub changes: Vec<FieldChange>,
    /// Where it stands.
    pub state: ServiceState,
    /// Where it stands, in a few words (`web:1 → web:2`, `runs web:1, release v1.0.0`).
    pub detail: String,
    /// Evidence gathered on failure: events, stopped tasks.
    pub evidence: Vec<String>,
    /// Seconds from the update to the verdict.
    pub rollout_seconds: f64,
    /// The parts of a blue/green release ferry saw (test traffic, traffic shift, bake), when
    /// known: drawn as their own bars in the step summary's timeline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// How long ferry's rollback of this service took, when it rolled it back and timed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_seconds: Option<f64>,
    /// When ferry saw the rollout end (Unix seconds), to measure detection latency.
    pub rollout_noticed_at: Option<f64>,
    /// How long the rollout was allowed to take.
    pub timeout_seconds: u64,
    /// Why that long (derived from the service, set in the file, cut by the run deadline).
    pub timeout_why: String,
}

/// One part of a blue/green release, in seconds from the service's update.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Which part.
    pub kind: PhaseKind,
    /// When it began.
    pub start_seconds: f64,
    /// How long it took.
    pub seconds: f64,
}

impl Phase {
    /// The phases of an ECS-native release from the lifecycle stages ferry saw, each with when
    /// it was first seen (seconds from the update); the last lasts until `end`. Test-traffic
    /// stages are one phase, production-traffic stages another, then the bake time.
    pub fn from_stages(seen: &[(String, f64)], end: f64) -> Vec<Phase> {
        let kind = |stage: &str| match stage {
            "TEST_TRAFFIC_SHIFT" | "POST_TEST_TRAFFIC_SHIFT" => Some(PhaseKind::TestTraffic),
            "PRODUCTION_TRAFFIC_SHIFT" | "POST_PRODUCTION_TRAFFIC_SHIFT" => Some(PhaseKind::Shift),
            "BAKE_TIME" => Some(PhaseKind::Bake),
            _ => None,
        };
        let mut phases: Vec<Phase> = Vec::new();
        for (i, (stage, at)) in seen.iter().enumerate() {
            let until = seen.get(i + 1).map_or(end, |(_, next)| *next).max(*at);
            let Some(k) = kind(stage) else { continue };
            match phases.last_mut() {
                Some(p) if p.kind == k => p.seconds = until - p.start_seconds,
                _ => phases.push(Phase {
                    kind: k,
                    start_seconds: *at,
                    seconds: until - at,
                }),
            }
        }
        phases
    }
}

/// The parts of a blue/green release the timeline draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// The replacement on the test listener (test-traffic checks).
    TestTraffic,
    /// Production traffic moving to the replacement.
    Shift,
    /// The bake time after the shift.
    Bake,
}

/// One row of `ferry status`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Environment name.
    pub environment: String,
    /// ECS cluster.
    pub cluster: String,
    /// ECS service.
    pub service: String,
    /// The revision it runs.
    pub task_definition: String,
    /// The release of that revision, when ferry deployed it.
    pub release: Option<String>,
    /// The digest ferry pinned it to.
    pub digest: Option<String>,
    /// The container's image.
    pub image: Option<String>,
    /// Tasks running.
    pub running: i32,
    /// Tasks wanted.
    pub desired: i32,
    /// Its deployments, one line each.
    pub deployments: Vec<String>,
    /// How it is deployed, when not by a rolling update: `CODE_DEPLOY`, `BLUE_GREEN`, `LINEAR`
    /// or `CANARY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// A blue/green release in flight: where it stands and the traffic split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<crate::deploy::bluegreen::InFlight>,
    /// Auto scaling a ferry run suspended and never gave back (it died), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_held: Option<String>,
}

/// One environment in `ferry status`: its services now, and its memory.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    /// Environment name.
    pub environment: String,
    /// Each service, read from ECS.
    pub services: Vec<ServiceStatus>,
    /// The release the last successful record put here.
    pub live_release: Option<String>,
    /// When that record ended (RFC 3339).
    pub live_since: Option<String>,
    /// The newest records, newest first.
    pub history: Vec<crate::records::Summary>,
    /// Live revisions no record explains.
    pub drift: Vec<String>,
    /// Why the records could not be read, when they could not.
    pub records_error: Option<String>,
}

/// One row of `ferry validate`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Environment name.
    pub environment: String,
    /// What was checked.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}
