//! Executing a plan: claim → promote → roll out → smoke → (on failure) roll back → report.
//!
//! 1. Claim and refuse early ([`claim`]): the environment is claimed, and meanwhile the plan
//!    is made and every service read (`deploy::prepare`); a promoted
//!    release tag must not already mean other bytes, every service must be ready, and
//!    nothing is changed until all are and the claim holds.
//! 2. Promote: copy the verified digest into this environment's repository (`promote`).
//! 3. Roll out every service concurrently and follow each deployment to its real end
//!    (`deploy::rollout`), their reads batched (`aws::ecs::Reads`).
//! 4. Smoke: the environment's HTTP checks must pass against the new release (`smoke`).
//! 5. On any failure: explain it (`deploy::evidence`), roll back every service this run
//!    changed (`deploy::rollback`), and say exactly where each one stands.
//! 6. Report: a [`DeployReport`]; the command layer renders it and maps it to an exit code.

use anyhow::{anyhow, Context, Result};

use crate::aws::ecs;
use crate::config::Environment;
use crate::deploy::{self, taskdef, DeployOptions, Ended, Running, ServiceState};
use crate::error::{Failure, FailureKind};
use crate::github::deployments::{DeploymentRequest, Session};
use crate::plan::Plan;
use crate::records::store::Store;
use crate::records::RunKind;
use crate::render;
use crate::report::{DeployReport, Outcome, ServiceReport};

pub(crate) mod heartbeat;
mod memory;
pub mod waves;

/// A run that holds its environment: the plan it made and everything it read while its
/// claim settled (see [`claim`]), ready to change things.
pub struct Claimed {
    pub plan: Plan,
    ready: Ready,
    store: Store,
    lease: heartbeat::Lease,
    started: u64,
}

/// What the run read before it changes anything.
struct Ready {
    sdk: aws_config::SdkConfig,
    client: aws_sdk_ecs::Client,
    bg: deploy::codedeploy::Context,
    image: String,
    digest: String,
    prepared: Vec<deploy::Prepared>,
}

/// Claims `env` for `release` (one run at a time) and meanwhile makes the plan (`make_plan`)
/// and reads every service: the claim's requests (and its settle window, when runs collide)
/// overlap reads that must happen anyway. Refuses (nothing changed) when the plan, a service or another
/// run's claim says no; with `--wait-for-idle` it waits for the other run and plans again.
pub async fn claim<F, Fut>(
    env: &Environment,
    release: &str,
    opts: &DeployOptions,
    make_plan: F,
) -> Result<Claimed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Plan>>,
{
    let started = crate::records::now_unix();
    let (store, lease, (plan, ready)) = memory::claim_environment(env, release, opts, || async {
        let plan = make_plan().await?;
        let ready = ready(&plan, env, opts).await?;
        Ok((plan, ready))
    })
    .await?;
    Ok(Claimed {
        plan,
        ready,
        store,
        lease,
        started,
    })
}

/// Executes a claimed run's plan on `env`, promoting from `source_env` when the plan says so,
/// and records the outcome next to the image at the end.
pub async fn deploy(
    claimed: Claimed,
    env: &Environment,
    source_env: &Environment,
    opts: &DeployOptions,
    gh: &mut Session,
    gh_request: &DeploymentRequest,
) -> Result<DeployReport> {
    let Claimed {
        plan,
        ready,
        store,
        lease,
        started,
    } = claimed;
    let result = execute(&plan, env, source_env, opts, ready, gh, gh_request).await;
    lease.release().await;
    let mut report = result?;
    if let Some(h) = render::headline(
        plan.kind,
        plan.live_release.as_deref(),
        &plan.tag,
        plan.downgrade,
    ) {
        report.verdict = format!("{h}: {}", report.verdict);
    }
    memory::record(&store, &plan, env, source_env, &mut report, started).await;
    Ok(report)
}

