//! The plan's memory: reads this environment's records (and, for a promotion, the source
//! environment's), feeds the pure decisions of `crate::gate`, and fills in the plan's digest,
//! kind and vouching record. Refusals are exit 3, the same for `plan` and `deploy`.

use std::collections::BTreeSet;

use anyhow::Result;

use super::{lineage, DigestFrom, ImageRef, Plan, PlanOptions};
use crate::config::{Environment, Environments};
use crate::error::Failure;
use crate::gate::{self, Candidate, GateInput, RunInput};
use crate::records::store::{Catalog, NamedTag, Store};
use crate::records::{now_unix, RecordResult, Summary};
use crate::tag::{self, ReleaseTag};

/// How many of the newest records are read to know what runs now (and for soak).
const RECENT: usize = 50;

/// What is left for the plan to do.
pub enum Resolved {
    /// The digest is decided (from a record).
    Done,
    /// A new release from its tag in the source repository (a pre-release).
    FromTag,
}

/// `--from` must name a release candidate of the version being promoted.
pub fn check_from(
    from: &str,
    tag: &ReleaseTag,
    env: &Environment,
    source: &Environment,
) -> Result<()> {
    if env.file.promote.is_none() {
        return Err(Failure::invalid(format!(
            "--from {from}: {} does not promote (it deploys its own {}), so there is no candidate to choose",
            env.name, tag.tag
        ))
        .hint("use --from only with a final release (vX.Y.Z) of an environment with [promote]")
        .into());
    }
    let words = source.prerelease_words();
    match tag::parse(from, &words) {
        Ok(t) if t.is_prerelease() && t.core() == tag.core() => Ok(()),
        _ => Err(Failure::invalid(format!(
            "--from {from:?} is not a release candidate of {} in {}",
            tag.tag, source.name
        ))
        .hint(format!(
            "name one of {}'s candidates: --from v{}-rc.N",
            source.name,
            tag.core()
        ))
        .into()),
    }
}

/// The newest `RECENT` record tags plus every one of `release`, oldest first, no duplicates.
fn select(cat: &Catalog, wanted: impl Fn(&NamedTag) -> bool) -> Vec<NamedTag> {
    let recent_from = cat.records.len().saturating_sub(RECENT);
    let mut seen = BTreeSet::new();
    cat.records
        .iter()
        .enumerate()
        .filter(|(i, n)| *i >= recent_from || wanted(n))
        .filter(|(_, n)| seen.insert(n.tag.clone()))
        .map(|(_, n)| n.clone())
        .collect()
}

fn latest_success<'a>(sums: &'a [Summary], tag: Option<&str>) -> Option<&'a Summary> {
    sums.iter()
        .filter(|s| s.result == RecordResult::Succeeded && tag.is_none_or(|t| s.tag == t))
        .max_by_key(|s| (s.ended_at, s.started_at))
}

/// A re-run keeps the digest this environment ran as `tag`; when the tag now points at other
/// bytes, say so (a release tag never changes meaning, so the new bytes are not deployed).
async fn moved_tag(
    store: &Store,
    env: &Environment,
    tag: &ReleaseTag,
    own: &Summary,
) -> Option<String> {
    let repo = env.repository();
    let now = match store.client().resolve_tag(repo, &tag.tag).await {
        Ok(d) => d?,
        Err(e) => {
            tracing::warn!(
                "reading {}:{} in {}: {e:#}",
                repo,
                tag.tag,
                store.location()
            );
            return None;
        }
    };
    (now.digest != own.digest).then(|| {
        format!(
            "{t} now points at {new} in {loc}, but {e} ran {t} as {old} (record {rec}): this run keeps {old}, the bytes {t} was verified as; a release tag never changes meaning, so to ship {new} publish a new release candidate",
            t = tag.tag,
            new = now.digest,
            loc = store.location(),
            e = env.name,
            old = own.digest,
            rec = own.record
        )
    })
}

