//! Where a digest comes from when the plan takes it from this environment's past rather than
//! from a new tag: what the bytes were built as (the release candidate a promoted image
//! reports), what the environment ran before ferry's first record (an adopted service), and
//! whether a release tag still means the bytes the environment ran as that release.
//!
//! Every answer is derived from the digest each time, never from one record alone: a later
//! record that lacks a field must not make a re-run forget it.

use anyhow::Result;

use crate::aws::{ecs, AwsResultExt};
use crate::config::{Environment, Environments};
use crate::records::store::{Catalog, Store};
use crate::records::{RecordResult, Summary};
use crate::tag::{self, ReleaseTag};

/// How many of a digest's own records are read for what it was built as, newest first.
const OWN_READS: usize = 5;
/// How many of the oldest records are read for what ferry's first deploys replaced.
const FIRST_RECORDS: usize = 3;
/// How many task-definition revisions of a family are looked through, newest first.
const REVISIONS: i32 = 100;
/// How many of the source repository's release candidates of one version are resolved.
const CANDIDATE_TAGS: usize = 20;

/// What the bytes `digest` were built and verified as: the release candidate recorded by this
/// environment's records of the digest (any of them, not only the newest), else the source
/// environment's records of it, else the source candidate tag that points at these bytes.
/// `None` for an environment that deploys its own tags (the tag is what they were built as).
pub async fn built_as(
    store: &Store,
    own: &[Summary],
    (envs, env, source_env): (&Environments, &Environment, &Environment),
    digest: &str,
    tag: &ReleaseTag,
) -> Option<String> {
    env.file.promote.as_ref()?;
    let mut mine: Vec<&Summary> = own.iter().filter(|s| s.digest == digest).collect();
    mine.sort_by_key(|s| std::cmp::Reverse((s.ended_at, s.started_at)));
    for s in mine.into_iter().take(OWN_READS) {
        match store.read(&s.record).await {
            Ok(r) => {
                if let Some(b) = r.built_as.or(r.promoted_from.map(|p| p.tag)) {
                    return Some(b);
                }
            }
            Err(e) => tracing::warn!("record {} in {}: {e:#}", s.record, store.location()),
        }
    }
    match from_source(envs, env, source_env, digest, tag).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(
                "what {digest} was built as could not be read from {}: {e:#}",
                source_env.name
            );
            None
        }
    }
}

/// The source environment's word on `digest`: its newest successful record of it that this
/// environment trusts (signed by a key it pins, when it pins any), else a release candidate of
/// this version whose tag points at it.
async fn from_source(
    envs: &Environments,
    env: &Environment,
    source_env: &Environment,
    digest: &str,
    tag: &ReleaseTag,
) -> Result<Option<String>> {
    let src = Store::open_trusting(source_env, env, envs).await?;
    let (sums, _) = src.referrers(digest).await?;
    if let Some(s) = sums
        .iter()
        .filter(|s| s.result == RecordResult::Succeeded && s.trust.ignored(&s.record).is_none())
        .max_by_key(|s| (s.ended_at, s.started_at))
    {
        return Ok(Some(s.tag.clone()));
    }
    let words = source_env.prerelease_words();
    let core = tag.core();
    let repo = source_env.repository();
    let mut cands: Vec<(semver::Version, String)> = src
        .client()
        .list_tags(repo)
        .await?
        .into_iter()
        .filter_map(|t| {
            let p = tag::parse(&t, &words).ok()?;
            (p.is_prerelease() && p.core() == core).then_some((p.version, t))
        })
        .collect();
    cands.sort();
    for (_, t) in cands.iter().rev().take(CANDIDATE_TAGS) {
        if src
            .client()
            .resolve_tag(repo, t)
            .await?
            .is_some_and(|d| d.digest == digest)
        {
            return Ok(Some(t.clone()));
        }
    }
    Ok(None)
}

/// A release the environment ran before ferry remembered it.
#[derive(Debug, Clone)]
pub struct RanBefore {
    /// Its digest (the release tag in this environment's repository, or the image pinned by
    /// the revision that ran it).
    pub digest: String,
    /// Where that was learned, in words.
    pub evidence: String,
}

/// Whether `image` (a container image reference) is `host/repo` at `tag` or at `digest`.
pub fn image_is(image: &str, host: &str, repo: &str, tag: &str, digest: Option<&str>) -> bool {
    let Some(rest) = image
        .strip_prefix(host)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(repo))
    else {
        return false;
    };
    let (named, pinned) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let named = match named {
        "" => None,
        n => match n.strip_prefix(':') {
            Some(t) => Some(t),
            None => return false, // another repository whose name starts with `repo`
        },
    };
    match (pinned, digest) {
        (Some(p), Some(d)) => p == d,
        // Pinned to bytes we cannot compare (the tag is gone from the repository).
        (Some(_), None) => false,
        (None, _) => named == Some(tag),
    }
}

