//! The run's part of the release memory: the claim that keeps runs for one environment from
//! overlapping, and the record written at the end.
//!
//! The claim (a tag `ferry-claim_<env>_<release>_<unix-ms>_<random>` in the environment's
//! repository) is pushed before anything changes; after a settle window every live claim is
//! read back and only the oldest one goes on (`crate::gate::overlap`). Registries have no
//! conditional write, so the guard holds when the runs' clocks differ by less than the
//! settle window and the registry lists a tag once its PUT answered (both true of ECR and of
//! the local world); the README's "No overlapping rollouts" says more.

use std::time::Duration;

use anyhow::Result;

use crate::config::Environment;
use crate::error::Failure;
use crate::plan::{DigestFrom, Plan};
use crate::records::store::{ClaimInfo, Store};
use crate::records::{
    new_run_id, now_unix, rfc3339_of, Record, RecordResult, ServiceRecord, SmokeRecord, SCHEMA,
};
use crate::report::{DeployReport, Outcome};

/// How long a claim lives if its run dies without removing it.
const CLAIM_TTL_ENV: &str = "FERRY_CLAIM_TTL_SECONDS";
/// How long a run waits between claiming and reading the other claims.
const SETTLE_ENV: &str = "FERRY_CLAIM_SETTLE_MS";

fn env_number(name: &str, default: u64, max: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                Failure::invalid(format!("{name}={v:?} is not a number from 0 to {max}"))
                    .hint(format!("unset {name} to use the default ({default})"))
                    .into()
            }),
        _ => Ok(default),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Claims `env` for this run, or refuses (exit 3, nothing changed) when an older claim lives.
pub async fn claim_environment(store: &Store, env: &Environment, plan: &Plan) -> Result<ClaimInfo> {
    let ttl = env_number(CLAIM_TTL_ENV, 3600, 86_400)?;
    let settle = env_number(SETTLE_ENV, 3000, 60_000)?;
    let claim = store
        .claim(
            &plan.tag,
            ttl * 1000,
            crate::github::actions::run_url().as_deref(),
        )
        .await?;
    tracing::info!(
        "claimed {} for {} ({}); checking for other runs in {settle} ms",
        env.name,
        plan.tag,
        claim.tag.tag
    );
    tokio::time::sleep(Duration::from_millis(settle)).await;
    let others = async {
        let cat = store.catalog().await?;
        store.claims(&cat).await
    }
    .await;
    let verdict = match others {
        Err(e) => Err(e),
        Ok(claims) => crate::gate::overlap(&env.name, &claims, Some(&claim.tag.tag), now_ms())
            .map_err(crate::gate::refused),
    };
    if let Err(e) = verdict {
        release(store, &claim).await;
        return Err(e);
    }
    Ok(claim)
}

/// Removes this run's claim; a failure is said, and the claim lapses on its own.
pub async fn release(store: &Store, claim: &ClaimInfo) {
    if let Err(e) = store.release(claim).await {
        tracing::warn!(
            "could not remove the claim {} from {}: {e:#}; it lapses at its expiry",
            claim.tag.tag,
            store.location()
        );
    }
}

async fn source_record(
    plan: &Plan,
    env: &Environment,
    source_env: &Environment,
) -> Option<Box<Record>> {
    let (DigestFrom::SourceRecord, Some(s)) = (&plan.digest_from, &plan.record) else {
        return None;
    };
    let read = async {
        let src = Store::open_as(source_env, env).await?;
        src.read(&s.record).await
    };
    match read.await {
        Ok(r) => Some(Box::new(r)),
        Err(e) => {
            tracing::warn!(
                "reading {}'s record {} to carry it in this one: {e:#}",
                source_env.name,
                s.record
            );
            None
        }
    }
}

/// Writes the outcome of `report` next to its image; a failure to write is said in the report
/// (the deploy's outcome stands, but the environment's memory lacks this run).
pub async fn record(
    store: &Store,
    plan: &Plan,
    env: &Environment,
    source_env: &Environment,
    report: &mut DeployReport,
    started: u64,
) {
    let result = match report.outcome {
        Outcome::Deployed | Outcome::AlreadyDeployed => RecordResult::Succeeded,
        Outcome::RolledBack => RecordResult::RolledBack,
        Outcome::NeedsAttention => RecordResult::NeedsAttention,
    };
    let record = Record {
        schema: SCHEMA.into(),
        run: new_run_id(),
        environment: report.environment.clone(),
        tag: plan.tag.clone(),
        version: plan.version.clone(),
        digest: plan.source.digest.clone().unwrap_or_default(),
        repository: store.location(),
        kind: plan.kind,
        result,
        previous_release: report
            .services
            .iter()
            .find_map(|s| s.previous_release.clone())
            .or_else(|| plan.live_release.clone()),
        services: report
            .services
            .iter()
            .map(|s| ServiceRecord {
                cluster: s.cluster.clone(),
                service: s.service.clone(),
                before: s.previous_task_definition.clone(),
                after: s.final_task_definition.clone(),
            })
            .collect(),
        smoke: report
            .smoke
            .iter()
            .map(|s| SmokeRecord {
                url: s.url.clone(),
                ok: s.ok,
                detail: s.detail.clone(),
            })
            .collect(),
        started_at: rfc3339_of(started),
        ended_at: rfc3339_of(now_unix()),
        trigger: serde_json::to_value(plan.trigger)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        run_url: crate::github::actions::run_url(),
        ferry_version: env!("CARGO_PKG_VERSION").into(),
        promoted_from: source_record(plan, env, source_env).await,
    };
    match store.write(&record).await {
        Ok(w) => {
            tracing::info!(
                "recorded {} of {} in {} as {} ({})",
                result.as_str(),
                plan.tag,
                report.environment,
                w.tag,
                w.digest
            );
            report.record = Some(w);
        }
        Err(e) => {
            let msg = format!("{e:#}");
            tracing::warn!(
                "the outcome was NOT recorded in {}: {msg}; later promotions and rollbacks will not know about this run",
                store.location()
            );
            report.record_error = Some(msg);
        }
    }
}
