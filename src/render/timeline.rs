//! The step summary's Mermaid Gantt chart, "Rollout timeline": each service's rollout (and
//! the parts of a blue/green release, when known), the smoke checks after it, and each
//! rollback after what failed.
//!
//! Safe by construction, whatever a name holds: every task label starts with a fixed word
//! (`rollout`, `smoke`, `rollback`, …) and keeps only letters, digits, spaces and `/-_.`, and a
//! blank name reads `unnamed`; so no name can start a Mermaid keyword line or end a task early.
//! Times are wall-clock dates counted from a fixed local midnight (`dateFormat YYYY-MM-DD
//! HH:mm:ss`): Mermaid reads them in the reader's time zone and formats the axis in it too,
//! so the axis reads time since the first update in every zone, and the axis format follows
//! the span (minutes and seconds, hours and minutes, days).

use std::fmt::Write as _;

use crate::deploy::ServiceState;
use crate::report::{DeployReport, PhaseKind, TargetState};
use crate::smoke::SmokeResult;

/// 2000-01-01T00:00:00Z: the chart's zero, written without a zone (read as local midnight).
const ZERO: u64 = 946_684_800;

/// The timeline as a fenced `mermaid` block, or nothing when nothing rolled out or was checked.
pub fn timeline(r: &DeployReport) -> String {
    if !r.targets.is_empty() {
        return waves_timeline(r);
    }
    let rolled: Vec<_> = r
        .services
        .iter()
        .filter(|s| s.rollout_seconds > 0.0)
        .collect();
    if rolled.is_empty() && r.smoke.is_empty() {
        return String::new();
    }
    let mut tasks = String::new();
    // Every rollout starts at zero (ferry updates the services together).
    let mut rollout_end = 0u64;
    for svc in &rolled {
        let secs = whole(svc.rollout_seconds);
        rollout_end = rollout_end.max(secs);
        let failed = svc.state != ServiceState::Deployed && svc.state != ServiceState::RolledBack;
        let _ = writeln!(
            tasks,
            "    section {}/{}",
            words(&svc.cluster),
            words(&svc.service)
        );
        task(
            &mut tasks,
            "rollout",
            if failed { "crit" } else { "done" },
            0,
            secs,
        );
        for p in &svc.phases {
            let start = p.start_seconds.max(0.0).floor() as u64;
            let secs = whole(p.seconds);
            rollout_end = rollout_end.max(start + secs);
            task(&mut tasks, phase_label(p.kind), "done", start, secs);
        }
    }
    // Checks a blue/green release ran in its test-traffic or bake phase sit in that phase.
    let phase_start = |kind: PhaseKind| {
        rolled
            .iter()
            .flat_map(|s| &s.phases)
            .find(|p| p.kind == kind)
            .map(|p| p.start_seconds.max(0.0).floor() as u64)
    };
    let (mut during, mut after) = (Vec::new(), Vec::new());
    for c in &r.smoke {
        match ran_in(c).and_then(phase_start) {
            Some(start) => during.push((c, start)),
            None => after.push(c),
        }
    }
    if !during.is_empty() {
        tasks.push_str("    section checks during the release\n");
        for (c, start) in &during {
            let status = if c.ok { "done" } else { "crit" };
            task(
                &mut tasks,
                &label("smoke", &c.name),
                status,
                *start,
                whole(c.seconds),
            );
        }
    }
    // The smoke checks run together once every rollout ended.
    let mut smoke_end = rollout_end;
    if !after.is_empty() {
        tasks.push_str("    section smoke checks\n");
        for c in after {
            let secs = whole(c.seconds);
            smoke_end = smoke_end.max(rollout_end + secs);
            let status = if c.ok { "done" } else { "crit" };
            task(
                &mut tasks,
                &label("smoke", &c.name),
                status,
                rollout_end,
                secs,
            );
        }
    }
    // ferry rolls back once the rollouts and the smoke checks have all ended, one service
    // after the other.
    let back: Vec<_> = rolled
        .iter()
        .filter(|s| s.state == ServiceState::RolledBack || s.rollback_seconds.is_some())
        .collect();
    let mut end = smoke_end;
    if !back.is_empty() {
        tasks.push_str("    section rollback\n");
        for svc in back {
            let name = label(
                "rollback",
                &format!("{}/{}", words(&svc.cluster), words(&svc.service)),
            );
            match svc.rollback_seconds {
                Some(s) => {
                    let secs = whole(s);
                    task(&mut tasks, &name, "active", end, secs);
                    end += secs;
                }
                // How long it took is not known: a point in time, not a bar.
                None => {
                    let _ = writeln!(tasks, "    {name} :milestone, active, {}, 0s", at(end));
                }
            }
        }
    }
    format!(
        "```mermaid\ngantt\n    title Rollout timeline\n    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat {}\n{tasks}```\n",
        axis_format(end)
    )
}

