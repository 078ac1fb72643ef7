//! The plan as a person reads it (`ferry plan` and its step summary), with what each
//! service's strategy runs and waits for.

use std::fmt::Write as _;

use super::shorten_digests;
use crate::aws::ecs::short_td;
use crate::aws::sts::AuthMode;
use crate::plan::Plan;

/// The plan as a person reads it.
pub fn plan_text(plan: &Plan) -> String {
    let mut s = String::new();
    let kind = match &plan.channel {
        crate::tag::Channel::Final => "final release".to_string(),
        crate::tag::Channel::Prerelease { word, number } => format!("pre-release {word}.{number}"),
    };
    let _ = writeln!(
        s,
        "Plan for {} ({kind}, version {})",
        plan.tag, plan.version
    );
    let _ = writeln!(
        s,
        "  environment  {} ({})",
        plan.environment, plan.config_file
    );
    if let Some(t) = &plan.deploys_to {
        let _ = writeln!(
            s,
            "  target       {} (wave {}; on failure: {})",
            t.name,
            t.wave,
            t.on_failure.as_str()
        );
    }
    let _ = writeln!(s, "  account      {} in {}", plan.account_id, plan.region);
    let auth = match plan.auth {
        AuthMode::AssumeRole => "assume role",
        AuthMode::GithubOidc => "GitHub OIDC web identity",
    };
    let _ = writeln!(s, "  role         {} ({auth})", plan.role_arn);
    let _ = writeln!(s, "  source       {}", plan.source.display());
    if let Some(d) = &plan.source.digest {
        let _ = writeln!(s, "  digest       {d}");
    }
    // A release of several images: the others, each with its digest and where it goes.
    for img in &plan.also {
        let _ = writeln!(s, "  + image {}  {}", img.name, img.source.display());
        if plan.promote {
            let _ = writeln!(
                s,
                "               promote to {}/{}:{}",
                img.target.registry, img.target.repository, plan.tag
            );
        }
    }
    super::memory::plan_lines(&mut s, plan);
    if plan.promote {
        let _ = writeln!(
            s,
            "  promote to   {}/{}:{}",
            plan.target.registry, plan.target.repository, plan.tag
        );
        match (&plan.target.digest, &plan.source.digest) {
            (Some(t), Some(src)) if t == src => {
                let _ = writeln!(s, "               already there with the same digest");
            }
            (Some(t), _) => {
                let _ = writeln!(
                    s,
                    "               tag exists with digest {t}: deploy would refuse (a released tag never moves)"
                );
            }
            _ => {}
        }
    } else {
        let _ = writeln!(s, "  promote      no (deploys from its own repository)");
    }
    let image = match &plan.source.digest {
        Some(d) => format!("{}/{}@{d}", plan.target.registry, plan.target.repository),
        None => format!(
            "{}/{}@<digest unknown>",
            plan.target.registry, plan.target.repository
        ),
    };
    if plan.also.is_empty() {
        let _ = writeln!(
            s,
            "  services     ({}), each pinned to {image}",
            plan.services.len()
        );
    } else {
        let _ = writeln!(
            s,
            "  services     ({}), each container pinned to its image of the release by digest",
            plan.services.len()
        );
    }
    for svc in &plan.services {
        let _ = writeln!(
            s,
            "    - {}/{} container {}",
            svc.cluster, svc.service, svc.container
        );
    }
    for c in &plan.changes {
        let from = c
            .current_release
            .as_deref()
            .map(|r| format!(", release {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  change       {}/{} (now {}{from}; rollout timeout {}s)",
            c.cluster,
            c.service,
            short_td(&c.current_task_definition),
            c.rollout_timeout_seconds
        );
        for line in strategy_lines(&c.strategy) {
            let _ = writeln!(s, "                 {line}");
        }
        if c.changes.is_empty() {
            let _ = writeln!(s, "                 nothing: already runs this image");
        }
        for ch in &c.changes {
            let _ = writeln!(s, "                 {ch}");
        }
        for f in &c.preflight {
            let _ = writeln!(
                s,
                "                 preflight {}",
                crate::deploy::preflight::line(f)
            );
        }
        if let Some(f) = &c.in_flight {
            let _ = writeln!(
                s,
                "                 deployment in flight ({f}): deploy would refuse"
            );
        }
    }
    if plan.smoke.is_empty() {
        let _ = writeln!(
            s,
            "  smoke        none configured (only the rollout gates success)"
        );
    } else {
        let _ = writeln!(s, "  smoke        ({})", plan.smoke.len());
        for c in &plan.smoke {
            let version = c
                .version_field
                .as_ref()
                .map(|f| format!(", JSON `{f}` == {}", plan.version))
                .unwrap_or_default();
            let in_a_row = if c.consecutive > 1 {
                format!(", {} answers in a row", c.consecutive)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "    - GET {} expects {}{version}{in_a_row} within {}s",
                c.url, c.expect_status, c.deadline_seconds
            );
        }
    }
    for u in &plan.unresolved {
        let _ = writeln!(s, "  unresolved   {u}");
    }
    // An environment of several targets: each target's plan, in wave order.
    for other in &plan.targets {
        s.push('\n');
        s.push_str(&plan_text(other));
    }
    shorten_digests(&s, plan.source.digest.as_deref())
}

/// The plan as Markdown for the step summary.
pub fn plan_markdown(plan: &Plan) -> String {
    format!(
        "### ferry plan: {} → {}\n\n```\n{}```\n",
        plan.tag,
        plan.environment,
        plan_text(plan)
    )
}

/// What `plan` says about a service's strategy: which one runs and what it waits for. Nothing
/// for a rolling update (the default).
pub fn strategy_lines(strategy: &crate::deploy::bluegreen::Strategy) -> Vec<String> {
    use crate::deploy::bluegreen::Strategy;
    match strategy {
        Strategy::Rolling => Vec::new(),
        Strategy::CodeDeploy {
            application,
            deployment_group,
            config,
            routing,
            holds,
            test_checks,
            termination_wait_minutes,
        } => {
            let test = match (holds, test_checks) {
                (true, 0) => "CodeDeploy holds the replacement on the test listener; no test_url check, so ferry continues at once".to_string(),
                (true, n) => format!("CodeDeploy holds the replacement on the test listener until {n} test_url check(s) pass (then ContinueDeployment; a failure stops it with rollback, production untouched)"),
                (false, _) => "the group does not hold the replacement on test traffic: production traffic moves as soon as it is installed".to_string(),
            };
            vec![
                format!("strategy: CodeDeploy blue/green, {application}/{deployment_group} ({config})"),
                format!("waits for: {test}"),
                format!(
                    "then: {}; the original task set stays {termination_wait_minutes} min (reported, not waited for)",
                    routing.describe()
                ),
            ]
        }
        Strategy::Native {
            strategy,
            routing,
            bake_minutes,
            test_checks,
            pauses,
        } => {
            let hold = if pauses.iter().any(|p| p == "POST_TEST_TRAFFIC_SHIFT") {
                " (a PAUSE hook holds production traffic until they pass)"
            } else {
                " (no PAUSE hook: production traffic may move while they run)"
            };
            vec![
                format!("strategy: ECS {strategy}, followed stage by stage"),
                format!(
                    "waits for: {test_checks} test_url check(s) during the test-traffic stages{hold}, then {}, then the production checks during {bake_minutes} min bake time",
                    routing.describe()
                ),
            ]
        }
        Strategy::Refused { why } => vec![format!("deploy would refuse: {why}")],
    }
}