/// The read-only part of a run: the digest, the role, and every service read and checked
/// (`deploy::prepare`, concurrently); refuses while nothing has changed.
async fn ready(plan: &Plan, env: &Environment, opts: &DeployOptions) -> Result<Ready> {
    let digest = plan.source.digest.clone().ok_or_else(|| {
        anyhow!(
            "the source digest of {} could not be read: {}",
            plan.source.display(),
            plan.unresolved.join("; ")
        )
    })?;
    crate::plan::refuse_moved_tag(plan, &digest)?;
    let sdk = crate::aws::sts::environment_config(env).await?;
    crate::aws::sts::verify_identity(env, &sdk).await?;
    let client = crate::aws::sts::ecs_client(&sdk);
    let bg = deploy::codedeploy::Context {
        cd: aws_sdk_codedeploy::Client::new(&sdk),
        test_checks: deploy::codedeploy::test_checks(&env.file.smoke),
        production_checks: env.file.smoke.clone(),
        versions: accepted_versions(plan),
    };
    let image = format!("{}/{}@{}", env.registry_host(), env.repository(), digest);
    let pins = env
        .file
        .services
        .iter()
        .map(|cfg| plan.pins(env, cfg))
        .collect::<Result<Vec<_>>>()?;
    // Read everything and refuse early: nothing is changed until every service is ready. The
    // first refusal ends the others (one may be waiting for a deployment in flight).
    let prepared = futures_util::future::try_join_all(
        env.file
            .services
            .iter()
            .zip(pins)
            .map(|(cfg, pins)| deploy::prepare::prepare(&client, &bg.cd, env, cfg, pins, opts)),
    )
    .await?;
    Ok(Ready {
        sdk,
        client,
        bg,
        image,
        digest,
        prepared,
    })
}

