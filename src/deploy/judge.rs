//! Pure decisions over what ECS answered: is this run's deployment still in flight, did it
//! succeed, fail, get rolled back, or was it superseded? The rollout loop (`follow`) only
//! feeds these functions; every branch is a row in the tables below.
//!
//! ECS reads are eventually consistent: right after `UpdateService`, `DescribeServices` and
//! `ListServiceDeployments` may still show the state before it. So nothing is concluded from
//! a read that may predate the update. "Gone", "superseded" and "back on the previous
//! revision" need positive evidence: a deployment that did not exist before the update (ECS's
//! rollback deployment, or somebody else's), or the service deployment's own status.

use std::collections::HashSet;

use aws_sdk_ecs::types::{Service, ServiceDeployment};

use crate::aws::ecs::short_td;

/// A deployment as `DescribeServices` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentView {
    /// `ecs-svc/…`
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    /// Full task-definition ARN.
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: String,
    /// Why the rollout is in that state.
    pub rollout_reason: Option<String>,
    /// Tasks running.
    pub running: i32,
    /// Tasks wanted.
    pub desired: i32,
    /// Tasks pending.
    pub pending: i32,
    /// Tasks that failed to start or stay healthy.
    pub failed: i32,
}

/// A service as `DescribeServices` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceView {
    /// The service's task definition (its PRIMARY deployment's).
    pub task_definition: Option<String>,
    /// Every deployment listed.
    pub deployments: Vec<DeploymentView>,
    /// Circuit breaker enabled with rollback.
    pub rollback_enabled: bool,
}

impl ServiceView {
    /// From the SDK's `Service`.
    pub fn from_sdk(svc: &Service) -> Self {
        ServiceView {
            task_definition: svc.task_definition().map(str::to_string),
            deployments: svc
                .deployments()
                .iter()
                .map(|d| DeploymentView {
                    id: d.id().unwrap_or_default().to_string(),
                    status: d.status().unwrap_or_default().to_string(),
                    task_definition: d.task_definition().unwrap_or_default().to_string(),
                    rollout_state: d
                        .rollout_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    rollout_reason: d.rollout_state_reason().map(str::to_string),
                    running: d.running_count(),
                    desired: d.desired_count(),
                    pending: d.pending_count(),
                    failed: d.failed_tasks(),
                })
                .collect(),
            rollback_enabled: svc
                .deployment_configuration()
                .and_then(|d| d.deployment_circuit_breaker())
                .is_some_and(|cb| cb.enable() && cb.rollback()),
        }
    }

    fn primary(&self) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
}

/// A service deployment as `DescribeServiceDeployments` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDeploymentView {
    /// Its ARN.
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOP_REQUESTED, STOPPED, ROLLBACK_REQUESTED,
    /// ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED.
    pub status: String,
    /// ECS's reason for the status.
    pub status_reason: Option<String>,
    /// Why it was rolled back.
    pub rollback_reason: Option<String>,
    /// Circuit breaker: (failed tasks, threshold), when it counted any.
    pub circuit_breaker: Option<(i32, i32)>,
    /// Alarms that fired.
    pub triggered_alarms: Vec<String>,
}

impl ServiceDeploymentView {
    /// From the SDK's `ServiceDeployment`.
    pub fn from_sdk(sd: &ServiceDeployment) -> Self {
        ServiceDeploymentView {
            arn: sd.service_deployment_arn().unwrap_or_default().to_string(),
            status: sd
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_reason: sd
                .status_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            rollback_reason: sd
                .rollback()
                .and_then(|r| r.reason())
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            circuit_breaker: sd
                .deployment_circuit_breaker()
                .filter(|cb| cb.failure_count() > 0)
                .map(|cb| (cb.failure_count(), cb.threshold())),
            triggered_alarms: sd
                .alarms()
                .map(|a| a.triggered_alarm_names().to_vec())
                .unwrap_or_default(),
        }
    }
}

/// What this run knows of its own deployment, from `UpdateService`'s own answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ours {
    /// The PRIMARY deployment id `UpdateService` answered (the only certain read).
    pub deployment_id: Option<String>,
    /// The revision this deployment rolls out.
    pub task_definition: String,
    /// The revision the service ran before.
    pub previous_task_definition: String,
    /// Deployment ids that existed before the update: a read showing only these may predate it.
    pub known_before: HashSet<String>,
}

impl Ours {
    fn is_ours(&self, d: &DeploymentView) -> bool {
        match &self.deployment_id {
            Some(id) => d.id == *id,
            None => d.task_definition == self.task_definition && !self.known_before.contains(&d.id),
        }
    }

    /// Deployments started after ours: ECS's rollback deployment, or somebody else's.
    fn newer<'a>(&self, svc: &'a ServiceView) -> Vec<&'a DeploymentView> {
        svc.deployments
            .iter()
            .filter(|d| !self.known_before.contains(&d.id) && !self.is_ours(d))
            .collect()
    }
}

