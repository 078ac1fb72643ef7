//! The deploy report as the Markdown of the GitHub step summary: tables, the verdict, the
//! evidence folded away, a Mermaid timeline of the rollout and links to the ECS console.

use std::fmt::Write as _;

use super::{short_digest, shorten_digests, state_words};
use crate::aws::ecs::short_td;
use crate::deploy::ServiceState;
use crate::report::{DeployReport, Outcome};

/// The deploy report as a GitHub step-summary page: a headline with the outcome, a table
/// per service and per smoke check, the verdict, the evidence folded away, a Mermaid timeline
/// of the rollout, and links to the run, each ECS service and the GitHub deployments page.
/// Digests are short except once.
pub fn report_markdown(r: &DeployReport) -> String {
    let mut s = String::new();
    let (icon, head) = match r.outcome {
        Outcome::Deployed => ("✅", "deployed to"),
        Outcome::AlreadyDeployed => ("✅", "already runs on"),
        Outcome::RolledBack => ("❌", "failed and was rolled back on"),
        Outcome::NeedsAttention => ("⚠️", "failed, and needs a person on"),
    };
    let _ = writeln!(
        s,
        "## {icon} {} {head} {}\n",
        md(&r.tag),
        md(&r.environment)
    );
    super::memory::markdown_lines(&mut s, r);
    let (repo, digest) = r.image.split_once('@').unwrap_or((r.image.as_str(), ""));
    let _ = write!(
        s,
        "**Image** `{repo}@{}` · digest `{digest}`",
        short_digest(digest)
    );
    if let Some(p) = &r.promotion {
        let _ = write!(
            s,
            " · {}",
            if p.already_done {
                "already promoted (same digest)".to_string()
            } else {
                format!(
                    "promoted: {} blob(s) copied, {:.1} MiB, digest verified",
                    p.blobs_copied,
                    p.bytes_copied as f64 / 1048576.0
                )
            }
        );
    }
    s.push_str("\n\n| service | before | after | result |\n|---|---|---|---|\n");
    for svc in &r.services {
        let before = match &svc.previous_release {
            Some(rel) => format!("{} ({})", short_td(&svc.previous_task_definition), md(rel)),
            None => short_td(&svc.previous_task_definition).to_string(),
        };
        let after = svc
            .final_task_definition
            .as_deref()
            .map(short_td)
            .unwrap_or("unknown");
        let took = if svc.rollout_seconds > 0.0 {
            format!(", {:.1} s", svc.rollout_seconds)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| [{}/{}]({}) | {before} | {after} | {}{took} |",
            md(&svc.cluster),
            md(&svc.service),
            console_url(&r.region, &svc.cluster, &svc.service),
            state_words(svc.state),
        );
    }
    if !r.smoke.is_empty() {
        s.push_str("\n| smoke check | result | attempts |\n|---|---|---|\n");
        for c in &r.smoke {
            let _ = writeln!(
                s,
                "| {} | {} {} | {} |",
                md(&c.name),
                if c.ok { "✅" } else { "❌" },
                md(&c.detail),
                c.attempts
            );
        }
    }
    let _ = writeln!(s, "\n> {}\n", md(&shorten_digests(&r.verdict, None)));
    let evidence: Vec<String> = r
        .services
        .iter()
        .flat_map(|svc| {
            svc.evidence
                .iter()
                .map(move |e| format!("{}/{}: {e}", svc.cluster, svc.service))
        })
        .collect();
    if !evidence.is_empty() {
        // A fence inside the evidence must not end the code block early.
        let _ = writeln!(
            s,
            "<details><summary>Evidence ({} line(s))</summary>\n\n```text\n{}\n```\n</details>\n",
            evidence.len(),
            evidence.join("\n").replace("```", "` ` `")
        );
    }
    s.push_str(&timeline(r));
    let mut links = Vec::new();
    if let Some(url) = &r.run_url {
        links.push(format!("[Run log]({url})"));
    }
    if let Some(g) = r.github.as_ref().filter(|g| g.deployment_id.is_some()) {
        if let Some(page) = &g.page_url {
            links.push(format!("[GitHub deployments]({page})"));
        }
    }
    if !links.is_empty() {
        let _ = writeln!(s, "\n{}", links.join(" · "));
    }
    s
}

/// A Mermaid Gantt chart of the run: each service's rollout, then the smoke checks.
fn timeline(r: &DeployReport) -> String {
    let rolled: Vec<_> = r
        .services
        .iter()
        .filter(|s| s.rollout_seconds > 0.0)
        .collect();
    if rolled.is_empty() && r.smoke.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "```mermaid\ngantt\n    title Rollout timeline\n    dateFormat X\n    axisFormat %M:%S\n",
    );
    let mut end = 0u64;
    for svc in &rolled {
        let secs = svc.rollout_seconds.ceil().max(1.0) as u64;
        end = end.max(secs);
        let status = match svc.state {
            ServiceState::Deployed => "done",
            _ => "crit",
        };
        let _ = writeln!(
            s,
            "    section {}/{}\n    rollout :{status}, 0, {secs}s",
            mermaid(&svc.cluster),
            mermaid(&svc.service)
        );
    }
    if !r.smoke.is_empty() {
        s.push_str("    section smoke\n");
        for c in &r.smoke {
            let secs = c.seconds.ceil().max(1.0) as u64;
            let _ = writeln!(
                s,
                "    {} :{}, {end}, {secs}s",
                mermaid(&c.name),
                if c.ok { "done" } else { "crit" }
            );
        }
    }
    s.push_str("```\n");
    s
}

/// The ECS console page of a service.
fn console_url(region: &str, cluster: &str, service: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster}/services/{service}/health?region={region}")
}

/// Text safe inside a Markdown table cell or quote: no pipes, no HTML, one line.
fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// Text safe as a Mermaid task or section name.
fn mermaid(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || "/-_.".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect()
}
