//! Copying one image by digest between repositories (and registries), byte for byte.
//!
//! The digest survives only if the exact manifest bytes and media types are pushed, so the
//! whole graph moves unchanged: index or manifest list, every child manifest (attestation
//! manifests included, no platform filtering), configs, layers.
//!
//! 1. Read the source graph; every manifest below the top is fetched by digest and hashed.
//! 2. One concurrent round at the destination: the tag, and a HEAD of every child manifest and
//!    blob. "Already there" is claimed only when the tag has the digest *and* everything
//!    below it is present; whatever is missing is repaired.
//! 3. Missing blobs (mounted within one registry, else streamed GET → PUT a few at a time,
//!    hashed and sized on the way: a mismatch aborts the PUT before the destination commits
//!    and blames the source), then child manifests level by level, children before parents at
//!    every depth, then the top manifest under the tag, last, so an interrupted copy never
//!    leaves a tag pointing at an incomplete image. A tag that already points at a different
//!    digest is never moved.
//! 4. Read the copy back (the tag's bytes, and every child and blob this run wrote; what
//!    step 2 found there moments ago is not asked again).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::client::LOOKUPS;
use super::client::{Manifest, SourceCorrupt};
use super::digest::{Digest, Hasher};
pub use super::graph::Side;
use super::graph::{walk, Blob, Graph};

/// Blobs copied at once.
const CONCURRENCY: usize = 6;
use super::verify::{State, Verify};
use crate::error::Failure;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyOutcome {
    pub digest: String,
    pub media_type: String,
    /// The target tag already pointed at this digest and everything below it was present:
    /// nothing was written.
    pub already_done: bool,
    /// Child manifests and blobs that were missing below an existing tag and were restored.
    pub repaired: usize,
    pub manifests: usize,
    pub manifests_pushed: usize,
    pub blobs: usize,
    pub blobs_copied: usize,
    pub blobs_mounted: usize,
    pub blobs_skipped: usize,
    pub bytes_copied: u64,
    pub bytes_total: u64,
    /// HTTP requests made to both registries.
    pub requests: u64,
    pub seconds: f64,
}

/// HEADs every child manifest and blob at the destination in one concurrent wave; returns
/// the digests that are present. Those in `known` were proven present earlier in this run
/// and are not asked again (and are returned as present).
async fn present(
    dst: &Side<'_>,
    graph: &Graph,
    known: &HashSet<Digest>,
) -> Result<HashSet<Digest>> {
    let children = graph.children().iter().map(|n| (&n.manifest.digest, true));
    let blobs = graph.blobs.keys().map(|d| (d, false));
    let ask = children.chain(blobs).filter(|(d, _)| !known.contains(*d));
    let found: Vec<Option<Digest>> = futures_util::stream::iter(ask)
        .map(|(d, manifest)| async move {
            let here = if manifest {
                dst.client.has_manifest(dst.repository, d).await?
            } else {
                dst.client.has_blob(dst.repository, d).await?
            };
            Ok::<_, anyhow::Error>(here.then(|| d.clone()))
        })
        .buffer_unordered(LOOKUPS)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .flatten()
        .chain(known.iter().cloned())
        .collect())
}

