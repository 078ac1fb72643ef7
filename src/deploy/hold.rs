//! Auto scaling held during a rollout. Application Auto Scaling turns off scale-in while an
//! ECS deployment is in progress, but scale-out and scheduled actions go on (ECS developer
//! guide, "Troubleshooting service auto scaling"), and nothing covers ferry's own checks after
//! the deployment completed (smoke checks, a rollback). So for each service that has a scalable
//! target, ferry suspends dynamic scale-in and scale-out (and scheduled scaling, unless told
//! not to) before it updates the service, and afterwards turns back exactly what it turned on:
//! a suspension a person set is kept as it was.
//!
//! A hold is marked on the scalable target (tag [`MARK`]: which processes ferry suspended, and
//! by which run) before anything is suspended, so that a run that dies without restoring
//! (SIGKILL, a lost runner) leaves a mark the next run of the environment finds and undoes
//! ([`recover`]); the environment's claim means no other ferry run holds it meanwhile.
//! The decisions are pure functions ([`to_suspend`], [`after_restore`], the mark's words);
//! the loop around them only reads and writes.

use std::sync::Mutex;

use crate::aws::autoscaling::{self, Suspended};
use crate::config::Environment;

/// The tag on a scalable target that marks a hold ferry made.
pub const MARK: &str = "ferry:autoscaling-hold";

/// One service's hold: what ferry suspended (only what was not suspended already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `cluster/service`.
    pub name: String,
    /// The ECS cluster.
    pub cluster: String,
    /// The ECS service.
    pub service: String,
    /// The scalable target's resource id.
    pub resource_id: String,
    /// Its ARN, when known (the mark lives there).
    pub arn: Option<String>,
    /// The processes ferry turned on.
    pub ours: Suspended,
}

/// What to suspend, given what is suspended already: every dynamic process (and scheduled
/// scaling when `scheduled`), minus what a person already suspended.
pub fn to_suspend(before: Suspended, scheduled: bool) -> Suspended {
    Suspended {
        scale_in: !before.scale_in,
        scale_out: !before.scale_out,
        scheduled: scheduled && !before.scheduled,
    }
}

/// The state to restore: what is suspended now, minus what ferry suspended.
pub fn after_restore(now: Suspended, ours: Suspended) -> Suspended {
    Suspended {
        scale_in: now.scale_in && !ours.scale_in,
        scale_out: now.scale_out && !ours.scale_out,
        scheduled: now.scheduled && !ours.scheduled,
    }
}

/// The union of two states.
fn with(a: Suspended, b: Suspended) -> Suspended {
    Suspended {
        scale_in: a.scale_in || b.scale_in,
        scale_out: a.scale_out || b.scale_out,
        scheduled: a.scheduled || b.scheduled,
    }
}

fn is_empty(s: Suspended) -> bool {
    !(s.scale_in || s.scale_out || s.scheduled)
}

/// The mark's value: the processes ferry suspended and the run (`in,out,scheduled run=<id>`).
pub fn mark_value(ours: Suspended, run: &str) -> String {
    format!("{} run={run}", words(ours))
}

/// Parses [`mark_value`]; `None` for a value ferry did not write.
pub fn parse_mark(value: &str) -> Option<(Suspended, String)> {
    let (list, run) = value.split_once(" run=")?;
    let mut s = Suspended::default();
    for w in list.split(',').filter(|w| !w.is_empty() && *w != "none") {
        match w {
            "in" => s.scale_in = true,
            "out" => s.scale_out = true,
            "scheduled" => s.scheduled = true,
            _ => return None,
        }
    }
    Some((s, run.to_string()))
}

/// `in,out,scheduled` (or `none`).
pub fn words(s: Suspended) -> String {
    let w: Vec<&str> = [
        (s.scale_in, "in"),
        (s.scale_out, "out"),
        (s.scheduled, "scheduled"),
    ]
    .into_iter()
    .filter_map(|(on, w)| on.then_some(w))
    .collect();
    if w.is_empty() {
        "none".into()
    } else {
        w.join(",")
    }
}

/// The holds this process has in place, for the interruption path (SIGINT, SIGTERM, the run
/// deadline) to undo before it exits.
static HELD: Mutex<Vec<(aws_sdk_applicationautoscaling::Client, Hold)>> = Mutex::new(Vec::new());

