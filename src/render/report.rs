//! The deploy report as text, and the words it is made of: each service's state and detail,
//! why a deploy failed, and the verdict.

use std::fmt::Write as _;

use super::shorten_digests;
use crate::aws::ecs::short_td;
use crate::deploy::{Ended, Running, ServiceState};
use crate::report::{DeployReport, Outcome};
use crate::smoke::SmokeResult;

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

/// A release to several targets in a few words (a GitHub deployment's description is
/// short): each target and how it ended, in wave order.
pub fn targets_line(r: &DeployReport) -> String {
    let each: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{} {}", t.target, t.state.words()))
        .collect();
    format!("{}: {}", r.tag, each.join(", "))
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
    for (name, pinned) in &r.images {
        let _ = writeln!(s, "  + {name:<6} {pinned}");
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
    for t in &r.targets {
        let _ = writeln!(
            s,
            "  target   {} (wave {}, {} in {}): {}",
            t.target,
            t.wave,
            t.account_id,
            t.region,
            t.state.words()
        );
        if let Some(rep) = &t.report {
            for svc in &rep.services {
                let _ = writeln!(
                    s,
                    "           {}/{}: {} ({})",
                    svc.cluster,
                    svc.service,
                    state_words(svc.state),
                    svc.detail
                );
            }
            for c in rep.smoke.iter().filter(|c| !c.ok) {
                let _ = writeln!(s, "           smoke FAIL {}: {}", c.name, c.detail);
            }
        }
        if let Some(e) = &t.error {
            let _ = writeln!(s, "           {}", e.lines().next().unwrap_or_default());
        }
        if let Some(rev) = &t.reverted {
            let _ = writeln!(s, "           sent back: {}", rev.verdict);
        }
        if let Some(e) = &t.revert_error {
            let _ = writeln!(s, "           sending it back failed: {e}");
        }
    }
    super::memory::report_lines(&mut s, r);
    let _ = writeln!(s, "  verdict  {}", r.verdict);
    shorten_digests(&s, r.image.split_once('@').map(|(_, d)| d))
}