/// Copies `src_ref` (tag or digest) from `src` to `dst`, tagging it `dst_tag`. When
/// `expect_digest` is given, the source must still resolve to it.
pub async fn copy(
    src: &Side<'_>,
    src_ref: &str,
    dst: &Side<'_>,
    dst_tag: Option<&str>,
    expect_digest: Option<&str>,
) -> Result<CopyOutcome> {
    let started = Instant::now();
    let req0 = total_requests(src, dst);
    let src_name = format!("{}/{}:{src_ref}", src.client.host(), src.repository);
    let dst_name = |r: &str| format!("{}/{}:{r}", dst.client.host(), dst.repository);
    let top = src
        .client
        .get_manifest(src.repository, src_ref)
        .await?
        .ok_or_else(|| {
            Failure::invalid(format!("source image {src_name} does not exist"))
                .hint("check the repository and tag (or digest) of the source")
        })?;
    if let Some(want) = expect_digest {
        if top.digest != want {
            return Err(Failure::refused(format!(
                "source {src_name} now points at {}, not the verified {want}: it was re-pushed after it was verified",
                top.digest
            ))
            .hint("publish a new release candidate and verify it, instead of moving a tag")
            .into());
        }
    }
    crate::panic::set_activity(format!(
        "copying {src_name} ({}) to {}",
        top.digest,
        dst_name(dst_tag.unwrap_or(top.digest.as_str()))
    ));
    let graph = walk(src, top).await?;
    let top = &graph.top().manifest;
    let mut out = CopyOutcome {
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        manifests: graph.manifests.len(),
        blobs: graph.blobs.len(),
        bytes_total: graph.blobs.values().map(|b| b.size).sum(),
        ..CopyOutcome::default()
    };
    // One round at the destination: the tag, and everything below it.
    let tag_lookup = async {
        match dst_tag {
            Some(t) => dst.client.get_manifest(dst.repository, t).await,
            None => Ok(None),
        }
    };
    let nothing_known = HashSet::new();
    let (existing, here) = tokio::try_join!(tag_lookup, present(dst, &graph, &nothing_known))?;
    let missing_count = graph.children().len() + graph.blobs.len() - here.len();
    let tag_in_place = match (dst_tag, existing) {
        (Some(_), Some(existing)) if existing.digest == top.digest => true,
        (Some(tag), Some(existing)) => {
            return Err(Failure::refused(format!(
                "{} already points at {}; refusing to move it to {} (from {src_name})",
                dst_name(tag),
                existing.digest,
                top.digest
            ))
            .hint("tags are immutable releases: publish a new version instead of re-using this tag")
            .into());
        }
        _ => false,
    };
    if tag_in_place && missing_count == 0 {
        out.already_done = true;
        out.blobs_skipped = out.blobs;
        out.requests = total_requests(src, dst) - req0;
        out.seconds = started.elapsed().as_secs_f64();
        return Ok(out);
    }
    if tag_in_place {
        tracing::warn!(
            "{} points at {} but {missing_count} of its manifests or blobs are missing there; restoring them",
            dst_name(dst_tag.unwrap_or_default()),
            top.digest
        );
        out.repaired = missing_count;
    }

    copy_blobs(src, dst, &graph, &here, &mut out).await?;

    // Missing child manifests, one height at a time: children before parents at every depth.
    let max_height = graph.top().height;
    for h in 0..max_height {
        let level: Vec<&Manifest> = graph
            .children()
            .iter()
            .filter(|n| n.height == h && !here.contains(&n.manifest.digest))
            .map(|n| &n.manifest)
            .collect();
        out.manifests_pushed += level.len();
        let graph = &graph;
        futures_util::stream::iter(level)
            .map(|m| async move {
                dst.client
                    .put_manifest(dst.repository, m.digest.as_str(), m)
                    .await
                    .map_err(|e| explain_foreign(e, graph))
            })
            .buffer_unordered(LOOKUPS)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let reference = dst_tag.unwrap_or(top.digest.as_str());
    if !tag_in_place {
        dst.client
            .put_manifest(dst.repository, reference, top)
            .await
            .map_err(|e| explain_foreign(e, &graph))?;
        out.manifests_pushed += 1;
    }

    verify(dst, reference, top, &graph, &here).await?;
    out.requests = total_requests(src, dst) - req0;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn total_requests(src: &Side<'_>, dst: &Side<'_>) -> u64 {
    src.client.requests()
        + if src.client.same_registry(dst.client) {
            0
        } else {
            dst.client.requests()
        }
}

/// A registry that refuses a manifest with foreign layers: say why.
fn explain_foreign(e: anyhow::Error, graph: &Graph) -> anyhow::Error {
    let foreign: Vec<String> = graph
        .blobs
        .iter()
        .filter(|(_, b)| b.foreign.is_some())
        .map(|(d, _)| d.to_string())
        .collect();
    if foreign.is_empty() {
        return e;
    }
    e.context(format!(
        "the image has {} foreign (non-distributable) layer(s) ({}); the destination may refuse manifests that point at them",
        foreign.len(),
        foreign.join(", ")
    ))
}

/// Missing blobs, biggest first, a few at a time, with progress for long copies.
async fn copy_blobs(
    src: &Side<'_>,
    dst: &Side<'_>,
    graph: &Graph,
    here: &HashSet<Digest>,
    out: &mut CopyOutcome,
) -> Result<()> {
    let mut missing: Vec<(&Digest, &Blob)> = graph
        .blobs
        .iter()
        .filter(|(d, _)| !here.contains(*d))
        .collect();
    missing.sort_by_key(|m| std::cmp::Reverse(m.1.size));
    out.blobs_skipped = out.blobs - missing.len();
    if missing.is_empty() {
        return Ok(());
    }
    let done_bytes = Arc::new(AtomicU64::new(0));
    let done_blobs = Arc::new(AtomicU64::new(0));
    let progress = {
        let (db, dn, total, count) = (
            done_bytes.clone(),
            done_blobs.clone(),
            missing.iter().map(|m| m.1.size).sum::<u64>(),
            missing.len(),
        );
        let name = format!("{}/{}", dst.client.host(), dst.repository);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!(
                    "copying to {name}: {}/{count} blobs, {:.1}/{:.1} MiB",
                    dn.load(Ordering::Relaxed),
                    db.load(Ordering::Relaxed) as f64 / 1048576.0,
                    total as f64 / 1048576.0
                );
            }
        })
    };
    let results: Vec<Result<BlobResult>> = futures_util::stream::iter(missing)
        .map(|(digest, blob)| {
            let (db, dn) = (done_bytes.clone(), done_blobs.clone());
            async move {
                let r = copy_blob(src, dst, digest, blob, &db).await;
                dn.fetch_add(1, Ordering::Relaxed);
                r
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    progress.abort();
    for r in results {
        match r? {
            BlobResult::Mounted => out.blobs_mounted += 1,
            BlobResult::Copied(n) => {
                out.blobs_copied += 1;
                out.bytes_copied += n;
            }
        }
    }
    Ok(())
}

enum BlobResult {
    Mounted,
    Copied(u64),
}

async fn copy_blob(
    src: &Side<'_>,
    dst: &Side<'_>,
    digest: &Digest,
    blob: &Blob,
    done: &AtomicU64,
) -> Result<BlobResult> {
    if src.client.same_registry(dst.client)
        && src.repository != dst.repository
        && dst
            .client
            .mount_blob(dst.repository, digest, src.repository)
            .await?
    {
        done.fetch_add(blob.size, Ordering::Relaxed);
        return Ok(BlobResult::Mounted);
    }
    // A streamed body cannot be replayed, so a dropped transfer restarts this blob (alone).
    // Bytes that do not match the digest are the source's fault: no retry.
    let mut schedule = crate::retry::Policy {
        max_attempts: 6,
        ..crate::retry::Policy::REQUESTS
    }
    .schedule();
    loop {
        match stream_blob(src, dst, digest, blob, done).await {
            Ok(n) => return Ok(BlobResult::Copied(n)),
            Err(e) if e.downcast_ref::<SourceCorrupt>().is_some() => return Err(e),
            Err(e) if e.downcast_ref::<Failure>().is_some() => return Err(e),
            Err(e) => match schedule.next_delay(None) {
                Some(d) => {
                    tracing::warn!("blob {digest}: {e:#}; retrying");
                    tokio::time::sleep(d.max(Duration::from_millis(100))).await;
                }
                _ => return Err(e),
            },
        }
    }
}

/// GET from the source streamed straight into the destination's PUT, hashed and counted on
/// the way: a layer is never held in memory whole, and bad bytes never complete the PUT.
async fn stream_blob(
    src: &Side<'_>,
    dst: &Side<'_>,
    digest: &Digest,
    blob: &Blob,
    done: &AtomicU64,
) -> Result<u64> {
    let from = format!("{}/{}", src.client.host(), src.repository);
    let Some(resp) = src
        .client
        .get_blob(src.repository, digest, blob.size)
        .await?
    else {
        return Err(match &blob.foreign {
            Some(urls) => Failure::invalid(format!(
                "layer {digest} is a foreign (non-distributable) layer and {from} does not hold its bytes{}",
                if urls.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (the manifest says they live at {})",
                        urls.iter()
                            .take(3)
                            .map(|u| crate::redact::url_str(u))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))
            .hint("ferry copies only bytes a registry holds and never downloads from URLs named in a manifest: push the layer into the source registry, or rebuild the image without foreign layers")
            .into(),
            None => anyhow!("{from}@{digest}: the source registry does not have this blob, which the manifest lists"),
        });
    };
    if let Some(n) = resp.content_length() {
        if n != blob.size {
            return Err(SourceCorrupt(format!(
                "{from}@{digest}: the source answers with {n} bytes, the manifest says {}",
                blob.size
            ))
            .into());
        }
    }
    let fault = Arc::new(Mutex::new(None));
    let counter = Arc::new(AtomicU64::new(0));
    let verify = Verify {
        inner: Box::pin(resp.bytes_stream()),
        hasher: Some(Hasher::for_digest(digest)),
        seen: 0,
        size: blob.size,
        digest: digest.clone(),
        held: None,
        state: State::Streaming,
        fault: fault.clone(),
        counter: counter.clone(),
        from: from.clone(),
    };
    let r = dst
        .client
        .upload_blob(
            dst.repository,
            digest,
            blob.size,
            reqwest::Body::wrap_stream(verify),
        )
        .await;
    if let Some(msg) = fault.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(SourceCorrupt(msg).into());
    }
    r?;
    let n = counter.load(Ordering::Relaxed);
    done.fetch_add(n, Ordering::Relaxed);
    Ok(n)
}

/// Reads the copy back: the tag's bytes hash to the source digest with the same media type,
/// and every child manifest and blob this run wrote is present (one concurrent wave). What
/// the first round already found there (`proven`) is not asked twice.
async fn verify(
    dst: &Side<'_>,
    reference: &str,
    top: &Manifest,
    graph: &Graph,
    proven: &HashSet<Digest>,
) -> Result<()> {
    let name = format!("{}/{}:{reference}", dst.client.host(), dst.repository);
    let (got, here) = tokio::try_join!(
        dst.client.get_manifest(dst.repository, reference),
        present(dst, graph, proven)
    )?;
    let got = got.ok_or_else(|| anyhow!("verify: {name} is missing after the copy"))?;
    if got.digest != top.digest {
        bail!(
            "verify: {name} has digest {} after the copy, expected {}",
            got.digest,
            top.digest
        );
    }
    if got.media_type != top.media_type {
        bail!(
            "verify: {name} is served as {:?}, expected {:?}",
            got.media_type,
            top.media_type
        );
    }
    let missing: Vec<&str> = graph
        .children()
        .iter()
        .map(|n| n.manifest.digest.as_str())
        .chain(graph.blobs.keys().map(Digest::as_str))
        .filter(|d| !here.iter().any(|h| h.as_str() == *d))
        .collect();
    if !missing.is_empty() {
        bail!(
            "verify: {} manifest(s) or blob(s) missing in {name}: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(())
}
