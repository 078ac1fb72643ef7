//! Rendering results: human text or JSON on stdout, and (in GitHub Actions) the step summary
//! and step outputs.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::plan::Plan;

/// `--output`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Writes `value` as pretty JSON to stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON to stdout")?;
    writeln!(out)?;
    Ok(())
}

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
    let _ = writeln!(s, "  account      {} in {}", plan.account_id, plan.region);
    let auth = match plan.auth {
        crate::aws::sts::AuthMode::AssumeRole => "assume role",
        crate::aws::sts::AuthMode::GithubOidc => "GitHub OIDC web identity",
    };
    let _ = writeln!(s, "  role         {} ({auth})", plan.role_arn);
    let _ = writeln!(s, "  source       {}", plan.source.display());
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
    let _ = writeln!(
        s,
        "  services     ({}), each pinned to {image}",
        plan.services.len()
    );
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
            crate::deploy::short_td(&c.current_task_definition),
            c.rollout_timeout_seconds
        );
        if c.changes.is_empty() {
            let _ = writeln!(s, "                 nothing: already runs this image");
        }
        for ch in &c.changes {
            let _ = writeln!(s, "                 {ch}");
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
            let _ = writeln!(
                s,
                "    - GET {} expects {}{version} within {}s",
                c.url, c.expect_status, c.deadline_seconds
            );
        }
    }
    for u in &plan.unresolved {
        let _ = writeln!(s, "  unresolved   {u}");
    }
    s
}

/// In GitHub Actions: appends `key=value` lines to `$GITHUB_OUTPUT`.
pub fn github_outputs(pairs: &[(&str, &str)]) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("opening $GITHUB_OUTPUT ({path})"))?;
    for (k, v) in pairs {
        // Values never contain newlines here; refuse rather than corrupt the file.
        anyhow::ensure!(!v.contains('\n'), "output {k} contains a newline");
        writeln!(f, "{k}={v}")?;
    }
    Ok(())
}

/// In GitHub Actions: appends Markdown to `$GITHUB_STEP_SUMMARY` (kept under its 1 MiB limit).
pub fn github_summary(markdown: &str) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    const LIMIT: usize = 1024 * 1024 - 1024;
    let mut text = markdown.to_string();
    if text.len() > LIMIT {
        let mut cut = LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n… (truncated)\n");
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("opening $GITHUB_STEP_SUMMARY ({path})"))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Escapes a workflow-command message (`%`, CR, LF).
pub fn escape_workflow_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// In GitHub Actions: an `::error` annotation on the run.
pub fn github_error_annotation(title: &str, message: &str) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        let title = escape_workflow_data(title)
            .replace(':', "%3A")
            .replace(',', "%2C");
        println!("::error title={title}::{}", escape_workflow_data(message));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_escaping() {
        assert_eq!(escape_workflow_data("a%b\r\nc"), "a%25b%0D%0Ac");
    }
}

#[cfg(test)]
mod snapshot {
    use crate::config::{ServiceConfig, SmokeCheck};
    use crate::plan::{ImageRef, Plan};

    fn image(env: &str, account: &str, tag: &str, digest: Option<&str>) -> ImageRef {
        ImageRef {
            environment: env.into(),
            registry: format!("{account}.dkr.ecr.eu-west-1.amazonaws.com"),
            repository: "shop/api".into(),
            tag: Some(tag.into()),
            digest: digest.map(str::to_string),
            media_type: None,
        }
    }

    /// The human plan, whole: a change to its wording shows up here in review.
    #[test]
    fn production_plan_text() {
        let d = "sha256:4f0e5c1d2b3a49586776655443322110ffeeddccbbaa99887766554433221100";
        let plan = Plan {
            tag: "v1.4.0".into(),
            version: "1.4.0".into(),
            channel: crate::tag::Channel::Final,
            environment: "production".into(),
            config_file: "environments/production.toml".into(),
            account_id: "222222222222".into(),
            region: "eu-west-1".into(),
            role_arn: "arn:aws:iam::222222222222:role/ferry-deploy".into(),
            auth: crate::aws::sts::AuthMode::GithubOidc,
            trigger: crate::trigger::TriggerSource::Release,
            source: image("staging", "111111111111", "v1.4.0-rc.3", Some(d)),
            target: image("production", "222222222222", "v1.4.0", None),
            promote: true,
            services: vec![ServiceConfig {
                cluster: "shop".into(),
                service: "api".into(),
                container: "api".into(),
            }],
            changes: Vec::new(),
            smoke: vec![SmokeCheck {
                name: None,
                url: "https://shop.example.com/healthz".into(),
                expect_status: 200,
                version_field: Some("version".into()),
                deadline_seconds: 120,
                timeout_seconds: 5,
                follow_redirects: false,
            }],
            unresolved: Vec::new(),
        };
        let expected = format!(
            "Plan for v1.4.0 (final release, version 1.4.0)
  environment  production (environments/production.toml)
  account      222222222222 in eu-west-1
  role         arn:aws:iam::222222222222:role/ferry-deploy (GitHub OIDC web identity)
  source       111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0-rc.3@{d}
  promote to   222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.4.0
  services     (1), each pinned to 222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{d}
    - shop/api container api
  smoke        (1)
    - GET https://shop.example.com/healthz expects 200, JSON `version` == 1.4.0 within 120s
"
        );
        assert_eq!(super::plan_text(&plan), expected);
    }
}
