//! `ferry deploy`: execute a plan on ECS and know how it ended.
//!
//! Per service: render a revision from the live task definition (only the image and ferry's
//! tags change), update the service with its full ARN, then follow *this* deployment through
//! the service-deployments API (DescribeServices as the fallback) to its real end — a
//! circuit-breaker rollback is a failure of this release even though the service is healthy.
//! Then the smoke gate. Any failure rolls back every service this run changed, follows the
//! rollback to its end, and says exactly what state the environment is in (exit 4 when it is
//! back on its previous release, 5 when that is not known).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_sdk_ecs::types::{
    CreatedAt, DeploymentRolloutState, DesiredStatus, Service, ServiceDeploymentStatus,
    StopServiceDeploymentStopType, Tag, TaskDefinition, TaskDefinitionField,
};
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::aws::describe_sdk_error;
use crate::aws::ecs::{
    self as ecs_td, FieldChange, TAG_COMMIT, TAG_DIGEST, TAG_RELEASE, TAG_VERSION,
};
use crate::config::{Environment, ServiceConfig};
use crate::error::{Failure, FailureKind};
use crate::plan::Plan;
use crate::smoke::{self, SmokeResult};

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Wait for a deployment already in flight to finish instead of refusing.
    pub wait_for_idle: bool,
    /// The commit the release was built from, recorded as a tag.
    pub commit: Option<String>,
}

/// What happened, for stdout / JSON / the step summary.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub tag: String,
    pub version: String,
    pub environment: String,
    pub image: String,
    pub promotion: Option<crate::promote::PromoteOutcome>,
    pub services: Vec<ServiceReport>,
    pub smoke: Vec<SmokeResult>,
    pub outcome: Outcome,
    /// One paragraph: what failed, the evidence, and what state the environment is in now.
    pub verdict: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    AlreadyDeployed,
    RolledBack,
    NeedsAttention,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub cluster: String,
    pub service: String,
    pub previous_task_definition: String,
    pub task_definition: Option<String>,
    pub changes: Vec<FieldChange>,
    pub state: ServiceState,
    pub detail: String,
    /// Evidence gathered on failure: events, stopped tasks.
    pub evidence: Vec<String>,
    pub rollout_seconds: f64,
    /// When ferry saw the rollout end (Unix seconds), to measure detection latency.
    pub rollout_noticed_at: Option<f64>,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    AlreadyDeployed,
    Deployed,
    /// Rollout failed; the service is back on its previous revision.
    Failed,
    /// Rolled out, then rolled back because something else failed.
    RolledBack,
    /// Not changed: its deployment could not be started.
    Unchanged,
    /// Not known to be good.
    Unknown,
}

/// A service ready to deploy: everything read, nothing changed yet.
struct Prepared {
    cfg: ServiceConfig,
    previous_td: String,
    td: TaskDefinition,
    tags: Vec<Tag>,
    already: bool,
    timeout: Duration,
    timeout_why: String,
    /// Service events that existed before this run: not ours to report.
    known_events: HashSet<String>,
}

/// How following one deployment ended.
#[derive(Debug)]
enum Ended {
    Succeeded,
    /// Failed; `back_on_previous` says whether the service is verifiably back on the previous
    /// revision (ECS rolled it back) or not known.
    Failed {
        reason: String,
        back_on_previous: Option<bool>,
    },
    TimedOut {
        pending: String,
    },
}

/// One service's deployment in flight (or done).
struct Running {
    prep: Prepared,
    new_td: Option<String>,
    changes: Vec<FieldChange>,
    started: SystemTime,
    deployment_id: Option<String>,
    service_deployment_arn: Option<String>,
    ended: Option<Ended>,
    seconds: f64,
    noticed_at: Option<SystemTime>,
    evidence: Vec<String>,
    /// Why the deployment could not be started (nothing changed on this service).
    start_error: Option<anyhow::Error>,
}

