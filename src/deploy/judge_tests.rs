//! The judge as tables: each row is one read of ECS and the verdict it must give.

use super::*;

const OLD: &str = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:1";
const NEW: &str = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:2";
const OTHER: &str = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:3";

fn d(id: &str, status: &str, td: &str, state: &str) -> DeploymentView {
    DeploymentView {
        id: id.into(),
        status: status.into(),
        task_definition: td.into(),
        rollout_state: state.into(),
        rollout_reason: (state == "FAILED")
            .then(|| "ECS deployment circuit breaker: tasks failed to start.".into()),
        running: 1,
        desired: 2,
        pending: 1,
        failed: 0,
    }
}

fn svc(rollback: bool, deployments: Vec<DeploymentView>) -> ServiceView {
    ServiceView {
        task_definition: deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .map(|d| d.task_definition.clone()),
        deployments,
        rollback_enabled: rollback,
    }
}

fn sd(status: &str) -> ServiceDeploymentView {
    ServiceDeploymentView {
        arn: "arn:aws:ecs:us-east-1:111111111111:service-deployment/web/api/abc".into(),
        status: status.into(),
        status_reason: None,
        rollback_reason: None,
        circuit_breaker: status.starts_with("ROLLBACK").then_some((3, 3)),
        triggered_alarms: Vec::new(),
    }
}

fn ours() -> Ours {
    Ours {
        deployment_id: Some("ecs-svc/new".into()),
        task_definition: NEW.into(),
        previous_task_definition: OLD.into(),
        known_before: ["ecs-svc/old".to_string()].into(),
    }
}

/// The state before the update: what a lagging read still shows.
fn stale() -> ServiceView {
    svc(true, vec![d("ecs-svc/old", "PRIMARY", OLD, "COMPLETED")])
}

/// A short name for a judgement and the text it carries, for the tables.
fn kind(j: &Judgement) -> (&'static str, String) {
    match j {
        Judgement::NotVisibleYet => ("not-visible-yet", String::new()),
        Judgement::InProgress { progress } => ("in-progress", progress.clone()),
        Judgement::RollingBack { reason } => ("rolling-back", reason.clone()),
        Judgement::Succeeded => ("succeeded", String::new()),
        Judgement::Failed { reason } => ("failed", reason.clone()),
        Judgement::RollbackFailed { reason } => ("rollback-failed", reason.clone()),
        Judgement::RolledBack {
            reason,
            back_on_previous: true,
        } => ("rolled-back", reason.clone()),
        Judgement::RolledBack {
            reason,
            back_on_previous: false,
        } => ("rolled-back-elsewhere", reason.clone()),
        Judgement::Superseded { reason } => ("superseded", reason.clone()),
    }
}

struct Row {
    name: &'static str,
    svc: ServiceView,
    sd: Option<ServiceDeploymentView>,
    sd_expected: bool,
    want: &'static str,
    /// Text the verdict's reason must contain.
    says: &'static str,
}

fn row(
    name: &'static str,
    svc: ServiceView,
    sd: Option<ServiceDeploymentView>,
    sd_expected: bool,
    want: &'static str,
    says: &'static str,
) -> Row {
    Row {
        name,
        svc,
        sd,
        sd_expected,
        want,
        says,
    }
}