/// The verdict on one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing in this read shows our deployment or anything after it: it may predate the update.
    NotVisibleYet,
    /// Rolling out.
    InProgress {
        /// One line of progress.
        progress: String,
    },
    /// Failed, and ECS is rolling it back.
    RollingBack {
        /// Why it failed.
        reason: String,
    },
    /// Rolled out, and ECS says it ended well.
    Succeeded,
    /// Failed, and the service is not back on its previous revision (no circuit-breaker
    /// rollback configured): ferry must bring it back.
    Failed {
        /// Why.
        reason: String,
    },
    /// Failed, and ECS's own rollback failed too: trying again blindly would not help.
    RollbackFailed {
        /// Why.
        reason: String,
    },
    /// Failed and rolled back by ECS.
    RolledBack {
        /// Why it failed.
        reason: String,
        /// Whether a read after the rollback shows the previous revision running alone.
        back_on_previous: bool,
    },
    /// Another deployment replaced ours before it ended: not ours to judge or undo.
    Superseded {
        /// What replaced it.
        reason: String,
    },
}

/// Judges one read. `sd` is our service deployment when the service-deployments API found it;
/// `sd_expected` says that API is in use, so a rollout that looks complete in
/// `DescribeServices` still waits for the service deployment's own end (bake time, alarms).
pub fn judge(
    ours: &Ours,
    svc: &ServiceView,
    sd: Option<&ServiceDeploymentView>,
    sd_expected: bool,
) -> Judgement {
    if let Some(sd) = sd {
        if let Some(j) = judge_service_deployment(ours, svc, sd) {
            return j;
        }
    }
    judge_service(
        ours,
        svc,
        sd_expected && sd.is_none_or(|s| !ended(&s.status)),
    )
}

fn ended(status: &str) -> bool {
    matches!(
        status,
        "SUCCESSFUL" | "STOPPED" | "ROLLBACK_SUCCESSFUL" | "ROLLBACK_FAILED"
    )
}

/// The service deployment's status decides, with `DescribeServices` confirming where the
/// service stands; `None` leaves it to `DescribeServices`.
fn judge_service_deployment(
    ours: &Ours,
    svc: &ServiceView,
    sd: &ServiceDeploymentView,
) -> Option<Judgement> {
    let primary = svc.primary();
    let primary_is_ours = primary.is_some_and(|p| ours.is_ours(p));
    let newer_primary = primary.filter(|p| ours.newer(svc).iter().any(|n| n.id == p.id));
    match sd.status.as_str() {
        "SUCCESSFUL" if primary_is_ours => Some(Judgement::Succeeded),
        "SUCCESSFUL" => Some(match newer_primary {
            Some(p) => Judgement::Superseded {
                reason: format!(
                    "the deployment reported SUCCESSFUL, but deployment {} ({}) started after it and is now PRIMARY",
                    p.id,
                    short_td(&p.task_definition)
                ),
            },
            // The read predates our deployment: wait for it to catch up.
            None => Judgement::NotVisibleYet,
        }),
        "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" => Some(Judgement::RollingBack {
            reason: rollback_reason(sd),
        }),
        "ROLLBACK_SUCCESSFUL" => Some(match newer_primary {
            Some(p) => Judgement::RolledBack {
                reason: rollback_reason(sd),
                back_on_previous: p.task_definition == ours.previous_task_definition
                    && svc.deployments.len() == 1,
            },
            // ECS says it is done, but this read does not show the rollback deployment yet.
            None => Judgement::RollingBack {
                reason: rollback_reason(sd),
            },
        }),
        "ROLLBACK_FAILED" => Some(Judgement::RollbackFailed {
            reason: format!("{}; the automatic rollback FAILED too", rollback_reason(sd)),
        }),
        "STOPPED" => Some(Judgement::Superseded {
            reason: format!(
                "the deployment was stopped before it ended (superseded by another deployment, or stopped by hand){}{}",
                sd.status_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
                alarms(sd)
            ),
        }),
        "STOP_REQUESTED" => Some(Judgement::InProgress {
            progress: "a stop was requested; waiting for ECS to stop the deployment".into(),
        }),
        _ => None,
    }
}

