//! Environment files: `environments/<name>.toml`, one per environment.
//!
//! Parsed with serde (`deny_unknown_fields`, so a typo is an error, not a silently ignored
//! key), then validated field by field and across files. Every error names the file and the
//! field and says how to fix it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::tag::{Channel, ReleaseTag, DEFAULT_PRERELEASE_WORDS};

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
    /// The ECR repository holding this environment's images.
    pub image: ImageConfig,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub cluster: String,
    pub service: String,
    /// The container in the task definition whose image ferry replaces.
    pub container: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    /// Shown in output; defaults to the URL.
    pub name: Option<String>,
    pub url: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Dotted path of a JSON field that must equal the release version (e.g. `version` or
    /// `build.version`), so an old task still answering does not pass.
    pub version_field: Option<String>,
    /// Keep retrying until this many seconds after the rollout ended.
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub follow_redirects: bool,
}

fn default_status() -> u16 {
    200
}
fn default_deadline() -> u64 {
    120
}
fn default_timeout() -> u64 {
    5
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Overrides the rollout timeout ferry derives from the service.
    pub rollout_timeout_seconds: Option<u64>,
}

/// A loaded, validated environment.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub file: EnvironmentFile,
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
                write!(msg, "\n  - {p}").unwrap();
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
                    Some(_) => {}
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let file: EnvironmentFile = toml::from_str(&text).map_err(|e| {
        // toml's message already names the key and shows the line.
        vec![format!(
            "{}: {}",
            path.display(),
            e.to_string().trim_end().replace('\n', "\n      ")
        )]
    })?;
    let env = Environment {
        name,
        path: path.to_path_buf(),
        file,
    };
    let problems = validate(&env);
    if problems.is_empty() {
        Ok(env)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect())
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Field-level checks of one file. Each entry reads "field `x`: what is wrong; how to fix".
pub fn validate(env: &Environment) -> Vec<String> {
    let f = &env.file;
    let mut p = Vec::new();
    if env.name.is_empty() || !env.name.bytes().all(is_name_char) {
        p.push(format!(
            "file name {:?}: environment names use lowercase letters, digits, - and _ (rename the file)",
            env.name
        ));
    }
    if !is_account_id(&f.account_id) {
        p.push(format!("field `account_id`: {:?} is not a 12-digit AWS account id (quote it: \"123456789012\")", f.account_id));
    }
    if !is_region(&f.region) {
        p.push(format!(
            "field `region`: {:?} is not an AWS region name like \"eu-west-1\"",
            f.region
        ));
    }
    match parse_role_arn(&f.role.arn) {
        None => p.push(format!(
            "field `role.arn`: {:?} is not an IAM role ARN; write arn:aws:iam::{}:role/NAME",
            f.role.arn, f.account_id
        )),
        Some(acct) if acct != f.account_id && is_account_id(&f.account_id) => p.push(format!(
            "field `role.arn`: the role is in account {acct} but `account_id` is {}; ferry deploys with the environment's own role",
            f.account_id
        )),
        Some(_) => {}
    }
    if let Some(x) = &f.role.external_id {
        let ok = (2..=1224).contains(&x.len())
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
        if !ok {
            p.push("field `role.external_id`: must be 2-1224 characters of letters, digits and +=,.@:/-_".into());
        }
    }
    if let Some(d) = f.role.session_duration_seconds {
        if !(900..=43200).contains(&d) {
            p.push(format!("field `role.session_duration_seconds`: {d} is outside 900..=43200 (15 min to 12 h)"));
        }
    }
    if let Some(s) = &f.role.session_name {
        let ok = (2..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
        if !ok {
            p.push(format!("field `role.session_name`: {s:?} must be 2-64 characters of letters, digits and +=,.@-_"));
        }
    }
    match (f.release.kind, &f.release.prerelease_words) {
        (MatchKind::Final, Some(_)) => p.push(
            "field `release.prerelease_words`: only for `match = \"prerelease\"`; remove it".into(),
        ),
        (MatchKind::Prerelease, Some(words)) => {
            if words.is_empty() {
                p.push("field `release.prerelease_words`: empty; remove it to accept the default [\"rc\"]".into());
            }
            for w in words {
                if w.is_empty() || !w.bytes().all(|b| b.is_ascii_lowercase()) {
                    p.push(format!("field `release.prerelease_words`: {w:?} must be a lowercase word (a-z), e.g. \"rc\""));
                }
            }
        }
        _ => {}
    }
    match (f.release.kind, &f.promote) {
        (MatchKind::Final, None) => p.push(
            "field `promote.from`: missing; a final-release environment never rebuilds, it promotes the digest verified in the pre-release environment — add [promote] from = \"staging\"".into(),
        ),
        (MatchKind::Prerelease, Some(_)) => {
            p.push("field `promote`: only final-release environments promote; remove [promote]".into())
        }
        _ => {}
    }
    if !is_repository_name(&f.image.repository) {
        p.push(format!(
            "field `image.repository`: {:?} is not an ECR repository name (lowercase, digits, . _ - and /, e.g. \"shop/api\")",
            f.image.repository
        ));
    }
    if f.services.is_empty() {
        p.push("field `services`: no services; add at least one [[services]] with cluster, service and container".into());
    }
    for (i, s) in f.services.iter().enumerate() {
        for (field, v) in [
            ("cluster", &s.cluster),
            ("service", &s.service),
            ("container", &s.container),
        ] {
            if v.trim().is_empty() || v.len() > 255 {
                p.push(format!(
                    "field `services[{i}].{field}`: must be a non-empty name"
                ));
            }
        }
        if f.services[..i]
            .iter()
            .any(|o| o.cluster == s.cluster && o.service == s.service)
        {
            p.push(format!(
                "field `services[{i}]`: service {}/{} is listed twice",
                s.cluster, s.service
            ));
        }
    }
    for (i, c) in f.smoke.iter().enumerate() {
        match url::Url::parse(&c.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => p.push(format!(
                "field `smoke[{i}].url`: scheme {:?} is not http or https",
                u.scheme()
            )),
            Err(e) => p.push(format!(
                "field `smoke[{i}].url`: {:?} is not a URL: {e}",
                c.url
            )),
        }
        if !(100..=599).contains(&c.expect_status) {
            p.push(format!(
                "field `smoke[{i}].expect_status`: {} is not an HTTP status",
                c.expect_status
            ));
        }
        if c.timeout_seconds == 0 {
            p.push(format!(
                "field `smoke[{i}].timeout_seconds`: must be at least 1"
            ));
        }
        if c.deadline_seconds < c.timeout_seconds {
            p.push(format!(
                "field `smoke[{i}].deadline_seconds`: {} is shorter than timeout_seconds ({})",
                c.deadline_seconds, c.timeout_seconds
            ));
        }
        if let Some(v) = &c.version_field {
            if v.is_empty() || v.split('.').any(str::is_empty) {
                p.push(format!("field `smoke[{i}].version_field`: {v:?} must be a dotted path like \"version\" or \"build.version\""));
            }
        }
    }
    if f.deploy.rollout_timeout_seconds == Some(0) {
        p.push("field `deploy.rollout_timeout_seconds`: must be at least 1 (or remove it to derive it from the service)".into());
    }
    p
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The account id of an IAM role ARN, if `arn` is one.
pub fn parse_role_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    // Exactly the partitions ECR and ECS run in: `arn:aws-evil:` is not AWS.
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    (is_account_id(account) && !name.is_empty() && !name.ends_with('/')).then_some(account)
}

/// ECR repository names: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2-256.
pub fn is_repository_name(s: &str) -> bool {
    (2..=256).contains(&s.len())
        && s.split('/').all(|comp| {
            !comp.is_empty()
                && comp.split(['.', '_', '-']).all(|w| {
                    !w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        })
}

/// Loads the environments and says which file to fix; used by every subcommand.
pub fn load(dir: &Path) -> Result<Environments> {
    Environments::load(dir).with_context(|| format!("loading environments from {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGING: &str = r#"
account_id = "111111111111"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::111111111111:role/ferry-deploy"
[release]
match = "prerelease"
[image]
repository = "shop/api"
[[services]]
cluster = "shop"
service = "api"
container = "api"
[[smoke]]
url = "https://staging.example.com/healthz"
version_field = "version"
"#;

    const PRODUCTION: &str = r#"
account_id = "222222222222"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::222222222222:role/ferry-deploy"
external_id = "shop-prod"
[release]
match = "final"
[promote]
from = "staging"
[image]
repository = "shop/api"
[[services]]
cluster = "shop"
service = "api"
container = "api"
[[services]]
cluster = "shop"
service = "worker"
container = "worker"
"#;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    fn load_err(files: &[(&str, &str)]) -> String {
        let d = dir_with(files);
        let e = Environments::load(d.path()).unwrap_err();
        let f = crate::error::classify(&e).expect("config errors are classified");
        assert_eq!(f.kind, crate::error::FailureKind::Invalid);
        format!("{e:#}")
    }

    #[test]
    fn loads_and_selects() {
        let d = dir_with(&[("staging.toml", STAGING), ("production.toml", PRODUCTION)]);
        let envs = Environments::load(d.path()).unwrap();
        let words = envs.prerelease_words();
        let rc = crate::tag::parse("v1.0.0-rc.1", &words).unwrap();
        let fin = crate::tag::parse("v1.0.0", &words).unwrap();
        assert_eq!(envs.select(&rc).unwrap().name, "staging");
        let prod = envs.select(&fin).unwrap();
        assert_eq!(prod.name, "production");
        assert_eq!(prod.file.services.len(), 2);
        assert_eq!(
            prod.registry_host(),
            "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
        );
        let staging = envs.get("staging").unwrap();
        assert_eq!(staging.file.smoke[0].expect_status, 200);
        assert_eq!(staging.file.smoke[0].deadline_seconds, 120);
        assert_eq!(staging.session_name(), "ferry-staging");
    }

    /// (name, replace this, with this, expected message fragment)
    const BROKEN: &[(&str, &str, &str, &str)] = &[
        (
            "typo field",
            "account_id =",
            "acount_id =",
            "unknown field `acount_id`",
        ),
        (
            "short account",
            "\"111111111111\"\nregion",
            "\"11111\"\nregion",
            "field `account_id`",
        ),
        ("bad region", "eu-west-1", "europe", "field `region`"),
        (
            "role other account",
            "arn:aws:iam::111111111111:role",
            "arn:aws:iam::999999999999:role",
            "role is in account 999999999999",
        ),
        (
            "not a role",
            "arn:aws:iam::111111111111:role/ferry-deploy",
            "ferry-deploy",
            "not an IAM role ARN",
        ),
        (
            "bad match",
            "match = \"prerelease\"",
            "match = \"staging\"",
            "unknown variant `staging`",
        ),
        (
            "bad repo",
            "shop/api",
            "Shop/API",
            "field `image.repository`",
        ),
        (
            "bad word",
            "match = \"prerelease\"",
            "match = \"prerelease\"\nprerelease_words = [\"RC\"]",
            "prerelease_words",
        ),
        (
            "bad smoke url",
            "https://staging.example.com/healthz",
            "ftp://x",
            "field `smoke[0].url`",
        ),
        (
            "promote on staging",
            "[image]",
            "[promote]\nfrom = \"production\"\n[image]",
            "only final-release environments promote",
        ),
        (
            "short duration",
            "role/ferry-deploy\"",
            "role/ferry-deploy\"\nsession_duration_seconds = 60",
            "session_duration_seconds",
        ),
        (
            "no services",
            "[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n",
            "",
            "field `services`",
        ),
        (
            "wrong type",
            "\"111111111111\"\nregion",
            "111111111111\nregion",
            "account_id",
        ),
    ];

    #[test]
    fn broken_files_name_file_and_field() {
        for (name, from, to, want) in BROKEN {
            assert!(STAGING.contains(from), "{name}: fixture lacks {from:?}");
            let broken = STAGING.replacen(from, to, 1);
            let msg = load_err(&[("staging.toml", &broken), ("production.toml", PRODUCTION)]);
            assert!(msg.contains(want), "{name}: {msg}");
            assert!(msg.contains("staging.toml"), "{name}: no file in {msg}");
        }
    }

    #[test]
    fn cross_file_problems() {
        let msg = load_err(&[
            ("staging.toml", STAGING),
            (
                "production.toml",
                &PRODUCTION.replace("from = \"staging\"", "from = \"stage\""),
            ),
        ]);
        assert!(msg.contains("no environment named \"stage\""), "{msg}");
        let msg = load_err(&[
            ("staging.toml", STAGING),
            ("qa.toml", STAGING),
            ("production.toml", PRODUCTION),
        ]);
        assert!(msg.contains("all accept pre-release word \"rc\""), "{msg}");
        let msg = load_err(&[
            ("staging.toml", STAGING),
            (
                "production.toml",
                &PRODUCTION.replace("[promote]\nfrom = \"staging\"\n", ""),
            ),
        ]);
        assert!(msg.contains("promote.from"), "{msg}");
    }

    #[test]
    fn empty_or_missing_dir() {
        let d = tempfile::tempdir().unwrap();
        let e = Environments::load(d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("no environment files"));
        let e = Environments::load(&d.path().join("nope")).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read the environments directory"));
    }

    #[test]
    fn no_matching_environment() {
        let d = dir_with(&[("staging.toml", STAGING)]);
        let envs = Environments::load(d.path()).unwrap();
        let fin = crate::tag::parse("v1.0.0", &envs.prerelease_words()).unwrap();
        let e = envs.select(&fin).unwrap_err();
        assert!(format!("{e:#}").contains("no environment"));
    }

    #[test]
    fn name_checks() {
        assert!(is_repository_name("shop/api"));
        assert!(is_repository_name("a.b_c-d/e2"));
        assert!(!is_repository_name("shop//api"));
        assert!(!is_repository_name("shop/api-"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("us-east"));
        assert_eq!(
            parse_role_arn("arn:aws-cn:iam::123456789012:role/a/b"),
            Some("123456789012")
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/a"), None);
        assert_eq!(
            parse_role_arn("arn:aws-us-gov:iam::123456789012:role/a"),
            Some("123456789012")
        );
        for bad in [
            "arn:aws-evil:iam::123456789012:role/a",
            "arn:awsx:iam::123456789012:role/a",
            "arn:AWS:iam::123456789012:role/a",
            "arn::iam::123456789012:role/a",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }
}
