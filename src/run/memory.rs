//! The run's part of the release memory: the claim that keeps runs for one environment from
//! overlapping, and the record written at the end.
//!
//! The claim (a tag `ferry-claim_<env>_<release>_<unix-ms>_<random>` in the environment's
//! repository) is made before anything changes, in three reads and writes
//! ([`claim_environment`]): a live claim already there refuses; otherwise the run pushes its
//! claim and reads the claims again. Alone, it marks its claim held and goes on at once; when
//! other runs claimed at about the same time, a settle window passes and the oldest goes on
//! (`crate::gate::first_look` and `settled` hold the rules and why they are safe). Registries
//! have no conditional write, so the guard holds when the registry lists a tag once its PUT
//! answered (true of ECR and of the local world) and, for runs that claim within one settle
//! window of each other, when their clocks differ by less than it; the README's "No
//! overlapping rollouts" says more. The claim is a lease (`crate::lease`), renewed while the
//! run lives (`super::heartbeat`); claims of an earlier attempt of the same workflow run are
//! taken over at once. The plan and every read of the services happen meanwhile, so a run
//! with nothing to wait for spends no time on the guard beyond its few requests.

use std::time::Duration;

use anyhow::Result;

use super::heartbeat::{self, Lease};
use crate::config::Environment;
use crate::deploy::DeployOptions;
use crate::gate::FirstLook;
use crate::lease::{env_number, Attempt, Reader, Standing, Times};
use crate::plan::{DigestFrom, Plan};
use crate::records::store::{ClaimInfo, Store};
use crate::records::{
    new_run_id, now_unix, rfc3339_of, Record, RecordResult, ServiceRecord, SmokeRecord, SCHEMA,
};
use crate::report::{DeployReport, Outcome};

/// How long runs that claimed at about the same time wait before the oldest goes on.
const SETTLE_ENV: &str = "FERRY_CLAIM_SETTLE_MS";

/// Claims `env` for this run and runs `prepare` (the plan and every read before a change)
/// meanwhile; refuses (exit 3, nothing changed) when another run's claim lives, or with
/// `--wait-for-idle` waits for it and claims and prepares again (what runs then may have
/// changed). The claim is renewed until it is released. Returns the store, the lease and what
/// `prepare` read.
pub async fn claim_environment<T, F, Fut>(
    env: &Environment,
    release: &str,
    opts: &DeployOptions,
    prepare: F,
) -> Result<(Store, Lease, T)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let times = Times::from_env()?;
    let settle = Duration::from_millis(env_number(SETTLE_ENV, 3000, 60_000)?);
    let me = Attempt::from_env();
    loop {
        // A preparation that fails ends a settle window early: the claims are read at once,
        // so another run's live claim still outranks the failure, and a refusal is not delayed.
        let failed = tokio::sync::Notify::new();
        let claiming = async {
            let store = Store::open(env).await?;
            // A live claim made before this run claims was there first: refused at once.
            let (claims, reader) = look(&store, times.ttl).await?;
            if let Err(r) = crate::gate::overlap(&env.name, &claims, None, &reader) {
                return Ok((store, Err(crate::gate::refused(r))));
            }
            let claim = store
                .claim(
                    release,
                    times.ttl.as_millis() as u64,
                    crate::github::actions::run_url().as_deref(),
                    me.as_ref().map(|a| (a.run_id.as_str(), a.attempt)),
                )
                .await?;
            let pushed = tokio::time::Instant::now();
            tracing::info!(
                "claimed {} for {release} ({}, renewed every {}s while this run lives)",
                env.name,
                claim.tag.tag,
                times.renew.as_secs()
            );
            let lease = heartbeat::hold(&store, claim, times);
            match decide(
                &store,
                &env.name,
                &lease,
                (pushed, settle, times.ttl),
                &failed,
            )
            .await
            {
                Ok(()) => anyhow::Ok((store, Ok(lease))),
                Err(e) => {
                    lease.release().await;
                    Ok((store, Err(e)))
                }
            }
        };
        let (prep, claiming) = (prepare(), claiming);
        tokio::pin!(prep, claiming);
        let mut prepared = None;
        let claimed = loop {
            tokio::select! {
                c = &mut claiming => break c,
                p = &mut prep, if prepared.is_none() => {
                    if p.is_err() {
                        failed.notify_one();
                    }
                    prepared = Some(p);
                }
            }
        };
        // Another run's claim outranks whatever the preparation finds (a busy service is that
        // run's rollout), so a refused claim ends the preparation, which may be waiting for it.
        let refused = matches!(&claimed, Ok((_, Err(_))));
        let prepared = match prepared {
            Some(p) => p,
            None if refused => Err(anyhow::anyhow!("not prepared: the claim was refused")),
            None => prep.await,
        };
        // Without a claim nothing may change; the preparation's error, when there is one,
        // says more (it names missing credentials or an unreachable endpoint once).
        let (store, held) = match claimed {
            Ok(c) => c,
            Err(e) => return Err(prepared.err().unwrap_or(e)),
        };
        match held {
            Ok(lease) => match prepared {
                Ok(t) => return Ok((store, lease, t)),
                Err(e) => {
                    lease.release().await;
                    return Err(e);
                }
            },
            Err(e) => {
                let refused = crate::error::exit_code(&e) == 3;
                if !(refused && opts.wait_for_idle) {
                    return Err(e);
                }
                crate::plan::claims::wait_for_claims(&store, &env.name, opts.deadline).await?;
            }
        }
    }
}

