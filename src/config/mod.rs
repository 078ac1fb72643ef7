//! Environment files: `environments/<name>.toml`, one per environment.
//!
//! Parsed with serde (`deny_unknown_fields`, so a typo is an error, not a silently ignored
//! key), then validated field by field and across files. Every error names the file and the
//! field and says how to fix it.

mod check;
mod images;
pub mod records;
mod smoke;
mod targets;
mod vars;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::tag::{Channel, ReleaseTag, DEFAULT_PRERELEASE_WORDS};
pub use check::validate;
pub use images::ImageEntry;
pub use records::RecordsConfig;
pub use smoke::SmokeCheck;
pub use targets::{OnFailure, TargetConfig, TargetInfo};
use vars::expand_smoke;
pub use vars::expand_vars;

/// One `environments/<name>.toml`, as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// The 12-digit AWS account this environment lives in.
    pub account_id: String,
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// The role ferry assumes in that account.
    pub role: RoleConfig,
    /// Which release tags deploy here.
    pub release: ReleaseMatch,
    /// The ECR repository of an environment with one image (the same as one `[[images]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageConfig>,
    /// The images a release is made of, each in its own ECR repository: the release is the
    /// set {name → digest}. The first is the one release records are attached to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageEntry>,
    /// For environments that never build: where verified images come from.
    pub promote: Option<PromoteConfig>,
    /// The ECS services to deploy (one or more).
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// HTTP checks that gate success.
    #[serde(default)]
    pub smoke: Vec<SmokeCheck>,
    /// Rollout tuning.
    #[serde(default)]
    pub deploy: DeployConfig,
    /// Who hears about each run (`crate::notify`); URLs come from environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::NotifyTarget>,
    /// Signing and verifying release records (`records`).
    #[serde(default, skip_serializing_if = "RecordsConfig::is_empty")]
    pub records: RecordsConfig,
    /// Several accounts or regions, deployed in waves (`deploy.waves`); what a target does not
    /// say comes from the fields above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// `arn:aws:iam::<account_id>:role/<name>`
    pub arn: String,
    /// Sent as `ExternalId` when the role's trust policy requires one.
    pub external_id: Option<String>,
    /// 900..=43200; the role's own maximum still applies.
    pub session_duration_seconds: Option<u32>,
    /// Defaults to `ferry-<environment>`.
    pub session_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKind {
    /// `vX.Y.Z-rc.N` (or another allowed word)
    Prerelease,
    /// `vX.Y.Z`
    Final,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseMatch {
    /// `"prerelease"` or `"final"`.
    #[serde(rename = "match")]
    pub kind: MatchKind,
    /// Pre-release words accepted in tags (default `["rc"]`); only for `match = "prerelease"`.
    pub prerelease_words: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// ECR repository name, e.g. `shop/api`.
    pub repository: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteConfig {
    /// Name of the environment whose verified images this one deploys.
    pub from: String,
    /// How long a release candidate must have been live in `from` before it may be promoted.
    pub soak_minutes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub cluster: String,
    pub service: String,
    /// The container in the task definition whose image ferry replaces.
    pub container: String,
    /// The image (`[[images]]` name) `container` runs; default: the environment's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// More containers of the task definition that run an image of the release: container
    /// name → image name. Containers named nowhere keep their image (sidecars).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, String>,
    /// For a service with the CodeDeploy deployment controller: its application and
    /// deployment group, when ferry should not find them by the service they name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codedeploy: Option<CodeDeployConfig>,
}

/// The AppSpec hooks an ECS deployment can run (Lambda functions), in lifecycle order: the
/// events `[services.codedeploy] hooks` may name.
pub const HOOK_EVENTS: &[&str] = &[
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// `[services.codedeploy]`: which CodeDeploy deployment group deploys the service, and the
/// AppSpec's optional parts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CodeDeployConfig {
    /// The CodeDeploy application.
    pub application: Option<String>,
    /// The deployment group (of that application) whose `ecsServices` names this service.
    pub deployment_group: Option<String>,
    /// AppSpec hooks: lifecycle event (`BeforeInstall`, `AfterInstall`, `AfterAllowTestTraffic`,
    /// `BeforeAllowTraffic`, `AfterAllowTraffic`) → Lambda function name or ARN.
    #[serde(default)]
    pub hooks: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Overrides the rollout timeout ferry derives from the service.
    pub rollout_timeout_seconds: Option<u64>,
    /// Suspend a service's Application Auto Scaling during its rollout and restore it after
    /// (`crate::deploy::hold`). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_autoscaling: Option<bool>,
    /// With the hold, suspend scheduled scaling too. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_scheduled_scaling: Option<bool>,
    /// The order `[[targets]]` deploy in: each wave a list of target names, deployed side by
    /// side; the next wave starts when every target of this one passed. Default: one target
    /// per wave, in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<Vec<String>>>,
    /// When a wave fails: `rollback-all` (default) or `keep-earlier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

impl DeployConfig {
    /// Whether auto scaling is held during rollouts.
    pub fn holds_autoscaling(&self) -> bool {
        self.hold_autoscaling.unwrap_or(true)
    }

    /// Whether the hold covers scheduled scaling.
    pub fn holds_scheduled_scaling(&self) -> bool {
        self.hold_scheduled_scaling.unwrap_or(true)
    }
}

/// A loaded, validated environment.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub file: EnvironmentFile,
    /// The release's images (`[[images]]`, or the one `[image]`), the first first.
    #[serde(skip)]
    pub images: Vec<ImageEntry>,
    /// Which target this is, for an environment of several (`[[targets]]`); the environment
    /// itself is its first target.
    #[serde(skip)]
    pub target: Option<TargetInfo>,
    /// Every target, in wave order (empty without `[[targets]]`).
    #[serde(skip)]
    pub targets: Vec<Environment>,
}

impl Environment {
    /// Pre-release words this environment accepts.
    pub fn prerelease_words(&self) -> Vec<String> {
        match (&self.file.release.kind, &self.file.release.prerelease_words) {
            (MatchKind::Prerelease, Some(w)) => w.clone(),
            (MatchKind::Prerelease, None) => DEFAULT_PRERELEASE_WORDS
                .iter()
                .map(|w| w.to_string())
                .collect(),
            (MatchKind::Final, _) => Vec::new(),
        }
    }

    /// How long the smoke checks may take after a rollout (they run side by side: the
    /// longest `deadline_seconds`), kept free before the run deadline.
    pub fn smoke_reserve(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.file
                .smoke
                .iter()
                .map(|c| c.deadline_seconds)
                .max()
                .unwrap_or(0),
        )
    }

    /// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]`
    pub fn registry_host(&self) -> String {
        let suffix = if self.file.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!(
            "{}.dkr.ecr.{}.{suffix}",
            self.file.account_id, self.file.region
        )
    }

    pub fn session_name(&self) -> String {
        self.file
            .role
            .session_name
            .clone()
            .unwrap_or_else(|| format!("ferry-{}", self.name))
    }

    fn matches(&self, tag: &ReleaseTag) -> bool {
        match (&tag.channel, self.file.release.kind) {
            (Channel::Final, MatchKind::Final) => true,
            (Channel::Prerelease { word, .. }, MatchKind::Prerelease) => {
                self.prerelease_words().contains(word)
            }
            _ => false,
        }
    }
}

/// All environments of a directory.
#[derive(Debug, Clone)]
pub struct Environments {
    pub dir: PathBuf,
    pub envs: BTreeMap<String, Environment>,
}

impl Environments {
    /// Reads and validates every `*.toml` in `dir`; all problems of all files are reported at once.
    pub fn load(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Failure::invalid(format!("cannot read the environments directory {}: {e}", dir.display()))
                .hint("create it with one <name>.toml per environment (see README, \"Configuration\"), or pass --environments DIR")
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Failure::invalid(format!(
                "no environment files (*.toml) in {}",
                dir.display()
            ))
            .hint("add e.g. staging.toml and production.toml (see README, \"Configuration\")")
            .into());
        }
        let mut envs = BTreeMap::new();
        let mut problems = Vec::new();
        for path in paths {
            match load_file(&path) {
                Ok(env) => {
                    envs.insert(env.name.clone(), env);
                }
                Err(p) => problems.extend(p),
            }
        }
        let loaded = Environments {
            dir: dir.to_path_buf(),
            envs,
        };
        if problems.is_empty() {
            problems.extend(loaded.cross_check());
        }
        if !problems.is_empty() {
            let mut msg = format!(
                "{} problem(s) in environment configuration:",
                problems.len()
            );
            for p in &problems {
                msg.push_str("\n  - ");
                msg.push_str(p);
            }
            return Err(Failure::invalid(msg)
                .hint("fix the fields named above; README \"Configuration\" lists every field")
                .into());
        }
        Ok(loaded)
    }

    /// Checks that need more than one file.
    fn cross_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut finals = Vec::new();
        let mut words: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for env in self.envs.values() {
            match env.file.release.kind {
                MatchKind::Final => finals.push(env.name.as_str()),
                MatchKind::Prerelease => {
                    for w in env.prerelease_words() {
                        words.entry(w).or_default().push(&env.name);
                    }
                }
            }
            if let Some(p) = &env.file.promote {
                match self.envs.get(&p.from) {
                    None => problems.push(format!(
                        "{}: field `promote.from`: no environment named {:?} in {} (known: {})",
                        env.path.display(),
                        p.from,
                        self.dir.display(),
                        self.names().join(", ")
                    )),
                    Some(src) if src.name == env.name => problems.push(format!(
                        "{}: field `promote.from`: an environment cannot promote from itself",
                        env.path.display()
                    )),
                    Some(src) if src.file.release.kind != MatchKind::Prerelease => problems.push(format!(
                        "{}: field `promote.from`: {:?} is not a pre-release environment; promote from the environment that deploys vX.Y.Z-rc.N",
                        env.path.display(),
                        p.from
                    )),
                    Some(src) => problems.extend(images::check_promotion(env, src)),
                }
            }
        }
        if finals.len() > 1 {
            problems.push(format!(
                "environments {} all have `release.match = \"final\"`; a tag must select exactly one environment",
                finals.join(", ")
            ));
        }
        for (w, names) in words {
            if names.len() > 1 {
                problems.push(format!(
                    "environments {} all accept pre-release word {w:?}; a tag must select exactly one environment",
                    names.join(", ")
                ));
            }
        }
        problems
    }

    pub fn names(&self) -> Vec<String> {
        self.envs.keys().cloned().collect()
    }

    /// The environment `env` promotes from, when it promotes (checked to exist on load).
    pub fn source_of(&self, env: &Environment) -> Option<&Environment> {
        env.file
            .promote
            .as_ref()
            .and_then(|p| self.envs.get(&p.from))
    }

    pub fn get(&self, name: &str) -> Result<&Environment> {
        self.envs.get(name).ok_or_else(|| {
            Failure::invalid(format!(
                "no environment named {name:?} in {} (known: {})",
                self.dir.display(),
                self.names().join(", ")
            ))
            .into()
        })
    }

    /// Every pre-release word some environment accepts (what the tag parser allows).
    pub fn prerelease_words(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .envs
            .values()
            .flat_map(Environment::prerelease_words)
            .collect();
        w.sort();
        w.dedup();
        if w.is_empty() {
            w = DEFAULT_PRERELEASE_WORDS
                .iter()
                .map(|w| w.to_string())
                .collect();
        }
        // "rc" first: it is the form shown in messages.
        w.sort_by_key(|x| x != "rc");
        w
    }

    /// The one environment a tag deploys to.
    pub fn select(&self, tag: &ReleaseTag) -> Result<&Environment> {
        let matching: Vec<&Environment> = self.envs.values().filter(|e| e.matches(tag)).collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => {
                let want = if tag.is_prerelease() {
                    "prerelease"
                } else {
                    "final"
                };
                Err(Failure::invalid(format!(
                    "no environment in {} deploys tag {} (a {want} release)",
                    self.dir.display(),
                    tag.tag
                ))
                .hint(format!(
                    "set `[release] match = \"{want}\"` in the environment that should receive it"
                ))
                .into())
            }
            many => Err(Failure::invalid(format!(
                "tag {} matches several environments: {}",
                tag.tag,
                many.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into()),
        }
    }
}

