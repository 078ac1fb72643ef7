//! Several targets of one environment: production in `us-east-1` and `eu-west-1`, perhaps in
//! separate accounts, deployed in ordered waves (`deploy.waves`), so that a bad release stops
//! after the first region.
//!
//! Each `[[targets]]` entry is an account, a region, a role, services and smoke checks; what
//! a target does not say it takes from the top of the file. At load each target becomes an
//! [`Environment`] of its own (same name, its own account and region), so that everything
//! below `run` (plan, records, claims, promotion, rollouts) works on one target as it works on
//! an environment of one; the environment itself takes its first target's values.

use serde::{Deserialize, Serialize};

use super::{Environment, RoleConfig, ServiceConfig, SmokeCheck};

/// One `[[targets]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// How waves, output and records name it, e.g. `us-east-1` or `eu`.
    pub name: String,
    /// AWS region.
    pub region: String,
    /// The 12-digit account; default: the environment's `account_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The role ferry assumes there; default: the environment's `[role]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleConfig>,
    /// Its services; default: the environment's `[[services]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceConfig>>,
    /// Its smoke checks; default: the environment's `[[smoke]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Vec<SmokeCheck>>,
    /// Its repositories, when they are named differently there: the same image names as the
    /// environment's `[[images]]`; default: the environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<super::ImageEntry>>,
}

/// What a release does to earlier waves when a later one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Roll back the failing wave and every wave before it: the release is all or nothing.
    #[default]
    RollbackAll,
    /// Roll back the failing wave only; earlier waves keep the new release.
    KeepEarlier,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::RollbackAll => "rollback-all",
            OnFailure::KeepEarlier => "keep-earlier",
        }
    }
}

/// Which target of its environment an [`Environment`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetInfo {
    /// Its `[[targets]]` name.
    pub name: String,
    /// Its wave (0 first).
    pub wave: usize,
}

impl Environment {
    /// `production` or, for a target of several, `production/eu-west-1`.
    pub fn display_name(&self) -> String {
        match &self.target {
            Some(t) => format!("{}/{}", self.name, t.name),
            None => self.name.clone(),
        }
    }

    /// Its targets, or the environment itself when it has none (one role, one account and
    /// region each: what `iam-policy` and `validate` go through).
    pub fn parts(&self) -> Vec<&Environment> {
        if self.targets.is_empty() {
            vec![self]
        } else {
            self.targets.iter().collect()
        }
    }

    /// Whether the environment deploys to several targets in waves.
    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The waves, each its targets (an environment without `[[targets]]` is one wave of one).
    pub fn waves(&self) -> Vec<Vec<&Environment>> {
        if self.targets.is_empty() {
            return vec![vec![self]];
        }
        let n = self
            .targets
            .iter()
            .map(|t| wave_of(t) + 1)
            .max()
            .unwrap_or(0);
        (0..n)
            .map(|w| self.targets.iter().filter(|t| wave_of(t) == w).collect())
            .collect()
    }

    /// `deploy.on_failure`.
    pub fn on_failure(&self) -> OnFailure {
        self.file.deploy.on_failure.unwrap_or_default()
    }
}

fn wave_of(env: &Environment) -> usize {
    env.target.as_ref().map_or(0, |t| t.wave)
}

