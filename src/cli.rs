//! The command line: clap types only. `commands` turns each subcommand into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `ferry`
#[derive(Debug, Parser)]
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
pub struct Cli {
    /// Directory of environment files.
    #[arg(
        long,
        global = true,
        env = "FERRY_ENVIRONMENTS",
        default_value = "environments"
    )]
    pub environments: PathBuf,
    /// How results are printed on stdout (progress always goes to stderr).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// The whole run ends by then (90s, 45m, 2h, 1h30m): each rollout is cut so that smoke
    /// checks and a rollback still fit, a release that cannot fit is refused before anything
    /// changes, and at the deadline ferry stops and says what may be in flight. Keep it under
    /// the CI job's own timeout.
    #[arg(
        long,
        global = true,
        env = "FERRY_DEADLINE",
        default_value = crate::deadline::DEFAULT,
        value_parser = crate::deadline::parse,
        value_name = "DURATION"
    )]
    pub deadline: std::time::Duration,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// `--output`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for a person.
    Human,
    /// Pretty JSON for machines.
    Json,
}

/// What names the release to act on.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Release tag to act on, e.g. v1.4.0-rc.2 (wins over the event, so a person can name
    /// a tag inside GitHub Actions, where $GITHUB_EVENT_PATH is always set).
    #[arg(long)]
    pub tag: Option<String>,
    /// GitHub event payload (release or workflow_dispatch with a `tag` input);
    /// defaults to $GITHUB_EVENT_PATH.
    #[arg(long, env = "GITHUB_EVENT_PATH")]
    pub event: Option<PathBuf>,
    /// For a final release: promote this release candidate (vX.Y.Z-rc.N) instead of the
    /// highest; it must have passed the source environment too.
    #[arg(long, value_name = "RC_TAG")]
    pub from: Option<String>,
    /// Deploy a release older than the one running even though this environment never ran it
    /// (going back to a release it ran before needs no flag: that is a rollback).
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a release would do, without changing anything.
    #[command(after_help = "Example:\n  ferry plan --tag v1.4.0-rc.2 --output json")]
    Plan {
        /// The release.
        #[command(flatten)]
        trigger: TriggerArgs,
        /// Do not contact AWS or registries (no digests).
        #[arg(long)]
        offline: bool,
    },
    /// Deploy a release (in GitHub Actions: the published release of $GITHUB_EVENT_PATH).
    #[command(after_help = "Example:\n  ferry deploy --tag v1.4.0")]
    Deploy {
        /// The release.
        #[command(flatten)]
        trigger: TriggerArgs,
        /// Wait for a deployment already in flight to finish instead of refusing (exit 3).
        #[arg(long)]
        wait_for_idle: bool,
        /// Commit the release was built from, recorded as a task-definition tag.
        #[arg(long, env = "GITHUB_SHA")]
        commit: Option<String>,
    },
    /// Show what each environment runs now, its last release records, and drift.
    #[command(after_help = "Example:\n  ferry status production --history 20")]
    Status {
        /// Only this environment (default: all).
        environment: Option<String>,
        /// How many of each environment's newest release records to show.
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(0..=500))]
        history: u16,
    },
    /// Copy one image by digest between registries (the promotion engine on its own).
    #[command(
        after_help = "Examples:\n  ferry copy 111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0-rc.2 \\\n             222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0\n  REGISTRY_USER=u REGISTRY_PASSWORD=p ferry copy --insecure 127.0.0.1:5001/app:v1 127.0.0.1:5002/app:v1\n\n\
        ECR hosts use AWS credentials (default chain, or --source-role/--target-role); other registries use \
        SRC_/DST_REGISTRY_USER and _PASSWORD, REGISTRY_USER/REGISTRY_PASSWORD, or the docker config file."
    )]
    Copy {
        /// Source: HOST/REPOSITORY:TAG or HOST/REPOSITORY@sha256:… (HOST may carry a :PORT)
        source: String,
        /// Destination: HOST/REPOSITORY:TAG (HOST may carry a :PORT)
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
    /// Print the least-privilege IAM policies ferry needs: each role's permissions and trust
    /// (GitHub OIDC), and the caller's for stored credentials.
    #[command(
        after_help = "Examples:\n  ferry iam-policy --environment production --repository acme/shop\n  ferry iam-policy --offline --output json | jq '.environments[0].role_policy'"
    )]
    IamPolicy {
        /// Only this environment (default: all).
        #[arg(long)]
        environment: Option<String>,
        /// The GitHub repository (owner/name) whose deploy jobs the trust policies admit.
        #[arg(long, env = "GITHUB_REPOSITORY")]
        repository: Option<String>,
        /// Do not read the live task definitions (their families and roles stay placeholders).
        #[arg(long)]
        offline: bool,
    },
    /// Check the environment files; with --online also that roles, repositories and services exist.
    #[command(after_help = "Example:\n  ferry validate --online")]
    Validate {
        /// Also assume each role and look up each repository, cluster and service.
        #[arg(long)]
        online: bool,
    },
}

impl Command {
    /// Whether this command changes environments (an interruption then needs explaining).
    pub fn work(&self) -> Work {
        match self {
            Command::Deploy { .. } => Work::Deploy,
            Command::Copy { .. } => Work::Copy,
            _ => Work::Reads,
        }
    }
}

/// What a command changes, so that an interruption can say what it leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Reads only.
    Reads,
    /// Writes blobs and manifests to a registry, the tag last.
    Copy,
    /// Changes an environment: registry, task definitions, services.
    Deploy,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