/// promote → roll out → smoke → (on failure) roll back, under this run's claim.
async fn execute(
    plan: &Plan,
    env: &Environment,
    source_env: &Environment,
    opts: &DeployOptions,
    ready: Ready,
    gh: &mut Session,
    gh_request: &DeploymentRequest,
) -> Result<DeployReport> {
    let Ready {
        sdk,
        client,
        bg,
        image,
        digest,
        mut prepared,
    } = ready;

    // Refuse now what cannot finish before the run deadline, while nothing has changed.
    fit_deadline(&mut prepared, env, opts, false, None)?;

    // Everything is ready and nothing changed yet: from here on, GitHub shows a deployment.
    gh.start(gh_request).await;

    let promote_started = std::time::Instant::now();
    let promotion = if plan.promote {
        tracing::info!(
            "promoting {} to {}/{}:{}",
            plan.source.display(),
            env.registry_host(),
            env.repository(),
            plan.tag
        );
        // By digest: the record vouches for these bytes, whatever the rc tag says now.
        // Every image of the release, side by side; the first one's copy is reported.
        let first = env.images.first().map_or("", |i| i.name.as_str());
        let mut set = vec![(first, digest.as_str())];
        set.extend(
            plan.also
                .iter()
                .filter_map(|s| s.source.digest.as_deref().map(|d| (s.name.as_str(), d))),
        );
        let out = futures_util::future::try_join_all(set.iter().map(|(name, d)| async move {
            let repo = env.image(name).map_or(env.repository(), |i| &i.repository);
            let to = format!("{}/{repo}:{}", env.registry_host(), plan.tag);
            crate::inflight::copying(&to);
            let copied = crate::promote::promote(source_env, env, name, d, d, &plan.tag).await;
            crate::inflight::copied(&to);
            copied.with_context(|| {
                format!(
                    "promoting image {name} ({d}) from {} to {}",
                    source_env.name, env.name
                )
            })
        }))
        .await;
        Some(out?.swap_remove(0))
    } else {
        None
    };
    let promotion_seconds = promotion
        .is_some()
        .then(|| promote_started.elapsed().as_secs_f64());

    // The copy took its time: cut each rollout to what is left.
    let promoted = format!("{}/{}:{}", env.registry_host(), env.repository(), plan.tag);
    fit_deadline(
        &mut prepared,
        env,
        opts,
        true,
        promotion.is_some().then_some(promoted.as_str()),
    )?;

    // Auto scaling held from the first update until every service is settled: a scale-out
    // mid-rollout launches old tasks, a scale-in during the smoke checks stops new ones.
    let scaling = crate::aws::autoscaling::client(&sdk);
    // A hold an earlier run of this environment never gave back (it died): undone first.
    deploy::hold::recover(&scaling, env).await;
    let holds = if env.file.deploy.holds_autoscaling() {
        let changing: Vec<(String, String)> = prepared
            .iter()
            .filter(|p| !p.already)
            .map(|p| (p.cfg.cluster.clone(), p.cfg.service.clone()))
            .collect();
        let run_id = crate::github::actions::run_url().unwrap_or_else(crate::records::new_run_id);
        deploy::hold::hold(
            &scaling,
            &changing,
            env.file.deploy.holds_scheduled_scaling(),
            &run_id,
        )
        .await
    } else {
        Vec::new()
    };
    let result: Result<DeployReport> = async {
        let tags = taskdef::ferry_tags(&plan.tag, &plan.version, &digest, opts.commit.as_deref());
        // One set of reads for every service followed side by side: they go out batched.
        let reads = crate::aws::ecs::Reads::new(&client);
        let mut runs = futures_util::future::join_all(
            prepared
                .into_iter()
                .map(|p| deploy::rollout(&reads, &bg, p, &tags)),
        )
        .await;
        let nothing_changed = runs.iter().all(|r| r.new_td.is_none());
        // Nothing changed anywhere: the start error is the whole story (exit 1, or its own code).
        if nothing_changed {
            if let Some(e) = runs.iter_mut().find_map(|r| r.start_error.take()) {
                return Err(e);
            }
        }

        let rollout_ok = runs
            .iter()
            .all(|r| matches!(r.ended, Some(Ended::Succeeded) | None));
        // Blue/green services already ran checks during the release (test listener, bake time):
        // those come first.
        let mut smoke: Vec<_> = runs
            .iter()
            .flat_map(|r| r.test_smoke.iter().cloned())
            .collect();
        if rollout_ok && !env.file.smoke.is_empty() {
            tracing::info!(
                "rollout complete; running {} smoke check(s)",
                env.file.smoke.len()
            );
            smoke.extend(crate::smoke::run(&env.file.smoke, &accepted_versions(plan)).await);
        }
        let smoke_ok = smoke.iter().all(|s| s.ok);

        let mut report = DeployReport {
            tag: plan.tag.clone(),
            version: plan.version.clone(),
            environment: env.name.clone(),
            region: env.file.region.clone(),
            run_url: crate::github::actions::run_url(),
            image,
            images: plan
                .image_set(env)
                .into_iter()
                .filter_map(|(name, d)| {
                    env.image(&name).map(|i| {
                        let pinned = format!("{}/{}@{d}", env.registry_host(), i.repository);
                        (name, pinned)
                    })
                })
                .collect(),
            promotion,
            promotion_seconds,
            services: Vec::new(),
            smoke,
            outcome: Outcome::Deployed,
            verdict: String::new(),
            kind: plan.kind,
            rollback_from: plan
                .live_release
                .clone()
                .filter(|_| plan.kind == RunKind::Rollback),
            record: None,
            record_error: None,
            github: None,
            targets: Vec::new(),
        };

        if rollout_ok && smoke_ok {
            report.outcome = if nothing_changed {
                Outcome::AlreadyDeployed
            } else {
                Outcome::Deployed
            };
            for r in runs.iter_mut() {
                r.final_td = r.new_td.clone().or(Some(r.prep.previous_td.clone()));
            }
            report.services = runs.iter().map(|r| service_report(r, None)).collect();
            report.verdict = render::success_verdict(&report, &digest);
            return Ok(report);
        }

        let why = render::failure_reasons(&runs, &report.smoke);
        if nothing_changed {
            report.outcome = Outcome::NeedsAttention;
            report.services = runs
                .iter()
                .map(|r| service_report(r, Some(ServiceState::Unknown)))
                .collect();
            report.verdict = render::failing_already_verdict(&report, &why);
            return Ok(report);
        }

        gh.progress(&format!("failed; rolling back: {}", why.join("; ")))
            .await;
        for r in runs.iter_mut() {
            if r.new_td.is_some() && r.evidence.is_empty() {
                r.evidence = deploy::evidence::explain(&client, r).await;
            }
        }
        let (mut states, mut took) = (Vec::new(), Vec::new());
        for r in runs.iter_mut() {
            let name = r.prep.name();
            crate::inflight::rolling_back(&name);
            let t0 = std::time::Instant::now();
            states.push(deploy::rollback::roll_back(&client, r).await);
            took.push(t0.elapsed().as_secs_f64());
            crate::inflight::rolled_back(&name);
        }
        confirm_final_revisions(&client, &mut runs).await;
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
            .zip(&took)
            .map(|((r, s), t)| {
                let mut svc = service_report(r, Some(*s));
                // The step summary's timeline draws ferry's own rollbacks as bars.
                svc.rollback_seconds = (*s == ServiceState::RolledBack).then_some(*t);
                svc
            })
            .collect();
        report.outcome = if all_back {
            Outcome::RolledBack
        } else {
            Outcome::NeedsAttention
        };
        report.verdict = render::failure_verdict(&report, &why, all_back);
        Ok(report)
    }
    .await;
    deploy::hold::restore(&scaling, &holds).await;
    result
}