/// Reads the records, decides, and fills `plan`.
pub async fn resolve(
    plan: &mut Plan,
    envs: &Environments,
    env: &Environment,
    source_env: &Environment,
    tag: &ReleaseTag,
    opts: &PlanOptions,
) -> Result<Resolved> {
    let store = Store::open(env).await?;
    if opts.wait_for_idle && !opts.claims_checked_by_run {
        // Another run's live claim is waited for, as a deployment in flight is.
        super::claims::wait_for_claims(&store, &env.name, opts.deadline).await?;
    }
    let cat = store.catalog().await?;
    if !opts.claims_checked_by_run {
        let claims = store.claims(&cat).await?;
        gate::overlap(&env.name, &claims, None, &crate::lease::Reader::now()?)
            .map_err(gate::refused)?;
    }

    let own_read = select(&cat, |n| n.release == tag.tag);
    // Where this environment pins its own key, its own unsigned or invalid records count for
    // nothing either (a record pushed with its repository's push right is not its memory).
    let (sums, ignored_own) = Store::trusted(store.summaries(&own_read).await?, &own_read);
    for i in &ignored_own {
        tracing::warn!("{i}");
    }
    let live = latest_success(&sums, None);
    let own = latest_success(&sums, Some(&tag.tag));
    let words = envs.prerelease_words();
    let live_version = live
        .and_then(|l| tag::parse(&l.tag, &words).ok())
        .map(|t| t.version);
    // Going back to a release ferry has no record of: did this environment run it before
    // ferry's first record? (Only looked up then: it reads the task-definition history.)
    let older = matches!(&live_version, Some(lv) if tag.version < *lv);
    let ran_before = if older && own.is_none() {
        let seen = async {
            let sdk = crate::aws::sts::environment_config(env).await?;
            lineage::ran_before(&sdk, &store, &cat, env, tag).await
        };
        match seen.await {
            Ok(r) => r,
            Err(e) => {
                plan.unresolved.push(format!(
                    "whether {} ran {} before ferry: {e:#}",
                    env.name, tag.tag
                ));
                None
            }
        }
    } else {
        None
    };
    let decision = gate::run_kind(
        &RunInput {
            environment: &env.name,
            tag: &tag.tag,
            version: &tag.version,
            trigger: plan.trigger,
            run_attempt: opts.run_attempt.max(1),
            allow_downgrade: opts.allow_downgrade,
            live,
            own,
            ran_before: ran_before.as_ref().map(|r| r.evidence.as_str()),
        },
        live_version.as_ref(),
    )
    .map_err(gate::refused)?;
    plan.kind = decision.kind;
    plan.live_release = decision.from;
    plan.downgrade = decision.downgrade;

    if let Some(own) = decision.own {
        if opts.from.is_some() {
            tracing::info!(
                "--from is not used: {} ran {} before, so its own record decides the digest",
                env.name,
                tag.tag
            );
        }
        // From this environment's own record and repository: the source environment (and its
        // release candidates, which a lifecycle rule may have expired) is not needed.
        plan.source = ImageRef::new(env, Some(tag.tag.clone()));
        plan.promote = false;
        let image = store
            .client()
            .get_manifest(env.repository(), &own.digest)
            .await?
            .ok_or_else(|| {
                Failure::refused(format!(
                    "{} ran {} as {} (record {}), but that image is gone from {}",
                    env.name,
                    tag.tag,
                    own.digest,
                    own.record,
                    store.location()
                ))
                .hint("a lifecycle rule may have expired it: exclude release tags (v*) from expiry, then copy the image back by digest with `ferry copy`")
            })?;
        plan.source.digest = Some(own.digest.clone());
        plan.source.media_type = Some(image.media_type);
        plan.digest_from = DigestFrom::OwnRecord;
        // A promoted image still reports the candidate it was built as (for the smoke check):
        // a property of the digest, found again on every run.
        plan.built_as =
            lineage::built_as(&store, &sums, (envs, env, source_env), &own.digest, tag).await;
        if let Some(note) = moved_tag(&store, env, tag, &own).await {
            tracing::warn!("{note}");
            plan.notes.push(note);
        }
        plan.record = Some(own);
        return Ok(Resolved::Done);
    }
    if let (Some(rb), false) = (ran_before, decision.downgrade) {
        plan.source = ImageRef::new(env, Some(tag.tag.clone()));
        plan.promote = false;
        let image = store
            .client()
            .get_manifest(env.repository(), &rb.digest)
            .await?
            .ok_or_else(|| {
                Failure::refused(format!(
                    "{} ran {} before ferry ({}), but its image {} is gone from {}",
                    env.name,
                    tag.tag,
                    rb.evidence,
                    rb.digest,
                    store.location()
                ))
                .hint("copy the image back by digest with `ferry copy`, or roll back to another release")
            })?;
        plan.source.media_type = Some(image.media_type);
        plan.built_as =
            lineage::built_as(&store, &sums, (envs, env, source_env), &rb.digest, tag).await;
        plan.source.digest = Some(rb.digest);
        plan.digest_from = DigestFrom::BeforeFerry;
        let note = format!(
            "{} ran {} before ferry's first record here: {}",
            env.name, tag.tag, rb.evidence
        );
        tracing::info!("{note}");
        plan.notes.push(note);
        return Ok(Resolved::Done);
    }
    if env.file.promote.is_none() {
        return Ok(Resolved::FromTag);
    }

    // The promotion gate: the source environment's records decide.
    let src = Store::open_trusting(source_env, env, envs).await?;
    let scat = src.catalog().await?;
    let swords = source_env.prerelease_words();
    let core = tag.core();
    let is_candidate = |t: &str| {
        tag::parse(t, &swords)
            .ok()
            .filter(|t| t.is_prerelease() && t.core() == core)
    };
    let mut names: BTreeSet<String> = scat
        .tags
        .iter()
        .filter(|t| is_candidate(t).is_some())
        .cloned()
        .collect();
    names.extend(
        scat.records
            .iter()
            .filter(|n| is_candidate(&n.release).is_some())
            .map(|n| n.release.clone()),
    );
    let read = select(&scat, |n| names.contains(&n.release));
    // Only records signed by a key this environment trusts count (when it trusts any).
    let (ssums, ignored) = Store::trusted(src.summaries(&read).await?, &read);
    for i in &ignored {
        tracing::warn!("{i}");
    }
    let sclaims = src.claims(&scat).await?;
    let reader = crate::lease::Reader::now()?;
    let repo = source_env.repository();
    let mut candidates = Vec::new();
    for name in &names {
        let Some(parsed) = is_candidate(name) else {
            continue;
        };
        let tag_digest = if scat.tags.contains(name) {
            src.client()
                .resolve_tag(repo, name)
                .await?
                .map(|d| d.digest)
        } else {
            None
        };
        candidates.push(Candidate {
            tag: name.clone(),
            version: parsed.version,
            tag_digest,
            records: ssums.iter().filter(|s| &s.tag == name).cloned().collect(),
            // Only a live lease that no later run of this rc finished past.
            in_flight: crate::lease::deploying(name, &sclaims, &ssums, &reader),
        });
    }
    let soak = env.file.promote.as_ref().and_then(|p| p.soak_minutes);
    let p = gate::promotion(&GateInput {
        version: &core,
        source: &source_env.name,
        candidates,
        from: opts.from.as_deref(),
        soak_minutes: soak,
        source_history: &ssums,
        now: now_unix(),
    })
    .map_err(|mut r| {
        for i in &ignored {
            r.message.push_str(&format!("\n  {i}"));
        }
        gate::refused(r)
    })?;
    let digest = p.record.digest.clone();
    // The record is bound to the digest: find it again from the image (referrers API, or the
    // spec's fallback tag), not only by its name.
    let (bound, path) = src.referrers(&digest).await?;
    if !bound.iter().any(|s| s.record == p.record.record) {
        tracing::warn!(
            "record {} of {} is not listed among the referrers of {digest} in {} ({path:?}); its name and contents still vouch for it",
            p.record.record,
            p.tag,
            src.location()
        );
    }
    plan.candidates = p.candidates;
    plan.source.tag = Some(p.tag.clone());
    plan.built_as = Some(p.tag.clone());
    match src.client().get_manifest(repo, &digest).await? {
        Some(m) => plan.source.media_type = Some(m.media_type),
        None => plan.unresolved.push(format!(
            "{}@{digest} ({}) is no longer in {}: promotion works only if production already holds it",
            repo,
            p.tag,
            src.location()
        )),
    }
    plan.source.digest = Some(digest);
    plan.digest_from = DigestFrom::SourceRecord;
    plan.record = Some(p.record);
    Ok(Resolved::Done)
}
