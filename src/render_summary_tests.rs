//! The step summary as a reader meets it: the Mermaid timeline of a rolling release, a
//! blue/green release, several services, a failed smoke check and a rollback, from seconds to
//! hours; names that are Mermaid or Markdown syntax; evidence with digests. The snapshots here
//! are also what `tests/browser` renders in headless Chromium.

use super::*;
use crate::render::timeline::{axis_format, label, timeline, words};
use crate::report::{Phase, PhaseKind};

/// Names a person may give a smoke check (or a cluster, a service) that are Mermaid or
/// Markdown syntax: keywords of a Gantt chart in any case, punctuation only, blank, comments,
/// separators, HTML, line breaks.
const HOSTILE: &[&str] = &[
    "",
    "!!!",
    "gantt",
    "topAxis",
    "inclusiveEndDates",
    "weekday monday",
    "click here",
    "section b",
    "title x",
    "dateFormat YYYY",
    "axisFormat %H",
    "excludes weekends",
    "EXCLUDES weekends",
    "todayMarker off",
    "includes 2000-01-01",
    "tickInterval 1day",
    "2000-01-01",
    "accTitle: x",
    "%% comment",
    "a:b;c#d",
    "a|b",
    "a\\|b",
    "<b>bold</b>",
    "line\nbreak",
    "`code`",
];

fn smoke(name: &str, ok: bool, seconds: f64) -> SmokeResult {
    SmokeResult {
        name: name.into(),
        url: "https://shop.example.com/healthz".into(),
        ok,
        attempts: 1,
        detail: if ok {
            "status 200".into()
        } else {
            format!("status 500, expected 200; image {DIGEST}")
        },
        seconds,
    }
}

fn named(cluster: &str, name: &str, state: ServiceState, seconds: f64) -> ServiceReport {
    let mut s = service(state, &[]);
    s.cluster = cluster.into();
    s.service = name.into();
    s.rollout_seconds = seconds;
    s
}

/// Every label starts with its fixed word, keeps no Mermaid or Markdown syntax, and a blank
/// name reads `unnamed`.
#[test]
fn labels_are_safe_by_construction() {
    for name in HOSTILE {
        let l = label("smoke", name);
        assert!(l.starts_with("smoke "), "{l:?}");
        assert!(
            l.chars()
                .all(|c| c.is_alphanumeric() || " /-_.".contains(c)),
            "{name:?} gave {l:?}"
        );
        assert!(!l.contains("  ") && !l.ends_with(' '), "{l:?}");
    }
    assert_eq!(label("smoke", ""), "smoke unnamed");
    assert_eq!(label("smoke", "!!!"), "smoke unnamed");
    assert_eq!(label("smoke", "  -- "), "smoke unnamed");
    assert_eq!(label("smoke", "title x"), "smoke title x");
    assert_eq!(
        label("smoke", "https://shop.example.com/healthz"),
        "smoke https //shop.example.com/healthz"
    );
    assert_eq!(words("a:b;c#d"), "a b c d");
}

/// Every line of the chart is a header line ferry writes, a section, or a task whose label
/// starts with a fixed word: no name can become a line of its own.
#[test]
fn every_timeline_line_is_ferrys_own() {
    let r = hostile_report();
    let chart = timeline(&r);
    let fixed = [
        "rollout :",
        "test traffic :",
        "traffic shift :",
        "bake :",
        "smoke ",
        "rollback ",
    ];
    let mut tasks = 0;
    for line in chart.lines().skip(5).filter(|l| *l != "```") {
        let l = line.strip_prefix("    ").expect(line);
        if l.starts_with("section ") {
            assert!(!l.contains(':'), "{l}");
            continue;
        }
        assert!(fixed.iter().any(|f| l.starts_with(f)), "{l}");
        let (_, data) = l.split_once(" :").expect(l);
        assert!(
            ["done,", "crit,", "active,", "milestone,"]
                .iter()
                .any(|t| data.starts_with(t)),
            "{l}"
        );
        tasks += 1;
    }
    // Each service's rollout and rollback, each smoke check.
    assert_eq!(tasks, 2 * r.services.len() + HOSTILE.len(), "{chart}");
}

#[test]
fn the_axis_reads_every_span() {
    assert_eq!(axis_format(45), "%M:%S");
    assert_eq!(axis_format(3599), "%M:%S");
    assert_eq!(axis_format(3600), "%H:%M");
    assert_eq!(axis_format(90 * 60), "%H:%M");
    assert_eq!(axis_format(20 * 3600), "%H:%M");
    assert_eq!(axis_format(86_400), "day %-j %H:%M");
}

