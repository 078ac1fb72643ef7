//! The ECS rollout engine, one service at a time: get ready without changing anything
//! (`prepare`), register the new revision and update the service (`start`), follow *this*
//! deployment to its real end (`follow`, deciding with the pure `judge`), explain a failure
//! (`evidence`), and bring the service back when the release fails (`rollback`).
//!
//! The whole-run orchestration (promote → roll out → smoke → roll back → report) is
//! `crate::run`; this module never sees the plan, only what each step needs.

pub mod bluegreen;
pub mod codedeploy;
pub mod evidence;
pub mod follow;
pub mod hold;
pub mod judge;
pub mod native;
pub mod preflight;
pub mod prepare;
pub mod preview;
pub mod rollback;
pub mod taskdef;
pub mod timeout;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_sdk_ecs::types::{Tag, TaskDefinition};

use crate::aws::ecs::{self, short_td};
use crate::config::ServiceConfig;
use judge::Ours;
use taskdef::FieldChange;

/// Where one service stands at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// It already ran the release; nothing changed.
    AlreadyDeployed,
    /// Rolled out and verified.
    Deployed,
    /// Its rollout failed; it is back on its previous revision.
    Failed,
    /// Rolled out, then rolled back because something else failed.
    RolledBack,
    /// Not changed: its deployment could not be started.
    Unchanged,
    /// Another deployment replaced this run's; ferry left it alone.
    Superseded,
    /// Not known to be good.
    Unknown,
}

/// Options of `ferry deploy` that reach the engine.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Wait for a deployment already in flight to finish instead of refusing.
    pub wait_for_idle: bool,
    /// The commit the release was built from, recorded as a tag.
    pub commit: Option<String>,
    /// When the whole run must be over: rollouts are cut to leave room for smoke checks and
    /// a rollback.
    pub deadline: Option<crate::deadline::Deadline>,
}

/// A service ready to deploy: everything read, nothing changed yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The service's entry in the environment file.
    pub cfg: ServiceConfig,
    /// How messages name it: `cluster/service`, or for a target of several
    /// `target:cluster/service` (two regions may hold services of one name).
    pub label: String,
    /// The revision it runs now.
    pub previous_td: String,
    /// That revision, described.
    pub td: TaskDefinition,
    /// That revision's tags.
    pub tags: Vec<Tag>,
    /// What the new revision runs: the release's image in each of its containers.
    pub pins: taskdef::Pins,
    /// It already runs the image: nothing to do.
    pub already: bool,
    /// How long the rollout may take.
    pub timeout: Duration,
    /// Why that long.
    pub timeout_why: String,
    /// How long bringing the service back may take: derived from the service, never less
    /// than the rollout timeout (a short override for the release must not cut a rollback).
    pub rollback_timeout: Duration,
    /// Service events that existed before this run: not ours to report.
    pub known_events: HashSet<String>,
    /// Deployment ids that existed before this run.
    pub known_deployments: HashSet<String>,
    /// For a CodeDeploy-controlled service: its deployment group and what it will do.
    pub blue_green: Option<codedeploy::Target>,
    /// An ECS-native strategy (`BLUE_GREEN`, `LINEAR`, `CANARY`), followed stage by stage.
    pub native: Option<String>,
}

impl Prepared {
    /// How messages name the service (its `label`).
    pub fn name(&self) -> String {
        self.label.clone()
    }
}

/// How following one deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// ECS says it ended well.
    Succeeded,
    /// Failed. `back_on_previous`: whether the service is verifiably back on the previous
    /// revision (ECS rolled it back), not, or not known.
    Failed {
        /// Why.
        reason: String,
        /// Where the service stands.
        back_on_previous: Option<bool>,
    },
    /// Failed, and ECS's own rollback failed too.
    RollbackFailed {
        /// Why.
        reason: String,
    },
    /// Another deployment replaced ours: not ours to undo.
    Superseded {
        /// What replaced it.
        reason: String,
    },
    /// Still in flight at the deadline.
    TimedOut {
        /// What was still pending.
        pending: String,
    },
}

