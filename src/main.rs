//! The `ferry` command: parses arguments, sets up logging, runs the library, maps the result
//! to the documented exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use ferry::report::OutputFormat;
use ferry::trigger::{self, Resolved};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Turns a GitHub release into a safe, verified deploy on AWS ECS",
    long_about = "Turns a GitHub release into a safe, verified deploy on AWS ECS.\n\n\
        A tag vX.Y.Z-rc.N deploys to the pre-release (staging) environment, vX.Y.Z promotes the \
        exact digest verified there to production. Environments are described in \
        environments/<name>.toml.",
    after_help = "Examples:\n  ferry validate\n  ferry plan --tag v1.4.0-rc.2\n  ferry deploy            # in GitHub Actions, reads $GITHUB_EVENT_PATH\n\n\
        Exit codes: 0 done or nothing to do, 1 error before anything changed, 2 invalid input, \
        3 refused by a safety gate, 4 failed and rolled back, 5 failed and needs a person."
)]
struct Cli {
    /// Directory of environment files.
    #[arg(
        long,
        global = true,
        env = "FERRY_ENVIRONMENTS",
        default_value = "environments"
    )]
    environments: PathBuf,
    /// How results are printed on stdout (progress always goes to stderr).
    #[arg(long, global = true, value_enum, default_value = "human")]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TriggerArgs {
    /// Release tag to act on, e.g. v1.4.0-rc.2 (wins over the event, so a person can name
    /// a tag inside GitHub Actions, where $GITHUB_EVENT_PATH is always set).
    #[arg(long)]
    tag: Option<String>,
    /// GitHub event payload (release or workflow_dispatch with a `tag` input);
    /// defaults to $GITHUB_EVENT_PATH.
    #[arg(long, env = "GITHUB_EVENT_PATH")]
    event: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a release would do, without changing anything.
    #[command(after_help = "Example:\n  ferry plan --tag v1.4.0-rc.2 --output json")]
    Plan {
        #[command(flatten)]
        trigger: TriggerArgs,
        /// Do not contact AWS or registries (no digests).
        #[arg(long)]
        offline: bool,
    },
    /// Deploy a release (in GitHub Actions: the published release of $GITHUB_EVENT_PATH).
    #[command(after_help = "Example:\n  ferry deploy --tag v1.4.0")]
    Deploy {
        #[command(flatten)]
        trigger: TriggerArgs,
        /// Wait for a deployment already in flight to finish instead of refusing (exit 3).
        #[arg(long)]
        wait_for_idle: bool,
        /// Commit the release was built from, recorded as a task-definition tag.
        #[arg(long, env = "GITHUB_SHA")]
        commit: Option<String>,
    },
    /// Show what each environment's services run now, and which release that is.
    #[command(after_help = "Example:\n  ferry status production")]
    Status {
        /// Only this environment (default: all).
        environment: Option<String>,
    },
    /// Copy one image by digest between registries (the promotion engine on its own).
    #[command(
        after_help = "Examples:\n  ferry copy 111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0-rc.2 \\\n             222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0\n  REGISTRY_USER=u REGISTRY_PASSWORD=p ferry copy --insecure 127.0.0.1:5001/app:v1 127.0.0.1:5002/app:v1\n\n\
        ECR hosts use AWS credentials (default chain, or --source-role/--target-role); other registries use \
        SRC_/DST_REGISTRY_USER and _PASSWORD, REGISTRY_USER/REGISTRY_PASSWORD, or the docker config file."
    )]
    Copy {
        /// Source: host[:port]/repository:tag or …@sha256:…
        source: String,
        /// Destination: host[:port]/repository:tag
        destination: String,
        /// Plain http for both sides, for registries on loopback only.
        #[arg(long)]
        insecure: bool,
        /// Plain http for the source only (loopback only).
        #[arg(long)]
        src_insecure: bool,
        /// Plain http for the destination only (loopback only).
        #[arg(long)]
        dst_insecure: bool,
        /// Role to assume for an ECR source.
        #[arg(long)]
        source_role: Option<String>,
        /// Role to assume for an ECR destination.
        #[arg(long)]
        target_role: Option<String>,
    },
    /// Check the environment files; with --online also that roles, repositories and services exist.
    #[command(after_help = "Example:\n  ferry validate --online")]
    Validate {
        /// Also assume each role and look up each repository, cluster and service.
        #[arg(long)]
        online: bool,
    },
}

fn main() -> ExitCode {
    ferry::panic::install_hook();
    let cli = Cli::parse();
    ferry::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let changes_things = matches!(cli.command, Command::Deploy { .. } | Command::Copy { .. });
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli) => r,
            signal = shutdown_signal() => Err(interrupted(signal, changes_things)),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            print_error(&err);
            ExitCode::from(ferry::error::exit_code(&err))
        }
    }
}

/// Ctrl-C or SIGTERM (a cancelled GitHub Actions job).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    return tokio::signal::ctrl_c()
                        .await
                        .map_or("an interrupt", |_| "an interrupt (Ctrl-C)")
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "an interrupt (Ctrl-C)",
            _ = term.recv() => "SIGTERM (job cancelled?)",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "an interrupt (Ctrl-C)"
    }
}

/// What an interruption leaves behind, said plainly.
fn interrupted(signal: &str, changes_things: bool) -> anyhow::Error {
    if changes_things {
        ferry::Failure::needs_attention(format!(
            "stopped by {signal} while changing the environment: a registered revision or service \
             deployment may be in flight, and ECS carries it on (its circuit breaker still rolls \
             back failures), but ferry no longer watches it and no smoke check has run"
        ))
        .hint("run `ferry status` to see what each service runs, then re-run the deploy (it is safe: finished steps say \"already done\")")
        .into()
    } else {
        ferry::Failure::new(
            ferry::FailureKind::Error,
            format!("stopped by {signal}; nothing was changed"),
        )
        .into()
    }
}

