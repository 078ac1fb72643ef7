//! The blue/green decisions as tables: each row is one read of CodeDeploy and what it means.

use super::*;

fn dep(status: &str) -> DeploymentView {
    DeploymentView {
        id: "d-ABC123456".into(),
        status: status.into(),
        ..Default::default()
    }
}

fn target(events: &[(&str, &str)], green_weight: f64) -> TargetView {
    TargetView {
        events: events
            .iter()
            .map(|(n, s)| EventView {
                name: (*n).into(),
                status: (*s).into(),
                message: (*s == "Failed").then(|| "tasks failed health checks.".into()),
            })
            .collect(),
        task_sets: vec![
            TaskSetView {
                label: "Blue".into(),
                weight: 100.0 - green_weight,
                running: 2,
                desired: 2,
            },
            TaskSetView {
                label: "Green".into(),
                weight: green_weight,
                running: 2,
                desired: 2,
            },
        ],
    }
}

/// A short name for a stage, for the tables.
fn short(s: &Stage) -> String {
    match s {
        Stage::Starting { .. } => "starting".into(),
        Stage::Ready => "ready".into(),
        Stage::Shifting { weight } => format!("shifting {weight}"),
        Stage::Shifted { termination_wait } => format!("shifted wait={termination_wait}"),
        Stage::Failed { rollback, .. } => format!("failed rollback={}", rollback.is_some()),
    }
}

#[test]
fn stages() {
    let installing = target(
        &[
            ("BeforeInstall", "Succeeded"),
            ("Install", "InProgress"),
            ("AllowTraffic", "Pending"),
        ],
        0.0,
    );
    let canary = target(
        &[("Install", "Succeeded"), ("AllowTraffic", "InProgress")],
        10.0,
    );
    let shifted = target(
        &[
            ("AllowTraffic", "Succeeded"),
            ("AfterAllowTraffic", "Succeeded"),
        ],
        100.0,
    );
    let failed = target(&[("Install", "Failed")], 0.0);
    let mut rolled = dep("Stopped");
    rolled.rollback_id = Some("d-ROLLBACK1".into());
    let mut waiting = dep("InProgress");
    waiting.termination_wait = true;
    let rows: Vec<(&str, DeploymentView, Option<&TargetView>, &str)> = vec![
        ("just created", dep("Created"), None, "starting"),
        (
            "installing",
            dep("InProgress"),
            Some(&installing),
            "starting",
        ),
        (
            "held on test traffic",
            dep("Ready"),
            Some(&installing),
            "ready",
        ),
        (
            "canary step",
            dep("InProgress"),
            Some(&canary),
            "shifting 10",
        ),
        (
            "all shifted, original kept",
            dep("InProgress"),
            Some(&shifted),
            "shifted wait=true",
        ),
        (
            "termination wait flag alone",
            waiting,
            None,
            "shifted wait=true",
        ),
        (
            "succeeded",
            dep("Succeeded"),
            Some(&shifted),
            "shifted wait=false",
        ),
        (
            "failed, no rollback",
            dep("Failed"),
            Some(&failed),
            "failed rollback=false",
        ),
        (
            "stopped and rolled back",
            rolled,
            None,
            "failed rollback=true",
        ),
    ];
    for (what, d, t, want) in rows {
        assert_eq!(short(&stage(&d, t)), want, "{what}");
    }
}

#[test]
fn failure_reason_has_codedeploy_error_and_event_diagnostics() {
    let mut d = dep("Failed");
    d.error = Some(("ECS_UPDATE_ERROR".into(), "replacement not steady.".into()));
    let t = target(&[("Install", "Failed")], 0.0);
    assert_eq!(
        failure_reason(&d, Some(&t)),
        "CodeDeploy deployment d-ABC123456 Failed: ECS_UPDATE_ERROR: replacement not steady; lifecycle event Install failed: tasks failed health checks"
    );
    assert_eq!(
        failure_reason(&dep("Stopped"), None),
        "CodeDeploy deployment d-ABC123456 Stopped"
    );
}

#[test]
fn rollback_stages() {
    let mut failed = dep("Failed");
    failed.error = Some(("ECS_UPDATE_ERROR".into(), "could not reroute".into()));
    let rows = [
        (dep("Created"), RollbackStage::InProgress),
        (dep("InProgress"), RollbackStage::InProgress),
        (dep("Succeeded"), RollbackStage::Succeeded),
        (
            failed,
            RollbackStage::Failed {
                reason:
                    "CodeDeploy deployment d-ABC123456 Failed: ECS_UPDATE_ERROR: could not reroute"
                        .into(),
            },
        ),
    ];
    for (d, want) in rows {
        assert_eq!(rollback_stage(&d), want, "{}", d.status);
    }
}

#[test]
fn shift_time_and_timeouts() {
    let rows = [
        (Routing::AllAtOnce, 0),
        (
            Routing::Canary {
                percent: 10,
                minutes: 5,
            },
            300,
        ),
        (
            Routing::Linear {
                percent: 10,
                minutes: 1,
            },
            540,
        ),
        (
            Routing::Linear {
                percent: 30,
                minutes: 2,
            },
            360,
        ),
    ];
    for (r, secs) in rows {
        assert_eq!(r.shift_time().as_secs(), secs, "{r:?}");
    }
    let (t, why) = timeout(
        Duration::from_secs(210),
        Duration::from_secs(60),
        Routing::Canary {
            percent: 10,
            minutes: 5,
        },
        None,
    );
    assert_eq!(t.as_secs(), 210 + 60 + 300 + 300);
    assert!(
        why.contains("10% of production traffic, the rest 5 min later"),
        "{why}"
    );
    let (t, why) = timeout(
        Duration::from_secs(1),
        Duration::ZERO,
        Routing::AllAtOnce,
        Some(42),
    );
    assert_eq!(t.as_secs(), 42);
    assert!(why.contains("rollout_timeout_seconds"));
}