/// One service's deployment in flight (or done).
#[derive(Debug)]
pub struct Running {
    /// What was read before.
    pub prep: Prepared,
    /// The revision registered by this run, once the service was updated to it.
    pub new_td: Option<String>,
    /// Field changes of that revision.
    pub changes: Vec<FieldChange>,
    /// A little before the update (service deployments are listed from here).
    pub started: SystemTime,
    /// This run's deployment, from `UpdateService`'s answer.
    pub ours: Option<Ours>,
    /// Its service deployment, once found.
    pub service_deployment_arn: Option<String>,
    /// How following it ended.
    pub ended: Option<Ended>,
    /// Seconds from the update to the verdict.
    pub seconds: f64,
    /// When ferry saw the rollout end.
    pub noticed_at: Option<SystemTime>,
    /// Evidence gathered on failure: events, stopped tasks.
    pub evidence: Vec<String>,
    /// Why the deployment could not be started (nothing changed on this service).
    pub start_error: Option<anyhow::Error>,
    /// The revision ECS says the service runs at the end of the run.
    pub final_td: Option<String>,
    /// The CodeDeploy side of a blue/green release.
    pub codedeploy: Option<codedeploy::CdRun>,
    /// Checks run during the release itself (test listener, bake time), before the final ones.
    pub test_smoke: Vec<crate::smoke::SmokeResult>,
    /// The lifecycle stages of an ECS-native release as ferry saw them: each stage and when
    /// (seconds after `started`); the step summary's timeline draws its phases.
    pub stages: Vec<(String, f64)>,
}

impl Running {
    pub(crate) fn new(prep: Prepared) -> Self {
        Running {
            prep,
            new_td: None,
            changes: Vec::new(),
            started: SystemTime::now(),
            ours: None,
            service_deployment_arn: None,
            ended: None,
            seconds: 0.0,
            noticed_at: None,
            evidence: Vec::new(),
            start_error: None,
            final_td: None,
            codedeploy: None,
            test_smoke: Vec::new(),
            stages: Vec::new(),
        }
    }
}

/// Starts and follows one service's deployment. A failure to start (register or update) is
/// recorded in the result, not returned: the other services of the run may have changed and
/// must be rolled back too. A CodeDeploy-controlled service goes through `codedeploy`.
pub async fn rollout(
    reads: &crate::aws::ecs::Reads,
    bg: &codedeploy::Context,
    prep: Prepared,
    ferry_tags: &[(&str, String)],
) -> Running {
    let client = reads.client();
    if prep.blue_green.is_some() {
        return codedeploy::rollout(client, bg, prep, ferry_tags).await;
    }
    if prep.native.is_some() {
        return native::rollout(reads, bg, prep, ferry_tags).await;
    }
    let mut run = Running::new(prep);
    if let Err(e) = start(client, &mut run, ferry_tags).await {
        tracing::error!("{}: {e:#}", run.prep.name());
        run.ended = Some(Ended::Failed {
            reason: format!("could not start the deployment: {e:#}"),
            back_on_previous: Some(run.new_td.is_none()),
        });
        run.start_error = Some(e);
        return run;
    }
    if let Some(ours) = run.ours.clone() {
        let t0 = Instant::now();
        let timeout = run.prep.timeout;
        let ended = follow::follow(reads, &mut run, &ours, timeout).await;
        conclude(&mut run, &ours.task_definition, "rollout", ended, t0);
    }
    run
}

/// Records how following a release ended (its time, when it was noticed) and says so once.
pub(crate) fn conclude(run: &mut Running, td: &str, what: &str, ended: Ended, t0: Instant) {
    run.seconds = t0.elapsed().as_secs_f64();
    run.noticed_at = Some(SystemTime::now());
    let name = run.prep.name();
    crate::inflight::rolled_out(&name, ended == Ended::Succeeded);
    let td = short_td(td);
    match &ended {
        Ended::Succeeded => {
            tracing::info!("{name}: {what} of {td} succeeded in {:.1}s", run.seconds)
        }
        Ended::Failed { reason, .. } | Ended::RollbackFailed { reason } => {
            tracing::error!("{name}: {what} of {td} failed: {reason}")
        }
        Ended::Superseded { reason } => {
            tracing::error!("{name}: {what} of {td} did not end: {reason}")
        }
        Ended::TimedOut { pending } => {
            tracing::error!("{name}: {what} of {td} timed out; pending: {pending}")
        }
    }
    run.ended = Some(ended);
}

