//! Bringing one service back to the revision it ran before this run, when the release failed
//! (its own rollout, a smoke check, or another service of the run).
//!
//! Only this run's deployment is ever undone: a service whose PRIMARY deployment is somebody
//! else's is left alone and reported. A deployment still in flight is stopped with ECS's own
//! rollback (`StopServiceDeployment`); a completed one is replaced by an update to the
//! previous revision, followed to its end like any rollout.

use super::judge::{self, ServiceView};
use super::{begin_update, follow, Ended, Running, ServiceState};
use crate::aws::ecs::{self, short_td};

/// Rolls one service back if this run changed it; returns where it stands.
pub async fn roll_back(client: &aws_sdk_ecs::Client, run: &mut Running) -> ServiceState {
    if run.codedeploy.is_some() {
        return super::codedeploy::roll_back(run).await;
    }
    let name = run.prep.name();
    let (Some(new_td), Some(ours)) = (run.new_td.clone(), run.ours.clone()) else {
        return if run.start_error.is_some() {
            ServiceState::Unchanged
        } else {
            ServiceState::AlreadyDeployed
        };
    };
    let previous = run.prep.previous_td.clone();
    let failed_here = matches!(
        run.ended,
        Some(Ended::Failed { .. } | Ended::TimedOut { .. } | Ended::RollbackFailed { .. })
    );
    let back = if failed_here {
        ServiceState::Failed
    } else {
        ServiceState::RolledBack
    };
    match &run.ended {
        // ECS rolled it back, and a read after the rollback showed it.
        Some(Ended::Failed {
            back_on_previous: Some(true),
            ..
        }) => {
            tracing::info!(
                "{name}: ECS rolled back to {}; it is stable",
                short_td(&previous)
            );
            run.final_td = Some(previous);
            return back;
        }
        Some(Ended::RollbackFailed { .. }) => {
            tracing::error!("{name}: ECS's own rollback failed; ferry does not try again blindly");
            return ServiceState::Unknown;
        }
        Some(Ended::Superseded { reason }) => {
            run.evidence.push(format!(
                "not rolled back: {reason}; it is not this run's to undo"
            ));
            return ServiceState::Superseded;
        }
        _ => {}
    }
    let view = match ecs::find_service(client, &run.prep.cfg.cluster, &run.prep.cfg.service).await {
        Ok(Some(svc)) => ServiceView::from_sdk(&svc),
        Ok(None) => {
            run.evidence.push("the service no longer exists".into());
            return ServiceState::Unknown;
        }
        Err(e) => {
            run.evidence
                .push(format!("rollback could not read the service: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    if let Some(other) = judge::replaced_by(&ours, &view) {
        tracing::warn!("{name}: {other} replaced this run's deployment; leaving it alone");
        run.evidence.push(format!(
            "not rolled back: {other} replaced this run's deployment; it is not this run's to undo"
        ));
        return ServiceState::Superseded;
    }
    // Still in flight: ask ECS to roll back this deployment.
    if let (Some(_), Some(arn)) = (judge::in_flight(&view), run.service_deployment_arn.clone()) {
        tracing::warn!(
            "{name}: stopping deployment {} with ROLLBACK",
            ours.deployment_id.as_deref().unwrap_or(&arn)
        );
        match ecs::stop_with_rollback(client, &arn).await {
            Ok(()) => {
                let timeout = run.prep.rollback_timeout;
                let reads = ecs::Reads::new(client);
                return match follow::follow(&reads, run, &ours, timeout).await {
                    Ended::Failed {
                        back_on_previous: Some(true),
                        ..
                    } => {
                        tracing::info!("{name}: rolled back to {}", short_td(&previous));
                        run.final_td = Some(previous);
                        back
                    }
                    other => {
                        run.evidence.push(format!(
                            "the stopped deployment did not end on the previous revision: {}",
                            describe(&other)
                        ));
                        ServiceState::Unknown
                    }
                };
            }
            Err(e) => tracing::warn!("{name}: {e:#}; redeploying {} instead", short_td(&previous)),
        }
    }
    redeploy(client, run, &previous, &new_td, back).await
}

/// Updates the service back to `previous` and follows that deployment to its end.
async fn redeploy(
    client: &aws_sdk_ecs::Client,
    run: &mut Running,
    previous: &str,
    failed_td: &str,
    back: ServiceState,
) -> ServiceState {
    let name = run.prep.name();
    tracing::warn!(
        "{name}: rolling back: updating the service to {}",
        short_td(previous)
    );
    let update = match begin_update(client, &run.prep.cfg, previous, failed_td).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("{name}: {e:#}");
            run.evidence
                .push(format!("rollback could not start: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    let mut rollback_ours = update.ours;
    rollback_ours
        .known_before
        .extend(run.ours.iter().flat_map(|o| {
            o.deployment_id
                .iter()
                .cloned()
                .chain(o.known_before.iter().cloned())
        }));
    let saved_arn = run.service_deployment_arn.take();
    let saved_started = run.started;
    run.started = update.started;
    let timeout = run.prep.rollback_timeout;
    let ended = follow::follow(&ecs::Reads::new(client), run, &rollback_ours, timeout).await;
    run.service_deployment_arn = saved_arn;
    run.started = saved_started;
    match ended {
        Ended::Succeeded => {
            tracing::info!("{name}: back on {}", short_td(previous));
            run.final_td = Some(previous.to_string());
            back
        }
        other => {
            tracing::error!(
                "{name}: the rollback to {} did not succeed: {}",
                short_td(previous),
                describe(&other)
            );
            run.evidence.push(format!(
                "rollback to {} did not succeed: {}",
                short_td(previous),
                describe(&other)
            ));
            ServiceState::Unknown
        }
    }
}

fn describe(e: &Ended) -> String {
    match e {
        Ended::Succeeded => "it succeeded".into(),
        Ended::Failed { reason, .. } | Ended::RollbackFailed { reason } => reason.clone(),
        Ended::Superseded { reason } => reason.clone(),
        Ended::TimedOut { pending } => format!("it timed out; pending: {pending}"),
    }
}