pub async fn deploy(
    plan: &Plan,
    env: &Environment,
    source_env: &Environment,
    opts: &DeployOptions,
) -> Result<DeployReport> {
    let digest = plan.source.digest.clone().ok_or_else(|| {
        anyhow!(
            "the source digest of {} could not be read: {}",
            plan.source.display(),
            plan.unresolved.join("; ")
        )
    })?;
    // A release tag is immutable: production's tag must not already mean other bytes.
    if let (true, Some(existing)) = (plan.promote, &plan.target.digest) {
        if *existing != digest {
            return Err(Failure::refused(format!(
                "{}/{}:{} already exists with digest {existing}, but the verified {} candidate is {digest}; refusing to move the tag",
                plan.target.registry,
                plan.target.repository,
                plan.tag,
                plan.source.tag.as_deref().unwrap_or("?")
            ))
            .hint("a released version never changes: publish a new version (and release candidate) instead")
            .into());
        }
    }
    let sdk = crate::aws::sts::environment_config(env).await?;
    crate::aws::sts::verify_identity(env, &sdk).await?;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let image = format!(
        "{}/{}@{}",
        env.registry_host(),
        env.file.image.repository,
        digest
    );

    // Read everything and refuse early: nothing is changed until every service is ready.
    let mut prepared = Vec::new();
    for cfg in &env.file.services {
        prepared.push(prepare(&ecs, env, cfg, &image, opts).await?);
    }

    let promotion = if plan.promote {
        let source_tag = plan.source.tag.clone().unwrap_or_default();
        tracing::info!(
            "promoting {} to {}/{}:{}",
            plan.source.display(),
            env.registry_host(),
            env.file.image.repository,
            plan.tag
        );
        let out = crate::promote::promote(source_env, env, &source_tag, &digest, &plan.tag)
            .await
            .with_context(|| {
                format!(
                    "promoting {digest} from {} to {}",
                    source_env.name, env.name
                )
            })?;
        Some(out)
    } else {
        None
    };

    let ferry_tags = ferry_tags(&plan.tag, &plan.version, &digest, opts.commit.as_deref());

    // Roll out every service concurrently.
    let mut runs = futures_util::future::join_all(
        prepared
            .into_iter()
            .map(|p| rollout(&ecs, p, &image, &ferry_tags)),
    )
    .await;
    // Nothing changed anywhere: the start error is the whole story (exit 1, or its own code).
    if runs.iter().all(|r| r.new_td.is_none()) {
        if let Some(e) = runs.iter_mut().find_map(|r| r.start_error.take()) {
            return Err(e);
        }
    }

    let rollout_ok = runs
        .iter()
        .all(|r| matches!(r.ended, Some(Ended::Succeeded) | None));
    let smoke_results = if rollout_ok && !env.file.smoke.is_empty() {
        tracing::info!(
            "rollout complete; running {} smoke check(s)",
            env.file.smoke.len()
        );
        smoke::run(&env.file.smoke, &accepted_versions(plan)).await
    } else {
        Vec::new()
    };
    let smoke_ok = smoke_results.iter().all(|s| s.ok);
    let nothing_changed = runs.iter().all(|r| r.new_td.is_none());

    let mut report = DeployReport {
        tag: plan.tag.clone(),
        version: plan.version.clone(),
        environment: env.name.clone(),
        image: image.clone(),
        promotion,
        services: Vec::new(),
        smoke: smoke_results,
        outcome: Outcome::Deployed,
        verdict: String::new(),
    };

    if rollout_ok && smoke_ok {
        report.outcome = if nothing_changed {
            Outcome::AlreadyDeployed
        } else {
            Outcome::Deployed
        };
        report.services = runs.iter().map(|r| service_report(r, None)).collect();
        report.verdict = if nothing_changed {
            format!(
                "{} already runs {} ({}) on every service; nothing was changed",
                env.name, plan.tag, digest
            )
        } else {
            format!(
                "{} now runs {} ({}) on every service; rollout and smoke checks passed",
                env.name, plan.tag, digest
            )
        };
        return Ok(report);
    }

    // Failure: explain, roll back what this run changed, and say where things stand.
    let mut why = Vec::new();
    for r in &runs {
        match &r.ended {
            Some(Ended::Failed { reason, .. }) => why.push(format!(
                "{}/{}: {reason}",
                r.prep.cfg.cluster, r.prep.cfg.service
            )),
            Some(Ended::TimedOut { pending }) => why.push(format!(
                "{}/{}: rollout did not finish within {}s ({}); still pending: {pending}",
                r.prep.cfg.cluster,
                r.prep.cfg.service,
                r.prep.timeout.as_secs(),
                r.prep.timeout_why
            )),
            _ => {}
        }
    }
    for s in report.smoke.iter().filter(|s| !s.ok) {
        why.push(format!(
            "smoke check {} failed after {} attempt(s): {}",
            s.name, s.attempts, s.detail
        ));
    }
    if nothing_changed {
        report.outcome = Outcome::NeedsAttention;
        report.services = runs
            .iter()
            .map(|r| service_report(r, Some(ServiceState::Unknown)))
            .collect();
        report.verdict = format!(
            "{} already ran {} but it is failing: {}. This run changed nothing; a person must look.",
            env.name,
            plan.tag,
            why.join("; ")
        );
        return Ok(report);
    }

    for r in runs.iter_mut() {
        if r.new_td.is_some() && r.evidence.is_empty() {
            r.evidence = explain(&ecs, r).await;
        }
    }
    let mut states = Vec::new();
    for r in runs.iter_mut() {
        let state = roll_back(&ecs, r).await;
        states.push(state);
    }
    let all_back = states.iter().all(|s| {
        matches!(
            s,
            ServiceState::Failed
                | ServiceState::RolledBack
                | ServiceState::AlreadyDeployed
                | ServiceState::Unchanged
        )
    });
    report.services = runs
        .iter()
        .zip(&states)
        .map(|(r, s)| service_report(r, Some(*s)))
        .collect();
    report.outcome = if all_back {
        Outcome::RolledBack
    } else {
        Outcome::NeedsAttention
    };
    let mut v = format!(
        "release {} to {} FAILED: {}.",
        plan.tag,
        env.name,
        why.join("; ").trim_end_matches('.')
    );
    if all_back {
        let _ = write!(
            v,
            " Every service this run changed is back on its previous task definition and stable:"
        );
    } else {
        let _ = write!(
            v,
            " The environment is NOT known to be good; a person must look:"
        );
    }
    for s in &report.services {
        let _ = write!(
            v,
            " {}/{} {} ({});",
            s.cluster,
            s.service,
            state_words(s.state),
            s.detail
        );
    }
    report.verdict = v.trim_end_matches(';').to_string() + ".";
    Ok(report)
}

/// What the smoke checks' version field may say: this release, or for a promotion the release
/// candidate whose bytes these are.
fn accepted_versions(plan: &Plan) -> Vec<String> {
    let mut v = vec![plan.version.clone(), plan.tag.clone()];
    if let (true, Some(src)) = (plan.promote, &plan.source.tag) {
        v.push(src.trim_start_matches('v').to_string());
        v.push(src.clone());
    }
    v
}

fn state_words(s: ServiceState) -> &'static str {
    match s {
        ServiceState::AlreadyDeployed => "unchanged",
        ServiceState::Deployed => "deployed",
        ServiceState::Failed => "failed and back on its previous revision",
        ServiceState::RolledBack => "rolled back to its previous revision",
        ServiceState::Unchanged => "not changed (its deployment could not start)",
        ServiceState::Unknown => "state unknown",
    }
}

/// The error to return for a finished report (Ok for success).
pub fn result_of(report: &DeployReport) -> Result<()> {
    match report.outcome {
        Outcome::Deployed | Outcome::AlreadyDeployed => Ok(()),
        Outcome::RolledBack => Err(
            Failure::new(FailureKind::RolledBack, report.verdict.clone())
                .hint("the evidence above says why; fix the release and publish a new rc")
                .into(),
        ),
        Outcome::NeedsAttention => Err(Failure::new(
            FailureKind::NeedsAttention,
            report.verdict.clone(),
        )
        .hint(
            "check the services named above in the ECS console; `ferry status` shows what runs now",
        )
        .into()),
    }
}

