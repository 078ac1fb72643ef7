//! A release of several images (each named in the plan, the report and the step summary) and
//! a release to several targets in waves (a row per target, the timeline wave by wave).

use super::*;
use crate::report::TargetState;

/// Production promoting a release of two images (`web` first, then `worker`).
fn two_image_plan() -> Plan {
    let mut p = production_plan(true);
    let d = format!("sha256:{}", "c".repeat(64));
    let mut source = image("staging", "111111111111", "v1.4.0-rc.2", Some(&d));
    source.repository = "shop/worker".into();
    let mut target = image("production", "222222222222", "v1.4.0", None);
    target.repository = "shop/worker".into();
    p.also.push(crate::plan::SetImage {
        name: "worker".into(),
        source,
        target,
    });
    p
}

#[test]
fn plan_text_of_two_images() {
    insta::assert_snapshot!(plan_text(&two_image_plan()));
}

#[test]
fn report_of_two_images_names_each() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    let host = "222222222222.dkr.ecr.eu-west-1.amazonaws.com";
    r.images = [
        (
            "web".to_string(),
            format!("{host}/shop/web@sha256:{}", "a".repeat(64)),
        ),
        (
            "worker".to_string(),
            format!("{host}/shop/worker@sha256:{}", "c".repeat(64)),
        ),
    ]
    .into();
    insta::assert_snapshot!(report_text(&r));
    insta::assert_snapshot!(crate::render::report_markdown(&r));
}

/// A release to two targets that failed in wave 2 and went back everywhere.
fn waves_report() -> DeployReport {
    let mut r = report(Outcome::RolledBack, ServiceState::RolledBack, &[]);
    let target = |name: &str, wave: usize, state: TargetState, start: f64, secs: f64| {
        crate::report::TargetReport {
            target: name.into(),
            wave,
            account_id: "222222222222".into(),
            region: name.into(),
            state,
            previous_release: Some("v1.3.2".into()),
            report: None,
            error: None,
            reverted: None,
            revert_error: None,
            started_seconds: start,
            seconds: secs,
            revert_started_seconds: None,
            revert_seconds: None,
        }
    };
    let mut east = target("us-east-1", 1, TargetState::Reverted, 0.0, 41.2);
    east.revert_started_seconds = Some(83.0);
    east.revert_seconds = Some(39.5);
    r.targets = vec![
        east,
        target("eu-west-1", 2, TargetState::RolledBack, 41.3, 41.0),
    ];
    r.services.clear();
    r.smoke.clear();
    r.verdict = "v1.4.0 failed in production; the release stopped (rollback-all) and every target it changed is back: production/us-east-1 (wave 1): rolled back to v1.3.2; production/eu-west-1 (wave 2): rolled back".into();
    r
}

#[test]
fn a_release_in_waves_names_each_target() {
    let r = waves_report();
    insta::assert_snapshot!(report_text(&r));
    insta::assert_snapshot!(crate::render::report_markdown(&r));
    assert_eq!(
        crate::render::targets_line(&r),
        "v1.4.0: us-east-1 reverted, eu-west-1 rolled back"
    );
}
