//! `ferry status` and `ferry validate`: their text and JSON (a part of `render_tests`, whose
//! fixtures they share).

use super::*;

fn status_rows() -> Vec<EnvironmentStatus> {
    let rows = [
        ServiceStatus {
            environment: "production".into(),
            cluster: "shop".into(),
            service: "api".into(),
            task_definition: format!("{TD}:42"),
            release: Some("v1.4.0".into()),
            digest: Some(DIGEST.into()),
            image: Some(format!(
                "222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{DIGEST}"
            )),
            running: 3,
            desired: 3,
            deployments: vec!["PRIMARY shop-api:42 COMPLETED".into()],
            strategy: None,
            in_flight: None,
            autoscaling_held: None,
        },
        ServiceStatus {
            environment: "staging".into(),
            cluster: "shop-staging".into(),
            service: "api".into(),
            task_definition: format!("{TD}:7"),
            release: None,
            digest: None,
            image: Some("nginx:1.27".into()),
            running: 1,
            desired: 2,
            deployments: vec![
                "PRIMARY shop-api:7 IN_PROGRESS".into(),
                "ACTIVE shop-api:6 COMPLETED".into(),
            ],
            strategy: None,
            in_flight: None,
            autoscaling_held: None,
        },
    ];
    vec![
        EnvironmentStatus {
            environment: "production".into(),
            services: vec![rows[0].clone()],
            live_release: Some("v1.4.0".into()),
            live_since: Some("2026-11-18T11:06:40Z".into()),
            history: vec![
                summary("production", "v1.4.0", DIGEST, RecordResult::Succeeded, RunKind::Deploy, 1_795_000_000),
                summary("production", "v1.4.1", STAGING_DIGEST, RecordResult::RolledBack, RunKind::Deploy, 1_794_990_000),
            ],
            drift: Vec::new(),
            records_error: None,
        },
        EnvironmentStatus {
            environment: "staging".into(),
            services: vec![rows[1].clone()],
            live_release: Some("v1.4.0-rc.3".into()),
            live_since: Some("2026-11-18T06:40:00Z".into()),
            history: vec![summary("staging", "v1.4.0-rc.3", DIGEST, RecordResult::Succeeded, RunKind::Deploy, 1_794_984_000)],
            drift: vec!["shop-staging/api runs shop-api:7, but the last record (deploy v1.4.0-rc.3, succeeded) left it on shop-api:5: changed outside ferry (by hand, or ECS rolled back on its own)".into()],
            records_error: None,
        },
    ]
}

#[test]
fn status_text_and_json() {
    insta::assert_snapshot!(status_text(&status_rows()));
    insta::assert_json_snapshot!(status_rows());
}

fn checks() -> Vec<Check> {
    vec![
        Check {
            environment: "production".into(),
            check: "config".into(),
            ok: true,
            detail: "vX.Y.Z → account 222222222222 eu-west-1, 1 service(s), 1 smoke check(s), promotes from staging".into(),
        },
        Check {
            environment: "production".into(),
            check: "service shop/api".into(),
            ok: false,
            detail: "ECS service shop/api not found (or not ACTIVE) in eu-west-1".into(),
        },
    ]
}

#[test]
fn checks_text_and_json() {
    insta::assert_snapshot!(checks_text(&checks()));
    insta::assert_json_snapshot!(checks());
}

#[test]
fn status_shows_the_live_strategy_and_the_traffic_split() {
    let mut envs = status_rows();
    let mut row = envs[0].services.remove(0);
    row.deployments = vec![
        "PRIMARY shop-api:42 STEADY_STATE".into(),
        "ACTIVE shop-api:43 STABILIZING".into(),
    ];
    row.strategy = Some("CODE_DEPLOY".into());
    row.in_flight = Some(crate::deploy::bluegreen::InFlight {
        deployment: "d-ABC123456".into(),
        status: "InProgress".into(),
        replacement_weight: Some(10.0),
        stage: None,
    });
    let mut native = envs[1].services.remove(0);
    native.strategy = Some("BLUE_GREEN".into());
    native.in_flight = Some(crate::deploy::bluegreen::InFlight {
        deployment: "arn:aws:ecs:eu-west-1:111111111111:service-deployment/shop-staging/api/abc"
            .into(),
        status: "IN_PROGRESS".into(),
        replacement_weight: None,
        stage: Some("BAKE_TIME".into()),
    });
    envs[0].services = vec![row];
    envs[1].services = vec![native];
    insta::assert_snapshot!("status_text_blue_green", status_text(&envs));
}

#[test]
fn status_history_marks_each_record_verified_unsigned_or_invalid() {
    use crate::records::sign::Trust;
    let mut rows = status_rows();
    let staging = &mut rows[1];
    let base = staging.history[0].clone();
    staging.history = [
        Trust::Verified("0123456789abcdef".into()),
        Trust::Unsigned,
        Trust::Invalid("changed after signing".into()),
    ]
    .into_iter()
    .map(|trust| Summary {
        images: Default::default(),
        trust,
        ..base.clone()
    })
    .collect();
    let text = status_text(&rows);
    let marks: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("v1.4.0-rc.3    deploy"))
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(marks, ["verified", "unsigned", "invalid"], "{text}");
    // Where nothing is checked (production, no key), the line is as it always was.
    assert!(
        text.lines()
            .filter(|l| l.contains(" deploy ") && l.contains("v1.4.0 "))
            .all(|l| l.ends_with(DIGEST)),
        "{text}"
    );
}