/// Parses and validates one file; returns every problem found in it.
fn load_file(path: &Path) -> std::result::Result<Environment, Vec<String>> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(vec![format!(
            "{}: {size} bytes; an environment file is at most {MAX_FILE_BYTES} bytes",
            path.display()
        )]);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let mut file: EnvironmentFile = toml::from_str(&text).map_err(|e| {
        // toml's message already names the key and shows the line.
        vec![format!(
            "{}: {}",
            path.display(),
            e.to_string().trim_end().replace('\n', "\n      ")
        )]
    })?;
    let mut problems = Vec::new();
    // A field whose `${VAR}` could not be expanded is reported once, for that reason: the
    // field checks below would only add "not a URL" about the unexpanded text.
    let mut unexpanded = Vec::new();
    expand_smoke(&mut file.smoke, "smoke", &mut unexpanded);
    for (i, t) in file.targets.iter_mut().enumerate() {
        if let Some(smoke) = t.smoke.as_mut() {
            expand_smoke(smoke, &format!("targets[{i}].smoke"), &mut unexpanded);
        }
    }
    records::expand(&mut file.records, &mut unexpanded);
    let fields: Vec<String> = unexpanded
        .iter()
        .map(|(f, _)| format!("field `{f}`:"))
        .collect();
    problems.extend(
        unexpanded
            .into_iter()
            .map(|(f, e)| format!("field `{f}`: {e}")),
    );
    let mut env = Environment {
        name,
        path: path.to_path_buf(),
        images: images::of(&file),
        file,
        target: None,
        targets: Vec::new(),
    };
    let own = validate(&env);
    let (targets, target_problems) = targets::derive(&env, &own);
    problems.extend(
        own.into_iter()
            .chain(target_problems)
            .filter(|p| !fields.iter().any(|f| p.contains(f.as_str()))),
    );
    // The environment is its first target: code that knows nothing of targets (a promotion's
    // source, `status`, `iam-policy`) sees a real account and region.
    if let Some(first) = targets.first() {
        env.file.account_id.clone_from(&first.file.account_id);
        env.file.region.clone_from(&first.file.region);
        env.file.role = first.file.role.clone();
        env.file.services.clone_from(&first.file.services);
        env.file.smoke.clone_from(&first.file.smoke);
        env.target.clone_from(&first.target);
        env.targets = targets;
    }
    if problems.is_empty() {
        Ok(env)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect())
    }
}

/// The largest environment file ferry reads.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Loads the environments and says which file to fix; used by every subcommand.
pub fn load(dir: &Path) -> Result<Environments> {
    Environments::load(dir).with_context(|| format!("loading environments from {}", dir.display()))
}

#[cfg(test)]
mod tests;