fn service_report(r: &Running, state: Option<ServiceState>) -> ServiceReport {
    let state = state.unwrap_or(if r.new_td.is_none() {
        ServiceState::AlreadyDeployed
    } else {
        ServiceState::Deployed
    });
    // Name the release the service is back on, when ferry deployed it.
    let previous_release = r
        .prep
        .tags
        .iter()
        .find(|t| t.key() == Some(TAG_RELEASE))
        .and_then(|t| t.value())
        .map(|v| format!(", release {v}"))
        .unwrap_or_default();
    let detail = match state {
        ServiceState::AlreadyDeployed => format!("already runs {}", short_td(&r.prep.previous_td)),
        ServiceState::Deployed => format!(
            "{} → {}",
            short_td(&r.prep.previous_td),
            short_td(r.new_td.as_deref().unwrap_or(""))
        ),
        ServiceState::Failed | ServiceState::RolledBack => {
            format!("runs {}{previous_release}", short_td(&r.prep.previous_td))
        }
        ServiceState::Unchanged => format!(
            "still runs {}{previous_release}",
            short_td(&r.prep.previous_td)
        ),
        ServiceState::Unknown => "see the evidence".into(),
    };
    ServiceReport {
        cluster: r.prep.cfg.cluster.clone(),
        service: r.prep.cfg.service.clone(),
        previous_task_definition: r.prep.previous_td.clone(),
        task_definition: r.new_td.clone(),
        changes: r.changes.clone(),
        state,
        detail,
        evidence: r.evidence.clone(),
        rollout_seconds: r.seconds,
        rollout_noticed_at: r
            .noticed_at
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        timeout_seconds: r.prep.timeout.as_secs(),
    }
}

/// `family:revision` of a task-definition ARN.
pub fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn sdk_err<E: std::error::Error + 'static>(e: E) -> anyhow::Error {
    anyhow!("{}", describe_sdk_error(&e))
}

async fn describe_service(ecs: &aws_sdk_ecs::Client, cfg: &ServiceConfig) -> Result<Service> {
    let out = ecs
        .describe_services()
        .cluster(&cfg.cluster)
        .services(&cfg.service)
        .send()
        .await
        .map_err(sdk_err)
        .with_context(|| format!("ecs:DescribeServices {}/{}", cfg.cluster, cfg.service))?;
    out.services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE"))
        .cloned()
        .ok_or_else(|| {
            Failure::invalid(format!("ECS service {}/{} does not exist or is not ACTIVE", cfg.cluster, cfg.service))
                .hint("create the service first (ferry deploys to existing services), or fix [[services]] in the environment file")
                .into()
        })
}

/// The task definition `arn` with its tags.
pub(crate) async fn describe_task_definition(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
) -> Result<(TaskDefinition, Vec<Tag>)> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(sdk_err)
        .with_context(|| format!("ecs:DescribeTaskDefinition {arn}"))?;
    let td = out
        .task_definition()
        .cloned()
        .ok_or_else(|| anyhow!("ecs:DescribeTaskDefinition {arn} returned nothing"))?;
    Ok((td, out.tags().to_vec()))
}

/// A description of the deployment(s) in flight, or None when the service is idle.
fn in_flight(svc: &Service) -> Option<String> {
    let busy: Vec<String> = svc
        .deployments()
        .iter()
        .filter(|d| {
            d.status() != Some("PRIMARY")
                || d.rollout_state() == Some(&DeploymentRolloutState::InProgress)
        })
        .map(|d| {
            format!(
                "{} ({} {}, rollout {})",
                d.id().unwrap_or("?"),
                d.status().unwrap_or("?"),
                short_td(d.task_definition().unwrap_or("?")),
                d.rollout_state().map(|s| s.as_str()).unwrap_or("?")
            )
        })
        .collect();
    let primary_busy = svc.deployments().iter().any(|d| {
        d.status() == Some("PRIMARY")
            && d.rollout_state() == Some(&DeploymentRolloutState::InProgress)
    });
    (svc.deployments().len() > 1 || primary_busy).then(|| busy.join(", "))
}