fn check(rows: Vec<Row>, ours: &Ours) {
    let mut failures = Vec::new();
    for r in &rows {
        let j = judge(ours, &r.svc, r.sd.as_ref(), r.sd_expected);
        let (k, text) = kind(&j);
        if k != r.want || !text.contains(r.says) {
            failures.push(format!(
                "{}: want {} saying {:?}, got {j:?}",
                r.name, r.want, r.says
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn describe_services_only() {
    let old_active = d("ecs-svc/old", "ACTIVE", OLD, "COMPLETED");
    check(
        vec![
            row(
                "a read from before the update",
                stale(),
                None,
                false,
                "not-visible-yet",
                "",
            ),
            row(
                "rolling out beside the old tasks",
                svc(
                    true,
                    vec![
                        d("ecs-svc/new", "PRIMARY", NEW, "IN_PROGRESS"),
                        old_active.clone(),
                    ],
                ),
                None,
                false,
                "in-progress",
                "running 1/2",
            ),
            row(
                "complete but the old deployment still drains",
                svc(
                    true,
                    vec![
                        d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED"),
                        old_active.clone(),
                    ],
                ),
                None,
                false,
                "in-progress",
                "",
            ),
            row(
                "complete and alone",
                svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED")]),
                None,
                false,
                "succeeded",
                "",
            ),
            row(
                "failed, no circuit-breaker rollback",
                svc(
                    false,
                    vec![
                        d("ecs-svc/new", "PRIMARY", NEW, "FAILED"),
                        old_active.clone(),
                    ],
                ),
                None,
                false,
                "failed",
                "circuit breaker",
            ),
            row(
                "failed, ECS has not started its rollback yet",
                svc(
                    true,
                    vec![
                        d("ecs-svc/new", "PRIMARY", NEW, "FAILED"),
                        old_active.clone(),
                    ],
                ),
                None,
                false,
                "rolling-back",
                "circuit breaker",
            ),
            row(
                "failed, ECS's rollback deployment in flight",
                svc(
                    true,
                    vec![
                        d("ecs-svc/rb", "PRIMARY", OLD, "IN_PROGRESS"),
                        d("ecs-svc/new", "ACTIVE", NEW, "FAILED"),
                    ],
                ),
                None,
                false,
                "rolling-back",
                "",
            ),
            row(
                "gone, ECS's rollback deployment settled",
                svc(true, vec![d("ecs-svc/rb", "PRIMARY", OLD, "COMPLETED")]),
                None,
                false,
                "rolled-back",
                "rolled back",
            ),
            row(
                "gone, the rollback deployment still in flight",
                svc(
                    true,
                    vec![
                        d("ecs-svc/rb", "PRIMARY", OLD, "IN_PROGRESS"),
                        old_active.clone(),
                    ],
                ),
                None,
                false,
                "rolling-back",
                "",
            ),
            row(
                "gone, somebody else's deployment replaced it",
                svc(
                    true,
                    vec![d("ecs-svc/theirs", "PRIMARY", OTHER, "IN_PROGRESS")],
                ),
                None,
                false,
                "superseded",
                "web:3",
            ),
            row(
                "a newer deployment that is not PRIMARY proves nothing",
                svc(
                    true,
                    vec![
                        d("ecs-svc/old", "PRIMARY", OLD, "COMPLETED"),
                        d("ecs-svc/x", "ACTIVE", OTHER, "IN_PROGRESS"),
                    ],
                ),
                None,
                false,
                "not-visible-yet",
                "",
            ),
        ],
        &ours(),
    );
}

#[test]
fn with_the_service_deployments_api() {
    let done = || svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED")]);
    let rolled = || svc(true, vec![d("ecs-svc/rb", "PRIMARY", OLD, "COMPLETED")]);
    let mut alarm = sd("ROLLBACK_SUCCESSFUL");
    alarm.triggered_alarms = vec!["web-5xx".into()];
    alarm.rollback_reason = Some("alarm web-5xx in ALARM".into());
    let mut stopped = sd("STOPPED");
    stopped.triggered_alarms = vec!["web-latency".into()];
    check(
        vec![
            row(
                "not found yet, stale read",
                stale(),
                None,
                true,
                "not-visible-yet",
                "",
            ),
            row(
                "not found yet, rollout looks complete: wait for bake time",
                done(),
                None,
                true,
                "in-progress",
                "bake time",
            ),
            row(
                "PENDING, stale read",
                stale(),
                Some(sd("PENDING")),
                true,
                "not-visible-yet",
                "",
            ),
            row(
                "IN_PROGRESS during bake time",
                done(),
                Some(sd("IN_PROGRESS")),
                true,
                "in-progress",
                "bake time",
            ),
            row(
                "SUCCESSFUL and the service runs ours",
                done(),
                Some(sd("SUCCESSFUL")),
                true,
                "succeeded",
                "",
            ),
            row(
                "SUCCESSFUL but the read predates ours",
                stale(),
                Some(sd("SUCCESSFUL")),
                true,
                "not-visible-yet",
                "",
            ),
            row(
                "SUCCESSFUL but a newer deployment is PRIMARY",
                svc(
                    true,
                    vec![
                        d("ecs-svc/theirs", "PRIMARY", OTHER, "IN_PROGRESS"),
                        d("ecs-svc/new", "ACTIVE", NEW, "COMPLETED"),
                    ],
                ),
                Some(sd("SUCCESSFUL")),
                true,
                "superseded",
                "web:3",
            ),
            row(
                "ROLLBACK_REQUESTED",
                done(),
                Some(sd("ROLLBACK_REQUESTED")),
                true,
                "rolling-back",
                "threshold 3",
            ),
            row(
                "ROLLBACK_IN_PROGRESS",
                done(),
                Some(sd("ROLLBACK_IN_PROGRESS")),
                true,
                "rolling-back",
                "circuit breaker",
            ),
            row(
                "ROLLBACK_SUCCESSFUL and the read shows it",
                rolled(),
                Some(sd("ROLLBACK_SUCCESSFUL")),
                true,
                "rolled-back",
                "circuit breaker: 3 failed",
            ),
            row(
                "ROLLBACK_SUCCESSFUL, read still stale",
                stale(),
                Some(sd("ROLLBACK_SUCCESSFUL")),
                true,
                "rolling-back",
                "",
            ),
            row(
                "ROLLBACK_SUCCESSFUL onto another revision",
                svc(true, vec![d("ecs-svc/rb", "PRIMARY", OTHER, "COMPLETED")]),
                Some(sd("ROLLBACK_SUCCESSFUL")),
                true,
                "rolled-back-elsewhere",
                "",
            ),
            row(
                "an alarm rolled it back",
                rolled(),
                Some(alarm),
                true,
                "rolled-back",
                "alarms triggered: web-5xx",
            ),
            row(
                "ROLLBACK_FAILED",
                done(),
                Some(sd("ROLLBACK_FAILED")),
                true,
                "rollback-failed",
                "FAILED too",
            ),
            row(
                "STOPPED (alarm without rollback)",
                done(),
                Some(stopped),
                true,
                "superseded",
                "web-latency",
            ),
            row(
                "STOP_REQUESTED",
                done(),
                Some(sd("STOP_REQUESTED")),
                true,
                "in-progress",
                "stop was requested",
            ),
            row(
                "IN_PROGRESS but DescribeServices already shows the failure",
                svc(false, vec![d("ecs-svc/new", "PRIMARY", NEW, "FAILED")]),
                Some(sd("IN_PROGRESS")),
                true,
                "failed",
                "circuit breaker",
            ),
        ],
        &ours(),
    );
}

#[test]
fn without_a_deployment_id_ours_is_the_new_one_running_our_revision() {
    let o = Ours {
        deployment_id: None,
        ..ours()
    };
    check(
        vec![
            row(
                "found by revision",
                svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED")]),
                None,
                false,
                "succeeded",
                "",
            ),
            row(
                "the pre-update read",
                stale(),
                None,
                false,
                "not-visible-yet",
                "",
            ),
        ],
        &o,
    );
}

#[test]
fn in_flight_lists_what_is_busy() {
    let idle = svc(true, vec![d("ecs-svc/old", "PRIMARY", OLD, "COMPLETED")]);
    assert_eq!(in_flight(&idle), None);
    let busy = svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "IN_PROGRESS")]);
    assert!(in_flight(&busy).unwrap().contains("IN_PROGRESS"));
    let two = svc(
        true,
        vec![
            d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED"),
            d("ecs-svc/old", "ACTIVE", OLD, "COMPLETED"),
        ],
    );
    assert!(in_flight(&two).unwrap().contains("ACTIVE web:1"));
}

#[test]
fn somebody_elses_deployment_is_left_alone() {
    let theirs = svc(
        true,
        vec![d("ecs-svc/theirs", "PRIMARY", OTHER, "IN_PROGRESS")],
    );
    assert_eq!(
        replaced_by(&ours(), &theirs).as_deref(),
        Some("deployment ecs-svc/theirs of web:3")
    );
    let mine = svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED")]);
    assert_eq!(replaced_by(&ours(), &mine), None);
    let ecs_rollback = svc(true, vec![d("ecs-svc/rb", "PRIMARY", OLD, "IN_PROGRESS")]);
    assert_eq!(replaced_by(&ours(), &ecs_rollback), None);
    assert_eq!(
        replaced_by(&ours(), &stale()),
        None,
        "a stale read is not a replacement"
    );
}

#[test]
fn pending_names_what_is_left() {
    let s = svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "IN_PROGRESS")]);
    assert_eq!(
        pending(&ours(), &s),
        "1 of 2 task(s) running, 1 pending, 0 failed, rollout IN_PROGRESS"
    );
    assert!(pending(&ours(), &stale()).contains("did not list this run's deployment yet"));
    let rolling = svc(true, vec![d("ecs-svc/rb", "PRIMARY", OLD, "IN_PROGRESS")]);
    assert_eq!(
        pending(&ours(), &rolling),
        "ECS's rollback to web:1 (ecs-svc/rb): 1 of 2 task(s) running, 1 pending, 0 failed, rollout IN_PROGRESS"
    );
}