/// Registers the revision and updates the service; `run.ours` is set from `UpdateService`'s
/// answer. Nothing to do when the service already runs the image.
async fn start(
    client: &aws_sdk_ecs::Client,
    run: &mut Running,
    ferry_tags: &[(&str, String)],
) -> Result<()> {
    let name = run.prep.name();
    if run.prep.already {
        tracing::info!(
            "{name}: already deployed ({} runs {}); no new revision",
            short_td(&run.prep.previous_td),
            run.prep.pins
        );
        return Ok(());
    }
    let new_td = register(client, run, ferry_tags).await?;
    crate::inflight::updating(&name);
    let update = begin_update(client, &run.prep.cfg, &new_td, &run.prep.previous_td)
        .await
        .with_context(|| {
            format!(
                "registered {}; the service was not changed and still runs {}",
                short_td(&new_td),
                short_td(&run.prep.previous_td)
            )
        })?;
    run.started = update.started;
    run.new_td = Some(new_td.clone());
    let mut ours = update.ours;
    ours.known_before
        .extend(run.prep.known_deployments.iter().cloned());
    crate::inflight::rolling_out(&name, ours.deployment_id.as_deref());
    tracing::info!(
        "{name}: updated to {} (deployment {}); following it for up to {}s ({})",
        short_td(&new_td),
        ours.deployment_id.as_deref().unwrap_or("?"),
        run.prep.timeout.as_secs(),
        run.prep.timeout_why
    );
    run.ours = Some(ours);
    Ok(())
}

/// Registers the new revision (or reuses an identical orphan of an earlier run); sets
/// `run.changes`; returns its ARN. The service is not changed.
pub(crate) async fn register(
    client: &aws_sdk_ecs::Client,
    run: &mut Running,
    ferry_tags: &[(&str, String)],
) -> Result<String> {
    let name = run.prep.name();
    let (req, changes) = taskdef::render(
        client,
        &run.prep.td,
        &run.prep.tags,
        &run.prep.pins,
        ferry_tags,
    )?;
    for c in &changes {
        tracing::info!("{name}: {c}");
    }
    let new_td = match taskdef::find_orphan(client, &run.prep.td, &run.prep.pins, ferry_tags, &req)
        .await
    {
        Some(arn) => {
            tracing::info!(
                "{name}: reusing {}, registered by an earlier run that stopped before updating the service (identical)",
                short_td(&arn)
            );
            arn
        }
        None => {
            let family = run.prep.td.family().unwrap_or("?").to_string();
            let out = crate::aws::AwsResultExt::aws(
                req.send().await,
                "ecs:RegisterTaskDefinition",
                format!("family {family} (for {name})"),
            )?;
            let arn = out
                .task_definition()
                .and_then(|t| t.task_definition_arn())
                .ok_or_else(|| anyhow!("ecs:RegisterTaskDefinition for {name} returned no ARN"))?
                .to_string();
            tracing::info!("{name}: registered {}", short_td(&arn));
            arn
        }
    };
    run.changes = changes;
    crate::inflight::registered(&name, &run.prep.previous_td, &new_td);
    Ok(new_td)
}

/// What an `UpdateService` started.
pub struct Update {
    /// This deployment, as the update's own answer names it.
    pub ours: Ours,
    /// A little before the update, by the local clock.
    pub started: SystemTime,
}

/// `UpdateService` to `td`; the answer names our deployment (the only certain read).
pub async fn begin_update(
    client: &aws_sdk_ecs::Client,
    cfg: &ServiceConfig,
    td: &str,
    previous_td: &str,
) -> Result<Update> {
    // A little before now: the service deployment's createdAt comes from AWS's clock.
    let started = SystemTime::now() - Duration::from_secs(5);
    let svc = ecs::update_service(client, &cfg.cluster, &cfg.service, td).await?;
    let primary = svc
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(td));
    let id = primary.and_then(|d| d.id()).map(str::to_string);
    let known_before = svc
        .deployments()
        .iter()
        .filter_map(|d| d.id())
        .filter(|d| Some(*d) != id.as_deref())
        .map(str::to_string)
        .collect();
    Ok(Update {
        ours: Ours {
            deployment_id: id,
            task_definition: td.to_string(),
            previous_task_definition: previous_td.to_string(),
            known_before,
        },
        started,
    })
}
