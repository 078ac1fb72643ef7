//! Every sentence a person reads: the plan, the deploy report and its verdict, status and
//! validation tables, copy results, and the Markdown of the GitHub step summary. One place, so
//! the wording stays consistent and the snapshot tests catch every change.

use std::fmt::Write as _;

use crate::aws::ecs::short_td;
use crate::aws::sts::AuthMode;
use crate::deploy::{Ended, Running, ServiceState};
use crate::plan::Plan;
use crate::registry::copy::CopyOutcome;
use crate::report::{Check, DeployReport, Outcome};
use crate::smoke::SmokeResult;

mod memory;
pub use memory::{headline, status_text};

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
        AuthMode::AssumeRole => "assume role",
        AuthMode::GithubOidc => "GitHub OIDC web identity",
    };
    let _ = writeln!(s, "  role         {} ({auth})", plan.role_arn);
    let _ = writeln!(s, "  source       {}", plan.source.display());
    if let Some(d) = &plan.source.digest {
        let _ = writeln!(s, "  digest       {d}");
    }
    memory::plan_lines(&mut s, plan);
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
            short_td(&c.current_task_definition),
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

/// `sha256:4f0e5c1d…`: enough to tell digests apart at a glance.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..8]),
        _ => digest.to_string(),
    }
}

/// Every `sha256:<64 hex>` in `text` in its short form, except on the line that states
/// `keep` on its own (`digest   sha256:…`), where a person may need to copy it whole.
pub fn shorten_digests(text: &str, keep: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let is_digest_line = keep.is_some_and(|k| {
            let t = line.trim();
            t.strip_prefix("digest")
                .is_some_and(|rest| rest.trim() == k)
        });
        if is_digest_line {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("sha256:") {
            let hex = &rest[i + 7..];
            let n = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
            if n == 64 {
                out.push_str(&rest[..i]);
                out.push_str(&short_digest(&rest[i..i + 7 + 64]));
                rest = &rest[i + 7 + 64..];
            } else {
                out.push_str(&rest[..i + 7]);
                rest = &rest[i + 7..];
            }
        }
        out.push_str(rest);
    }
    out
}

/// How a service's state reads.
pub fn state_words(s: ServiceState) -> &'static str {
    match s {
        ServiceState::AlreadyDeployed => "unchanged",
        ServiceState::Deployed => "deployed",
        ServiceState::Failed => "failed and back on its previous revision",
        ServiceState::RolledBack => "rolled back to its previous revision",
        ServiceState::Unchanged => "not changed (its deployment could not start)",
        ServiceState::Superseded => "replaced by another deployment (left alone)",
        ServiceState::Unknown => "state unknown",
    }
}

/// Where a service stands, in a few words.
pub fn service_detail(
    state: ServiceState,
    previous_td: &str,
    new_td: Option<&str>,
    previous_release: Option<&str>,
) -> String {
    let release = previous_release
        .map(|r| format!(", release {r}"))
        .unwrap_or_default();
    match state {
        ServiceState::AlreadyDeployed => format!("already runs {}", short_td(previous_td)),
        ServiceState::Deployed => format!(
            "{} → {}",
            short_td(previous_td),
            short_td(new_td.unwrap_or(""))
        ),
        ServiceState::Failed | ServiceState::RolledBack => {
            format!("runs {}{release}", short_td(previous_td))
        }
        ServiceState::Unchanged => format!("still runs {}{release}", short_td(previous_td)),
        ServiceState::Superseded | ServiceState::Unknown => "see the evidence".into(),
    }
}

/// The verdict of a deploy that passed.
pub fn success_verdict(r: &DeployReport, digest: &str) -> String {
    if r.outcome == Outcome::AlreadyDeployed {
        format!(
            "{} already runs {} ({digest}) on every service; nothing was changed",
            r.environment, r.tag
        )
    } else {
        format!(
            "{} now runs {} ({digest}) on every service; rollout and smoke checks passed",
            r.environment, r.tag
        )
    }
}

/// Why a deploy failed: one line per failed rollout and smoke check.
pub fn failure_reasons(runs: &[Running], smoke: &[SmokeResult]) -> Vec<String> {
    let mut why = Vec::new();
    for r in runs {
        let name = r.prep.name();
        match &r.ended {
            Some(Ended::Failed { reason, .. } | Ended::RollbackFailed { reason }) => {
                why.push(format!("{name}: {reason}"))
            }
            Some(Ended::Superseded { reason }) => why.push(format!("{name}: {reason}")),
            Some(Ended::TimedOut { pending }) => why.push(format!(
                "{name}: rollout did not finish within {}s ({}); still pending: {pending}",
                r.prep.timeout.as_secs(),
                r.prep.timeout_why
            )),
            _ => {}
        }
    }
    for s in smoke.iter().filter(|s| !s.ok) {
        why.push(format!(
            "smoke check {} failed after {} attempt(s): {}",
            s.name, s.attempts, s.detail
        ));
    }
    why
}