/// Reads what each service this run touched runs now, where the rollback did not already
/// confirm it, so the report states what ECS says rather than what ferry hoped.
async fn confirm_final_revisions(client: &aws_sdk_ecs::Client, runs: &mut [Running]) {
    for r in runs.iter_mut().filter(|r| r.final_td.is_none()) {
        if let Ok(Some(svc)) =
            ecs::find_service(client, &r.prep.cfg.cluster, &r.prep.cfg.service).await
        {
            r.final_td = svc.task_definition().map(str::to_string);
        }
    }
}

/// What the smoke checks' version field may say: this release, or for a promotion the release
/// candidate whose bytes these are.
fn accepted_versions(plan: &Plan) -> Vec<String> {
    let mut v = vec![plan.version.clone(), plan.tag.clone()];
    if let (true, Some(src)) = (plan.promote, &plan.source.tag) {
        v.push(src.trim_start_matches('v').to_string());
        v.push(src.clone());
    }
    if let Some(b) = &plan.built_as {
        v.push(b.trim_start_matches('v').to_string());
        v.push(b.clone());
    }
    v
}

fn service_report(r: &Running, state: Option<ServiceState>) -> ServiceReport {
    let state = state.unwrap_or(if r.new_td.is_none() {
        ServiceState::AlreadyDeployed
    } else {
        ServiceState::Deployed
    });
    let previous_release = ecs::release_of(&r.prep.tags).map(str::to_string);
    ServiceReport {
        cluster: r.prep.cfg.cluster.clone(),
        service: r.prep.cfg.service.clone(),
        detail: render::service_detail(
            state,
            &r.prep.previous_td,
            r.new_td.as_deref(),
            previous_release.as_deref(),
        ),
        previous_task_definition: r.prep.previous_td.clone(),
        task_definition: r.new_td.clone(),
        final_task_definition: r.final_td.clone(),
        previous_release,
        previous_image: ecs::container_image(&r.prep.td, &r.prep.cfg.container).map(str::to_string),
        changes: r.changes.clone(),
        state,
        evidence: r.evidence.clone(),
        rollout_seconds: r.seconds,
        phases: crate::report::Phase::from_stages(&r.stages, r.seconds),
        rollback_seconds: None,
        rollout_noticed_at: r
            .noticed_at
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        timeout_seconds: r.prep.timeout.as_secs(),
        timeout_why: r.prep.timeout_why.clone(),
    }
}

/// The error to return for a finished report (`Ok` for success): decides the exit code.
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

/// Fits the rollouts before the run deadline (`deploy::prepare::fit_deadline`): before the
/// promotion only checks; right before the rollout (`cut`) also shortens. A release that
/// cannot fit is refused with what was done so far: nothing, or only the `promoted` image.
fn fit_deadline(
    prepared: &mut [deploy::Prepared],
    env: &Environment,
    opts: &DeployOptions,
    cut: bool,
    promoted: Option<&str>,
) -> Result<()> {
    let Some(deadline) = opts.deadline else {
        return Ok(());
    };
    deploy::prepare::fit_deadline(prepared, env.smoke_reserve(), &deadline, cut).map_err(|why| {
        let done = match promoted {
            None => "nothing was changed".to_string(),
            Some(image) => format!("only the image was promoted ({image}); no service was changed"),
        };
        crate::deadline::refusal(&deadline, &why, &done)
    })
}
