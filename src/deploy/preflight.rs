//! The preflight: the settings a safe rolling deploy needs, checked on each live service
//! before ferry touches it. The list is the one the hand-written pipelines' articles give
//! (circuit breaker with rollback, a health-check grace period long enough to start behind a
//! load balancer, minimum/maximum percent that let ECS make progress) and what ferry relies on
//! (release tags that cannot move, logs to explain a failure).
//!
//! [`check`] is a pure function over [`Facts`] (read from `DescribeServices`,
//! `DescribeTaskDefinition` and `DescribeRepositories`), table-tested. A finding is a warning,
//! except where a deploy cannot succeed at all: then `deploy` refuses before anything changes.
//! `ferry validate --online` and `ferry plan` show every finding.

use aws_sdk_ecs::types::{DeploymentControllerType, Service, TaskDefinition};
use serde::Serialize;

use crate::config::{Environment, MatchKind, ServiceConfig};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The deploy can still succeed; the setting makes a failure likelier or harder to see.
    Warning,
    /// The deploy cannot succeed: `deploy` refuses before changing anything.
    Error,
}

/// One setting of one service that the checklist flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// The setting, as the ECS API names it (`deploymentConfiguration.maximumPercent`).
    pub setting: String,
    /// What is wrong, with the values seen.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// What the checklist reads of one service, its deployed container and its repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The deployment controller is CodeDeploy (blue/green: its own rollback).
    pub code_deploy: bool,
    /// An ECS-native strategy other than rolling (`BLUE_GREEN`, `LINEAR`, `CANARY`).
    pub native_strategy: bool,
    /// `deploymentCircuitBreaker.enable`.
    pub breaker: bool,
    /// `deploymentCircuitBreaker.rollback`.
    pub breaker_rollback: bool,
    /// `alarms.enable` with `alarms.rollback` and at least one alarm.
    pub alarms_rollback: bool,
    /// `minimumHealthyPercent` (ECS's default 100 when unset).
    pub min_healthy_percent: i32,
    /// `maximumPercent` (ECS's default 200 when unset).
    pub max_percent: i32,
    /// `desiredCount`.
    pub desired: i32,
    /// The service is behind a load balancer.
    pub load_balanced: bool,
    /// `healthCheckGracePeriodSeconds`, when set.
    pub grace_seconds: Option<i32>,
    /// The deployed container's health check `startPeriod`, when it has one.
    pub start_period_seconds: Option<i32>,
    /// The deployed container's image.
    pub image: Option<String>,
    /// The deployed container sends its logs somewhere (`logConfiguration`).
    pub logs: bool,
    /// The environment's repository's tag mutability, when it could be read.
    pub tag_mutability: Option<Mutability>,
}

/// An environment's repository's tag mutability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mutability {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, …
    pub setting: String,
    /// The wildcard filters of the tags left mutable.
    pub exclusions: Vec<String>,
    /// A final (production) environment: its release tags must not move.
    pub final_env: bool,
}

impl Mutability {
    /// Which of the tags ferry re-writes the repository would refuse to move.
    pub fn frozen(&self) -> Vec<&'static str> {
        let immutable = match self.setting.as_str() {
            "IMMUTABLE" => true,
            "IMMUTABLE_WITH_EXCLUSION" => false,
            _ => return Vec::new(),
        };
        REWRITTEN
            .iter()
            .filter(|(_, example)| {
                immutable || !self.exclusions.iter().any(|f| wildcard(f, example))
            })
            .map(|(name, _)| *name)
            .collect()
    }
}

/// The tags ferry re-writes under the same name, with one example each: the claim (renewed
/// while the run lives) and the referrers fallback index (re-written with each record).
const REWRITTEN: [(&str, &str); 2] = [
    (
        "ferry-claim_*",
        "ferry-claim_staging_v1.0.0_1700000000000_0a1b2c3d",
    ),
    (
        "sha256-*",
        "sha256-4f1c0a6d1e2b4f1c0a6d1e2b4f1c0a6d1e2b4f1c0a6d1e2b4f1c0a6d1e2b4f1c",
    ),
];

