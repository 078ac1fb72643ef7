//! Bringing a CodeDeploy service back after a failed release: stopping a deployment still in
//! flight with rollback, or deploying the previous revision once the original task set is gone.

use std::time::{Duration, Instant};

use super::follow::{follow, follow_rollback, ROLLBACK_GRACE};
use super::target::appspec;
use super::{sdk, Context};
use crate::aws::codedeploy as api;
use crate::aws::ecs::short_td;
use crate::deploy::{Ended, Running, ServiceState};
use crate::poll::Poll;

/// How long a stopped deployment may take to name its rollback deployment.
const NAMING_GRACE: Duration = Duration::from_secs(60);

/// Brings a CodeDeploy service back when the release failed: nothing to do when CodeDeploy
/// already rolled back; a deployment still in flight or in its termination wait is stopped with
/// rollback (a traffic switch back); a finished one is replaced by a deployment of the
/// previous revision.
pub async fn roll_back(run: &mut Running) -> ServiceState {
    let name = run.prep.name();
    let (Some(new_td), Some(cd)) = (run.new_td.clone(), run.codedeploy.clone()) else {
        return if run.start_error.is_some() {
            ServiceState::Unchanged
        } else {
            ServiceState::AlreadyDeployed
        };
    };
    let previous = run.prep.previous_td.clone();
    let back = if matches!(
        run.ended,
        Some(Ended::Failed { .. } | Ended::TimedOut { .. } | Ended::RollbackFailed { .. })
    ) {
        ServiceState::Failed
    } else {
        ServiceState::RolledBack
    };
    match &run.ended {
        Some(Ended::Failed {
            back_on_previous: Some(true),
            ..
        }) => {
            run.final_td = Some(previous);
            return back;
        }
        Some(Ended::RollbackFailed { .. }) => {
            tracing::error!(
                "{name}: CodeDeploy's rollback failed; ferry does not try again blindly"
            );
            return ServiceState::Unknown;
        }
        _ => {}
    }
    let Some(id) = cd.deployment_id.clone() else {
        return ServiceState::Unknown;
    };
    let ctx = Context {
        cd: cd.cd.clone(),
        test_checks: Vec::new(),
        production_checks: Vec::new(),
        versions: Vec::new(),
    };
    let deadline = Instant::now() + run.prep.timeout + ROLLBACK_GRACE;
    let d = match sdk::deployment(&cd.cd, &id).await {
        Ok(d) => d,
        Err(e) => {
            run.evidence
                .push(format!("rollback could not read {id}: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    if !matches!(d.status.as_str(), "Succeeded" | "Failed" | "Stopped") {
        tracing::warn!("{name}: stopping CodeDeploy deployment {id} with rollback");
        if let Err(e) = api::stop_with_rollback(&cd.cd, &id).await {
            run.evidence
                .push(format!("rollback could not stop {id}: {e:#}"));
            return ServiceState::Unknown;
        }
        // CodeDeploy names its rollback deployment on the stopped one.
        let mut poll = Poll::new();
        let stopped_at = Instant::now();
        loop {
            match sdk::deployment(&cd.cd, &id).await {
                Ok(d) if d.rollback_id.is_some() => {
                    let rid = d.rollback_id.unwrap_or_default();
                    return match follow_rollback(&ctx, &name, &rid, "stopped".into(), deadline)
                        .await
                    {
                        Ended::Failed {
                            back_on_previous: Some(true),
                            ..
                        } => {
                            run.final_td = Some(previous);
                            back
                        }
                        other => {
                            run.evidence.push(format!(
                                "the rollback did not end on the original task set: {}",
                                describe(&other)
                            ));
                            ServiceState::Unknown
                        }
                    };
                }
                Ok(d)
                    if matches!(d.status.as_str(), "Succeeded" | "Failed" | "Stopped")
                        && stopped_at.elapsed() > NAMING_GRACE =>
                {
                    run.evidence.push(format!(
                        "{id} ended {} without a rollback deployment",
                        d.status
                    ));
                    return ServiceState::Unknown;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("{name}: {e:#} (will retry)"),
            }
            if Instant::now() >= deadline {
                run.evidence
                    .push(format!("{id}: CodeDeploy never started the rollback"));
                return ServiceState::Unknown;
            }
            poll.wait().await;
        }
    }
    if d.status != "Succeeded" {
        run.evidence.push(format!(
            "{id} ended {} and CodeDeploy did not roll it back; the service may still run {}",
            d.status,
            short_td(&new_td)
        ));
        return ServiceState::Unknown;
    }
    // The original task set is gone: deploy the previous revision through CodeDeploy.
    tracing::warn!(
        "{name}: rolling back: CodeDeploy deployment of {}",
        short_td(&previous)
    );
    let rid = match api::create_deployment(
        &cd.cd,
        &cd.target.application,
        &cd.target.group,
        &appspec(&cd.target, &previous),
        &format!("ferry rollback to {} for {name}", short_td(&previous)),
    )
    .await
    {
        Ok(rid) => rid,
        Err(e) => {
            run.evidence
                .push(format!("rollback could not start: {e:#}"));
            return ServiceState::Unknown;
        }
    };
    let saved = run
        .codedeploy
        .as_mut()
        .and_then(|c| c.deployment_id.replace(rid));
    let ended = follow(&ctx, run, deadline, &[]).await;
    if let Some(c) = run.codedeploy.as_mut() {
        c.deployment_id = saved;
    }
    match ended {
        Ended::Succeeded => {
            run.final_td = Some(previous);
            back
        }
        other => {
            run.evidence.push(format!(
                "rollback to {} did not succeed: {}",
                short_td(&previous),
                describe(&other)
            ));
            ServiceState::Unknown
        }
    }
}

fn describe(e: &Ended) -> String {
    match e {
        Ended::Succeeded => "it succeeded".into(),
        Ended::Failed { reason, .. }
        | Ended::RollbackFailed { reason }
        | Ended::Superseded { reason } => reason.clone(),
        Ended::TimedOut { pending } => format!("it timed out; pending: {pending}"),
    }
}
