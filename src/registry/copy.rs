//! Copying one image by digest between repositories (and registries), byte for byte.
//!
//! The digest survives only if the exact manifest bytes and media types are pushed, so the
//! whole graph moves unchanged: index or manifest list, every child manifest (attestation
//! manifests included, no platform filtering), configs, layers. Blobs first (HEAD-skipped,
//! mounted within one registry, otherwise streamed GET → PUT a few at a time), then child
//! manifests, then the top manifest under the tag, which is written last so an interrupted
//! copy never leaves a tag pointing at an incomplete image. A tag that already points at a
//! different digest is never moved. The result is verified by reading it back.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::client::{sha256_digest, Manifest, RegistryClient};
use crate::error::Failure;

/// Blobs copied at once.
const CONCURRENCY: usize = 6;
/// HEADs and small manifest requests at once: latency-bound, so wider.
const LOOKUPS: usize = 16;

/// One side of a copy.
pub struct Side<'a> {
    pub client: &'a RegistryClient,
    pub repository: &'a str,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyOutcome {
    pub digest: String,
    pub media_type: String,
    /// The target tag already pointed at this digest: nothing was written.
    pub already_done: bool,
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

/// The image graph below a top manifest.
struct Graph {
    /// Children before parents; the top manifest last.
    manifests: Vec<Manifest>,
    /// digest → size
    blobs: BTreeMap<String, u64>,
}

fn media_type_of(json: &serde_json::Value, header: &str) -> String {
    json.get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| header.to_string())
}

/// Reads every manifest below `top` from the source (an index's children concurrently).
async fn walk(src: &Side<'_>, top: Manifest) -> Result<Graph> {
    let mut graph = Graph {
        manifests: Vec::new(),
        blobs: BTreeMap::new(),
    };
    let mut seen = HashSet::new();
    // Level by level; children are pushed before their parents, so collect parents aside.
    let mut level = vec![top];
    let mut parents: Vec<Vec<Manifest>> = Vec::new();
    while !level.is_empty() {
        let mut next_digests = Vec::new();
        for m in &level {
            let json: serde_json::Value = serde_json::from_slice(&m.bytes).with_context(|| {
                format!("manifest {} in {} is not JSON", m.digest, src.repository)
            })?;
            if json.get("fsLayers").is_some() {
                bail!("manifest {} uses the Docker schema 1 format, which cannot be copied by digest; rebuild the image", m.digest);
            }
            if let Some(c) = json.get("config") {
                add_blob(&mut graph, c)?;
            }
            for l in json
                .get("layers")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                add_blob(&mut graph, l)?;
            }
            for c in json
                .get("manifests")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(d) = c.get("digest").and_then(|d| d.as_str()) {
                    if seen.insert(d.to_string()) {
                        next_digests.push(d.to_string());
                    }
                }
            }
        }
        let children: Vec<Manifest> = futures_util::stream::iter(next_digests)
            .map(|child| async move {
                let cm = src
                    .client
                    .get_manifest(src.repository, &child)
                    .await?
                    .ok_or_else(|| {
                        anyhow!(
                            "{}/{}: the index lists {child}, which the registry does not have",
                            src.client.host(),
                            src.repository
                        )
                    })?;
                anyhow::ensure!(
                    cm.digest == child,
                    "{}/{}@{child}: the registry served bytes with digest {}",
                    src.client.host(),
                    src.repository,
                    cm.digest
                );
                Ok(cm)
            })
            .buffered(LOOKUPS)
            .try_collect()
            .await?;
        parents.push(std::mem::replace(&mut level, children));
    }
    for lvl in parents.into_iter().rev() {
        graph.manifests.extend(lvl);
    }
    Ok(graph)
}

fn add_blob(graph: &mut Graph, desc: &serde_json::Value) -> Result<()> {
    let digest = desc
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| anyhow!("a descriptor without digest"))?;
    let size = desc.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
    graph.blobs.insert(digest.to_string(), size);
    Ok(())
}

