//! `ferry status`: per environment, what each service runs now (read from ECS and the tags
//! ferry put on the task definition), since when by the records, the last records, and
//! drift: a live revision that no record explains.

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::aws::ecs::{self, short_td, TAG_DIGEST};
use crate::records::store::Store;
use crate::records::{Record, RecordResult};
use crate::report::{EnvironmentStatus, ServiceStatus};

/// One entry per environment (`only`, or all), with up to `history` records each.
pub async fn read(
    dir: &Path,
    only: Option<&str>,
    history: usize,
) -> Result<Vec<EnvironmentStatus>> {
    let envs = crate::config::load(dir)?;
    let selected: Vec<_> = match only {
        Some(name) => vec![envs.get(name)?],
        None => envs.envs.values().collect(),
    };
    let mut out = Vec::new();
    for env in selected {
        // An environment of several targets: each target, then how they differ.
        let parts: Vec<&crate::config::Environment> = if env.has_targets() {
            env.targets.iter().collect()
        } else {
            vec![env]
        };
        let mut statuses = Vec::new();
        for part in parts {
            statuses.push(read_one(part, history).await?);
        }
        if let Some(line) = between_targets(&statuses) {
            for st in &mut statuses {
                st.drift.push(line.clone());
            }
        }
        out.extend(statuses);
    }
    Ok(out)
}

/// "eu-west-1 runs v1.4.0, us-east-1 runs v1.4.1": the targets of one environment whose
/// records say they run different releases (none when they agree).
pub fn between_targets(statuses: &[EnvironmentStatus]) -> Option<String> {
    let live: Vec<(&str, &str)> = statuses
        .iter()
        .map(|s| {
            (
                s.environment.as_str(),
                s.live_release.as_deref().unwrap_or("no recorded release"),
            )
        })
        .collect();
    let first = live.first()?.1;
    if live.iter().all(|(_, r)| *r == first) {
        return None;
    }
    let each: Vec<String> = live.iter().map(|(t, r)| format!("{t} runs {r}")).collect();
    Some(format!(
        "the targets differ: {} (a release stopped part-way with keep-earlier, or a target was changed alone)",
        each.join(", ")
    ))
}

/// The status of one environment (or one target of several).
async fn read_one(env: &crate::config::Environment, history: usize) -> Result<EnvironmentStatus> {
    let sdk = crate::aws::sts::environment_config(env).await?;
    let client = crate::aws::sts::ecs_client(&sdk);
    let scaling = crate::aws::autoscaling::client(&sdk);
    let mut rows = Vec::new();
    for s in &env.file.services {
        let svc = ecs::find_service(&client, &s.cluster, &s.service)
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "service {}/{} not found (or not ACTIVE) in {}",
                    s.cluster,
                    s.service,
                    env.name
                )
            })?;
        let td_arn = svc.task_definition().unwrap_or_default().to_string();
        let (td, tags) = ecs::describe_task_definition(&client, &td_arn).await?;
        let (strategy, in_flight) = crate::deploy::codedeploy::live(&sdk, &client, &svc, s).await;
        rows.push(ServiceStatus {
            environment: env.name.clone(),
            cluster: s.cluster.clone(),
            service: s.service.clone(),
            release: ecs::release_of(&tags).map(str::to_string),
            // The digest its own container runs (a release of several images pins each
            // service to its image); ferry's tag names the release's first image.
            digest: ecs::container_image(&td, &s.container)
                .and_then(|i| i.split_once('@'))
                .map(|(_, d)| d)
                .or(ecs::tag_value(&tags, TAG_DIGEST))
                .map(str::to_string),
            image: ecs::container_image(&td, &s.container).map(str::to_string),
            task_definition: td_arn,
            running: svc.running_count(),
            desired: svc.desired_count(),
            deployments: svc
                .deployments()
                .iter()
                .map(|d| {
                    format!(
                        "{} {} {}",
                        d.status().unwrap_or("?"),
                        short_td(d.task_definition().unwrap_or("?")),
                        d.rollout_state().map(|r| r.as_str()).unwrap_or("?")
                    )
                })
                .collect(),
            strategy,
            in_flight,
            autoscaling_held: crate::deploy::hold::left_behind(&scaling, &s.cluster, &s.service)
                .await,
        });
    }
    let mut status = EnvironmentStatus {
        environment: if env.has_targets() || env.target.is_some() {
            env.display_name()
        } else {
            env.name.clone()
        },
        services: rows,
        live_release: None,
        live_since: None,
        history: Vec::new(),
        drift: Vec::new(),
        records_error: None,
    };
    if let Err(e) = memory(&mut status, env, history).await {
        status.records_error = Some(format!("{e:#}"));
    }
    Ok(status)
}