#[test]
fn test_checks_need_a_hold_before_rerouting() {
    let rows = [
        (ReadyOption::default(), true, true),
        (ReadyOption::default(), false, false),
        (
            ReadyOption {
                stop: true,
                wait_minutes: 60,
            },
            true,
            false,
        ),
        (
            ReadyOption {
                stop: false,
                wait_minutes: 10,
            },
            true,
            false,
        ),
    ];
    for (ready, checks, refused) in rows {
        assert_eq!(
            refuse_without_hold(ready, checks).is_some(),
            refused,
            "{ready:?} checks={checks}"
        );
    }
}

#[test]
fn traffic_line_reads_the_split() {
    assert_eq!(
        traffic_line(&target(&[], 10.0)),
        "production traffic: 10% on the replacement, 90% on the original"
    );
}

/// (has checks, checks ran) for the test listener and for production.
type Checks = ((bool, bool), (bool, bool));

#[test]
fn native_steps() {
    use NativeStep::*;
    let both = ((true, false), (true, false));
    let rows: Vec<(&str, Option<&str>, Checks, NativeStep)> = vec![
        ("IN_PROGRESS", None, both, Wait),
        ("PENDING", Some("RECONCILE_SERVICE"), both, Wait),
        ("IN_PROGRESS", Some("SCALE_UP"), both, Wait),
        (
            "IN_PROGRESS",
            Some("TEST_TRAFFIC_SHIFT"),
            both,
            CheckTestTraffic,
        ),
        (
            "IN_PROGRESS",
            Some("POST_TEST_TRAFFIC_SHIFT"),
            both,
            CheckTestTraffic,
        ),
        // Late, but the test listener still serves the new revision: still worth checking.
        (
            "IN_PROGRESS",
            Some("PRODUCTION_TRAFFIC_SHIFT"),
            both,
            CheckTestTraffic,
        ),
        (
            "IN_PROGRESS",
            Some("PRODUCTION_TRAFFIC_SHIFT"),
            ((true, true), (true, false)),
            Wait,
        ),
        (
            "IN_PROGRESS",
            Some("BAKE_TIME"),
            ((true, true), (true, false)),
            CheckProduction,
        ),
        (
            "IN_PROGRESS",
            Some("BAKE_TIME"),
            ((true, true), (true, true)),
            HandOver,
        ),
        (
            "IN_PROGRESS",
            Some("BAKE_TIME"),
            ((false, false), (false, false)),
            HandOver,
        ),
        (
            "IN_PROGRESS",
            Some("TEST_TRAFFIC_SHIFT"),
            ((false, false), (true, false)),
            Wait,
        ),
        (
            "IN_PROGRESS",
            Some("CLEAN_UP"),
            ((true, true), (true, false)),
            HandOver,
        ),
        (
            "ROLLBACK_IN_PROGRESS",
            Some("TEST_TRAFFIC_SHIFT"),
            both,
            HandOver,
        ),
        ("SUCCESSFUL", Some("CLEAN_UP"), both, HandOver),
    ];
    for (status, stage, (test, prod), want) in rows {
        assert_eq!(
            native_step(status, stage, false, test, prod),
            want,
            "{status} {stage:?} {test:?} {prod:?}"
        );
    }
}

#[test]
fn native_steps_at_a_pause_hook() {
    use NativeStep::*;
    let fresh = ((true, false), (true, false));
    let tested = ((true, true), (true, false));
    let rows: Vec<(&str, Checks, NativeStep)> = vec![
        // Held after the test-traffic shift: check, then continue.
        ("POST_TEST_TRAFFIC_SHIFT", fresh, CheckTestTraffic),
        ("POST_TEST_TRAFFIC_SHIFT", tested, Continue),
        (
            "POST_TEST_TRAFFIC_SHIFT",
            ((false, false), (true, false)),
            Continue,
        ),
        // Held after the production shift: the production checks, then continue.
        ("POST_PRODUCTION_TRAFFIC_SHIFT", tested, CheckProduction),
        (
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            ((true, true), (true, true)),
            Continue,
        ),
        // Somebody else's pause: not ferry's to lift.
        ("PRE_SCALE_UP", fresh, Wait),
        ("POST_SCALE_UP", fresh, Wait),
    ];
    for (stage, (test, prod), want) in rows {
        assert_eq!(
            native_step("IN_PROGRESS", Some(stage), true, test, prod),
            want,
            "{stage} {test:?} {prod:?}"
        );
    }
    assert_eq!(
        native_step(
            "ROLLBACK_IN_PROGRESS",
            Some("POST_TEST_TRAFFIC_SHIFT"),
            true,
            fresh.0,
            fresh.1
        ),
        HandOver
    );
}

#[test]
fn stages_passed_between_two_reads() {
    assert_eq!(
        stages_between("SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT"),
        [
            "POST_SCALE_UP",
            "TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT"
        ]
    );
    // Next to each other, the same, backwards, or unknown: nothing was missed.
    for (from, to) in [
        ("SCALE_UP", "POST_SCALE_UP"),
        ("BAKE_TIME", "BAKE_TIME"),
        ("BAKE_TIME", "SCALE_UP"),
        ("", "SCALE_UP"),
        ("SCALE_UP", "SOMETHING_NEW"),
    ] {
        assert!(stages_between(from, to).is_empty(), "{from} → {to}");
    }
}