/// Whether `env` ran `tag` before ferry's first record: what ferry's first deploys replaced
/// (each record names the image it replaced), or a revision in each service's task-definition
/// history whose image is that tag or its digest in this environment's repository.
pub async fn ran_before(
    sdk: &aws_config::SdkConfig,
    store: &Store,
    cat: &Catalog,
    env: &Environment,
    tag: &ReleaseTag,
) -> Result<Option<RanBefore>> {
    let repo = env.repository();
    let host = env.registry_host();
    let here = store.client().resolve_tag(repo, &tag.tag).await?;
    let digest = here.as_ref().map(|d| d.digest.clone());
    let first: Vec<_> = cat.records.iter().take(FIRST_RECORDS).cloned().collect();
    // Only records this environment trusts (signed by a key it pins, when it pins any).
    let (trusted, _) = Store::trusted(store.summaries(&first).await?, &first);
    for s in trusted {
        let r = match store.read(&s.record).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("record {} in {}: {e:#}", s.record, store.location());
                continue;
            }
        };
        for svc in &r.services {
            let Some(img) = &svc.before_image else {
                continue;
            };
            if let Some(found) = pinned_or(img, &host, repo, &tag.tag, digest.as_deref()) {
                return Ok(Some(RanBefore {
                    digest: found,
                    evidence: format!(
                        "ferry's first deploy of {} replaced it on {}/{} ({img}, record {})",
                        r.tag, svc.cluster, svc.service, s.record
                    ),
                }));
            }
        }
    }
    let client = crate::aws::sts::ecs_client(sdk);
    for cfg in &env.file.services {
        let Some(svc) = ecs::find_service(&client, &cfg.cluster, &cfg.service).await? else {
            continue;
        };
        let Some(family) = svc.task_definition().map(|a| {
            ecs::short_td(a)
                .rsplit_once(':')
                .map_or(a, |(f, _)| f)
                .to_string()
        }) else {
            continue;
        };
        let listed = client
            .list_task_definitions()
            .family_prefix(&family)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .max_results(REVISIONS)
            .send()
            .await
            .aws("ecs:ListTaskDefinitions", &family);
        let arns = match listed {
            Ok(l) => l.task_definition_arns().to_vec(),
            Err(e) => {
                tracing::warn!(
                    "{e:#}; the task-definition history of {}/{} was not read",
                    cfg.cluster,
                    cfg.service
                );
                continue;
            }
        };
        for arn in arns {
            let (td, _) = ecs::describe_task_definition(&client, &arn).await?;
            if td.family() != Some(family.as_str()) {
                continue;
            }
            let Some(img) = ecs::container_image(&td, &cfg.container) else {
                continue;
            };
            if let Some(found) = pinned_or(img, &host, repo, &tag.tag, digest.as_deref()) {
                return Ok(Some(RanBefore {
                    digest: found,
                    evidence: format!(
                        "{}/{} ran it as {} ({img}), by its task-definition history",
                        cfg.cluster,
                        cfg.service,
                        ecs::short_td(&arn)
                    ),
                }));
            }
        }
    }
    Ok(None)
}

/// The digest of `image` when it is the release (by tag or by `digest`): `digest` when known,
/// else the digest the image pins.
fn pinned_or(
    image: &str,
    host: &str,
    repo: &str,
    tag: &str,
    digest: Option<&str>,
) -> Option<String> {
    if !image_is(image, host, repo, tag, digest) {
        return None;
    }
    digest
        .map(str::to_string)
        .or_else(|| image.split_once('@').map(|(_, d)| d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_the_release_by_tag_or_by_digest() {
        let h = "1.dkr.ecr.eu-west-1.amazonaws.com";
        let d = "sha256:aa";
        // (name, image, tag's digest known, expected)
        let cases = [
            ("by tag", format!("{h}/app:v1.0.0"), Some(d), true),
            (
                "by tag, digest unknown",
                format!("{h}/app:v1.0.0"),
                None,
                true,
            ),
            ("by digest", format!("{h}/app@{d}"), Some(d), true),
            (
                "tag and digest",
                format!("{h}/app:v1.0.0@{d}"),
                Some(d),
                true,
            ),
            ("other digest", format!("{h}/app@sha256:bb"), Some(d), false),
            ("other tag", format!("{h}/app:v1.0.1"), Some(d), false),
            (
                "other repository",
                format!("{h}/app2:v1.0.0"),
                Some(d),
                false,
            ),
            (
                "other host",
                "2.dkr.ecr.eu-west-1.amazonaws.com/app:v1.0.0".to_string(),
                Some(d),
                false,
            ),
            ("digest only, tag gone", format!("{h}/app@{d}"), None, false),
            ("no tag", format!("{h}/app"), Some(d), false),
        ];
        for (name, image, digest, want) in cases {
            assert_eq!(image_is(&image, h, "app", "v1.0.0", digest), want, "{name}");
        }
        assert_eq!(
            pinned_or(&format!("{h}/app:v1.0.0"), h, "app", "v1.0.0", Some(d)).as_deref(),
            Some(d)
        );
    }
}