async fn memory(
    status: &mut EnvironmentStatus,
    env: &crate::config::Environment,
    history: usize,
) -> Result<()> {
    let store = Store::open(env).await?;
    let cat = store.catalog().await?;
    let newest = &cat.records[cat.records.len().saturating_sub(history.max(1))..];
    let mut sums = store.summaries(newest).await?;
    sums.sort_by_key(|s| std::cmp::Reverse((s.ended_at, s.started_at)));
    // What runs, and the drift, by the records that count (history shows every record, marked).
    if let Some(live) = sums
        .iter()
        .find(|s| s.result == RecordResult::Succeeded && s.trust.counts())
    {
        status.live_release = Some(live.tag.clone());
        status.live_since = Some(crate::records::rfc3339_of(live.ended_at));
    }
    let latest = match sums.iter().find(|s| s.trust.counts()) {
        Some(s) => Some(store.read(&s.record).await?),
        None => None,
    };
    status.drift = drift(&status.services, latest.as_ref());
    status.history = sums.into_iter().take(history).collect();
    Ok(())
}

/// Services whose live revision is not the one the latest record left them on.
pub fn drift(services: &[ServiceStatus], latest: Option<&Record>) -> Vec<String> {
    let Some(rec) = latest else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in services {
        let expected = rec
            .services
            .iter()
            .find(|r| r.cluster == s.cluster && r.service == s.service)
            .and_then(|r| r.after.as_deref());
        match expected {
            Some(td) if td == s.task_definition => {}
            Some(td) => out.push(format!(
                "{}/{} runs {}{}, but the last record ({} {}, {}) left it on {}: changed outside ferry (by hand, or ECS rolled back on its own)",
                s.cluster,
                s.service,
                short_td(&s.task_definition),
                s.release
                    .as_deref()
                    .map(|r| format!(" (release {r})"))
                    .unwrap_or_default(),
                rec.kind.as_str(),
                rec.tag,
                rec.result.as_str(),
                short_td(td)
            )),
            None => out.push(format!(
                "{}/{} runs {}, and no record of {} names this service",
                s.cluster,
                s.service,
                short_td(&s.task_definition),
                rec.environment
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{RunKind, ServiceRecord, SCHEMA};

    fn row(td: &str) -> ServiceStatus {
        ServiceStatus {
            environment: "production".into(),
            cluster: "shop".into(),
            service: "api".into(),
            task_definition: format!("arn:aws:ecs:eu-west-1:1:task-definition/{td}"),
            release: Some("v1.0.0".into()),
            digest: None,
            image: None,
            running: 2,
            desired: 2,
            deployments: vec![],
            strategy: None,
            in_flight: None,
            autoscaling_held: None,
        }
    }

    fn rec(after: &str) -> Record {
        Record {
            images: Default::default(),
            schema: SCHEMA.into(),
            run: "1-a".into(),
            environment: "production".into(),
            tag: "v1.1.0".into(),
            version: "1.1.0".into(),
            digest: "sha256:x".into(),
            repository: "r".into(),
            kind: RunKind::Deploy,
            result: RecordResult::Succeeded,
            previous_release: None,
            services: vec![ServiceRecord {
                cluster: "shop".into(),
                service: "api".into(),
                before: "x".into(),
                after: Some(format!("arn:aws:ecs:eu-west-1:1:task-definition/{after}")),
                before_image: None,
            }],
            smoke: vec![],
            started_at: "2026-11-23T10:00:00Z".into(),
            ended_at: "2026-11-23T10:05:00Z".into(),
            trigger: "cli".into(),
            run_url: None,
            ferry_version: "0".into(),
            promoted_from: None,
            built_as: None,
        }
    }

    #[test]
    fn drift_is_a_revision_no_record_explains() {
        // (name, live revision, record's revision or none, drift expected)
        let cases = [
            ("as recorded", "api:5", Some("api:5"), None),
            ("changed by hand", "api:7", Some("api:5"), Some("api:7 (release v1.0.0), but the last record (deploy v1.1.0, succeeded) left it on api:5")),
            ("no record yet: nothing to compare", "api:7", None, None),
        ];
        for (name, live, after, want) in cases {
            let r = after.map(rec);
            let got = drift(&[row(live)], r.as_ref());
            match want {
                None => assert!(got.is_empty(), "{name}: {got:?}"),
                Some(w) => assert!(got.len() == 1 && got[0].contains(w), "{name}: {got:?}"),
            }
        }
        let mut other = rec("api:5");
        other.services[0].service = "worker".into();
        assert!(drift(&[row("api:5")], Some(&other))[0]
            .contains("no record of production names this service"));
    }
}
