//! One function per subcommand: gather the inputs, call the core, render the result (stdout,
//! and in GitHub Actions the step summary, outputs and annotations). The only layer that
//! prints results; everything below returns values.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{Cli, Command, OutputFormat, TriggerArgs};
use crate::error::{Failure, FailureKind};
use crate::github::actions;
use crate::github::deployments::{DeploymentRequest, Outcome as GhOutcome, Session};
use crate::github::event::{self, Resolved, Trigger};
use crate::notify;
use crate::render;
use crate::tag::ReleaseTag;

/// Runs the parsed command line.
pub async fn run(cli: Cli, deadline: crate::deadline::Deadline) -> Result<()> {
    let envs = cli.environments.as_path();
    match cli.command {
        Command::Plan { trigger, offline } => {
            plan(envs, cli.output, &trigger, offline, deadline).await
        }
        Command::Deploy {
            trigger,
            wait_for_idle,
            commit,
        } => {
            let opts = crate::deploy::DeployOptions {
                wait_for_idle,
                commit,
                deadline: Some(deadline),
            };
            deploy(envs, cli.output, &trigger, &opts).await
        }
        Command::Status {
            environment,
            history,
        } => {
            let envs =
                crate::status::read(envs, environment.as_deref(), usize::from(history)).await?;
            emit(cli.output, &envs, || render::status_text(&envs))
        }
        Command::Copy {
            source,
            destination,
            insecure,
            src_insecure,
            dst_insecure,
            source_role,
            target_role,
        } => {
            let opts = crate::promote::CopyOptions {
                insecure,
                src_insecure,
                dst_insecure,
                source_role,
                target_role,
            };
            let out = crate::promote::copy_images(&source, &destination, &opts).await?;
            emit(cli.output, &out, || {
                render::copy_text(&source, &destination, &out)
            })
        }
        Command::IamPolicy {
            environment,
            repository,
            offline,
        } => {
            let p = crate::iam::run(envs, environment.as_deref(), repository.as_deref(), offline)
                .await?;
            emit(cli.output, &p, || crate::iam::text(&p))
        }
        Command::Validate { online } => {
            let checks = crate::validate::run(envs, online).await?;
            emit(cli.output, &checks, || render::checks_text(&checks))?;
            crate::validate::result_of(&checks)
        }
    }
}

/// Writes a result to stdout: pretty JSON, or the human text.
fn emit<T: Serialize>(
    output: OutputFormat,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, value).context("writing JSON to stdout")?;
            writeln!(out)?;
        }
        OutputFormat::Human => out.write_all(human().as_bytes())?,
    }
    Ok(())
}

/// The release to act on, or `None` (said on stderr) when the event asks for nothing.
fn release_to_act_on(args: &TriggerArgs) -> Result<Option<Trigger>> {
    let resolved = match (&args.tag, &args.event) {
        (Some(tag), _) => event::from_tag(tag),
        (None, Some(path)) => event::from_event_file(path)?,
        (None, None) => return Err(Failure::invalid("no release to act on: neither --tag nor an event was given")
            .hint("pass --tag vX.Y.Z[-rc.N], or --event PATH (in GitHub Actions $GITHUB_EVENT_PATH is used)")
            .into()),
    };
    match resolved {
        Resolved::Deploy(t) => Ok(Some(t)),
        Resolved::Nothing(msg) => {
            tracing::info!("{msg}");
            Ok(None)
        }
    }
}

/// The plan's options from the flags and `GITHUB_RUN_ATTEMPT` (a re-run is deliberate).
fn plan_options(
    args: &TriggerArgs,
    offline: bool,
    deadline: Option<crate::deadline::Deadline>,
) -> Result<crate::plan::PlanOptions> {
    let run_attempt = match std::env::var("GITHUB_RUN_ATTEMPT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Failure::invalid(format!("GITHUB_RUN_ATTEMPT={v:?} is not a positive number"))
                    .hint("GitHub Actions sets it; outside Actions leave it unset")
            })?,
        _ => 1,
    };
    Ok(crate::plan::PlanOptions {
        offline,
        from: args.from.clone(),
        allow_downgrade: args.allow_downgrade,
        run_attempt,
        wait_for_idle: false,
        claims_checked_by_run: false,
        deadline,
    })
}

/// The release to act on, its tag, and the run's GitHub session: a `workflow_dispatch`
/// release is looked up on GitHub and refused as a release event would be (draft,
/// contradicting pre-release flag).
async fn release_and_session(
    envs: &Path,
    args: &TriggerArgs,
) -> Result<Option<(Trigger, ReleaseTag, Session)>> {
    let Some(mut trigger) = release_to_act_on(args)? else {
        return Ok(None);
    };
    let environments = crate::config::load(envs)?;
    let tag = crate::plan::classify(&trigger, &environments)?;
    let mut gh = Session::from_env(trigger.repository.as_deref());
    gh.check_dispatch_release(&mut trigger, &tag).await?;
    Ok(Some((trigger, tag, gh)))
}