async fn prepare(
    ecs: &aws_sdk_ecs::Client,
    env: &Environment,
    cfg: &ServiceConfig,
    image: &str,
    opts: &DeployOptions,
) -> Result<Prepared> {
    let mut svc = describe_service(ecs, cfg).await?;
    // Blue/green (CodeDeploy) and external controllers ignore UpdateService's task definition.
    if let Some(kind) = svc.deployment_controller().map(|c| c.r#type()) {
        if *kind != aws_sdk_ecs::types::DeploymentControllerType::Ecs {
            return Err(Failure::invalid(format!(
                "service {}/{} uses the {} deployment controller; ferry deploys services with the ECS (rolling update) controller",
                cfg.cluster,
                cfg.service,
                kind.as_str()
            ))
            .hint("deploy this service with its own controller (e.g. CodeDeploy), or remove it from the environment's [[services]]")
            .into());
        }
    }
    if let Some(busy) = in_flight(&svc) {
        if !opts.wait_for_idle {
            return Err(Failure::refused(format!(
                "service {}/{} has a deployment in flight: {busy}; deploying on top of it would make its outcome unknowable",
                cfg.cluster, cfg.service
            ))
            .hint("wait for it to finish, or run with --wait-for-idle")
            .into());
        }
        tracing::info!(
            "{}/{}: waiting for the deployment in flight to finish: {busy}",
            cfg.cluster,
            cfg.service
        );
        let deadline = Instant::now() + Duration::from_secs(3600);
        while let Some(b) = in_flight(&svc) {
            if Instant::now() > deadline {
                return Err(Failure::refused(format!(
                    "service {}/{} stayed busy for an hour: {b}",
                    cfg.cluster, cfg.service
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            svc = describe_service(ecs, cfg).await?;
        }
    }
    let previous_td = svc
        .task_definition()
        .ok_or_else(|| {
            anyhow!(
                "service {}/{} has no task definition",
                cfg.cluster,
                cfg.service
            )
        })?
        .to_string();
    let (td, tags) = describe_task_definition(ecs, &previous_td).await?;
    if ecs_td::container_image(&td, &cfg.container).is_none() {
        // render() gives the full message, with the container names.
        ecs_td::render(ecs, &td, &tags, &cfg.container, image, &[])
            .map_err(|e| Failure::invalid(format!("{e}")))?;
    }
    let already = ecs_td::container_image(&td, &cfg.container) == Some(image);
    let (timeout, timeout_why) =
        rollout_timeout(&svc, &td, env.file.deploy.rollout_timeout_seconds);
    Ok(Prepared {
        cfg: cfg.clone(),
        previous_td,
        td,
        tags,
        already,
        timeout,
        timeout_why,
        known_events: event_ids(&svc),
    })
}

fn event_ids(svc: &Service) -> HashSet<String> {
    svc.events()
        .iter()
        .filter_map(|e| e.id())
        .map(str::to_string)
        .collect()
}

/// How long a rollout may take, derived from the service: batches of replacement tasks, each
/// needing to start and pass health checks, plus load-balancer draining and bake time.
pub fn rollout_timeout(
    svc: &Service,
    td: &TaskDefinition,
    override_secs: Option<u64>,
) -> (Duration, String) {
    if let Some(s) = override_secs {
        return (
            Duration::from_secs(s),
            "set by deploy.rollout_timeout_seconds".into(),
        );
    }
    let desired = svc.desired_count().max(1) as u64;
    let dc = svc.deployment_configuration();
    let max_pct = dc.and_then(|d| d.maximum_percent()).unwrap_or(200).max(100) as u64;
    let min_pct = dc
        .and_then(|d| d.minimum_healthy_percent())
        .unwrap_or(100)
        .min(100) as u64;
    let surge = desired * (max_pct - 100) / 100;
    let drop = desired - (desired * min_pct).div_ceil(100);
    let per_batch = (surge + drop).max(1);
    let batches = desired.div_ceil(per_batch);
    let start = 120u64; // scheduling, image pull, container start
    let grace = svc.health_check_grace_period_seconds().unwrap_or(0).max(0) as u64;
    let health = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.health_check())
        .map(|h| {
            let interval = h.interval().unwrap_or(30).max(0) as u64;
            let timeout = h.timeout().unwrap_or(5).max(0) as u64;
            let retries = h.retries().unwrap_or(3).max(0) as u64;
            h.start_period().unwrap_or(0).max(0) as u64 + (interval + timeout) * retries
        })
        .max()
        .unwrap_or(0);
    let lb = !svc.load_balancers().is_empty();
    let lb_health = if lb { 3 * 30 } else { 0 }; // target group: healthy threshold × interval (defaults)
    let drain = if lb { 300 } else { 0 }; // default deregistration delay
    let bake = dc
        .and_then(|d| d.bake_time_in_minutes())
        .unwrap_or(0)
        .max(0) as u64
        * 60;
    let per = start + grace.max(health).max(lb_health);
    let total = (batches * per + drain + bake).max(180);
    let why = format!(
        "{batches} batch(es) of up to {per_batch} task(s) × ({start}s start + {}s health) + {drain}s drain + {bake}s bake",
        grace.max(health).max(lb_health)
    );
    (Duration::from_secs(total), why)
}

/// Starts and follows one service's deployment. A failure to start (register or update)
/// is recorded in the result, not returned: the other services of the run may have changed
/// and must be rolled back too.
async fn rollout(
    ecs: &aws_sdk_ecs::Client,
    prep: Prepared,
    image: &str,
    ferry_tags: &[(&str, String)],
) -> Running {
    let mut run = Running {
        new_td: None,
        changes: Vec::new(),
        started: SystemTime::now(),
        deployment_id: None,
        service_deployment_arn: None,
        ended: None,
        seconds: 0.0,
        noticed_at: None,
        evidence: Vec::new(),
        start_error: None,
        prep,
    };
    if let Err(e) = rollout_inner(ecs, &mut run, image, ferry_tags).await {
        tracing::error!("{}/{}: {e:#}", run.prep.cfg.cluster, run.prep.cfg.service);
        run.ended = Some(Ended::Failed {
            reason: format!("could not start the deployment: {e:#}"),
            back_on_previous: Some(run.new_td.is_none()),
        });
        run.start_error = Some(e);
    }
    run
}

async fn rollout_inner(
    ecs: &aws_sdk_ecs::Client,
    run: &mut Running,
    image: &str,
    ferry_tags: &[(&str, String)],
) -> Result<()> {
    let name = format!("{}/{}", run.prep.cfg.cluster, run.prep.cfg.service);
    if run.prep.already {
        tracing::info!(
            "{name}: already deployed ({} runs {image}); no new revision",
            short_td(&run.prep.previous_td)
        );
        return Ok(());
    }
    let (req, changes) = ecs_td::render(
        ecs,
        &run.prep.td,
        &run.prep.tags,
        &run.prep.cfg.container,
        image,
        ferry_tags,
    )?;
    for c in &changes {
        tracing::info!("{name}: {c}");
    }
    let out = req.send().await.map_err(sdk_err).with_context(|| {
        format!(
            "ecs:RegisterTaskDefinition for {name} (family {})",
            run.prep.td.family().unwrap_or("?")
        )
    })?;
    let new_td = out
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .ok_or_else(|| anyhow!("ecs:RegisterTaskDefinition for {name} returned no ARN"))?
        .to_string();
    tracing::info!("{name}: registered {}", short_td(&new_td));
    run.changes = changes;
    // A little before now: the service deployment's createdAt comes from AWS's clock.
    run.started = SystemTime::now() - Duration::from_secs(5);
    let t0 = Instant::now();
    let out = ecs
        .update_service()
        .cluster(&run.prep.cfg.cluster)
        .service(&run.prep.cfg.service)
        .task_definition(&new_td)
        .send()
        .await
        .map_err(sdk_err)
        .with_context(|| {
            format!(
                "ecs:UpdateService {name} to {} (registered; the service was not changed and still runs {})",
                short_td(&new_td),
                short_td(&run.prep.previous_td)
            )
        })?;
    run.new_td = Some(new_td.clone());
    run.deployment_id = out
        .service()
        .and_then(|s| {
            s.deployments().iter().find(|d| {
                d.status() == Some("PRIMARY") && d.task_definition() == Some(new_td.as_str())
            })
        })
        .and_then(|d| d.id())
        .map(str::to_string);
    tracing::info!(
        "{name}: updated to {} (deployment {}); following it for up to {}s ({})",
        short_td(&new_td),
        run.deployment_id.as_deref().unwrap_or("?"),
        run.prep.timeout.as_secs(),
        run.prep.timeout_why
    );
    let timeout = run.prep.timeout;
    let ended = follow(ecs, run, &new_td, timeout).await;
    run.seconds = t0.elapsed().as_secs_f64();
    run.noticed_at = Some(SystemTime::now());
    match &ended {
        Ended::Succeeded => tracing::info!(
            "{name}: rollout of {} succeeded in {:.1}s",
            short_td(&new_td),
            run.seconds
        ),
        Ended::Failed { reason, .. } => {
            tracing::error!("{name}: rollout of {} failed: {reason}", short_td(&new_td))
        }
        Ended::TimedOut { pending } => tracing::error!(
            "{name}: rollout of {} timed out; pending: {pending}",
            short_td(&new_td)
        ),
    }
    run.ended = Some(ended);
    Ok(())
}

/// Polls fast at first, then every 2 s: a deployment's end is noticed within ~2 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(250))
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 3 / 2).min(Duration::from_secs(2));
    }
}

