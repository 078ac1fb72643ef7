//! The release memory's words: what kind of run it is ("rollback from v1.1.0 to v1.0.0"),
//! where the digest comes from, the promotion gate's candidates, the record written, and
//! `ferry status` with history and drift.

use std::fmt::Write as _;

use super::short_digest;
use crate::aws::ecs::short_td;
use crate::plan::{DigestFrom, Plan};
use crate::records::{rfc3339_of, RunKind};
use crate::report::{DeployReport, EnvironmentStatus};

/// "rollback from v1.1.0 to v1.0.0", "redeploy of v1.1.0", or `None` for a plain deploy.
pub fn headline(kind: RunKind, from: Option<&str>, tag: &str, downgrade: bool) -> Option<String> {
    match (kind, from) {
        (RunKind::Rollback, Some(f)) if downgrade => Some(format!(
            "rollback from {f} to {tag} (a downgrade: never deployed here before)"
        )),
        (RunKind::Rollback, Some(f)) => Some(format!("rollback from {f} to {tag}")),
        (RunKind::Rollback, None) => Some(format!("rollback to {tag}")),
        (RunKind::Redeploy, _) => Some(format!("redeploy of {tag}")),
        (RunKind::Deploy, _) => None,
    }
}

/// The plan's memory lines: kind, where the digest comes from, the gate's candidates.
pub fn plan_lines(s: &mut String, plan: &Plan) {
    if let Some(h) = headline(
        plan.kind,
        plan.live_release.as_deref(),
        &plan.tag,
        plan.downgrade,
    ) {
        let _ = writeln!(s, "  kind         {h}");
    }
    let rec = |s: &mut String, what: &str| {
        if let Some(r) = &plan.record {
            let _ = writeln!(
                s,
                "  digest from  {what}: {} {} {} at {} (record {})",
                r.kind.as_str(),
                r.tag,
                r.result.as_str(),
                rfc3339_of(r.ended_at),
                r.record
            );
        }
    };
    match plan.digest_from {
        DigestFrom::OwnRecord => rec(s, &format!("{}'s own record", plan.environment)),
        DigestFrom::SourceRecord => rec(s, &format!("{}'s record", plan.source.environment)),
        DigestFrom::Tag => {
            let _ = writeln!(s, "  digest from  the tag {}", plan.tag);
        }
        DigestFrom::BeforeFerry => {
            let _ = writeln!(
                s,
                "  digest from  the tag {} in {}'s repository, run there before ferry",
                plan.tag, plan.environment
            );
        }
        DigestFrom::Unknown => {}
    }
    if let Some(b) = &plan.built_as {
        let _ = writeln!(s, "  built as     {b} (the app may report it)");
    }
    for n in &plan.notes {
        let _ = writeln!(s, "  note         {n}");
    }
    if !plan.candidates.is_empty() {
        let _ = writeln!(
            s,
            "  candidates   of v{} in {}",
            plan.version, plan.source.environment
        );
        for c in &plan.candidates {
            let _ = writeln!(
                s,
                "    - {:<16} {:<22} {}",
                c.tag,
                c.state.words(),
                c.digest.as_deref().unwrap_or("(tag gone)")
            );
        }
    }
}

/// The report's memory lines: the record written (or why not).
pub fn report_lines(s: &mut String, r: &DeployReport) {
    if let Some(w) = &r.record {
        let _ = writeln!(s, "  record   {} ({})", w.tag, short_digest(&w.digest));
    }
    if let Some(e) = &r.record_error {
        let _ = writeln!(
            s,
            "  record   NOT WRITTEN: {e}; later promotions and rollbacks will not know about this run"
        );
    }
}

/// The step summary's memory lines: the kind of run (under the headline), and the record.
pub fn markdown_lines(s: &mut String, r: &DeployReport) {
    if let Some(h) = headline(r.kind, r.rollback_from.as_deref(), &r.tag, false) {
        let _ = writeln!(s, "**{h}**\n");
    }
    if let Some(w) = &r.record {
        let _ = writeln!(
            s,
            "**Record** `{}` (`{}`)\n",
            w.tag,
            short_digest(&w.digest)
        );
    }
    if let Some(e) = &r.record_error {
        let _ = writeln!(s, "**Record NOT written**: {e}\n");
    }
}

/// `ferry status`, per environment.
pub fn status_text(envs: &[EnvironmentStatus]) -> String {
    let mut s = String::new();
    for e in envs {
        let live = match (&e.live_release, &e.live_since) {
            (Some(r), Some(t)) => format!("{r} since {t}"),
            _ => "no successful record yet".into(),
        };
        let _ = writeln!(s, "{}: {live}", e.environment);
        for r in &e.services {
            let _ = write!(
                s,
                "  {}/{}: {} ({}), {}/{} running [{}]",
                r.cluster,
                r.service,
                r.release.as_deref().unwrap_or("not deployed by ferry"),
                short_td(&r.task_definition),
                r.running,
                r.desired,
                r.deployments.join("; ")
            );
            super::strategy_and_flight(&mut s, r);
            s.push('\n');
            if let Some(d) = &r.digest {
                let _ = writeln!(s, "    digest {d}");
            }
            if let Some(h) = &r.autoscaling_held {
                let _ = writeln!(s, "    AUTO SCALING HELD  {h}");
            }
        }
        for d in &e.drift {
            let _ = writeln!(s, "  DRIFT  {d}");
        }
        if let Some(err) = &e.records_error {
            let _ = writeln!(s, "  records could not be read: {err}");
        } else if e.history.is_empty() {
            let _ = writeln!(s, "  history: no records");
        } else {
            let _ = writeln!(s, "  history (newest first):");
            for h in &e.history {
                // Where the environment pins its key, each record says what its signature is.
                let trust = match &h.trust {
                    crate::records::sign::Trust::Unchecked => String::new(),
                    t => format!("  {}", t.word()),
                };
                let _ = writeln!(
                    s,
                    "    {}  {:<14} {:<9} {:<15} {}{trust}",
                    rfc3339_of(h.ended_at),
                    h.tag,
                    h.kind.as_str(),
                    h.result.as_str(),
                    h.digest
                );
            }
        }
    }
    s
}