async fn plan(
    envs: &Path,
    output: OutputFormat,
    args: &TriggerArgs,
    offline: bool,
    deadline: crate::deadline::Deadline,
) -> Result<()> {
    let trigger = if offline {
        release_to_act_on(args)?
    } else {
        release_and_session(envs, args).await?.map(|(t, _, _)| t)
    };
    let Some(trigger) = trigger else {
        return Ok(());
    };
    let plan = crate::plan::plan(
        &trigger,
        envs,
        &plan_options(args, offline, Some(deadline))?,
    )
    .await?;
    emit(output, &plan, || render::plan_text(&plan))?;
    actions::github_summary(&render::plan_markdown(&plan))?;
    actions::github_outputs(&[
        ("environment", &plan.environment),
        ("version", &plan.version),
        ("digest", plan.source.digest.as_deref().unwrap_or("")),
    ])?;
    Ok(())
}

async fn deploy(
    envs_dir: &Path,
    output: OutputFormat,
    args: &TriggerArgs,
    opts: &crate::deploy::DeployOptions,
) -> Result<()> {
    let Some((trigger, tag, mut gh)) = release_and_session(envs_dir, args).await? else {
        return Ok(());
    };
    let environments = crate::config::load(envs_dir)?;
    let targets = environments.select(&tag)?.file.notify.clone();
    let result = deploy_release(envs_dir, args, &trigger, &tag, opts, &mut gh, &targets).await;
    notify_end(&targets, &tag, &result).await;
    let verdict = match &result {
        // Several targets: each named, in the few words GitHub keeps.
        Ok(report) if !report.targets.is_empty() => render::targets_line(report),
        Ok(report) => report.verdict.clone(),
        Err(e) => format!("{e:#}"),
    };
    let outcome = match &result {
        Ok(report) => GhOutcome::from_result(&crate::run::result_of(report)),
        Err(e) if crate::error::exit_code(e) == 4 => GhOutcome::Failure,
        Err(_) => GhOutcome::Error,
    };
    gh.finish(outcome, &verdict).await;
    let mut report = result?;
    report.github = Some(gh.report().clone());
    emit(output, &report, || render::report_text(&report))?;
    actions::github_summary(&render::report_markdown(&report))?;
    let digest = report.image.split_once('@').map_or("", |(_, d)| d);
    let task_definitions = report
        .services
        .iter()
        .filter_map(|s| s.final_task_definition.as_deref())
        .collect::<Vec<_>>()
        .join(" ");
    let outcome = serde_json::to_value(report.outcome)?;
    actions::github_outputs(&[
        ("environment", &report.environment),
        ("version", &report.version),
        ("image", &report.image),
        ("digest", digest),
        ("outcome", outcome.as_str().unwrap_or_default()),
        ("task-definitions", &task_definitions),
        ("kind", report.kind.as_str()),
        ("images", &serde_json::to_string(&report.images)?),
    ])?;
    crate::run::result_of(&report)
}

async fn deploy_release(
    envs_dir: &Path,
    args: &TriggerArgs,
    trigger: &Trigger,
    tag: &ReleaseTag,
    opts: &crate::deploy::DeployOptions,
    gh: &mut Session,
    targets: &[notify::NotifyTarget],
) -> Result<crate::report::DeployReport> {
    let mut plan_opts = plan_options(args, false, opts.deadline)?;
    plan_opts.wait_for_idle = opts.wait_for_idle;
    // The run checks other runs' claims against its own (`run::claim`).
    plan_opts.claims_checked_by_run = true;
    let envs = crate::config::load(envs_dir)?;
    let env = envs.select(tag)?;
    if env.has_targets() {
        return deploy_waves(&envs, env, trigger, tag, &plan_opts, opts, gh, targets).await;
    }
    let claimed = crate::run::claim(env, &tag.tag, opts, || {
        crate::plan::plan(trigger, envs_dir, &plan_opts)
    })
    .await?;
    let plan = claimed.plan.clone();
    tracing::info!(
        "deploying {} to {} (account {}, {}): {}",
        plan.tag,
        plan.environment,
        plan.account_id,
        plan.region,
        plan.source.display()
    );
    if let Some(h) = render::headline(
        plan.kind,
        plan.live_release.as_deref(),
        &plan.tag,
        plan.downgrade,
    ) {
        tracing::info!("{h} in {}", plan.environment);
    }
    let source_env = envs.get(&plan.source.environment)?;
    let request = DeploymentRequest::new(
        tag,
        &plan.environment,
        plan.source.digest.as_deref().unwrap_or_default(),
    );
    let start = notify::Event::new(
        notify::EventKind::Start,
        &plan.tag,
        &plan.version,
        &plan.environment,
        plan.source.digest.clone(),
        format!("deploying {} to {}", plan.tag, plan.environment),
    );
    notify::send(targets, &start).await;
    let result = crate::run::deploy(claimed, env, source_env, opts, gh, &request).await;
    if let Err(e) = &result {
        // It started, so the targets hear how it ended, refusals included.
        let event = notify::Event::new(
            notify::EventKind::Failure,
            &plan.tag,
            &plan.version,
            &plan.environment,
            plan.source.digest.clone(),
            format!("{e:#}"),
        );
        notify::send(targets, &event).await;
    }
    result
}