fn to_datetime(t: SystemTime) -> DateTime {
    DateTime::from(t)
}

/// Follows the deployment of `target_td` on the service until it ends.
async fn follow(
    ecs: &aws_sdk_ecs::Client,
    run: &mut Running,
    target_td: &str,
    timeout: Duration,
) -> Ended {
    let cfg = run.prep.cfg.clone();
    let name = format!("{}/{}", cfg.cluster, cfg.service);
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    let mut seen_events: HashSet<String> = run.prep.known_events.clone();
    let mut checked_sd: HashSet<String> = HashSet::new();
    let mut sd_api = true;
    // Polls that found no service deployment of ours: past a few, DescribeServices decides.
    let mut sd_misses = 0;
    let mut last_reason: Option<String> = None;
    let mut last_progress = String::new();
    let mut errors = 0;
    let since = to_datetime(run.started);
    loop {
        let svc = match describe_service(ecs, &cfg).await {
            Ok(s) => {
                errors = 0;
                s
            }
            Err(e) => {
                errors += 1;
                tracing::warn!("{name}: {e:#} (attempt {errors}, will retry)");
                if errors >= 10 {
                    return Ended::Failed {
                        reason: format!("lost track of the deployment: {e:#}"),
                        back_on_previous: None,
                    };
                }
                backoff.wait().await;
                continue;
            }
        };
        // New service events since the start, oldest first, one line each.
        let mut new_events: Vec<_> = svc
            .events()
            .iter()
            .filter(|e| e.created_at().is_some_and(|t| t.secs() >= since.secs()))
            .filter(|e| e.id().is_some_and(|id| seen_events.insert(id.to_string())))
            .collect();
        new_events.reverse();
        for e in new_events {
            tracing::info!("{name}: event: {}", e.message().unwrap_or_default());
        }
        let ours = svc
            .deployments()
            .iter()
            .find(|d| d.task_definition() == Some(target_td));
        let progress = match ours {
            Some(d) => format!(
                "{} {}: running {}/{}, pending {}, failed {}, rollout {}",
                d.id().unwrap_or("?"),
                d.status().unwrap_or("?"),
                d.running_count(),
                d.desired_count(),
                d.pending_count(),
                d.failed_tasks(),
                d.rollout_state().map(|s| s.as_str()).unwrap_or("?")
            ),
            None => format!(
                "our deployment is gone; PRIMARY runs {}",
                short_td(svc.task_definition().unwrap_or("?"))
            ),
        };
        if progress != last_progress {
            tracing::info!("{name}: {progress}");
            last_progress = progress;
        }

        // The service-deployments API: find ours, then ask how it ended.
        if sd_api {
            if run.service_deployment_arn.is_none() {
                match find_service_deployment(ecs, &cfg, run.started, target_td, &mut checked_sd)
                    .await
                {
                    Ok(found) => {
                        sd_misses += usize::from(found.is_none());
                        run.service_deployment_arn = found
                    }
                    Err(e) => {
                        tracing::warn!("{name}: service-deployments API unavailable ({e:#}); following DescribeServices only");
                        sd_api = false;
                    }
                }
            }
            if let Some(arn) = run.service_deployment_arn.clone() {
                match ecs
                    .describe_service_deployments()
                    .service_deployment_arns(&arn)
                    .send()
                    .await
                {
                    Ok(out) => {
                        if let Some(sd) = out.service_deployments().first() {
                            let reason = sd.status_reason().unwrap_or_default().to_string();
                            let primary_is_ours = svc.task_definition() == Some(target_td);
                            match sd.status() {
                                Some(ServiceDeploymentStatus::Successful) if primary_is_ours => return Ended::Succeeded,
                                Some(ServiceDeploymentStatus::Successful) => {
                                    return Ended::Failed {
                                        reason: format!(
                                            "the deployment reported SUCCESSFUL but the service now runs {}",
                                            short_td(svc.task_definition().unwrap_or("?"))
                                        ),
                                        back_on_previous: None,
                                    }
                                }
                                Some(ServiceDeploymentStatus::RollbackSuccessful) => {
                                    return Ended::Failed {
                                        reason: rollback_reason(sd, &reason),
                                        back_on_previous: Some(svc.task_definition() == Some(run.prep.previous_td.as_str())),
                                    }
                                }
                                Some(ServiceDeploymentStatus::RollbackFailed) => {
                                    return Ended::Failed {
                                        reason: format!("{}; the automatic rollback FAILED too", rollback_reason(sd, &reason)),
                                        back_on_previous: Some(false),
                                    }
                                }
                                Some(ServiceDeploymentStatus::Stopped) => {
                                    return Ended::Failed {
                                        reason: format!(
                                            "the deployment was stopped (superseded by another deployment?){}",
                                            if reason.is_empty() { String::new() } else { format!(": {reason}") }
                                        ),
                                        back_on_previous: None,
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(e) => tracing::warn!(
                        "{name}: ecs:DescribeServiceDeployments: {} (will retry)",
                        describe_sdk_error(&e)
                    ),
                }
            }
        }
        // DescribeServices: the fallback, and the only source when the API above is missing.
        if let Some(r) = ours.and_then(|d| d.rollout_state_reason()) {
            last_reason = Some(r.to_string());
        }
        if !sd_api || (run.service_deployment_arn.is_none() && sd_misses > 4) {
            match ours {
                Some(d) if d.status() == Some("PRIMARY")
                    && d.rollout_state() == Some(&DeploymentRolloutState::Completed)
                    && svc.deployments().len() == 1 =>
                {
                    return Ended::Succeeded
                }
                Some(d) if d.rollout_state() == Some(&DeploymentRolloutState::Failed) => {
                    let reason = d.rollout_state_reason().unwrap_or("rollout FAILED").to_string();
                    // With circuit-breaker rollback, ECS now rolls back: wait for that to settle.
                    if rollback_enabled(&svc) {
                        if d.status() != Some("PRIMARY") && in_flight(&svc).is_none() {
                            return Ended::Failed {
                                reason,
                                back_on_previous: Some(svc.task_definition() == Some(run.prep.previous_td.as_str())),
                            };
                        }
                    } else {
                        return Ended::Failed { reason, back_on_previous: Some(false) };
                    }
                }
                None if in_flight(&svc).is_none() => {
                    return Ended::Failed {
                        reason: format!(
                            "{}the deployment is gone and the service runs {} (rolled back or superseded)",
                            last_reason.as_ref().map(|r| format!("{r}; ")).unwrap_or_default(),
                            short_td(svc.task_definition().unwrap_or("?"))
                        ),
                        back_on_previous: Some(svc.task_definition() == Some(run.prep.previous_td.as_str())),
                    }
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Ended::TimedOut {
                pending: match ours {
                    Some(d) => format!(
                        "{} of {} task(s) running, {} pending, {} failed, rollout {}",
                        d.running_count(),
                        d.desired_count(),
                        d.pending_count(),
                        d.failed_tasks(),
                        d.rollout_state().map(|s| s.as_str()).unwrap_or("?")
                    ),
                    None => "our deployment is no longer listed".into(),
                },
            };
        }
        backoff.wait().await;
    }
}

fn rollback_enabled(svc: &Service) -> bool {
    svc.deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker())
        .is_some_and(|cb| cb.enable() && cb.rollback())
}

fn rollback_reason(sd: &aws_sdk_ecs::types::ServiceDeployment, reason: &str) -> String {
    let mut s = String::from("ECS rolled the deployment back");
    if let Some(cb) = sd.deployment_circuit_breaker() {
        if cb.failure_count() > 0 {
            let _ = write!(
                s,
                " (circuit breaker: {} failed task(s), threshold {})",
                cb.failure_count(),
                cb.threshold()
            );
        }
    }
    if let Some(r) = sd.rollback().and_then(|r| r.reason()) {
        let _ = write!(s, ": {r}");
    } else if !reason.is_empty() {
        let _ = write!(s, ": {reason}");
    }
    if let Some(a) = sd.alarms() {
        if !a.triggered_alarm_names().is_empty() {
            let _ = write!(
                s,
                "; alarms triggered: {}",
                a.triggered_alarm_names().join(", ")
            );
        }
    }
    s
}

/// The service deployment (created after `since`) whose target revision runs `target_td`.
async fn find_service_deployment(
    ecs: &aws_sdk_ecs::Client,
    cfg: &ServiceConfig,
    since: SystemTime,
    target_td: &str,
    checked: &mut HashSet<String>,
) -> Result<Option<String>> {
    let out = ecs
        .list_service_deployments()
        .cluster(&cfg.cluster)
        .service(&cfg.service)
        .created_at(CreatedAt::builder().after(to_datetime(since)).build())
        .send()
        .await
        .map_err(sdk_err)
        .context("ecs:ListServiceDeployments")?;
    for brief in out.service_deployments() {
        let (Some(arn), Some(rev)) = (
            brief.service_deployment_arn(),
            brief.target_service_revision_arn(),
        ) else {
            continue;
        };
        if !checked.insert(arn.to_string()) {
            continue;
        }
        let revs = ecs
            .describe_service_revisions()
            .service_revision_arns(rev)
            .send()
            .await
            .map_err(sdk_err)
            .context("ecs:DescribeServiceRevisions")?;
        if revs
            .service_revisions()
            .iter()
            .any(|r| r.task_definition() == Some(target_td))
        {
            return Ok(Some(arn.to_string()));
        }
    }
    Ok(None)
}

/// Evidence for a failed or rolled-back service: events since the start, stopped tasks of
/// the new revision with their reasons and exit codes.
async fn explain(ecs: &aws_sdk_ecs::Client, run: &Running) -> Vec<String> {
    let cfg = &run.prep.cfg;
    let mut evidence = Vec::new();
    let since = to_datetime(run.started).secs();
    if let Ok(svc) = describe_service(ecs, cfg).await {
        // The telling events: failures, rollbacks, health; not every task start and stop.
        let mut events: Vec<String> = svc
            .events()
            .iter()
            .filter(|e| e.created_at().is_some_and(|t| t.secs() >= since))
            .filter(|e| e.id().is_none_or(|id| !run.prep.known_events.contains(id)))
            .filter_map(|e| e.message())
            .filter(|m| {
                !(m.contains("has started")
                    || m.contains("has stopped")
                    || m.contains("steady state"))
            })
            .map(|m| format!("event: {m}"))
            .collect();
        events.truncate(10);
        events.reverse();
        evidence.extend(events);
    }
    let Some(new_td) = &run.new_td else {
        return evidence;
    };
    let tasks = ecs
        .list_tasks()
        .cluster(&cfg.cluster)
        .service_name(&cfg.service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await;
    let arns: Vec<String> = match tasks {
        Ok(t) => t.task_arns().iter().take(100).cloned().collect(),
        Err(e) => {
            evidence.push(format!(
                "could not list stopped tasks: {}",
                describe_sdk_error(&e)
            ));
            return evidence;
        }
    };
    if arns.is_empty() {
        return evidence;
    }
    match ecs
        .describe_tasks()
        .cluster(&cfg.cluster)
        .set_tasks(Some(arns))
        .send()
        .await
    {
        Ok(out) => {
            let mut seen = HashSet::new();
            for t in out
                .tasks()
                .iter()
                .filter(|t| t.task_definition_arn() == Some(new_td.as_str()))
            {
                let mut line = format!(
                    "stopped task: {}{}",
                    t.stopped_reason().unwrap_or("no reason given"),
                    t.stop_code()
                        .map(|c| format!(" ({})", c.as_str()))
                        .unwrap_or_default()
                );
                for c in t.containers() {
                    if c.exit_code().is_some() || c.reason().is_some() {
                        let _ = write!(
                            line,
                            "; container {} exit {}{}",
                            c.name().unwrap_or("?"),
                            c.exit_code().map_or("?".into(), |x| x.to_string()),
                            c.reason().map(|r| format!(" ({r})")).unwrap_or_default()
                        );
                    }
                }
                if seen.insert(line.clone()) && seen.len() <= 5 {
                    evidence.push(line);
                }
            }
        }
        Err(e) => evidence.push(format!(
            "could not describe stopped tasks: {}",
            describe_sdk_error(&e)
        )),
    }
    evidence
}

/// Brings one service back to its previous revision if this run changed it; returns its state.
async fn roll_back(ecs: &aws_sdk_ecs::Client, run: &mut Running) -> ServiceState {
    let name = format!("{}/{}", run.prep.cfg.cluster, run.prep.cfg.service);
    let Some(new_td) = run.new_td.clone() else {
        return if run.start_error.is_some() {
            ServiceState::Unchanged
        } else {
            ServiceState::AlreadyDeployed
        };
    };
    let previous = run.prep.previous_td.clone();
    let failed_here = matches!(
        run.ended,
        Some(Ended::Failed { .. }) | Some(Ended::TimedOut { .. })
    );
    // ECS already rolled it back: verify (waiting for it to settle) rather than act.
    if let Some(Ended::Failed {
        back_on_previous: Some(true),
        ..
    }) = run.ended
    {
        if wait_settled(ecs, &run.prep.cfg, &previous, run.prep.timeout).await {
            tracing::info!(
                "{name}: ECS rolled back to {}; it is stable",
                short_td(&previous)
            );
            return ServiceState::Failed;
        }
    }
    if let Some(Ended::Failed {
        back_on_previous: Some(false),
        reason,
    }) = &run.ended
    {
        if reason.contains("rollback FAILED") {
            tracing::error!("{name}: ECS's own rollback failed; ferry does not try again blindly");
            return ServiceState::Unknown;
        }
    }
    // Still in flight (timed out): ask ECS to roll back this deployment.
    let svc = describe_service(ecs, &run.prep.cfg).await.ok();
    let in_progress = svc.as_ref().and_then(in_flight).is_some();
    if in_progress {
        if let Some(arn) = &run.service_deployment_arn {
            tracing::warn!(
                "{name}: stopping deployment {} with ROLLBACK",
                run.deployment_id.as_deref().unwrap_or(arn)
            );
            match ecs
                .stop_service_deployment()
                .service_deployment_arn(arn)
                .stop_type(StopServiceDeploymentStopType::Rollback)
                .send()
                .await
            {
                Ok(_) => {
                    return match wait_for_rollback(ecs, run, &previous).await {
                        ServiceState::RolledBack if failed_here => ServiceState::Failed,
                        other => other,
                    }
                }
                Err(e) => tracing::warn!(
                    "{name}: ecs:StopServiceDeployment: {}; redeploying {} instead",
                    describe_sdk_error(&e),
                    short_td(&previous)
                ),
            }
        }
    }
    // Completed (or no service-deployments API): redeploy the previous revision and follow it.
    tracing::warn!(
        "{name}: rolling back: updating the service to {}",
        short_td(&previous)
    );
    if let Err(e) = ecs
        .update_service()
        .cluster(&run.prep.cfg.cluster)
        .service(&run.prep.cfg.service)
        .task_definition(&previous)
        .send()
        .await
    {
        tracing::error!(
            "{name}: ecs:UpdateService back to {}: {}",
            short_td(&previous),
            describe_sdk_error(&e)
        );
        run.evidence.push(format!(
            "rollback could not start: {}",
            describe_sdk_error(&e)
        ));
        return ServiceState::Unknown;
    }
    let mut rb = Running {
        prep: Prepared {
            cfg: run.prep.cfg.clone(),
            previous_td: new_td.clone(),
            td: run.prep.td.clone(),
            tags: Vec::new(),
            already: false,
            timeout: run.prep.timeout,
            timeout_why: run.prep.timeout_why.clone(),
            known_events: describe_service(ecs, &run.prep.cfg)
                .await
                .map(|s| event_ids(&s))
                .unwrap_or_default(),
        },
        new_td: Some(previous.clone()),
        changes: Vec::new(),
        started: SystemTime::now() - Duration::from_secs(5),
        deployment_id: None,
        service_deployment_arn: None,
        ended: None,
        seconds: 0.0,
        noticed_at: None,
        evidence: Vec::new(),
        start_error: None,
    };
    let timeout = run.prep.timeout;
    match follow(ecs, &mut rb, &previous, timeout).await {
        Ended::Succeeded => {
            tracing::info!("{name}: back on {}", short_td(&previous));
            if failed_here {
                ServiceState::Failed
            } else {
                ServiceState::RolledBack
            }
        }
        other => {
            tracing::error!(
                "{name}: the rollback to {} did not succeed: {other:?}",
                short_td(&previous)
            );
            run.evidence.push(format!(
                "rollback to {} did not succeed: {other:?}",
                short_td(&previous)
            ));
            ServiceState::Unknown
        }
    }
}

/// Waits until the service runs `td` with no other deployment; false at the timeout.
async fn wait_settled(
    ecs: &aws_sdk_ecs::Client,
    cfg: &ServiceConfig,
    td: &str,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    while Instant::now() < deadline {
        if let Ok(svc) = describe_service(ecs, cfg).await {
            if svc.task_definition() == Some(td) && in_flight(&svc).is_none() {
                return true;
            }
        }
        backoff.wait().await;
    }
    false
}

/// After StopServiceDeployment(ROLLBACK): wait until the service deployment ends.
async fn wait_for_rollback(
    ecs: &aws_sdk_ecs::Client,
    run: &mut Running,
    previous: &str,
) -> ServiceState {
    let name = format!("{}/{}", run.prep.cfg.cluster, run.prep.cfg.service);
    let Some(arn) = run.service_deployment_arn.clone() else {
        return ServiceState::Unknown;
    };
    let deadline = Instant::now() + run.prep.timeout;
    let mut backoff = Backoff::new();
    while Instant::now() < deadline {
        if let Ok(out) = ecs
            .describe_service_deployments()
            .service_deployment_arns(&arn)
            .send()
            .await
        {
            match out.service_deployments().first().and_then(|s| s.status()) {
                Some(ServiceDeploymentStatus::RollbackSuccessful)
                | Some(ServiceDeploymentStatus::Stopped) => {
                    if let Ok(svc) = describe_service(ecs, &run.prep.cfg).await {
                        if svc.task_definition() == Some(previous) && in_flight(&svc).is_none() {
                            tracing::info!("{name}: rolled back to {}", short_td(previous));
                            return ServiceState::RolledBack;
                        }
                    }
                }
                Some(ServiceDeploymentStatus::RollbackFailed) => {
                    run.evidence.push("ECS reported ROLLBACK_FAILED".into());
                    return ServiceState::Unknown;
                }
                _ => {}
            }
        }
        backoff.wait().await;
    }
    run.evidence.push(format!(
        "the rollback did not finish within {}s",
        run.prep.timeout.as_secs()
    ));
    ServiceState::Unknown
}

/// The report as text for a person.
pub fn report_text(r: &DeployReport) -> String {
    let mut s = String::new();
    let head = match r.outcome {
        Outcome::Deployed => "DEPLOYED",
        Outcome::AlreadyDeployed => "ALREADY DEPLOYED",
        Outcome::RolledBack => "FAILED, ROLLED BACK",
        Outcome::NeedsAttention => "FAILED, NEEDS ATTENTION",
    };
    let _ = writeln!(s, "{head}: {} → {}", r.tag, r.environment);
    let _ = writeln!(s, "  image    {}", r.image);
    if let Some(p) = &r.promotion {
        let _ = writeln!(
            s,
            "  promoted {}",
            if p.already_done {
                "already (same digest in target)"
            } else {
                "copied, digest verified"
            }
        );
    }
    for svc in &r.services {
        let _ = writeln!(
            s,
            "  service  {}/{}: {} ({})",
            svc.cluster,
            svc.service,
            state_words(svc.state),
            svc.detail
        );
        for c in &svc.changes {
            let _ = writeln!(s, "           {c}");
        }
        for e in &svc.evidence {
            let _ = writeln!(s, "           {e}");
        }
    }
    for c in &r.smoke {
        let _ = writeln!(
            s,
            "  smoke    {} {}: {} ({} attempt(s))",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail,
            c.attempts
        );
    }
    let _ = writeln!(s, "  verdict  {}", r.verdict);
    s
}

/// What `ferry deploy` would change on one service, for `ferry plan`.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePreview {
    pub cluster: String,
    pub service: String,
    pub current_task_definition: String,
    pub current_release: Option<String>,
    pub changes: Vec<FieldChange>,
    /// A deployment in flight that would make `deploy` refuse.
    pub in_flight: Option<String>,
    pub rollout_timeout_seconds: u64,
}

/// Reads each service and renders the revision `deploy` would register, without registering it.
pub async fn preview(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    image: &str,
    ferry_tags: &[(&str, String)],
) -> Result<Vec<ServicePreview>> {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let mut out = Vec::new();
    for cfg in &env.file.services {
        let svc = describe_service(&ecs, cfg).await?;
        let current = svc.task_definition().unwrap_or_default().to_string();
        let (td, td_tags) = describe_task_definition(&ecs, &current).await?;
        let (_, changes) = ecs_td::render(&ecs, &td, &td_tags, &cfg.container, image, ferry_tags)?;
        let already = ecs_td::container_image(&td, &cfg.container) == Some(image);
        let (timeout, _) = rollout_timeout(&svc, &td, env.file.deploy.rollout_timeout_seconds);
        out.push(ServicePreview {
            cluster: cfg.cluster.clone(),
            service: cfg.service.clone(),
            current_release: td_tags
                .iter()
                .find(|t| t.key() == Some(TAG_RELEASE))
                .and_then(|t| t.value())
                .map(str::to_string),
            current_task_definition: current,
            changes: if already { Vec::new() } else { changes },
            in_flight: in_flight(&svc),
            rollout_timeout_seconds: timeout.as_secs(),
        });
    }
    Ok(out)
}

/// The tags ferry puts on a revision for this release.
pub fn ferry_tags(
    tag: &str,
    version: &str,
    digest: &str,
    commit: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut t = vec![
        (TAG_RELEASE, tag.to_string()),
        (TAG_VERSION, version.to_string()),
        (TAG_DIGEST, digest.to_string()),
    ];
    if let Some(c) = commit {
        t.push((TAG_COMMIT, c.to_string()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        ContainerDefinition, Deployment, DeploymentConfiguration, HealthCheck, LoadBalancer,
    };

    fn service(desired: i32, max: i32, min: i32, grace: Option<i32>, lb: bool) -> Service {
        let mut b = Service::builder()
            .desired_count(desired)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .maximum_percent(max)
                    .minimum_healthy_percent(min)
                    .build(),
            )
            .set_health_check_grace_period_seconds(grace);
        if lb {
            b = b.load_balancers(LoadBalancer::builder().container_name("web").build());
        }
        b.build()
    }

    fn td(health: bool) -> TaskDefinition {
        let mut c = ContainerDefinition::builder().name("web");
        if health {
            c = c.health_check(
                HealthCheck::builder()
                    .command("true")
                    .interval(10)
                    .timeout(5)
                    .retries(3)
                    .start_period(20)
                    .build()
                    .unwrap(),
            );
        }
        TaskDefinition::builder()
            .container_definitions(c.build())
            .build()
    }

    #[test]
    fn timeout_grows_with_batches_health_and_draining() {
        // 2 tasks, 200%: one batch of 2; no health check, no LB → the floor.
        let (t, why) = rollout_timeout(&service(2, 200, 100, None, false), &td(false), None);
        assert_eq!(t.as_secs(), 180);
        assert!(why.contains("1 batch(es) of up to 2"), "{why}");
        // 10 tasks, 120% / 100%: 2 at a time → 5 batches × (120 + 65) = 925.
        let (t, why) = rollout_timeout(&service(10, 120, 100, None, false), &td(true), None);
        assert_eq!(t.as_secs(), 5 * (120 + 20 + 15 * 3));
        assert!(why.contains("5 batch(es)"), "{why}");
        // Behind a load balancer: grace period and deregistration delay count.
        let (t, _) = rollout_timeout(&service(4, 200, 100, Some(300), true), &td(false), None);
        assert_eq!(t.as_secs(), 120 + 300 + 300);
        // The config override wins.
        let (t, why) =
            rollout_timeout(&service(4, 200, 100, Some(300), true), &td(false), Some(42));
        assert_eq!(t.as_secs(), 42);
        assert!(why.contains("rollout_timeout_seconds"));
    }

    #[test]
    fn in_flight_detection() {
        let d = |status: &str, state: DeploymentRolloutState| {
            Deployment::builder()
                .id("ecs-svc/1")
                .status(status)
                .task_definition("arn:x/web:1")
                .rollout_state(state)
                .build()
        };
        let idle = Service::builder()
            .deployments(d("PRIMARY", DeploymentRolloutState::Completed))
            .build();
        assert!(in_flight(&idle).is_none());
        let busy = Service::builder()
            .deployments(d("PRIMARY", DeploymentRolloutState::InProgress))
            .build();
        assert!(in_flight(&busy).unwrap().contains("IN_PROGRESS"));
        let two = Service::builder()
            .deployments(d("PRIMARY", DeploymentRolloutState::Completed))
            .deployments(d("ACTIVE", DeploymentRolloutState::Completed))
            .build();
        assert!(in_flight(&two).unwrap().contains("ACTIVE web:1"));
    }
}
