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

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ecs::types::Service;

use super::bluegreen::{self, ReadyOption, RollbackStage, Routing, Stage};
use super::judge::Ours;
use super::{Ended, Prepared, Running, ServiceState};
use crate::aws::codedeploy as api;
use crate::aws::ecs::short_td;
use crate::aws::{aws_error, AwsError};
use crate::config::{ServiceConfig, SmokeCheck};
use crate::error::Failure;
use crate::poll::Poll;
use crate::smoke;

/// Consecutive failed reads before giving up on following.
const MAX_READ_ERRORS: u32 = 10;
/// How long CodeDeploy's rollback may take beyond the rollout's own deadline.
const ROLLBACK_GRACE: Duration = Duration::from_secs(900);
/// How long a stopped deployment may take to name its rollback deployment.
const NAMING_GRACE: Duration = Duration::from_secs(60);

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

/// Finds the deployment group that deploys `svc` and reads what it will do; refuses what
/// ferry cannot drive safely.
pub async fn find_target(
    cd: &aws_sdk_codedeploy::Client,
    svc: &Service,
    cfg: &ServiceConfig,
    has_test_checks: bool,
) -> Result<Target> {
    let name = format!("{}/{}", cfg.cluster, cfg.service);
    let lb = svc.load_balancers().first().ok_or_else(|| {
        Failure::invalid(format!(
            "service {name} uses the CODE_DEPLOY deployment controller but has no load balancer"
        ))
        .hint("a CodeDeploy blue/green service needs a load balancer with two target groups")
    })?;
    let (Some(container), Some(port)) = (lb.container_name(), lb.container_port()) else {
        return Err(Failure::invalid(format!(
            "service {name}: its load balancer names no container name and port for the AppSpec"
        ))
        .into());
    };
    let cdc = cfg.codedeploy.clone().unwrap_or_default();
    let group = match (&cdc.application, &cdc.deployment_group) {
        (Some(app), Some(group)) => {
            let g = api::deployment_group(cd, app, group).await?;
            if !api::names_service(&g, &cfg.cluster, &cfg.service) {
                return Err(Failure::invalid(format!(
                    "deployment group {app}/{group} (services.codedeploy) does not deploy {name}"
                ))
                .hint("name the deployment group whose ecsServices lists this service")
                .into());
            }
            g
        }
        _ => {
            let mut found = Vec::new();
            for app in api::list_applications(cd).await? {
                for g in api::deployment_groups(cd, &app).await? {
                    if api::names_service(&g, &cfg.cluster, &cfg.service) {
                        found.push(g);
                    }
                }
            }
            match found.len() {
                1 => found.remove(0),
                0 => {
                    return Err(Failure::invalid(format!(
                        "service {name} uses the CODE_DEPLOY deployment controller, but no CodeDeploy deployment group names it"
                    ))
                    .hint("create the deployment group (ecsServices = this service), or name it in [services.codedeploy] application/deployment_group")
                    .into())
                }
                _ => {
                    let names: Vec<String> = found
                        .iter()
                        .map(|g| {
                            format!(
                                "{}/{}",
                                g.application_name().unwrap_or("?"),
                                g.deployment_group_name().unwrap_or("?")
                            )
                        })
                        .collect();
                    return Err(Failure::invalid(format!(
                        "service {name}: several CodeDeploy deployment groups name it: {}",
                        names.join(", ")
                    ))
                    .hint("choose one in [services.codedeploy] application/deployment_group")
                    .into());
                }
            }
        }
    };
    let application = group.application_name().unwrap_or_default().to_string();
    let group_name = group
        .deployment_group_name()
        .unwrap_or_default()
        .to_string();
    let config = group
        .deployment_config_name()
        .unwrap_or("CodeDeployDefault.ECSAllAtOnce")
        .to_string();
    let ready = api::ready_option(&group);
    if let Some(why) = bluegreen::refuse_without_hold(ready, has_test_checks) {
        return Err(Failure::invalid(format!(
            "service {name}: deployment group {application}/{group_name}: {why}"
        ))
        .hint("set the group's deploymentReadyOption to STOP_DEPLOYMENT with a wait time (ferry continues the deployment once the checks pass), or remove test_url")
        .into());
    }
    let routing = api::routing(cd, &config).await?;
    Ok(Target {
        application,
        group: group_name,
        config,
        routing,
        ready,
        termination_wait_minutes: api::termination_wait_minutes(&group),
        container: container.to_string(),
        port,
        capacity_providers: svc
            .capacity_provider_strategy()
            .iter()
            .map(|c| (c.capacity_provider().to_string(), c.weight(), c.base()))
            .collect(),
        hooks: cdc.hooks.into_iter().collect(),
    })
}

