//! Following one deployment to its real end. Each round reads the service (and, where the
//! role may, its service deployment), logs what is new, and asks [`judge`] what the read
//! means; this loop decides nothing itself.
//!
//! The service-deployments API is the better witness (bake time, alarms, ECS's own rollback
//! status), so a transient error there is retried, never a reason to stop using it; only a
//! missing permission or an unknown operation switches to `DescribeServices` alone, once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::Service;

use super::judge::{self, Judgement, Ours, ServiceDeploymentView, ServiceView};
use super::{Ended, Running};
use crate::aws::ecs;
use crate::aws::{aws_error, AwsError};
use crate::poll::Poll;

/// Consecutive failed `DescribeServices` reads (other than throttles) before giving up.
const MAX_READ_ERRORS: u32 = 10;
/// How long the service-deployments API may fail to list ours, once `DescribeServices`
/// shows it, before `DescribeServices` alone decides.
const SD_GRACE: Duration = Duration::from_secs(60);
/// While a rollout plainly runs, its service deployment is read every this many rounds.
const SD_EVERY: u32 = 4;

/// Whether the service-deployments API is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SdApi {
    InUse,
    /// Not allowed or not known here: said once, with the permission to grant.
    Unavailable,
}

/// The state of one follow loop.
struct Follower<'a> {
    client: &'a aws_sdk_ecs::Client,
    reads: &'a ecs::Reads,
    name: String,
    ours: &'a Ours,
    sd_api: SdApi,
    checked: HashSet<String>,
    seen_events: HashSet<String>,
    since_secs: i64,
    /// When `DescribeServices` first listed our deployment.
    visible_at: Option<Instant>,
    /// The newest service event since the start that says more than "started/stopped".
    telling_event: Option<String>,
    last_progress: String,
}

