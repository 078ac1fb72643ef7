//! `ferry validate`: the environment files, and with `--online` the AWS resources they name.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{Environment, MatchKind};
use crate::error::Failure;
use crate::report::Check;

/// Every check of every environment: the files always, the AWS resources with `online`.
pub async fn run(dir: &Path, online: bool) -> Result<Vec<Check>> {
    let envs = crate::config::load(dir)?;
    let mut checks = Vec::new();
    // An environment of several targets is checked target by target (each its own account,
    // region, role and services).
    for env in envs.envs.values().flat_map(|e| e.parts()) {
        checks.push(Check {
            environment: env.display_name(),
            check: "config".into(),
            ok: true,
            detail: describe(env, envs.trusted_keys(env).len()),
        });
        if let Some(w) = envs.unsigned_warning(env) {
            tracing::warn!("{w}");
        }
        if online {
            online_checks(env, envs.source_of(env), &mut checks).await;
        }
    }
    Ok(checks)
}

/// Exit 2, naming every failed check, when any failed.
pub fn result_of(checks: &[Check]) -> Result<()> {
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let list = failed
        .iter()
        .map(|c| format!("{} {}: {}", c.environment, c.check, c.detail))
        .collect::<Vec<_>>()
        .join("\n  - ");
    Err(Failure::invalid(format!("{} online check(s) failed:\n  - {list}", failed.len()))
        .hint("create the missing resources or correct the environment file; each line names what was looked up")
        .into())
}

fn describe(env: &Environment, trusted: usize) -> String {
    let tags = match env.file.release.kind {
        MatchKind::Final => "vX.Y.Z".to_string(),
        MatchKind::Prerelease => format!("vX.Y.Z-{{{}}}.N", env.prerelease_words().join(",")),
    };
    let from = env
        .file
        .promote
        .as_ref()
        .map(|p| format!(", promotes from {}", p.from))
        .unwrap_or_default();
    let signs = match (&env.file.records.signing_key, trusted) {
        (Some(k), _) => format!(", signs its records with {k}"),
        (None, 0) => String::new(),
        (None, n) => format!(", trusts {n} records key(s)"),
    };
    let wave = env
        .target
        .as_ref()
        .map(|t| format!(", wave {}", t.wave + 1))
        .unwrap_or_default();
    let from = format!("{wave}{from}{signs}");
    format!(
        "{} → account {} {}, {} service(s), {} smoke check(s){from}",
        tags,
        env.file.account_id,
        env.file.region,
        env.file.services.len(),
        env.file.smoke.len()
    )
}

async fn online_checks(env: &Environment, source: Option<&Environment>, checks: &mut Vec<Check>) {
    let mut push = |check: String, res: Result<String>| {
        let (ok, detail) = match res {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        checks.push(Check {
            environment: env.display_name(),
            check,
            ok,
            detail,
        });
    };
    let sdk = match crate::aws::sts::environment_config(env).await {
        Ok(s) => s,
        Err(e) => return push("role".into(), Err(e)),
    };
    let role = crate::aws::sts::verify_identity(env, &sdk).await;
    let role_ok = role.is_ok();
    push("role".into(), role.map(|arn| format!("assumed as {arn}")));
    if !role_ok {
        return;
    }
    // Every image of the release has its own repository.
    for img in &env.images {
        let repo = img.repository.as_str();
        let res = crate::aws::ecr::repository_exists(&sdk, repo)
            .await
            .and_then(|exists| {
                if exists {
                    Ok(format!("{}/{repo} exists", env.registry_host()))
                } else {
                    Err(anyhow::anyhow!(
                        "ECR repository {repo} does not exist in account {} {} (image {})",
                        env.file.account_id,
                        env.file.region,
                        img.name
                    ))
                }
            });
        push(format!("repository {repo}"), res);
    }
    if let Some(src) = source {
        // The promotion reads the source repositories with this environment's role, through
        // their repository policies: a missing grant shows here, not mid-release.
        for img in &src.images {
            let res = async {
                let client = crate::promote::source_client(&sdk, src, env).await?;
                let tags = client
                    .list_tags(&img.repository)
                    .await
                    .with_context(|| {
                        format!(
                            "{}'s role reading {}'s repository {}: its repository policy must let it pull (`ferry iam-policy --environment {}` prints it)",
                            env.name, src.name, img.repository, src.name
                        )
                    })?;
                Ok(format!(
                    "{}'s role reads {}/{} ({} tags)",
                    env.name,
                    src.registry_host(),
                    img.repository,
                    tags.len()
                ))
            }
            .await;
            push(format!("promotion source {}", img.repository), res);
        }
    }
    let mutability = crate::deploy::preflight::repository_mutability(&sdk, env).await;
    for s in &env.file.services {
        let client = crate::aws::sts::ecs_client(&sdk);
        let res = crate::aws::ecs::find_service(&client, &s.cluster, &s.service)
            .await
            .and_then(|found| {
                if found.is_some() {
                    Ok("active".to_string())
                } else {
                    Err(anyhow::anyhow!(
                        "ECS service {}/{} not found (or not ACTIVE) in {}",
                        s.cluster,
                        s.service,
                        env.file.region
                    ))
                }
            });
        let found = res.is_ok();
        push(format!("service {}/{}", s.cluster, s.service), res);
        if found {
            let res = crate::deploy::preflight::live(&sdk, env, s, mutability.as_ref())
                .await
                .and_then(preflight_detail);
            push(format!("preflight {}/{}", s.cluster, s.service), res);
        }
    }
}

/// A preflight check passes with its warnings listed; an error fails it.
fn preflight_detail(findings: Vec<crate::deploy::preflight::Finding>) -> Result<String> {
    use crate::deploy::preflight::{line, Severity};
    if findings.is_empty() {
        return Ok("no finding: circuit breaker, grace period, min/max percent, image, logs and tags as a safe rolling deploy needs".into());
    }
    let lines: Vec<String> = findings.iter().map(line).collect();
    if findings.iter().any(|f| f.severity == Severity::Error) {
        anyhow::bail!("{}", lines.join("; "));
    }
    Ok(format!("{} warning(s): {}", lines.len(), lines.join("; ")))
}