/// The verdict when the environment already ran the release but it fails.
pub fn failing_already_verdict(r: &DeployReport, why: &[String]) -> String {
    format!(
        "{} already ran {} but it is failing: {}. This run changed nothing; a person must look.",
        r.environment,
        r.tag,
        why.join("; ")
    )
}

/// The verdict of a failed deploy, after the rollback.
pub fn failure_verdict(r: &DeployReport, why: &[String], all_back: bool) -> String {
    let mut v = format!(
        "release {} to {} FAILED: {}.",
        r.tag,
        r.environment,
        why.join("; ").trim_end_matches('.')
    );
    if all_back {
        v.push_str(
            " Every service this run changed is back on its previous task definition and stable:",
        );
    } else {
        v.push_str(" The environment is NOT known to be good; a person must look:");
    }
    for s in &r.services {
        let _ = write!(
            v,
            " {}/{} {} ({});",
            s.cluster,
            s.service,
            state_words(s.state),
            s.detail
        );
    }
    v.trim_end_matches(';').to_string() + "."
}

/// The report as text for a person.
pub fn report_text(r: &DeployReport) -> String {
    let mut s = String::new();
    let head = match r.outcome {
        Outcome::Deployed => "DEPLOYED",
        Outcome::AlreadyDeployed => "ALREADY DEPLOYED",
        Outcome::RolledBack => "FAILED, ROLLED BACK",
        Outcome::NeedsAttention => "FAILED, NEEDS ATTENTION",
    };
    let _ = writeln!(s, "{head}: {} → {}", r.tag, r.environment);
    let _ = writeln!(s, "  image    {}", r.image);
    if let Some((_, d)) = r.image.split_once('@') {
        let _ = writeln!(s, "  digest   {d}");
    }
    if let Some(p) = &r.promotion {
        let _ = writeln!(
            s,
            "  promoted {}",
            if p.already_done {
                "already (same digest in target)"
            } else {
                "copied, digest verified"
            }
        );
    }
    for svc in &r.services {
        let _ = writeln!(
            s,
            "  service  {}/{}: {} ({})",
            svc.cluster,
            svc.service,
            state_words(svc.state),
            svc.detail
        );
        for c in &svc.changes {
            let _ = writeln!(s, "           {c}");
        }
        for e in &svc.evidence {
            let _ = writeln!(s, "           {e}");
        }
    }
    for c in &r.smoke {
        let _ = writeln!(
            s,
            "  smoke    {} {}: {} ({} attempt(s))",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail,
            c.attempts
        );
    }
    memory::report_lines(&mut s, r);
    let _ = writeln!(s, "  verdict  {}", r.verdict);
    shorten_digests(&s, r.image.split_once('@').map(|(_, d)| d))
}

/// The deploy report as a GitHub step-summary page: a headline with the outcome, a table
/// per service and per smoke check, the verdict, the evidence folded away, a Mermaid timeline
/// of the rollout, and links to the run and each ECS service. Digests are short except once.
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
    memory::markdown_lines(&mut s, r);
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
    if let Some(url) = &r.run_url {
        let _ = writeln!(s, "\n[Run log]({url})");
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

/// `ferry validate`, one line per check.
pub fn checks_text(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let _ = writeln!(
            s,
            "{} {:<12} {:<28} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.environment,
            c.check,
            c.detail
        );
    }
    s
}

/// `ferry copy`'s result.
pub fn copy_text(source: &str, destination: &str, out: &CopyOutcome) -> String {
    if out.already_done {
        format!(
            "{destination} already points at {}: nothing to copy ({} requests)\n",
            out.digest, out.requests
        )
    } else {
        format!(
            "copied {source} → {destination}: {} ({}), {} manifest(s), blobs {} copied / {} mounted / {} already there, {:.1} MiB in {:.2}s, {} requests; verified\n",
            out.digest,
            out.media_type,
            out.manifests,
            out.blobs_copied,
            out.blobs_mounted,
            out.blobs_skipped,
            out.bytes_copied as f64 / 1048576.0,
            out.seconds,
            out.requests
        )
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