/// The ECS AppSpec (JSON, which is YAML too) for `td`.
pub fn appspec(target: &Target, td: &str) -> String {
    let mut props = serde_json::json!({
        "TaskDefinition": td,
        "LoadBalancerInfo": {"ContainerName": target.container, "ContainerPort": target.port},
    });
    if !target.capacity_providers.is_empty() {
        props["CapacityProviderStrategy"] = target
            .capacity_providers
            .iter()
            .map(|(p, w, b)| serde_json::json!({"CapacityProvider": p, "Weight": w, "Base": b}))
            .collect();
    }
    let mut spec = serde_json::json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": props}}],
    });
    if !target.hooks.is_empty() {
        spec["Hooks"] = target
            .hooks
            .iter()
            .map(|(e, f)| serde_json::json!({ e.as_str(): f }))
            .collect();
    }
    spec.to_string()
}

/// Starts and follows one CodeDeploy release; like `deploy::rollout`, a failure to start is
/// recorded in the result.
pub async fn rollout(
    ecs: &aws_sdk_ecs::Client,
    ctx: &Context,
    prep: Prepared,
    image: &str,
    ferry_tags: &[(&str, String)],
) -> Running {
    let mut run = Running::new(prep);
    let Some(target) = run.prep.blue_green.clone() else {
        run.ended = Some(Ended::Failed {
            reason: "no CodeDeploy deployment group was read for this service".into(),
            back_on_previous: Some(true),
        });
        return run;
    };
    run.codedeploy = Some(CdRun {
        cd: ctx.cd.clone(),
        target,
        deployment_id: None,
        shifted: false,
    });
    let name = run.prep.name();
    if run.prep.already {
        tracing::info!(
            "{name}: already deployed ({} runs {image}); no new revision",
            short_td(&run.prep.previous_td)
        );
        return run;
    }
    if let Err(e) = start(ecs, ctx, &mut run, image, ferry_tags).await {
        tracing::error!("{name}: {e:#}");
        run.ended = Some(Ended::Failed {
            reason: format!("could not start the deployment: {e:#}"),
            back_on_previous: Some(run.new_td.is_none()),
        });
        run.start_error = Some(e);
        return run;
    }
    let t0 = Instant::now();
    let deadline = t0 + run.prep.timeout;
    let checks: Vec<SmokeCheck> = ctx
        .test_checks
        .iter()
        .filter(|c| c.tests_service(&run.prep.cfg))
        .cloned()
        .collect();
    let ended = follow(ctx, &mut run, deadline, &checks).await;
    run.seconds = t0.elapsed().as_secs_f64();
    run.noticed_at = Some(SystemTime::now());
    match &ended {
        Ended::Succeeded => tracing::info!(
            "{name}: all production traffic is on the replacement after {:.1}s",
            run.seconds
        ),
        Ended::Failed { reason, .. } | Ended::RollbackFailed { reason } => {
            tracing::error!("{name}: blue/green release failed: {reason}")
        }
        Ended::Superseded { reason } => tracing::error!("{name}: {reason}"),
        Ended::TimedOut { pending } => {
            tracing::error!("{name}: blue/green release timed out; pending: {pending}")
        }
    }
    if !matches!(ended, Ended::Succeeded) {
        run.evidence = super::evidence::explain(ecs, &run).await;
    }
    run.ended = Some(ended);
    run
}

async fn start(
    ecs: &aws_sdk_ecs::Client,
    ctx: &Context,
    run: &mut Running,
    image: &str,
    ferry_tags: &[(&str, String)],
) -> Result<()> {
    let name = run.prep.name();
    let new_td = super::register(ecs, run, image, ferry_tags).await?;
    let target = run
        .codedeploy
        .as_ref()
        .map(|c| c.target.clone())
        .ok_or_else(|| anyhow!("{name}: no CodeDeploy target"))?;
    run.started = SystemTime::now() - Duration::from_secs(5);
    let id = api::create_deployment(
        &ctx.cd,
        &target.application,
        &target.group,
        &appspec(&target, &new_td),
        &format!("ferry: {} for {name}", short_td(&new_td)),
    )
    .await
    .with_context(|| {
        format!(
            "registered {}; the service was not changed and still runs {}",
            short_td(&new_td),
            short_td(&run.prep.previous_td)
        )
    })?;
    tracing::info!(
        "{name}: CodeDeploy deployment {id} of {} ({}/{}, {}: {}); following it for up to {}s ({})",
        short_td(&new_td),
        target.application,
        target.group,
        target.config,
        target.routing.describe(),
        run.prep.timeout.as_secs(),
        run.prep.timeout_why
    );
    run.new_td = Some(new_td.clone());
    run.ours = Some(Ours {
        deployment_id: None,
        task_definition: new_td,
        previous_task_definition: run.prep.previous_td.clone(),
        known_before: Default::default(),
    });
    if let Some(c) = run.codedeploy.as_mut() {
        c.deployment_id = Some(id);
    }
    Ok(())
}