/// Whether `text` matches the ECR wildcard `pattern` (`*`: any run of characters).
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut left) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for p in middle {
        match left.find(p) {
            Some(i) => left = &left[i + p.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

impl Facts {
    /// Reads the facts from the live service and its task definition.
    pub fn of(svc: &Service, td: &TaskDefinition, container: &str) -> Facts {
        let dc = svc.deployment_configuration();
        let breaker = dc.and_then(|d| d.deployment_circuit_breaker());
        let alarms = dc.and_then(|d| d.alarms());
        let c = td
            .container_definitions()
            .iter()
            .find(|c| c.name() == Some(container));
        Facts {
            code_deploy: svc
                .deployment_controller()
                .is_some_and(|c| *c.r#type() == DeploymentControllerType::CodeDeploy),
            native_strategy: super::prepare::native_strategy(svc).is_some(),
            breaker: breaker.is_some_and(|b| b.enable()),
            breaker_rollback: breaker.is_some_and(|b| b.rollback()),
            alarms_rollback: alarms
                .is_some_and(|a| a.enable() && a.rollback() && !a.alarm_names().is_empty()),
            min_healthy_percent: dc.and_then(|d| d.minimum_healthy_percent()).unwrap_or(100),
            max_percent: dc.and_then(|d| d.maximum_percent()).unwrap_or(200),
            desired: svc.desired_count(),
            load_balanced: !svc.load_balancers().is_empty(),
            grace_seconds: svc.health_check_grace_period_seconds(),
            start_period_seconds: c
                .and_then(|c| c.health_check())
                .and_then(|h| h.start_period()),
            image: c.and_then(|c| c.image()).map(str::to_string),
            logs: c.is_some_and(|c| c.log_configuration().is_some()),
            tag_mutability: None,
        }
    }
}

/// The tag mutability of the environment's repository (release tags must not move in a
/// final environment; ferry's own claims must be able to), `None` when it cannot be read
/// (said once for a final environment).
pub async fn repository_mutability(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
) -> Option<Mutability> {
    let final_env = env.file.release.kind == MatchKind::Final;
    match crate::aws::ecr::tag_mutability(sdk, env.repository()).await {
        Ok(m) => m.map(|(setting, exclusions)| Mutability {
            setting,
            exclusions,
            final_env,
        }),
        Err(e) => {
            if final_env {
                tracing::warn!("preflight: {e:#}; tag mutability not checked");
            } else {
                tracing::debug!("preflight: {e:#}; tag mutability not checked");
            }
            None
        }
    }
}

/// The checklist for one service as read (`mutability` from [`repository_mutability`]).
pub fn for_service(
    env: &Environment,
    cfg: &ServiceConfig,
    svc: &Service,
    td: &TaskDefinition,
    mutability: Option<&Mutability>,
) -> Vec<Finding> {
    let mut f = Facts::of(svc, td, &cfg.container);
    f.tag_mutability = mutability.cloned();
    check(&f, &format!("{}/{}", env.registry_host(), env.repository()))
}

/// Reads one live service and its task definition, and runs the checklist.
pub async fn live(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    cfg: &ServiceConfig,
    mutability: Option<&Mutability>,
) -> anyhow::Result<Vec<Finding>> {
    let client = crate::aws::sts::ecs_client(sdk);
    let svc = crate::aws::ecs::describe_service(&client, &cfg.cluster, &cfg.service).await?;
    let (td, _) = crate::aws::ecs::describe_task_definition(
        &client,
        svc.task_definition().unwrap_or_default(),
    )
    .await?;
    Ok(for_service(env, cfg, &svc, &td, mutability))
}

/// One line for a finding: `warning deploymentCircuitBreaker: … (fix: …)`.
pub fn line(f: &Finding) -> String {
    let word = match f.severity {
        Severity::Warning => "warning",
        Severity::Error => "error",
    };
    format!("{word} {}: {} (fix: {})", f.setting, f.problem, f.fix)
}

/// Tags ferry moves or rewrites in the environment's repository (claims, and the referrers
/// fallback tag on registries without the referrers API): an immutability rule must exclude them.
pub const MOVING_TAGS: &str = "ferry-claim_*, ferry-unclaim_*, sha256-*";

/// The checklist. `repository` names the environment's repository in messages.
pub fn check(f: &Facts, repository: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, setting: &str, problem: String, fix: String| {
        out.push(Finding {
            severity,
            setting: setting.into(),
            problem,
            fix,
        })
    };
    let rolling = !f.code_deploy && !f.native_strategy;
    if rolling && !(f.breaker && f.breaker_rollback) && !f.alarms_rollback {
        add(
            Severity::Warning,
            "deploymentConfiguration.deploymentCircuitBreaker",
            if f.breaker {
                "the circuit breaker is on without rollback: a failed rollout stops where it is, and ECS does not bring the service back on its own".into()
            } else {
                "the circuit breaker is off and no alarm rolls back: tasks that never start are retried for ever (ferry rolls back at its rollout timeout, ECS does not)".into()
            },
            "aws ecs update-service --deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true}'".into(),
        );
    }
    if rolling && f.desired > 0 {
        // ECS rounds maximumPercent down and minimumHealthyPercent up (UpdateService docs).
        let up = f.desired * f.max_percent / 100 - f.desired;
        let down = f.desired - (f.desired * f.min_healthy_percent + 99) / 100;
        if up <= 0 && down <= 0 {
            add(
                Severity::Error,
                "deploymentConfiguration.minimumHealthyPercent/maximumPercent",
                format!(
                    "minimumHealthyPercent {} and maximumPercent {} with {} desired task(s): ECS can neither start a new task before stopping one nor stop one first, so no rollout can make progress",
                    f.min_healthy_percent, f.max_percent, f.desired
                ),
                "allow at least one task of room: e.g. maximumPercent 200 (start before stopping) or minimumHealthyPercent 50 (stop before starting)".into(),
            );
        }
    }
    if rolling && f.desired == 0 {
        add(
            Severity::Warning,
            "desiredCount",
            "desired count 0: a rollout starts no task, so nothing proves the new release runs (the smoke checks will not find it)".into(),
            "scale the service up before deploying".into(),
        );
    }
    if f.load_balanced {
        match (f.grace_seconds.filter(|g| *g > 0), f.start_period_seconds) {
            (None, _) => add(
                Severity::Warning,
                "healthCheckGracePeriodSeconds",
                "the service is behind a load balancer with no health-check grace period: a task still starting is marked unhealthy and replaced, which can loop for ever".into(),
                "set --health-check-grace-period-seconds to at least the app's start-up time".into(),
            ),
            (Some(g), Some(sp)) if g < sp => add(
                Severity::Warning,
                "healthCheckGracePeriodSeconds",
                format!("the grace period ({g}s) is shorter than the container health check's startPeriod ({sp}s): the load balancer's checks count before the app may be up"),
                format!("set --health-check-grace-period-seconds to at least {sp}"),
            ),
            _ => {}
        }
    }
    if let Some(image) = &f.image {
        if !image.contains("@sha256:") {
            add(
                Severity::Warning,
                "containerDefinitions.image",
                format!(
                    "the deployed image {image} is a tag, which can move under a running service"
                ),
                "nothing to do: ferry pins the new revision to the digest (repo@sha256:…)".into(),
            );
        }
    }
    if f.image.is_some() && !f.logs {
        add(
            Severity::Warning,
            "containerDefinitions.logConfiguration",
            "the deployed container has no log configuration: when a task fails, its output is lost and ferry can only show ECS's stop reason".into(),
            "add a logConfiguration (e.g. awslogs) to the container".into(),
        );
    }
    let frozen = f.tag_mutability.as_ref().map(Mutability::frozen);
    if let Some(frozen) = frozen.filter(|t| !t.is_empty()) {
        add(
            Severity::Error,
            "imageTagMutability",
            format!(
                "{repository} does not let ferry re-write its own tags ({}): its claim could not be renewed while it deploys (a rollout longer than the 90 s lease would lose its guard against overlapping runs), and records could not be indexed",
                frozen.join(", ")
            ),
            format!("set imageTagMutability to IMMUTABLE_WITH_EXCLUSION, excluding {MOVING_TAGS}"),
        );
    }
    if f.tag_mutability
        .as_ref()
        .is_some_and(|m| m.final_env && m.setting == "MUTABLE")
    {
        add(
            Severity::Warning,
            "imageTagMutability",
            format!("{repository} lets tags move: a release tag could be pointed at other bytes after it shipped"),
            format!("set imageTagMutability to IMMUTABLE_WITH_EXCLUSION, excluding the tags ferry moves ({MOVING_TAGS})"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            breaker: true,
            breaker_rollback: true,
            min_healthy_percent: 100,
            max_percent: 200,
            desired: 2,
            load_balanced: true,
            grace_seconds: Some(60),
            start_period_seconds: Some(30),
            image: Some("1.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:aa".into()),
            logs: true,
            tag_mutability: Some(Mutability {
                setting: "IMMUTABLE_WITH_EXCLUSION".into(),
                exclusions: vec!["ferry-*".into(), "sha256-*".into()],
                final_env: true,
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn ecr_wildcards() {
        let cases = [
            ("ferry-claim_*", "ferry-claim_staging_v1_1_00", true),
            ("ferry-*", "ferry-claim_x", true),
            ("*", "sha256-aa", true),
            ("sha256-*", "ferry-claim_x", false),
            ("*claim*", "ferry-claim_x", true),
            ("ferry-claim_", "ferry-claim_x", false),
            ("a*b*c", "abbc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(wildcard(pattern, text), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn each_finding_on_a_service_that_has_it_and_none_on_a_healthy_one() {
        // (name, change to a healthy service, expected (severity, setting) findings)
        type Case = (&'static str, fn(&mut Facts), Vec<(Severity, &'static str)>);
        use Severity::{Error, Warning};
        let cases: Vec<Case> = vec![
            ("healthy", |_| {}, vec![]),
            (
                "breaker off",
                |f| f.breaker = false,
                vec![(Warning, "deploymentConfiguration.deploymentCircuitBreaker")],
            ),
            (
                "breaker without rollback",
                |f| f.breaker_rollback = false,
                vec![(Warning, "deploymentConfiguration.deploymentCircuitBreaker")],
            ),
            (
                "breaker off but alarms roll back",
                |f| {
                    f.breaker = false;
                    f.alarms_rollback = true
                },
                vec![],
            ),
            (
                "breaker off under CodeDeploy",
                |f| {
                    f.breaker = false;
                    f.code_deploy = true
                },
                vec![],
            ),
            (
                "100/100",
                |f| {
                    f.min_healthy_percent = 100;
                    f.max_percent = 100
                },
                vec![(
                    Error,
                    "deploymentConfiguration.minimumHealthyPercent/maximumPercent",
                )],
            ),
            (
                "one task, 100/150 rounds to no room",
                |f| {
                    f.desired = 1;
                    f.max_percent = 150
                },
                vec![(
                    Error,
                    "deploymentConfiguration.minimumHealthyPercent/maximumPercent",
                )],
            ),
            (
                "100/100 but blue/green",
                |f| {
                    f.max_percent = 100;
                    f.native_strategy = true
                },
                vec![],
            ),
            (
                "50/100 stops first",
                |f| {
                    f.min_healthy_percent = 50;
                    f.max_percent = 100
                },
                vec![],
            ),
            (
                "desired 0",
                |f| f.desired = 0,
                vec![(Warning, "desiredCount")],
            ),
            (
                "no grace period",
                |f| f.grace_seconds = None,
                vec![(Warning, "healthCheckGracePeriodSeconds")],
            ),
            (
                "grace 0",
                |f| f.grace_seconds = Some(0),
                vec![(Warning, "healthCheckGracePeriodSeconds")],
            ),
            (
                "grace shorter than start period",
                |f| f.grace_seconds = Some(10),
                vec![(Warning, "healthCheckGracePeriodSeconds")],
            ),
            (
                "no grace, no load balancer",
                |f| {
                    f.grace_seconds = None;
                    f.load_balanced = false
                },
                vec![],
            ),
            (
                "image by tag",
                |f| f.image = Some("1.dkr.ecr.eu-west-1.amazonaws.com/app:v1".into()),
                vec![(Warning, "containerDefinitions.image")],
            ),
            (
                "no logs",
                |f| f.logs = false,
                vec![(Warning, "containerDefinitions.logConfiguration")],
            ),
            (
                "mutable tags",
                |f| f.tag_mutability.as_mut().unwrap().setting = "MUTABLE".into(),
                vec![(Warning, "imageTagMutability")],
            ),
            (
                "mutable tags, not a final environment",
                |f| {
                    let m = f.tag_mutability.as_mut().unwrap();
                    (m.setting, m.final_env) = ("MUTABLE".into(), false);
                },
                vec![],
            ),
            (
                "every tag immutable",
                |f| f.tag_mutability.as_mut().unwrap().setting = "IMMUTABLE".into(),
                vec![(Error, "imageTagMutability")],
            ),
            (
                "the claims not excluded",
                |f| f.tag_mutability.as_mut().unwrap().exclusions = vec!["sha256-*".into()],
                vec![(Error, "imageTagMutability")],
            ),
        ];
        for (name, change, want) in cases {
            let mut f = healthy();
            change(&mut f);
            let got: Vec<(Severity, String)> = check(&f, "1.dkr.ecr.eu-west-1.amazonaws.com/app")
                .into_iter()
                .map(|x| (x.severity, x.setting))
                .collect();
            let want: Vec<(Severity, String)> =
                want.into_iter().map(|(s, n)| (s, n.to_string())).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