/// The whole cause chain, then the fix hint.
fn print_error(err: &anyhow::Error) {
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        eprintln!("error: {top}");
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = ferry::error::classify(err).and_then(|f| f.hint.as_deref()) {
        eprintln!("hint: {hint}");
    }
    ferry::report::github_error_annotation("ferry failed", &format!("{err:#}"));
}

fn resolve_trigger(args: &TriggerArgs) -> Result<Resolved> {
    match (&args.tag, &args.event) {
        (Some(tag), _) => Ok(trigger::from_tag(tag)),
        (None, Some(path)) => trigger::from_event_file(path),
        (None, None) => Err(ferry::Failure::invalid("no release to act on: neither --tag nor an event was given")
            .hint("pass --tag vX.Y.Z[-rc.N], or --event PATH (in GitHub Actions $GITHUB_EVENT_PATH is used)")
            .into()),
    }
}

/// The release to act on, or `None` (said on stderr) when the event asks for nothing.
fn release_to_act_on(args: &TriggerArgs) -> Result<Option<ferry::trigger::Trigger>> {
    match resolve_trigger(args)? {
        Resolved::Deploy(t) => Ok(Some(t)),
        Resolved::Nothing(msg) => {
            tracing::info!("{msg}");
            Ok(None)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Plan { trigger, offline } => {
            plan(&cli.environments, cli.output, &trigger, offline).await
        }
        Command::Deploy {
            trigger,
            wait_for_idle,
            commit,
        } => {
            deploy(
                &cli.environments,
                cli.output,
                &trigger,
                wait_for_idle,
                commit,
            )
            .await
        }
        Command::Status { environment } => {
            ferry::status::run(&cli.environments, environment.as_deref(), cli.output).await
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
            let opts = ferry::promote::CopyOptions {
                insecure,
                src_insecure,
                dst_insecure,
                source_role,
                target_role,
            };
            let out = ferry::promote::copy_images(&source, &destination, &opts).await?;
            match cli.output {
                OutputFormat::Json => ferry::report::print_json(&out)?,
                OutputFormat::Human if out.already_done => {
                    println!("{destination} already points at {}: nothing to copy ({} requests)", out.digest, out.requests)
                }
                OutputFormat::Human => println!(
                    "copied {source} → {destination}: {} ({}), {} manifest(s), blobs {} copied / {} mounted / {} already there, {:.1} MiB in {:.2}s, {} requests; verified",
                    out.digest,
                    out.media_type,
                    out.manifests,
                    out.blobs_copied,
                    out.blobs_mounted,
                    out.blobs_skipped,
                    out.bytes_copied as f64 / 1048576.0,
                    out.seconds,
                    out.requests
                ),
            }
            Ok(())
        }
        Command::Validate { online } => {
            ferry::validate::run(&cli.environments, online, cli.output).await
        }
    }
}

async fn plan(
    envs: &std::path::Path,
    output: OutputFormat,
    args: &TriggerArgs,
    offline: bool,
) -> Result<()> {
    let Some(trigger) = release_to_act_on(args)? else {
        return Ok(());
    };
    let plan = ferry::plan::plan(&trigger, envs, ferry::plan::PlanOptions { offline }).await?;
    match output {
        OutputFormat::Json => ferry::report::print_json(&plan)?,
        OutputFormat::Human => print!("{}", ferry::report::plan_text(&plan)),
    }
    ferry::report::github_summary(&ferry::report::plan_markdown(&plan))?;
    ferry::report::github_outputs(&[
        ("environment", &plan.environment),
        ("version", &plan.version),
        ("digest", plan.source.digest.as_deref().unwrap_or("")),
    ])?;
    Ok(())
}

async fn deploy(
    envs_dir: &std::path::Path,
    output: OutputFormat,
    args: &TriggerArgs,
    wait_for_idle: bool,
    commit: Option<String>,
) -> Result<()> {
    let Some(trigger) = release_to_act_on(args)? else {
        return Ok(());
    };
    let plan = ferry::plan::plan(
        &trigger,
        envs_dir,
        ferry::plan::PlanOptions { offline: false },
    )
    .await?;
    tracing::info!(
        "deploying {} to {} (account {}, {}): {}",
        plan.tag,
        plan.environment,
        plan.account_id,
        plan.region,
        plan.source.display()
    );
    let envs = ferry::config::load(envs_dir)?;
    let env = envs.get(&plan.environment)?;
    let source_env = envs.get(&plan.source.environment)?;
    let opts = ferry::deploy::DeployOptions {
        wait_for_idle,
        commit,
    };
    let report = ferry::deploy::deploy(&plan, env, source_env, &opts).await?;
    match output {
        OutputFormat::Json => ferry::report::print_json(&report)?,
        OutputFormat::Human => print!("{}", ferry::deploy::report_text(&report)),
    }
    ferry::report::github_summary(&format!(
        "### ferry deploy: {} → {}\n\n```\n{}```\n",
        report.tag,
        report.environment,
        ferry::deploy::report_text(&report)
    ))?;
    ferry::report::github_outputs(&[
        ("environment", &report.environment),
        ("version", &report.version),
        ("image", &report.image),
        ("outcome", &format!("{:?}", report.outcome).to_lowercase()),
    ])?;
    ferry::deploy::result_of(&report)
}