/// `deploy_release` for an environment of several targets: wave by wave (`run::waves`).
#[allow(clippy::too_many_arguments)]
async fn deploy_waves(
    envs: &crate::config::Environments,
    env: &crate::config::Environment,
    trigger: &Trigger,
    tag: &ReleaseTag,
    plan_opts: &crate::plan::PlanOptions,
    opts: &crate::deploy::DeployOptions,
    gh: &mut Session,
    targets: &[notify::NotifyTarget],
) -> Result<crate::report::DeployReport> {
    let waves: Vec<String> = env
        .waves()
        .iter()
        .map(|w| {
            w.iter()
                .map(|t| t.display_name())
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect();
    tracing::info!(
        "deploying {} to {} in {} wave(s): {}",
        tag.tag,
        env.name,
        waves.len(),
        waves.join(", then ")
    );
    // Every target's plan first: a refusal anywhere changes nothing and tells nobody (as a
    // refused environment of one), and the plans give the release's digest.
    let digest = crate::run::waves::precheck(envs, env, trigger, tag, plan_opts).await?;
    let mut request = DeploymentRequest::new(tag, &env.name, digest.as_deref().unwrap_or_default());
    request.waves = env
        .waves()
        .iter()
        .map(|w| {
            w.iter()
                .map(|t| t.target.as_ref().map_or(t.name.clone(), |x| x.name.clone()))
                .collect()
        })
        .collect();
    let start = notify::Event::new(
        notify::EventKind::Start,
        &tag.tag,
        tag.version.to_string(),
        &env.name,
        digest.clone(),
        format!(
            "deploying {} to {} in waves: {}",
            tag.tag,
            env.name,
            waves.join(", then ")
        ),
    );
    notify::send(targets, &start).await;
    let result =
        crate::run::waves::deploy(envs, env, trigger, tag, plan_opts, opts, gh, &request).await;
    if let Err(e) = &result {
        let event = notify::Event::new(
            notify::EventKind::Failure,
            &tag.tag,
            tag.version.to_string(),
            &env.name,
            digest,
            format!("{e:#}"),
        );
        notify::send(targets, &event).await;
    }
    result
}

/// Tells the environment's `[[notify]]` targets how the run ended (best effort).
async fn notify_end(
    targets: &[notify::NotifyTarget],
    tag: &ReleaseTag,
    result: &Result<crate::report::DeployReport>,
) {
    use crate::report::Outcome;
    let (kind, environment, digest, verdict) = match result {
        Ok(r) => (
            match r.outcome {
                Outcome::Deployed | Outcome::AlreadyDeployed => notify::EventKind::Success,
                Outcome::RolledBack => notify::EventKind::Rollback,
                Outcome::NeedsAttention => notify::EventKind::Failure,
            },
            r.environment.clone(),
            r.image.split_once('@').map(|(_, d)| d.to_string()),
            r.verdict.clone(),
        ),
        // An error was already told by `deploy_release` (or came before the start).
        Err(_) => return,
    };
    let event = notify::Event::new(
        kind,
        &tag.tag,
        tag.version.to_string(),
        environment,
        digest,
        verdict,
    );
    notify::send(targets, &event).await;
}

/// What an interruption (Ctrl-C, SIGTERM from a cancelled job, or the run deadline) leaves
/// behind, said plainly. A deploy first releases the claims it holds (at most
/// [`RELEASE_BOUND`]: GitHub sends SIGTERM 7.5 s after SIGINT), then says by name what is
/// still in flight in ECS and whether a re-run is safe (`render::interruption`).
pub async fn interrupted(signal: &str, work: crate::cli::Work) -> anyhow::Error {
    use crate::cli::Work;
    match work {
        Work::Deploy => {
            let (released, restored) = tokio::join!(
                crate::run::heartbeat::release_held(RELEASE_BOUND),
                crate::deploy::hold::restore_in_place(RELEASE_BOUND)
            );
            let i = render::interruption(signal, &crate::inflight::snapshot(), &released);
            let mut message = i.message;
            for line in restored {
                message.push_str(&format!("\n  {line}"));
            }
            Failure::new(i.kind, message).hint(i.hint).into()
        }
        Work::Copy => Failure::new(
            FailureKind::Error,
            format!(
                "stopped by {signal} during the copy: some blobs or child manifests may be at the \
                 destination, but the tag is written last, so it does not point at an incomplete image"
            ),
        )
        .hint("re-run the copy: what is already there is proven and kept")
        .into(),
        Work::Reads => Failure::new(
            FailureKind::Error,
            format!("stopped by {signal}; nothing was changed"),
        )
        .into(),
    }
}

/// How long an interrupted run may spend releasing its claims before it exits.
pub const RELEASE_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Prints an error on stderr: the whole cause chain, then the fix hint; and in GitHub
/// Actions an `::error` annotation.
pub fn report_error(err: &anyhow::Error) {
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        eprintln!("error: {top}");
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = crate::error::classify(err).and_then(|f| f.hint.as_deref()) {
        eprintln!("hint: {hint}");
    }
    actions::github_error_annotation("ferry failed", &format!("{err:#}"));
}