#[test]
fn phases_come_from_the_stages_seen() {
    let seen: Vec<(String, f64)> = [
        ("SCALE_UP", 2.0),
        ("TEST_TRAFFIC_SHIFT", 40.0),
        ("POST_TEST_TRAFFIC_SHIFT", 45.0),
        ("PRODUCTION_TRAFFIC_SHIFT", 70.0),
        ("BAKE_TIME", 80.0),
        ("CLEAN_UP", 680.0),
    ]
    .iter()
    .map(|(s, t)| (s.to_string(), *t))
    .collect();
    let p = Phase::from_stages(&seen, 700.0);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.kind, p.start_seconds, p.seconds))
        .collect();
    assert_eq!(
        got,
        [
            (PhaseKind::TestTraffic, 40.0, 30.0),
            (PhaseKind::Shift, 70.0, 10.0),
            (PhaseKind::Bake, 80.0, 600.0)
        ]
    );
    assert!(Phase::from_stages(&[], 10.0).is_empty());
}

/// Human output shortens every digest but the one after the image.
#[test]
fn the_summary_states_one_digest_whole() {
    let md = crate::render::report_markdown(&hostile_report());
    assert_eq!(md.matches(DIGEST).count(), 1, "{md}");
    assert!(!md.contains(&format!("sha256:{:064}", 7)), "{md}");
}

/// A failed smoke check with names that are Mermaid and Markdown syntax (as smoke checks,
/// clusters and services), evidence with digests and a fence, and a timed rollback.
fn hostile_report() -> DeployReport {
    let mut r = report(
        Outcome::RolledBack,
        ServiceState::RolledBack,
        &[
            "event: (service api) deployment ecs-svc/1 failed: tasks failed to start.",
            "stopped task: image 222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@sha256:4f0e5c1d2b3a49586776655443322110ffeeddccbbaa99887766554433221100 exited 1",
            "log: ``` a fence | and a pipe <script>",
        ],
    );
    r.services[0].rollback_seconds = Some(31.2);
    let mut odd = named("title x", "section b", ServiceState::RolledBack, 61.0);
    odd.rollback_seconds = Some(20.0);
    r.services.push(odd);
    r.services
        .push(named("", "a|b", ServiceState::RolledBack, 12.0));
    r.smoke = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, n)| smoke(n, i % 3 != 0, 1.0 + i as f64))
        .collect();
    r
}

#[test]
fn summary_hostile_names_and_evidence() {
    insta::assert_snapshot!(crate::render::report_markdown(&hostile_report()));
}

/// A rolling release of three services over 90 minutes.
#[test]
fn summary_several_services_ninety_minutes() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    r.services = vec![
        named("shop", "api", ServiceState::Deployed, 5400.0),
        named("shop", "worker", ServiceState::Deployed, 1800.5),
        named("shop", "web", ServiceState::Deployed, 95.0),
    ];
    r.smoke.push(smoke("checkout", true, 12.0));
    insta::assert_snapshot!(crate::render::report_markdown(&r));
}

/// A rollout of 20 hours (a long bake), and one of more than a day.
#[test]
fn summary_twenty_hour_rollout() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    r.services[0].rollout_seconds = 20.0 * 3600.0;
    insta::assert_snapshot!(crate::render::report_markdown(&r));
    r.services[0].rollout_seconds = 26.0 * 3600.0 + 17.0;
    let day = timeline(&r);
    assert!(day.contains("axisFormat day %-j %H:%M"), "{day}");
    assert!(
        day.contains("smoke https //shop.example.com/healthz :done, 2000-01-02 02:00:17, 2s"),
        "{day}"
    );
    insta::assert_snapshot!(
        "summary_more_than_a_day",
        crate::render::report_markdown(&r)
    );
}

/// An ECS-native blue/green release: test traffic, the shift and the bake as their own bars,
/// the checks on the test listener and in the bake time in those phases, the final checks after.
#[test]
fn summary_blue_green() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    let svc = &mut r.services[0];
    svc.rollout_seconds = 700.0;
    svc.phases = vec![
        Phase {
            kind: PhaseKind::TestTraffic,
            start_seconds: 40.0,
            seconds: 30.0,
        },
        Phase {
            kind: PhaseKind::Shift,
            start_seconds: 70.0,
            seconds: 10.0,
        },
        Phase {
            kind: PhaseKind::Bake,
            start_seconds: 80.0,
            seconds: 600.0,
        },
    ];
    r.smoke.insert(
        0,
        smoke(
            "https://shop.example.com/healthz (test listener)",
            true,
            3.0,
        ),
    );
    r.smoke.insert(1, smoke("checkout (bake time)", true, 4.0));
    insta::assert_snapshot!(crate::render::report_markdown(&r));
}

/// One service's rollout failed (ECS rolled it back); ferry rolled the other back, with no
/// smoke checks run.
#[test]
fn summary_failed_rollout() {
    let mut r = report(
        Outcome::RolledBack,
        ServiceState::Failed,
        &["event: (service api) deployment failed: tasks failed to start."],
    );
    r.smoke.clear();
    r.services[0].rollout_seconds = 312.0;
    let mut web = named("shop", "web", ServiceState::RolledBack, 95.0);
    web.rollback_seconds = Some(64.0);
    r.services.push(web);
    r.verdict = failure_verdict(
        &r,
        &["shop/api: ECS rolled the deployment back (circuit breaker: 3 failed task(s), threshold 3)".into()],
        true,
    );
    insta::assert_snapshot!(crate::render::report_markdown(&r));
}