/// `DescribeServices` alone. `wait_for_sd`: a complete-looking rollout still waits for the
/// service deployment to end.
fn judge_service(ours: &Ours, svc: &ServiceView, wait_for_sd: bool) -> Judgement {
    let mine = svc.deployments.iter().find(|d| ours.is_ours(d));
    let newer = ours.newer(svc);
    let Some(d) = mine else {
        // Ours is not listed. Only a deployment that started after ours proves anything.
        let Some(p) = newer.iter().find(|d| d.status == "PRIMARY") else {
            return Judgement::NotVisibleYet;
        };
        if p.task_definition == ours.previous_task_definition {
            let settled = p.rollout_state == "COMPLETED" && svc.deployments.len() == 1;
            let reason = format!(
                "the deployment is gone and deployment {} put the service back on {} (rolled back)",
                p.id,
                short_td(&p.task_definition)
            );
            return if settled {
                Judgement::RolledBack {
                    reason,
                    back_on_previous: true,
                }
            } else {
                Judgement::RollingBack { reason }
            };
        }
        return Judgement::Superseded {
            reason: format!(
                "deployment {} of {} started after ours and replaced it",
                p.id,
                short_td(&p.task_definition)
            ),
        };
    };
    match d.rollout_state.as_str() {
        "COMPLETED" if d.status == "PRIMARY" && svc.deployments.len() == 1 => {
            if wait_for_sd {
                Judgement::InProgress {
                    progress: format!(
                        "{}: rollout complete; waiting for the service deployment to end (bake time)",
                        d.id
                    ),
                }
            } else {
                Judgement::Succeeded
            }
        }
        "FAILED" => {
            let reason = d
                .rollout_reason
                .clone()
                .unwrap_or_else(|| "rollout FAILED".into());
            if !svc.rollback_enabled {
                return Judgement::Failed { reason };
            }
            // ECS rolls back with a new deployment; done when it is PRIMARY, COMPLETED, alone.
            match newer.iter().find(|n| n.status == "PRIMARY") {
                Some(p) if p.rollout_state == "COMPLETED" && svc.deployments.len() == 1 => {
                    Judgement::RolledBack {
                        reason,
                        back_on_previous: p.task_definition == ours.previous_task_definition,
                    }
                }
                _ => Judgement::RollingBack { reason },
            }
        }
        _ => Judgement::InProgress {
            progress: progress(d),
        },
    }
}

/// Our deployment is the PRIMARY one and its rollout is plainly in progress: nothing the
/// service deployment could add (bake time, alarms, ECS's rollback) decides yet, unless it is
/// a rollback ECS began, which the next read of it shows (the follower reads it every few
/// rounds, and every round once this is false).
pub fn plainly_rolling(ours: &Ours, svc: &ServiceView) -> bool {
    svc.deployments
        .iter()
        .any(|d| ours.is_ours(d) && d.status == "PRIMARY" && d.rollout_state == "IN_PROGRESS")
}

/// One line on a deployment's progress.
pub fn progress(d: &DeploymentView) -> String {
    format!(
        "{} {}: running {}/{}, pending {}, failed {}, rollout {}",
        d.id, d.status, d.running, d.desired, d.pending, d.failed, d.rollout_state
    )
}

/// What is still pending, for a timeout's message.
pub fn pending(ours: &Ours, svc: &ServiceView) -> String {
    let counts = |d: &DeploymentView| {
        format!(
            "{} of {} task(s) running, {} pending, {} failed, rollout {}",
            d.running, d.desired, d.pending, d.failed, d.rollout_state
        )
    };
    if let Some(d) = svc.deployments.iter().find(|d| ours.is_ours(d)) {
        return counts(d);
    }
    match ours.newer(svc).into_iter().find(|d| d.status == "PRIMARY") {
        Some(p) if p.task_definition == ours.previous_task_definition => format!(
            "ECS's rollback to {} ({}): {}",
            short_td(&p.task_definition),
            p.id,
            counts(p)
        ),
        Some(p) => format!(
            "deployment {} of {} replaced it: {}",
            p.id,
            short_td(&p.task_definition),
            counts(p)
        ),
        None => "ECS did not list this run's deployment yet".into(),
    }
}

fn alarms(sd: &ServiceDeploymentView) -> String {
    if sd.triggered_alarms.is_empty() {
        String::new()
    } else {
        format!("; alarms triggered: {}", sd.triggered_alarms.join(", "))
    }
}

/// Why ECS rolled a service deployment back, with the circuit breaker's count and alarms.
pub fn rollback_reason(sd: &ServiceDeploymentView) -> String {
    let mut s = String::from("ECS rolled the deployment back");
    if let Some((failed, threshold)) = sd.circuit_breaker {
        s.push_str(&format!(
            " (circuit breaker: {failed} failed task(s), threshold {threshold})"
        ));
    }
    if let Some(r) = sd.rollback_reason.as_ref().or(sd.status_reason.as_ref()) {
        s.push_str(": ");
        s.push_str(r);
    }
    s + &alarms(sd)
}

/// The deployment that replaced ours, when the service's PRIMARY is somebody else's: started
/// after ours, not ours, and not a rollback to the previous revision. Ferry leaves it alone.
pub fn replaced_by(ours: &Ours, svc: &ServiceView) -> Option<String> {
    let p = svc.primary()?;
    let newer = ours.newer(svc).iter().any(|n| n.id == p.id);
    (newer && p.task_definition != ours.previous_task_definition)
        .then(|| format!("deployment {} of {}", p.id, short_td(&p.task_definition)))
}

/// A description of the deployment(s) in flight, or `None` when the service is idle.
pub fn in_flight(svc: &ServiceView) -> Option<String> {
    let primary_busy = svc
        .deployments
        .iter()
        .any(|d| d.status == "PRIMARY" && d.rollout_state == "IN_PROGRESS");
    (svc.deployments.len() > 1 || primary_busy).then(|| {
        svc.deployments
            .iter()
            .filter(|d| d.status != "PRIMARY" || d.rollout_state == "IN_PROGRESS")
            .map(|d| {
                format!(
                    "{} ({} {}, rollout {})",
                    d.id,
                    d.status,
                    short_td(&d.task_definition),
                    d.rollout_state
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
