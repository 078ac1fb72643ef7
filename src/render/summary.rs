//! The deploy report as the Markdown of the GitHub step summary: tables, the verdict, the
//! evidence folded away, the Mermaid timeline of the rollout (`timeline`) and links to the ECS
//! console. Digests are short except once (the `digest` after the image), the evidence's too.

use std::fmt::Write as _;

use super::{short_digest, shorten_digests, state_words};
use crate::aws::ecs::short_td;
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
    if !r.images.is_empty() {
        let set: Vec<String> = r
            .images
            .iter()
            .map(|(name, pinned)| {
                let d = pinned.split_once('@').map_or("", |(_, d)| d);
                format!("{} `{}`", md(name), short_digest(d))
            })
            .collect();
        let _ = write!(s, "\n\n**Release images** {}", set.join(" · "));
    }
    if !r.targets.is_empty() {
        // One row per target, in wave order.
        s.push_str("\n\n| wave | target | account / region | result |\n|---|---|---|---|\n");
        for t in &r.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} |",
                t.wave,
                md(&t.target),
                md(&t.account_id),
                md(&t.region),
                md(t.state.words())
            );
        }
    }
    // Each service, with its region (a release of several targets: every target's services,
    // named `target: cluster/service`).
    let rows: Vec<(&str, Option<&str>, &crate::report::ServiceReport)> = if r.targets.is_empty() {
        r.services
            .iter()
            .map(|svc| (r.region.as_str(), None, svc))
            .collect()
    } else {
        r.targets
            .iter()
            .flat_map(|t| {
                t.report.iter().flat_map(move |rep| {
                    rep.services
                        .iter()
                        .map(move |svc| (t.region.as_str(), Some(t.target.as_str()), svc))
                })
            })
            .collect()
    };
    if !rows.is_empty() || r.targets.is_empty() {
        s.push_str("\n\n| service | before | after | result |\n|---|---|---|---|\n");
    }
    for (region, target, svc) in rows {
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
            "| {}[{}/{}]({}) | {before} | {after} | {}{took} |",
            target.map(|t| format!("{}: ", md(t))).unwrap_or_default(),
            md(&svc.cluster),
            md(&svc.service),
            console_url(region, &svc.cluster, &svc.service),
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
                md(&shorten_digests(&c.detail, None)),
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
            shorten_digests(&evidence.join("\n"), None).replace("```", "` ` `")
        );
    }
    s.push_str(&super::timeline::timeline(r));
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

/// The ECS console page of a service (each name percent-encoded: no name can end the link or
/// the table cell).
fn console_url(region: &str, cluster: &str, service: &str) -> String {
    let (region, cluster, service) = (segment(region), segment(cluster), segment(service));
    format!("https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster}/services/{service}/health?region={region}")
}

/// `s` as one URL path segment: every byte but `A-Za-z0-9-._~` percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Text safe inside a Markdown table cell, link text or quote: no pipes, no brackets, no
/// HTML, one line (a backslash stays a backslash, so it cannot escape what follows).
fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}