/// Follows `ours` until it ends or `timeout` passes. Its reads go through `reads`, batched with
/// those of the other services followed at the same time, on the shared poll grid.
pub async fn follow(
    reads: &ecs::Reads,
    run: &mut Running,
    ours: &Ours,
    timeout: Duration,
) -> Ended {
    let mut f = Follower {
        client: reads.client(),
        reads,
        name: run.prep.name(),
        ours,
        sd_api: SdApi::InUse,
        checked: HashSet::new(),
        seen_events: run.prep.known_events.clone(),
        since_secs: aws_smithy_types::DateTime::from(run.started).secs(),
        visible_at: None,
        telling_event: None,
        last_progress: String::new(),
    };
    let deadline = Instant::now() + timeout;
    let mut poll = Poll::aligned();
    let mut errors = 0;
    let mut last_view: Option<ServiceView> = None;
    let (mut last_sd, mut skipped) = (None, 0);
    loop {
        match reads
            .service(&run.prep.cfg.cluster, &run.prep.cfg.service)
            .await
        {
            Ok(svc) => {
                errors = 0;
                f.log_events(&svc);
                let view = ServiceView::from_sdk(&svc);
                // While the service shows ours plainly rolling, its service deployment says
                // nothing new most rounds: asked every SD_EVERY-th round then, and every
                // round once the rollout looks ended, failed or unclear.
                let sd = if judge::plainly_rolling(ours, &view)
                    && skipped + 1 < SD_EVERY
                    && last_sd.is_some()
                {
                    skipped += 1;
                    last_sd.clone()
                } else {
                    skipped = 0;
                    last_sd = f.service_deployment(run, &view).await;
                    last_sd.clone()
                };
                let sd_expected =
                    f.sd_api == SdApi::InUse && f.visible_at.is_none_or(|t| t.elapsed() < SD_GRACE);
                let verdict = judge::judge(ours, &view, sd.as_ref(), sd_expected);
                f.log_progress(&verdict);
                if let Some(ended) = ended(verdict) {
                    return ended;
                }
                last_view = Some(view);
            }
            Err(e) => {
                let throttled = aws_error(&e).is_some_and(AwsError::is_throttled);
                if throttled {
                    poll.back_off();
                } else {
                    errors += 1;
                }
                tracing::warn!("{}: {e:#} (will retry)", f.name);
                if errors >= MAX_READ_ERRORS {
                    return Ended::Failed {
                        reason: format!("lost track of the deployment: {e:#}"),
                        back_on_previous: None,
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            let mut pending = last_view
                .map(|v| judge::pending(ours, &v))
                .unwrap_or_else(|| "the service could not be read".into());
            if let Some(e) = &f.telling_event {
                pending.push_str(&format!("; last event: {e}"));
            }
            return Ended::TimedOut { pending };
        }
        poll.wait().await;
    }
}

/// A final judgement as how following ended; `None` while it goes on.
fn ended(j: Judgement) -> Option<Ended> {
    match j {
        Judgement::Succeeded => Some(Ended::Succeeded),
        Judgement::Failed { reason } => Some(Ended::Failed {
            reason,
            back_on_previous: Some(false),
        }),
        Judgement::RollbackFailed { reason } => Some(Ended::RollbackFailed { reason }),
        Judgement::RolledBack {
            reason,
            back_on_previous,
        } => Some(Ended::Failed {
            reason,
            back_on_previous: Some(back_on_previous),
        }),
        Judgement::Superseded { reason } => Some(Ended::Superseded { reason }),
        Judgement::NotVisibleYet | Judgement::InProgress { .. } | Judgement::RollingBack { .. } => {
            None
        }
    }
}

impl Follower<'_> {
    /// New service events since the start, oldest first, one line each.
    fn log_events(&mut self, svc: &Service) {
        let mut new: Vec<_> = svc
            .events()
            .iter()
            .filter(|e| e.created_at().is_some_and(|t| t.secs() >= self.since_secs))
            .filter(|e| {
                e.id()
                    .is_some_and(|id| self.seen_events.insert(id.to_string()))
            })
            .collect();
        new.reverse();
        for e in new {
            let message = e.message().unwrap_or_default();
            tracing::info!("{}: event: {message}", self.name);
            if !super::evidence::is_narration(message) {
                self.telling_event = Some(message.to_string());
            }
        }
    }

    fn log_progress(&mut self, j: &Judgement) {
        let line = match j {
            Judgement::NotVisibleYet => "waiting for ECS to show the new deployment".to_string(),
            Judgement::InProgress { progress } => progress.clone(),
            Judgement::RollingBack { reason } => format!("ECS is rolling back: {reason}"),
            _ => return,
        };
        if line != self.last_progress {
            tracing::info!("{}: {line}", self.name);
            self.last_progress = line;
        }
    }

    /// Our service deployment as ECS describes it now, when the API is in use and lists it.
    async fn service_deployment(
        &mut self,
        run: &mut Running,
        view: &ServiceView,
    ) -> Option<ServiceDeploymentView> {
        let listed = view.deployments.iter().any(|d| {
            self.ours.deployment_id.as_deref() == Some(d.id.as_str())
                || d.task_definition == self.ours.task_definition
        });
        if listed && self.visible_at.is_none() {
            self.visible_at = Some(Instant::now());
        }
        if self.sd_api != SdApi::InUse {
            return None;
        }
        if run.service_deployment_arn.is_none() {
            match self.find(run).await {
                Ok(found) => run.service_deployment_arn = found,
                Err(e) => {
                    self.api_error(&e);
                    return None;
                }
            }
        }
        let arn = run.service_deployment_arn.clone()?;
        match self.reads.service_deployment(&arn).await {
            Ok(sd) => sd.map(|s| ServiceDeploymentView::from_sdk(&s)),
            Err(e) => {
                self.api_error(&e);
                None
            }
        }
    }

    /// The service deployment created since the start whose target revision runs ours.
    async fn find(&mut self, run: &Running) -> anyhow::Result<Option<String>> {
        let briefs = ecs::list_service_deployments(
            self.client,
            &run.prep.cfg.cluster,
            &run.prep.cfg.service,
            run.started,
        )
        .await?;
        for brief in briefs {
            let (Some(arn), Some(rev)) = (
                brief.service_deployment_arn(),
                brief.target_service_revision_arn(),
            ) else {
                continue;
            };
            if self.checked.contains(arn) {
                continue;
            }
            let tds = ecs::service_revision_task_definitions(self.client, rev).await?;
            self.checked.insert(arn.to_string());
            if tds.contains(&self.ours.task_definition) {
                return Ok(Some(arn.to_string()));
            }
        }
        Ok(None)
    }

    /// A missing permission switches the API off (once, saying which); anything else is
    /// retried at the next round.
    fn api_error(&mut self, e: &anyhow::Error) {
        match aws_error(e) {
            Some(a) if a.is_not_allowed() => {
                tracing::warn!(
                    "{}: {a}; following with DescribeServices only. Grant the deploy role \
                     ecs:ListServiceDeployments, ecs:DescribeServiceDeployments and \
                     ecs:DescribeServiceRevisions so bake time and alarms count in the verdict",
                    self.name
                );
                self.sd_api = SdApi::Unavailable;
            }
            _ => tracing::warn!("{}: {e:#} (will retry)", self.name),
        }
    }
}