#[test]
fn plainly_rolling_only_while_ours_is_primary_and_in_progress() {
    let o = ours();
    let rows: Vec<(&str, ServiceView, bool)> = vec![
        (
            "ours PRIMARY, IN_PROGRESS, the old one draining",
            svc(
                true,
                vec![
                    d("ecs-svc/new", "PRIMARY", NEW, "IN_PROGRESS"),
                    d("ecs-svc/old", "ACTIVE", OLD, "COMPLETED"),
                ],
            ),
            true,
        ),
        (
            "ours COMPLETED: bake time and alarms decide now",
            svc(true, vec![d("ecs-svc/new", "PRIMARY", NEW, "COMPLETED")]),
            false,
        ),
        (
            "ours FAILED (circuit breaker)",
            svc(
                true,
                vec![
                    d("ecs-svc/new", "ACTIVE", NEW, "FAILED"),
                    d("ecs-svc/rb", "PRIMARY", OLD, "IN_PROGRESS"),
                ],
            ),
            false,
        ),
        ("a read from before the update", stale(), false),
        (
            "another deployment is PRIMARY and rolling",
            svc(
                true,
                vec![
                    d("ecs-svc/other", "PRIMARY", OTHER, "IN_PROGRESS"),
                    d("ecs-svc/new", "ACTIVE", NEW, "IN_PROGRESS"),
                ],
            ),
            false,
        ),
    ];
    for (name, view, want) in rows {
        assert_eq!(plainly_rolling(&o, &view), want, "{name}");
    }
}