/// HEADs every blob and child manifest at the destination in one concurrent wave; returns
/// the digests that are present.
async fn present(dst: &Side<'_>, graph: &Graph) -> Result<HashSet<String>> {
    let children = graph.manifests[..graph.manifests.len() - 1]
        .iter()
        .map(|m| (m.digest.clone(), true));
    let blobs = graph.blobs.keys().map(|d| (d.clone(), false));
    let found: Vec<Option<String>> = futures_util::stream::iter(children.chain(blobs))
        .map(|(d, manifest)| async move {
            let here = if manifest {
                dst.client.has_manifest(dst.repository, &d).await?
            } else {
                dst.client.has_blob(dst.repository, &d).await?
            };
            Ok::<_, anyhow::Error>(here.then_some(d))
        })
        .buffer_unordered(LOOKUPS)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
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
    let req0 = src.client.requests()
        + if src.client.same_registry(dst.client) {
            0
        } else {
            dst.client.requests()
        };
    let src_name = format!("{}/{}:{src_ref}", src.client.host(), src.repository);
    let dst_name = |r: &str| format!("{}/{}:{r}", dst.client.host(), dst.repository);
    // The source manifest and the destination tag, at once.
    let tag_lookup = async {
        match dst_tag {
            Some(t) => dst.client.get_manifest(dst.repository, t).await,
            None => Ok(None),
        }
    };
    let (top, existing) =
        tokio::try_join!(src.client.get_manifest(src.repository, src_ref), tag_lookup)?;
    let top = top.ok_or_else(|| {
        Failure::invalid(format!("source image {src_name} does not exist"))
            .hint("check the repository and tag (or digest) of the source")
    })?;
    if src_ref.starts_with("sha256:") && top.digest != src_ref {
        bail!(
            "{src_name}: the registry served bytes whose digest is {}",
            top.digest
        );
    }
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
    let mut out = CopyOutcome {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        ..CopyOutcome::default()
    };
    // The tag is never moved; the same digest means the copy is already done.
    if let (Some(tag), Some(existing)) = (dst_tag, existing) {
        if existing.digest == top.digest {
            out.already_done = true;
            out.requests = requests_since(src, dst, req0);
            out.seconds = started.elapsed().as_secs_f64();
            return Ok(out);
        }
        return Err(Failure::refused(format!(
            "{} already points at {}; refusing to move it to {} (from {src_name})",
            dst_name(tag),
            existing.digest,
            top.digest
        ))
        .hint("tags are immutable releases: publish a new version instead of re-using this tag")
        .into());
    }

    let graph = walk(src, top.clone()).await?;
    out.manifests = graph.manifests.len();
    out.blobs = graph.blobs.len();
    out.bytes_total = graph.blobs.values().sum();
    let here = present(dst, &graph).await?;

    // Missing blobs, biggest first, a few at a time, with progress for long copies.
    let mut missing: Vec<(&String, &u64)> = graph
        .blobs
        .iter()
        .filter(|(d, _)| !here.contains(*d))
        .collect();
    missing.sort_by(|a, b| b.1.cmp(a.1));
    out.blobs_skipped = out.blobs - missing.len();
    let done_bytes = Arc::new(AtomicU64::new(0));
    let done_blobs = Arc::new(AtomicU64::new(0));
    let progress = {
        let (db, dn, total, count) = (
            done_bytes.clone(),
            done_blobs.clone(),
            missing.iter().map(|m| *m.1).sum::<u64>(),
            missing.len(),
        );
        let name = dst_name(dst_tag.unwrap_or(&top.digest));
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
        .map(|(digest, size)| {
            let (db, dn) = (done_bytes.clone(), done_blobs.clone());
            async move {
                let r = copy_blob(src, dst, digest, *size, &db).await;
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

    // Missing child manifests by digest (all at once: they are independent), then the top
    // one under its tag, last.
    let (children, top_m) = graph.manifests.split_at(graph.manifests.len() - 1);
    let pushes: Vec<Manifest> = children
        .iter()
        .filter(|m| !here.contains(&m.digest))
        .map(with_media_type)
        .collect();
    out.manifests_pushed = pushes.len();
    futures_util::stream::iter(pushes.iter())
        .map(|m| dst.client.put_manifest(dst.repository, &m.digest, m))
        .buffer_unordered(LOOKUPS)
        .try_collect::<Vec<()>>()
        .await?;
    let top_m = with_media_type(&top_m[0]);
    dst.client
        .put_manifest(dst.repository, dst_tag.unwrap_or(&top_m.digest), &top_m)
        .await?;
    out.manifests_pushed += 1;

    verify(dst, dst_tag.unwrap_or(&top_m.digest), &top_m, &graph).await?;
    out.requests = requests_since(src, dst, req0);
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn requests_since(src: &Side<'_>, dst: &Side<'_>, before: u64) -> u64 {
    let now = src.client.requests()
        + if src.client.same_registry(dst.client) {
            0
        } else {
            dst.client.requests()
        };
    now - before
}

/// The media type to push with: the manifest's own `mediaType`, else what the source said.
fn with_media_type(m: &Manifest) -> Manifest {
    let json: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    Manifest {
        media_type: media_type_of(&json, &m.media_type),
        ..m.clone()
    }
}

enum BlobResult {
    Mounted,
    Copied(u64),
}

async fn copy_blob(
    src: &Side<'_>,
    dst: &Side<'_>,
    digest: &str,
    size: u64,
    done: &AtomicU64,
) -> Result<BlobResult> {
    if src.client.same_registry(dst.client)
        && src.repository != dst.repository
        && dst
            .client
            .mount_blob(dst.repository, digest, src.repository)
            .await?
    {
        done.fetch_add(size, Ordering::Relaxed);
        return Ok(BlobResult::Mounted);
    }
    // A streamed body cannot be replayed, so a dropped transfer restarts the blob.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match stream_blob(src, dst, digest, size, done).await {
            Ok(n) => return Ok(BlobResult::Copied(n)),
            Err(e) if attempt < 3 => {
                tracing::warn!("blob {digest}: {e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// GET from the source streamed straight into the destination's PUT: a layer is never held
/// in memory whole.
async fn stream_blob(
    src: &Side<'_>,
    dst: &Side<'_>,
    digest: &str,
    size: u64,
    done: &AtomicU64,
) -> Result<u64> {
    let resp = src.client.get_blob(src.repository, digest).await?;
    let length = resp.content_length().unwrap_or(size);
    let counter = Arc::new(AtomicU64::new(0));
    let c2 = counter.clone();
    let stream = resp.bytes_stream().map_ok(move |chunk| {
        c2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        chunk
    });
    dst.client
        .upload_blob(
            dst.repository,
            digest,
            length,
            reqwest::Body::wrap_stream(stream),
        )
        .await?;
    let n = counter.load(Ordering::Relaxed);
    done.fetch_add(n, Ordering::Relaxed);
    Ok(n)
}

/// Reads the copy back: the tag's bytes hash to the source digest with the same media type,
/// and every child manifest and blob is present (one concurrent wave of requests).
async fn verify(dst: &Side<'_>, reference: &str, top: &Manifest, graph: &Graph) -> Result<()> {
    let name = format!("{}/{}:{reference}", dst.client.host(), dst.repository);
    let (got, here) = tokio::try_join!(
        dst.client.get_manifest(dst.repository, reference),
        present(dst, graph)
    )?;
    let got = got.ok_or_else(|| anyhow!("verify: {name} is missing after the copy"))?;
    if got.digest != top.digest || sha256_digest(&got.bytes) != top.digest {
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
    let missing: Vec<&str> = graph.manifests[..graph.manifests.len() - 1]
        .iter()
        .map(|m| m.digest.as_str())
        .chain(graph.blobs.keys().map(String::as_str))
        .filter(|d| !here.contains(*d))
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