/// The wave of each target (by `deploy.waves`, or each target its own wave in file order),
/// and the problems with `deploy.waves`.
fn waves(env: &Environment) -> (Vec<Option<usize>>, Vec<String>) {
    let f = &env.file;
    let mut p = Vec::new();
    let Some(waves) = &f.deploy.waves else {
        return ((0..f.targets.len()).map(Some).collect(), p);
    };
    let mut of = vec![None; f.targets.len()];
    for (w, names) in waves.iter().enumerate() {
        if names.is_empty() {
            p.push(format!(
                "field `deploy.waves[{w}]`: a wave with no targets; name at least one target, or remove the wave"
            ));
        }
        for n in names {
            match f.targets.iter().position(|t| &t.name == n) {
                None => p.push(format!(
                    "field `deploy.waves[{w}]`: no target named {n:?} (the targets are: {})",
                    f.targets
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(i) if of[i].is_some() => p.push(format!(
                    "field `deploy.waves[{w}]`: target {n:?} is already in an earlier wave; a target deploys once"
                )),
                Some(i) => of[i] = Some(w),
            }
        }
    }
    for (i, t) in f.targets.iter().enumerate() {
        if of[i].is_none() && !waves.is_empty() {
            p.push(format!(
                "field `targets[{i}]`: target {:?} is in no wave of `deploy.waves`; add it to one",
                t.name
            ));
        }
    }
    (of, p)
}

/// Each target as an environment of its own (checked like one, its problems prefixed with
/// the target; those the whole file has, `known`, are not said again), in wave order; and the
/// problems with the targets and waves themselves.
pub(super) fn derive(env: &Environment, known: &[String]) -> (Vec<Environment>, Vec<String>) {
    let f = &env.file;
    let mut p = Vec::new();
    if f.targets.is_empty() {
        if f.deploy.waves.is_some() {
            p.push(
                "field `deploy.waves`: only for an environment with [[targets]]; remove it".into(),
            );
        }
        if f.deploy.on_failure.is_some() {
            p.push("field `deploy.on_failure`: only for an environment with [[targets]] in waves; remove it".into());
        }
        return (Vec::new(), p);
    }
    let (wave, wp) = waves(env);
    p.extend(wp);
    let mut out = Vec::new();
    for (i, t) in f.targets.iter().enumerate() {
        let ok_name = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_name {
            p.push(format!(
                "field `targets[{i}].name`: {:?} must be 1-64 letters, digits, - and _ (e.g. \"eu-west-1\")",
                t.name
            ));
        }
        if f.targets[..i].iter().any(|o| o.name == t.name) {
            p.push(format!(
                "field `targets[{i}].name`: target {:?} is listed twice",
                t.name
            ));
        }
        let account = t.account_id.clone().unwrap_or_else(|| f.account_id.clone());
        if f.targets[..i].iter().any(|o| {
            o.region == t.region
                && o.account_id.clone().unwrap_or_else(|| f.account_id.clone()) == account
        }) {
            p.push(format!(
                "field `targets[{i}]`: another target is already account {account} in {}; each target is its own account or region (its records live in its own registry)",
                t.region
            ));
        }
        let mut file = f.clone();
        file.targets = Vec::new();
        file.account_id = account;
        file.region = t.region.clone();
        if let Some(r) = &t.role {
            file.role = r.clone();
        }
        if let Some(s) = &t.services {
            file.services = s.clone();
        }
        if let Some(s) = &t.smoke {
            file.smoke = s.clone();
        }
        if let Some(images) = &t.images {
            let mut mine: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
            let mut theirs = env.image_names();
            mine.sort_unstable();
            theirs.sort_unstable();
            if mine != theirs {
                p.push(format!(
                    "field `targets[{i}].images`: names {}, but a release is the images {}; a target names the same images (only their repositories differ)",
                    mine.join(", "),
                    theirs.join(", ")
                ));
            }
            file.images = images.clone();
            file.image = None;
        }
        let derived = Environment {
            name: env.name.clone(),
            path: env.path.clone(),
            images: super::images::of(&file),
            file,
            target: Some(TargetInfo {
                name: t.name.clone(),
                wave: wave[i].unwrap_or(usize::MAX),
            }),
            targets: Vec::new(),
        };
        for problem in super::validate(&derived) {
            if known.contains(&problem) {
                continue;
            }
            let problem = problem
                .replace("field `services", &format!("field `targets[{i}].services"))
                .replace("field `smoke", &format!("field `targets[{i}].smoke"))
                .replace("field `role", &format!("field `targets[{i}].role"))
                .replace("field `region", &format!("field `targets[{i}].region"))
                .replace("field `images", &format!("field `targets[{i}].images"))
                .replace(
                    "field `account_id",
                    &format!("field `targets[{i}].account_id"),
                );
            p.push(format!("target {:?}: {problem}", t.name));
        }
        out.push(derived);
    }
    out.sort_by_key(wave_of);
    (out, p)
}

#[cfg(test)]
mod tests {
    use super::super::Environments;
    use super::OnFailure;

    const HEAD: &str = r#"
account_id = "222222222222"
region = "us-east-1"
[role]
arn = "arn:aws:iam::222222222222:role/ferry-deploy"
[release]
match = "prerelease"
[image]
repository = "shop/web"
[[services]]
cluster = "shop"
service = "web"
container = "web"
"#;

    fn load(body: &str) -> Result<Environments, String> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("production.toml"), format!("{HEAD}{body}")).unwrap();
        Environments::load(d.path()).map_err(|e| format!("{e:#}"))
    }

    const TWO: &str = r#"
[[targets]]
name = "use1"
region = "us-east-1"
[[targets]]
name = "euw1"
region = "eu-west-1"
account_id = "333333333333"
role = { arn = "arn:aws:iam::333333333333:role/ferry-deploy" }
"#;

    #[test]
    fn targets_inherit_what_they_do_not_say_and_deploy_in_waves() {
        let envs = load(&format!(
            "[deploy]\nwaves = [[\"euw1\"], [\"use1\"]]\non_failure = \"keep-earlier\"\n{TWO}"
        ))
        .unwrap();
        let env = envs.get("production").unwrap();
        assert!(env.has_targets());
        assert_eq!(env.on_failure(), OnFailure::KeepEarlier);
        let waves: Vec<Vec<String>> = env
            .waves()
            .iter()
            .map(|w| w.iter().map(|t| t.display_name()).collect())
            .collect();
        assert_eq!(waves, [["production/euw1"], ["production/use1"]]);
        // The environment is its first target (of the first wave).
        assert_eq!(env.file.region, "eu-west-1");
        assert_eq!(env.file.account_id, "333333333333");
        let use1 = &env.waves()[1][0].file;
        assert_eq!(
            (use1.account_id.as_str(), use1.region.as_str()),
            ("222222222222", "us-east-1")
        );
        assert_eq!(use1.services[0].service, "web", "inherited");
        // Without deploy.waves: one target per wave, in file order, rollback-all.
        let envs = load(TWO).unwrap();
        let env = envs.get("production").unwrap();
        assert_eq!(env.waves().len(), 2);
        assert_eq!(env.waves()[0][0].display_name(), "production/use1");
        assert_eq!(env.on_failure(), OnFailure::RollbackAll);
    }

    #[test]
    fn mistakes_name_the_target_and_the_fix() {
        // (name, body, what the error must say)
        let cases = [
            (
                "a wave with no targets",
                format!("[deploy]\nwaves = [[\"use1\"], [], [\"euw1\"]]\n{TWO}"),
                "field `deploy.waves[1]`: a wave with no targets",
            ),
            (
                "a wave naming an unknown target",
                format!("[deploy]\nwaves = [[\"use1\", \"apse2\"], [\"euw1\"]]\n{TWO}"),
                "field `deploy.waves[0]`: no target named \"apse2\" (the targets are: use1, euw1)",
            ),
            (
                "a target in no wave",
                format!("[deploy]\nwaves = [[\"use1\"]]\n{TWO}"),
                "field `targets[1]`: target \"euw1\" is in no wave",
            ),
            (
                "a target in two waves",
                format!("[deploy]\nwaves = [[\"use1\"], [\"use1\", \"euw1\"]]\n{TWO}"),
                "target \"use1\" is already in an earlier wave",
            ),
            (
                "a target whose role is in another account",
                "[[targets]]\nname = \"euw1\"\nregion = \"eu-west-1\"\naccount_id = \"333333333333\"\n".to_string(),
                "target \"euw1\": field `targets[0].role.arn`: the role is in account 222222222222 but `account_id` is 333333333333",
            ),
            (
                "two targets in one account and region",
                "[[targets]]\nname = \"a\"\nregion = \"eu-west-1\"\n[[targets]]\nname = \"b\"\nregion = \"eu-west-1\"\n".to_string(),
                "field `targets[1]`: another target is already account 222222222222 in eu-west-1",
            ),
            (
                "a bad region",
                "[[targets]]\nname = \"x\"\nregion = \"mars-1\"\n".to_string(),
                "target \"x\": field `targets[0].region`: \"mars-1\" is not an AWS region name",
            ),
            (
                "a target naming other images",
                "[[targets]]\nname = \"x\"\nregion = \"eu-west-1\"\n[[targets.images]]\nname = \"api\"\nrepository = \"eu/api\"\n".to_string(),
                "field `targets[0].images`: names api, but a release is the images web",
            ),
            (
                "waves without targets",
                "[deploy]\nwaves = [[\"a\"]]\n".to_string(),
                "field `deploy.waves`: only for an environment with [[targets]]",
            ),
        ];
        for (name, body, want) in cases {
            let err = load(&body).expect_err(name);
            assert!(err.contains("production.toml"), "{name}: {err}");
            assert!(err.contains(want), "{name}: {err}");
        }
    }
}