fn held(f: impl FnOnce(&mut Vec<(aws_sdk_applicationautoscaling::Client, Hold)>)) {
    f(&mut HELD.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Undoes a hold a run of this environment left behind (it died before restoring): the next
/// run finds the mark on each configured service's scalable target. Returns what it said.
pub async fn recover(
    client: &aws_sdk_applicationautoscaling::Client,
    env: &Environment,
) -> Vec<String> {
    let mut said = Vec::new();
    for cfg in &env.file.services {
        let name = format!("{}/{}", cfg.cluster, cfg.service);
        let found = async {
            let Some(t) = autoscaling::target(client, &cfg.cluster, &cfg.service).await? else {
                return anyhow::Ok(None);
            };
            let Some(arn) = t.arn.clone() else {
                return Ok(None);
            };
            let tags = autoscaling::tags(client, &arn).await?;
            Ok(tags
                .get(MARK)
                .and_then(|v| parse_mark(v))
                .map(|(ours, run)| (t, arn, ours, run)))
        }
        .await;
        match found {
            Ok(Some((t, arn, ours, run))) => {
                let restore = after_restore(t.suspended, ours);
                let done = async {
                    autoscaling::set_suspended(client, &t.resource_id, restore).await?;
                    autoscaling::untag(client, &arn, MARK).await
                }
                .await;
                let line = match done {
                    Ok(()) => format!(
                        "{name}: restored auto scaling that an earlier run ({run}) held and never gave back (it had suspended {}; suspended now: {})",
                        words(ours),
                        words(restore)
                    ),
                    Err(e) => format!(
                        "{name}: an earlier run ({run}) left auto scaling suspended ({}), and restoring it failed: {e:#}",
                        words(ours)
                    ),
                };
                tracing::warn!("{line}");
                said.push(line);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{name}: auto scaling not read: {e:#}"),
        }
    }
    said
}

/// Holds auto scaling on each of `services` (`cluster`, `service`) that has a scalable target.
/// A service whose scaling cannot be read or held is said and left as it is: the hold makes a
/// rollout safer, it is not a condition of one.
pub async fn hold(
    client: &aws_sdk_applicationautoscaling::Client,
    services: &[(String, String)],
    scheduled: bool,
    run: &str,
) -> Vec<Hold> {
    let mut out = Vec::new();
    for (cluster, service) in services {
        let name = format!("{cluster}/{service}");
        let t = match autoscaling::target(client, cluster, service).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(
                    "{name}: auto scaling not held (could not read its scalable target): {e:#}"
                );
                continue;
            }
        };
        let ours = to_suspend(t.suspended, scheduled);
        if is_empty(ours) {
            tracing::info!(
                "{name}: auto scaling already suspended ({}); left as it is",
                words(t.suspended)
            );
            continue;
        }
        if let Some(arn) = &t.arn {
            if let Err(e) = autoscaling::tag(client, arn, MARK, &mark_value(ours, run)).await {
                tracing::warn!("{name}: could not mark the hold on its scalable target ({e:#}); if this run dies, restore its suspended state by hand");
            }
        }
        let h = Hold {
            name: name.clone(),
            cluster: cluster.clone(),
            service: service.clone(),
            resource_id: t.resource_id.clone(),
            arn: t.arn.clone(),
            ours,
        };
        held(|v| v.push((client.clone(), h.clone())));
        match autoscaling::set_suspended(client, &t.resource_id, with(t.suspended, ours)).await {
            Ok(()) => {
                tracing::info!(
                    "{name}: auto scaling held for the rollout (suspended {})",
                    words(ours)
                );
                out.push(h);
            }
            Err(e) => {
                tracing::warn!("{name}: auto scaling not held: {e:#}");
                held(|v| v.retain(|(_, x)| x.name != name));
                if let Some(arn) = &t.arn {
                    let _ = autoscaling::untag(client, arn, MARK).await;
                }
            }
        }
    }
    out
}

/// Gives back every hold in `holds`: turns off what ferry suspended (a person's suspension is
/// kept), removes the mark. A failure is said with what to do; the mark stays for the next run.
pub async fn restore(
    client: &aws_sdk_applicationautoscaling::Client,
    holds: &[Hold],
) -> Vec<String> {
    let mut said = Vec::new();
    for h in holds {
        let done = async {
            let now = autoscaling::target(client, &h.cluster, &h.service)
                .await?
                .map(|t| t.suspended)
                .unwrap_or_default();
            let restore = after_restore(now, h.ours);
            autoscaling::set_suspended(client, &h.resource_id, restore).await?;
            if let Some(arn) = &h.arn {
                autoscaling::untag(client, arn, MARK).await?;
            }
            anyhow::Ok(restore)
        }
        .await;
        held(|v| v.retain(|(_, x)| x.name != h.name));
        let line = match done {
            Ok(r) => format!(
                "{}: auto scaling restored (suspended now: {})",
                h.name,
                words(r)
            ),
            Err(e) => format!(
                "{}: auto scaling NOT restored: {e:#}; ferry suspended {} — the next run restores it, or resume it with `aws application-autoscaling register-scalable-target --suspended-state`",
                h.name,
                words(h.ours)
            ),
        };
        tracing::info!("{line}");
        said.push(line);
    }
    said
}

/// A hold a ferry run left on the service and never gave back, in words (for `ferry status`).
pub async fn left_behind(
    client: &aws_sdk_applicationautoscaling::Client,
    cluster: &str,
    service: &str,
) -> Option<String> {
    let t = autoscaling::target(client, cluster, service).await.ok()??;
    let tags = autoscaling::tags(client, t.arn.as_deref()?).await.ok()?;
    let (ours, run) = parse_mark(tags.get(MARK)?)?;
    Some(format!(
        "run {run} suspended {} and did not restore it (suspended now: {}); the next deploy restores it",
        words(ours),
        words(t.suspended)
    ))
}

/// Gives back the holds still in place when the run is interrupted (SIGINT, SIGTERM, the run
/// deadline), within `bound`; what is not given back in time keeps its mark for the next run.
pub async fn restore_in_place(bound: std::time::Duration) -> Vec<String> {
    let mut by_client: Vec<(aws_sdk_applicationautoscaling::Client, Vec<Hold>)> = Vec::new();
    held(|v| {
        for (c, h) in v.drain(..) {
            by_client.push((c, vec![h]));
        }
    });
    if by_client.is_empty() {
        return Vec::new();
    }
    let all = async {
        let mut said = Vec::new();
        for (c, hs) in &by_client {
            said.extend(restore(c, hs).await);
        }
        said
    };
    match tokio::time::timeout(bound, all).await {
        Ok(said) => said,
        Err(_) => by_client
            .iter()
            .flat_map(|(_, hs)| hs.iter())
            .map(|h| {
                format!(
                    "{}: auto scaling may still be held (ferry suspended {}); the next run restores it",
                    h.name,
                    words(h.ours)
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(scale_in: bool, scale_out: bool, scheduled: bool) -> Suspended {
        Suspended {
            scale_in,
            scale_out,
            scheduled,
        }
    }

    #[test]
    fn ferry_suspends_only_what_is_running_and_gives_back_only_that() {
        // (name, before, hold scheduled too, ferry suspends, a person's change meanwhile, restored to)
        let cases = [
            (
                "nothing suspended",
                s(false, false, false),
                true,
                s(true, true, true),
                s(true, true, true),
                s(false, false, false),
            ),
            (
                "scheduled left running",
                s(false, false, false),
                false,
                s(true, true, false),
                s(true, true, false),
                s(false, false, false),
            ),
            (
                "a person's scale-in suspension is kept",
                s(true, false, false),
                true,
                s(false, true, true),
                s(true, true, true),
                s(true, false, false),
            ),
            (
                "everything suspended by hand: nothing to do",
                s(true, true, true),
                true,
                s(false, false, false),
                s(true, true, true),
                s(true, true, true),
            ),
            (
                "a person resumed scale-out meanwhile",
                s(false, false, false),
                true,
                s(true, true, true),
                s(true, false, true),
                s(false, false, false),
            ),
        ];
        for (name, before, scheduled, ours, now, restored) in cases {
            assert_eq!(to_suspend(before, scheduled), ours, "{name}");
            assert_eq!(after_restore(now, ours), restored, "{name}");
        }
    }

    #[test]
    fn the_mark_round_trips_and_rejects_what_ferry_did_not_write() {
        for ours in [
            s(true, true, true),
            s(false, true, false),
            s(false, false, false),
        ] {
            let v = mark_value(ours, "1796586351309-1fd0218b");
            assert_eq!(
                parse_mark(&v),
                Some((ours, "1796586351309-1fd0218b".into())),
                "{v}"
            );
        }
        assert_eq!(parse_mark("in,out"), None);
        assert_eq!(parse_mark("in,sideways run=1"), None);
        assert_eq!(words(s(true, false, true)), "in,scheduled");
    }
}