/// Follows this run's CodeDeploy deployment until all production traffic is on the
/// replacement, or it failed (and CodeDeploy's rollback ended), or `deadline`.
async fn follow(
    ctx: &Context,
    run: &mut Running,
    deadline: Instant,
    checks: &[SmokeCheck],
) -> Ended {
    let name = run.prep.name();
    let target_id = format!("{}:{}", run.prep.cfg.cluster, run.prep.cfg.service);
    let Some(id) = run
        .codedeploy
        .as_ref()
        .and_then(|c| c.deployment_id.clone())
    else {
        return Ended::Failed {
            reason: "no CodeDeploy deployment to follow".into(),
            back_on_previous: None,
        };
    };
    let mut poll = Poll::new();
    let mut errors = 0;
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut last = String::new();
    let mut smoke_failure: Option<String> = None;
    let mut continued = false;
    loop {
        let read = async {
            let d = api::get_deployment(&ctx.cd, &id).await?;
            let t = api::get_target(&ctx.cd, &id, &target_id).await?;
            anyhow::Ok((d, t))
        };
        match read.await {
            Ok((d, t)) => {
                errors = 0;
                for e in t.iter().flat_map(|t| &t.events) {
                    if e.status != "Pending" && seen.get(&e.name) != Some(&e.status) {
                        tracing::info!("{name}: {id}: lifecycle event {} {}", e.name, e.status);
                        seen.insert(e.name.clone(), e.status.clone());
                    }
                }
                match bluegreen::stage(&d, t.as_ref()) {
                    Stage::Starting { progress } => progress_line(&name, &mut last, progress),
                    Stage::Shifting { .. } => {
                        if let Some(t) = &t {
                            progress_line(&name, &mut last, bluegreen::traffic_line(t));
                        }
                    }
                    Stage::Ready if smoke_failure.is_none() && !continued => {
                        if checks.is_empty() {
                            tracing::info!("{name}: the replacement serves the test listener; no [[smoke]] test_url checks, rerouting production traffic");
                        } else {
                            tracing::info!("{name}: the replacement serves the test listener; production traffic has not moved; running {} check(s) on test traffic", checks.len());
                            let results = smoke::run(checks, &ctx.versions).await;
                            let failed: Vec<String> = results
                                .iter()
                                .filter(|s| !s.ok)
                                .map(|s| format!("{}: {}", s.name, s.detail))
                                .collect();
                            run.test_smoke = results;
                            if !failed.is_empty() {
                                let reason = format!(
                                    "the smoke check on test traffic failed ({}); production traffic never moved to {}",
                                    failed.join("; "),
                                    run.new_td.as_deref().map(short_td).unwrap_or("the release")
                                );
                                tracing::error!("{name}: {reason}; stopping {id} with rollback");
                                if let Err(e) = api::stop_with_rollback(&ctx.cd, &id).await {
                                    tracing::error!("{name}: {e:#}");
                                    return Ended::Failed {
                                        reason: format!("{reason}; and StopDeployment failed: {e:#}; the deployment still holds the replacement on test traffic"),
                                        back_on_previous: None,
                                    };
                                }
                                smoke_failure = Some(reason);
                                poll.wait().await;
                                continue;
                            }
                            tracing::info!(
                                "{name}: test traffic passed; rerouting production traffic ({})",
                                run.codedeploy
                                    .as_ref()
                                    .map(|c| c.target.routing.describe())
                                    .unwrap_or_default()
                            );
                        }
                        match api::continue_deployment(&ctx.cd, &id).await {
                            Ok(()) => continued = true,
                            Err(e) => tracing::warn!("{name}: {e:#} (will retry)"),
                        }
                    }
                    Stage::Ready => {}
                    Stage::Shifted { termination_wait } => {
                        if let Some(reason) = smoke_failure {
                            // Stopped after the checks failed, yet shifted: say so, never succeed.
                            return Ended::Failed {
                                reason: format!(
                                    "{reason}; but CodeDeploy shifted the traffic anyway"
                                ),
                                back_on_previous: Some(false),
                            };
                        }
                        if let Some(c) = run.codedeploy.as_mut() {
                            c.shifted = true;
                            if termination_wait {
                                tracing::info!(
                                    "{name}: production traffic 100% on the replacement; CodeDeploy keeps the original task set for {} min before terminating it (a rollback until then is a traffic switch)",
                                    c.target.termination_wait_minutes
                                );
                            }
                        }
                        return Ended::Succeeded;
                    }
                    Stage::Failed { reason, rollback } => {
                        let reason = smoke_failure.take().unwrap_or(reason);
                        let moved = t.as_ref().map_or(0.0, |t| t.replacement_weight());
                        return match rollback {
                            Some(rid) => {
                                tracing::warn!("{name}: CodeDeploy is rolling back with deployment {rid}");
                                follow_rollback(ctx, &name, &rid, reason, deadline + ROLLBACK_GRACE).await
                            }
                            None => Ended::Failed {
                                reason: format!("{reason}; CodeDeploy did not roll back (the group's automatic rollback is off)"),
                                back_on_previous: Some(moved == 0.0),
                            },
                        };
                    }
                }
            }
            Err(e) => {
                if aws_error(&e).is_some_and(AwsError::is_throttled) {
                    poll.back_off();
                } else {
                    errors += 1;
                }
                tracing::warn!("{name}: {e:#} (will retry)");
                if errors >= MAX_READ_ERRORS {
                    return Ended::Failed {
                        reason: format!("lost track of CodeDeploy deployment {id}: {e:#}"),
                        back_on_previous: None,
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            return Ended::TimedOut {
                pending: format!("CodeDeploy deployment {id}: {last}"),
            };
        }
        poll.wait().await;
    }
}

fn progress_line(name: &str, last: &mut String, line: String) {
    if *last != line {
        tracing::info!("{name}: {line}");
        *last = line;
    }
}

/// Follows CodeDeploy's rollback deployment `rid` to its end.
async fn follow_rollback(
    ctx: &Context,
    name: &str,
    rid: &str,
    reason: String,
    deadline: Instant,
) -> Ended {
    let mut poll = Poll::new();
    let mut errors = 0;
    loop {
        match api::get_deployment(&ctx.cd, rid).await {
            Ok(d) => match bluegreen::rollback_stage(&d) {
                RollbackStage::Succeeded => {
                    tracing::info!("{name}: CodeDeploy rolled back ({rid}): traffic is on the original task set");
                    return Ended::Failed {
                        reason: format!("{reason}; CodeDeploy rolled it back ({rid})"),
                        back_on_previous: Some(true),
                    };
                }
                RollbackStage::Failed { reason: r } => {
                    return Ended::RollbackFailed {
                        reason: format!("{reason}; CodeDeploy's rollback FAILED too: {r}"),
                    }
                }
                RollbackStage::InProgress => {}
            },
            Err(e) => {
                errors += 1;
                tracing::warn!("{name}: {e:#} (will retry)");
                if errors >= MAX_READ_ERRORS {
                    return Ended::RollbackFailed {
                        reason: format!(
                            "{reason}; lost track of CodeDeploy's rollback {rid}: {e:#}"
                        ),
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            return Ended::RollbackFailed {
                reason: format!("{reason}; CodeDeploy's rollback {rid} did not finish in time"),
            };
        }
        poll.wait().await;
    }
}

/// Brings a CodeDeploy service back when the release failed: nothing to do when CodeDeploy
/// already rolled back; a deployment still in flight or in its termination wait is stopped with
/// rollback (a traffic switch back); a finished one is replaced by a deployment of the
/// previous revision.
pub async fn roll_back(run: &mut Running) -> ServiceState {
    let name = run.prep.name();
    let (Some(new_td), Some(cd)) = (run.new_td.clone(), run.codedeploy.clone()) else {
        return if run.start_error.is_some() {
            ServiceState::Unchanged
        } else {
            ServiceState::AlreadyDeployed
        };
    };
    let previous = run.prep.previous_td.clone();
    let back = if matches!(
        run.ended,
        Some(Ended::Failed { .. } | Ended::TimedOut { .. } | Ended::RollbackFailed { .. })
    ) {
        ServiceState::Failed
    } else {
        ServiceState::RolledBack
    };
    match &run.ended {
        Some(Ended::Failed {
            back_on_previous: Some(true),
            ..
        }) => {
            run.final_td = Some(previous);
            return back;
        }
        Some(Ended::RollbackFailed { .. }) => {
            tracing::error!(
                "{name}: CodeDeploy's rollback failed; ferry does not try again blindly"
            );
            return ServiceState::Unknown;
        }
        _ => {}
    }
    let Some(id) = cd.deployment_id.clone() else {
        return ServiceState::Unknown;
    };
    let ctx = Context {
        cd: cd.cd.clone(),
        test_checks: Vec::new(),
        production_checks: Vec::new(),
        versions: Vec::new(),
    };
    let deadline = Instant::now() + run.prep.timeout + ROLLBACK_GRACE;
    let d = match api::get_deployment(&cd.cd, &id).await {
        Ok(d) => d,
        Err(e) => {
            run.evidence
                .push(format!("rollback could not read {id}: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    if !matches!(d.status.as_str(), "Succeeded" | "Failed" | "Stopped") {
        tracing::warn!("{name}: stopping CodeDeploy deployment {id} with rollback");
        if let Err(e) = api::stop_with_rollback(&cd.cd, &id).await {
            run.evidence
                .push(format!("rollback could not stop {id}: {e:#}"));
            return ServiceState::Unknown;
        }
        // CodeDeploy names its rollback deployment on the stopped one.
        let mut poll = Poll::new();
        let stopped_at = Instant::now();
        loop {
            match api::get_deployment(&cd.cd, &id).await {
                Ok(d) if d.rollback_id.is_some() => {
                    let rid = d.rollback_id.unwrap_or_default();
                    return match follow_rollback(&ctx, &name, &rid, "stopped".into(), deadline)
                        .await
                    {
                        Ended::Failed {
                            back_on_previous: Some(true),
                            ..
                        } => {
                            run.final_td = Some(previous);
                            back
                        }
                        other => {
                            run.evidence.push(format!(
                                "the rollback did not end on the original task set: {}",
                                describe(&other)
                            ));
                            ServiceState::Unknown
                        }
                    };
                }
                Ok(d)
                    if matches!(d.status.as_str(), "Succeeded" | "Failed" | "Stopped")
                        && stopped_at.elapsed() > NAMING_GRACE =>
                {
                    run.evidence.push(format!(
                        "{id} ended {} without a rollback deployment",
                        d.status
                    ));
                    return ServiceState::Unknown;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("{name}: {e:#} (will retry)"),
            }
            if Instant::now() >= deadline {
                run.evidence
                    .push(format!("{id}: CodeDeploy never started the rollback"));
                return ServiceState::Unknown;
            }
            poll.wait().await;
        }
    }
    if d.status != "Succeeded" {
        run.evidence.push(format!(
            "{id} ended {} and CodeDeploy did not roll it back; the service may still run {}",
            d.status,
            short_td(&new_td)
        ));
        return ServiceState::Unknown;
    }
    // The original task set is gone: deploy the previous revision through CodeDeploy.
    tracing::warn!(
        "{name}: rolling back: CodeDeploy deployment of {}",
        short_td(&previous)
    );
    let rid = match api::create_deployment(
        &cd.cd,
        &cd.target.application,
        &cd.target.group,
        &appspec(&cd.target, &previous),
        &format!("ferry rollback to {} for {name}", short_td(&previous)),
    )
    .await
    {
        Ok(rid) => rid,
        Err(e) => {
            run.evidence
                .push(format!("rollback could not start: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    let saved = run
        .codedeploy
        .as_mut()
        .and_then(|c| c.deployment_id.replace(rid));
    let ended = follow(&ctx, run, deadline, &[]).await;
    if let Some(c) = run.codedeploy.as_mut() {
        c.deployment_id = saved;
    }
    match ended {
        Ended::Succeeded => {
            run.final_td = Some(previous);
            back
        }
        other => {
            run.evidence.push(format!(
                "rollback to {} did not succeed: {}",
                short_td(&previous),
                describe(&other)
            ));
            ServiceState::Unknown
        }
    }
}

fn describe(e: &Ended) -> String {
    match e {
        Ended::Succeeded => "it succeeded".into(),
        Ended::Failed { reason, .. }
        | Ended::RollbackFailed { reason }
        | Ended::Superseded { reason } => reason.clone(),
        Ended::TimedOut { pending } => format!("it timed out; pending: {pending}"),
    }
}

/// How a service is deployed now, and a blue/green release in flight with its traffic split,
/// for `status`. Best effort: what cannot be read is left out.
pub async fn live(
    sdk: &aws_config::SdkConfig,
    ecs: &aws_sdk_ecs::Client,
    svc: &Service,
    cfg: &ServiceConfig,
) -> (Option<String>, Option<bluegreen::InFlight>) {
    use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentStrategy};
    if svc.deployment_controller().map(|c| c.r#type())
        == Some(&DeploymentControllerType::CodeDeploy)
    {
        let strategy = Some("CODE_DEPLOY".to_string());
        if svc.task_sets().len() < 2 {
            return (strategy, None);
        }
        let cd = aws_sdk_codedeploy::Client::new(sdk);
        let in_flight = async {
            let t = find_target(&cd, svc, cfg, false).await?;
            let Some(id) = api::active_deployments(&cd, &t.application, &t.group)
                .await?
                .into_iter()
                .next()
            else {
                return anyhow::Ok(None);
            };
            let d = api::get_deployment(&cd, &id).await?;
            let target = api::get_target(&cd, &id, &format!("{}:{}", cfg.cluster, cfg.service))
                .await
                .ok()
                .flatten();
            Ok(Some(bluegreen::InFlight {
                deployment: id,
                status: d.status,
                replacement_weight: target.map(|t| t.replacement_weight()),
                stage: None,
            }))
        };
        return (strategy, in_flight.await.ok().flatten());
    }
    let strategy = svc
        .deployment_configuration()
        .and_then(|d| d.strategy())
        .filter(|s| **s != DeploymentStrategy::Rolling)
        .map(|s| s.as_str().to_string());
    if strategy.is_none() || svc.deployments().len() < 2 {
        return (strategy, None);
    }
    let in_flight = async {
        let briefs = crate::aws::ecs::list_service_deployments(
            ecs,
            &cfg.cluster,
            &cfg.service,
            SystemTime::UNIX_EPOCH,
        )
        .await?;
        for b in briefs {
            let Some(arn) = b.service_deployment_arn() else {
                continue;
            };
            if let Some(sd) = crate::aws::ecs::describe_service_deployment(ecs, arn).await? {
                let status = sd
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                if matches!(
                    status.as_str(),
                    "PENDING"
                        | "IN_PROGRESS"
                        | "ROLLBACK_REQUESTED"
                        | "ROLLBACK_IN_PROGRESS"
                        | "STOP_REQUESTED"
                ) {
                    return anyhow::Ok(Some(bluegreen::InFlight {
                        deployment: arn.to_string(),
                        status,
                        replacement_weight: None,
                        stage: sd.lifecycle_stage().map(|s| s.as_str().to_string()),
                    }));
                }
            }
        }
        Ok(None)
    };
    (strategy, in_flight.await.ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(hooks: Vec<(String, String)>, capacity: Vec<(String, i32, i32)>) -> Target {
        Target {
            application: "shop".into(),
            group: "web".into(),
            config: "CodeDeployDefault.ECSAllAtOnce".into(),
            routing: Routing::AllAtOnce,
            ready: ReadyOption {
                stop: true,
                wait_minutes: 60,
            },
            termination_wait_minutes: 5,
            container: "web".into(),
            port: 8080,
            capacity_providers: capacity,
            hooks,
        }
    }

    #[test]
    fn appspec_names_the_revision_and_the_load_balancer() {
        let td = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:7";
        let spec: serde_json::Value =
            serde_json::from_str(&appspec(&target(Vec::new(), Vec::new()), td)).unwrap();
        let props = &spec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Type"],
            "AWS::ECS::Service"
        );
        assert_eq!(props["TaskDefinition"], td);
        assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "web");
        assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert!(props.get("CapacityProviderStrategy").is_none());
        assert!(spec.get("Hooks").is_none());
    }

    #[test]
    fn appspec_carries_hooks_and_capacity_providers() {
        let t = target(
            vec![("AfterAllowTestTraffic".into(), "check-web".into())],
            vec![("FARGATE_SPOT".into(), 3, 1)],
        );
        let spec: serde_json::Value = serde_json::from_str(&appspec(&t, "td")).unwrap();
        assert_eq!(
            spec["Hooks"],
            serde_json::json!([{"AfterAllowTestTraffic": "check-web"}])
        );
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Properties"]["CapacityProviderStrategy"],
            serde_json::json!([{"CapacityProvider": "FARGATE_SPOT", "Weight": 3, "Base": 1}])
        );
    }

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