/// Whether this run, whose claim (`lease`) became visible at `pushed`, goes on (`ttl` is the
/// lease's, for removing dead claims). Alone (no
/// other live claim in the first read), it marks its claim held and goes on at once, provided
/// the mark is written within half the settle window of that read (`crate::gate::first_look`
/// says why); otherwise, or when other runs claimed at about the same time, it reads the
/// claims again once the window has passed since `pushed`, and the oldest goes on.
async fn decide(
    store: &Store,
    env: &str,
    lease: &Lease,
    (pushed, settle, ttl): (tokio::time::Instant, Duration, Duration),
    failed: &tokio::sync::Notify,
) -> Result<()> {
    let mine = lease.claim().await.tag.tag;
    let looked = tokio::time::Instant::now();
    let (claims, reader) = look(store, ttl).await?;
    let first =
        crate::gate::first_look(env, &claims, &mine, &reader).map_err(crate::gate::refused)?;
    if first == FirstLook::Alone {
        match tokio::time::timeout_at(looked + settle / 2, lease.mark_held()).await {
            Ok(Ok(())) => {
                tracing::info!("no other run claimed {env}: going on");
                return Ok(());
            }
            Ok(Err(e)) => tracing::warn!(
                "could not mark the claim {mine} held ({e:#}); checking for other runs in {} ms instead",
                settle.as_millis()
            ),
            Err(_) => tracing::info!(
                "marking the claim {mine} held took over {} ms; checking for other runs in {} ms instead",
                (settle / 2).as_millis(),
                settle.as_millis()
            ),
        }
    } else {
        tracing::info!(
            "another run claimed {env} at about the same time; the oldest claim goes on, checked in {} ms",
            settle.as_millis()
        );
    }
    tokio::select! {
        _ = tokio::time::sleep_until(pushed + settle) => {}
        _ = failed.notified() => {}
    }
    let (claims, reader) = look(store, ttl).await?;
    crate::gate::settled(env, &claims, &mine, &reader).map_err(crate::gate::refused)?;
    // Held, a later run's first look refuses at once instead of waiting out the window.
    if let Err(e) = lease.mark_held().await {
        tracing::debug!("marking the claim {mine} held: {e:#}");
    }
    Ok(())
}

/// The environment's claims as this run reads them now, the dead ones removed on the way
/// ([`take_over`]; `ttl` is the lease's).
async fn look(store: &Store, ttl: Duration) -> Result<(Vec<ClaimInfo>, Reader)> {
    let cat = store.catalog().await?;
    let claims = store.claims(&cat).await?;
    let reader = Reader::now()?;
    take_over(store, &claims, &reader, ttl).await;
    Ok((claims, reader))
}

/// Removes the claims that no longer count (best effort): those of earlier attempts of this
/// workflow run (GitHub starts a re-run attempt only after the earlier one ended, so they are
/// dead whatever their lease says), and those lapsed a whole lease ago (their run died without
/// a word), so that dead claims do not pile up in the repository.
async fn take_over(store: &Store, claims: &[ClaimInfo], reader: &Reader, ttl: Duration) {
    for c in claims {
        let earlier = reader.standing(c) == Standing::EarlierAttempt;
        if !earlier && !reader.long_gone(c, ttl) {
            continue;
        }
        let attempt = c.attempt.unwrap_or_default();
        let lapsed = crate::gate::minutes(reader.now_ms.saturating_sub(c.expires_ms) / 1000);
        match (store.release(c).await, earlier) {
            (Ok(()), true) => tracing::info!(
                "took over {} from attempt {attempt} of this workflow run (GitHub starts a re-run only after the earlier attempt ended): removed its claim {}",
                c.tag.release,
                c.tag.tag
            ),
            (Ok(()), false) => tracing::info!(
                "removed the lapsed claim {} (its run stopped renewing it {lapsed} ago)",
                c.tag.tag
            ),
            (Err(e), true) => tracing::info!(
                "attempt {attempt} of this workflow run ended before this one began, so its claim {} no longer counts (removing it failed: {e:#})",
                c.tag.tag
            ),
            (Err(e), false) => tracing::debug!(
                "removing the lapsed claim {}: {e:#}",
                c.tag.tag
            ),
        }
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
        images: plan.image_set(env),
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
                before_image: s.previous_image.clone(),
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
        built_as: plan.built_as.clone(),
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