/// A release to several targets: a section per wave, a bar per target's run (critical when it
/// did not pass), and the runs that sent targets back after a later failure.
fn waves_timeline(r: &DeployReport) -> String {
    let mut tasks = String::new();
    let (mut end, mut wave) = (0u64, 0usize);
    for t in r
        .targets
        .iter()
        .filter(|t| t.state != TargetState::NotStarted)
    {
        if t.wave != wave {
            wave = t.wave;
            let _ = writeln!(tasks, "    section wave {wave}");
        }
        let (start, secs) = (t.started_seconds.max(0.0).floor() as u64, whole(t.seconds));
        end = end.max(start + secs);
        let ok = t.state.runs_release() || t.state == TargetState::Reverted;
        let status = if ok { "done" } else { "crit" };
        task(
            &mut tasks,
            &label("release", &t.target),
            status,
            start,
            secs,
        );
    }
    let back: Vec<_> = r
        .targets
        .iter()
        .filter_map(|t| Some((t, t.revert_started_seconds?)))
        .collect();
    if !back.is_empty() {
        tasks.push_str("    section rollback\n");
        for (t, began) in back {
            let (start, secs) = (
                began.max(0.0).floor() as u64,
                whole(t.revert_seconds.unwrap_or(0.0)),
            );
            end = end.max(start + secs);
            task(
                &mut tasks,
                &label("rollback", &t.target),
                "active",
                start,
                secs,
            );
        }
    }
    if tasks.is_empty() {
        return String::new();
    }
    format!(
        "```mermaid\ngantt\n    title Release timeline, wave by wave\n    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat {}\n{tasks}```\n",
        axis_format(end)
    )
}

/// A task label: the fixed `word`, then `name` in safe characters (`unnamed` when blank).
pub fn label(word: &str, name: &str) -> String {
    format!("{word} {}", words(name))
}

/// `name` with every character but letters, digits and `/-_.` made a space, runs of spaces
/// made one, or `unnamed` when nothing is left.
pub fn words(name: &str) -> String {
    let kept: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "/-_.".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let joined = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().any(char::is_alphanumeric) {
        joined
    } else {
        "unnamed".into()
    }
}

/// The phase a check ran in during a blue/green release: ferry names those checks `… (test
/// listener)` and `… (bake time)`.
fn ran_in(c: &SmokeResult) -> Option<PhaseKind> {
    if c.name.ends_with(" (test listener)") {
        Some(PhaseKind::TestTraffic)
    } else if c.name.ends_with(" (bake time)") {
        Some(PhaseKind::Bake)
    } else {
        None
    }
}

/// The fixed label of a part of a blue/green release.
fn phase_label(kind: PhaseKind) -> &'static str {
    match kind {
        PhaseKind::TestTraffic => "test traffic",
        PhaseKind::Shift => "traffic shift",
        PhaseKind::Bake => "bake",
    }
}

/// One task line: `label :status, start, seconds`.
fn task(s: &mut String, label: &str, status: &str, start: u64, secs: u64) {
    let _ = writeln!(s, "    {label} :{status}, {}, {secs}s", at(start));
}

/// Whole seconds, at least one, so every bar can be seen.
fn whole(secs: f64) -> u64 {
    secs.max(0.0).ceil().max(1.0) as u64
}

/// `secs` after the chart's zero, as a local date and time (`2000-01-01 00:00:43`).
fn at(secs: u64) -> String {
    crate::records::rfc3339_of(ZERO + secs)
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

/// The axis's format for a chart `span` seconds long: every tick reads a different time.
pub fn axis_format(span: u64) -> &'static str {
    if span < 3600 {
        "%M:%S"
    } else if span < 86_400 {
        "%H:%M"
    } else {
        "day %-j %H:%M"
    }
}
