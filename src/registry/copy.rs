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
//! 4. Read the copy back (the tag's bytes, every child and blob present).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::client::{Manifest, RegistryClient, SourceCorrupt};
use super::digest::{Digest, Hasher};
use super::manifest::{self, Parsed};
use crate::error::Failure;

/// Blobs copied at once.
const CONCURRENCY: usize = 6;
/// HEADs and small manifest requests at once: latency-bound, so wider.
const LOOKUPS: usize = 32;
/// Manifests in one image graph, at most.
const MAX_MANIFESTS: usize = 1000;
/// Depth of nested indexes, at most.
const MAX_DEPTH: usize = 8;

/// One side of a copy.
pub struct Side<'a> {
    pub client: &'a RegistryClient,
    pub repository: &'a str,
}

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

/// A blob the graph needs.
#[derive(Debug, Clone)]
struct Blob {
    size: u64,
    /// A foreign / non-distributable layer, with where its bytes are said to live.
    foreign: Option<Vec<String>>,
}

/// One manifest of the graph, with what it references.
struct Node {
    manifest: Manifest,
    /// Longest path down to a leaf manifest: 0 for an image manifest.
    height: usize,
}

/// The image graph below a top manifest.
struct Graph {
    /// By height (children before parents); the top manifest last.
    manifests: Vec<Node>,
    blobs: BTreeMap<Digest, Blob>,
}

impl Graph {
    fn children(&self) -> &[Node] {
        &self.manifests[..self.manifests.len() - 1]
    }
    fn top(&self) -> &Node {
        &self.manifests[self.manifests.len() - 1]
    }
}

fn parse_manifest(src: &Side<'_>, m: &Manifest) -> Result<Parsed> {
    manifest::parse(&m.bytes).map_err(|e| {
        anyhow!(
            "manifest {} in {}/{}: {e}",
            m.digest,
            src.client.host(),
            src.repository
        )
    })
}

/// Reads every manifest below `top` from the source (each level's children concurrently),
/// verifying each child's digest and size, and orders them children first.
async fn walk(src: &Side<'_>, top: Manifest) -> Result<Graph> {
    let mut blobs = BTreeMap::new();
    let mut children_of: HashMap<Digest, Vec<Digest>> = HashMap::new();
    let mut nodes: HashMap<Digest, Manifest> = HashMap::new();
    let mut seen = HashSet::from([top.digest.clone()]);
    let top_digest = top.digest.clone();
    let mut level = vec![top];
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        if depth > MAX_DEPTH {
            bail!(
                "{}/{}: indexes nested more than {MAX_DEPTH} deep",
                src.client.host(),
                src.repository
            );
        }
        let mut wanted = Vec::new();
        for m in &level {
            let parsed = parse_manifest(src, m)?;
            for d in parsed.config.iter().chain(parsed.layers.iter()) {
                blobs.insert(
                    d.digest.clone(),
                    Blob {
                        size: d.size,
                        foreign: d.is_foreign().then(|| d.urls.clone()),
                    },
                );
            }
            let kids = children_of.entry(m.digest.clone()).or_default();
            for c in &parsed.manifests {
                kids.push(c.digest.clone());
                if seen.insert(c.digest.clone()) {
                    wanted.push(c.clone());
                }
            }
        }
        if seen.len() > MAX_MANIFESTS {
            bail!(
                "{}/{}: more than {MAX_MANIFESTS} manifests in one image",
                src.client.host(),
                src.repository
            );
        }
        for m in level.drain(..) {
            nodes.insert(m.digest.clone(), m);
        }
        level = futures_util::stream::iter(wanted)
            .map(|child| async move {
                let cm = src
                    .client
                    .get_manifest(src.repository, child.digest.as_str())
                    .await?
                    .ok_or_else(|| {
                        anyhow!(
                            "{}/{}: the index lists {}, which the registry does not have",
                            src.client.host(),
                            src.repository,
                            child.digest
                        )
                    })?;
                if cm.bytes.len() as u64 != child.size {
                    return Err(SourceCorrupt(format!(
                        "{}/{}@{}: the manifest is {} bytes, its index says {}",
                        src.client.host(),
                        src.repository,
                        child.digest,
                        cm.bytes.len(),
                        child.size
                    ))
                    .into());
                }
                Ok::<_, anyhow::Error>(cm)
            })
            .buffered(LOOKUPS)
            .try_collect()
            .await?;
    }
    // Heights, children first (the graph is acyclic: a manifest cannot contain its own hash).
    fn height(
        d: &Digest,
        children_of: &HashMap<Digest, Vec<Digest>>,
        memo: &mut HashMap<Digest, usize>,
    ) -> usize {
        if let Some(h) = memo.get(d) {
            return *h;
        }
        let h = children_of
            .get(d)
            .into_iter()
            .flatten()
            .map(|c| 1 + height(c, children_of, memo))
            .max()
            .unwrap_or(0);
        memo.insert(d.clone(), h);
        h
    }
    let mut memo = HashMap::new();
    let mut manifests: Vec<Node> = nodes
        .into_values()
        .map(|m| Node {
            height: height(&m.digest, &children_of, &mut memo),
            manifest: with_media_type(m),
        })
        .collect();
    manifests.sort_by(|a, b| {
        (
            a.manifest.digest == top_digest,
            a.height,
            &a.manifest.digest,
        )
            .cmp(&(
                b.manifest.digest == top_digest,
                b.height,
                &b.manifest.digest,
            ))
    });
    Ok(Graph { manifests, blobs })
}

/// The media type to push with: the manifest's own `mediaType`, else what the source said.
fn with_media_type(m: Manifest) -> Manifest {
    match manifest::parse(&m.bytes).ok().and_then(|p| p.media_type) {
        Some(t) if t.len() <= 255 => Manifest { media_type: t, ..m },
        _ => m,
    }
}

/// HEADs every child manifest and blob at the destination in one concurrent wave; returns
/// the digests that are present.
async fn present(dst: &Side<'_>, graph: &Graph) -> Result<HashSet<Digest>> {
    let children = graph.children().iter().map(|n| (&n.manifest.digest, true));
    let blobs = graph.blobs.keys().map(|d| (d, false));
    let found: Vec<Option<Digest>> = futures_util::stream::iter(children.chain(blobs))
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
    let (existing, here) = tokio::try_join!(tag_lookup, present(dst, &graph))?;
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

    verify(dst, reference, top, &graph).await?;
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

enum State {
    Streaming,
    /// The source ended and the bytes check out: hand over the held chunk, then end.
    Verified,
    Done,
}

/// A blob body that hashes and counts what passes, and holds the last chunk back until the
/// whole blob is proven: a short, long or corrupt source ends the upload with an error before
/// the destination has every byte, so it cannot commit.
struct Verify {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    hasher: Option<Hasher>,
    seen: u64,
    size: u64,
    digest: Digest,
    held: Option<Bytes>,
    state: State,
    fault: Arc<Mutex<Option<String>>>,
    counter: Arc<AtomicU64>,
    from: String,
}

impl Verify {
    fn fail(&mut self, msg: String) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.state = State::Done;
        self.held = None;
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
            "{}@{}: {msg}; the source's copy is corrupt (nothing was committed at the destination)",
            self.from, self.digest
        ));
        Poll::Ready(Some(Err(std::io::Error::other(msg))))
    }
}

impl Stream for Verify {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.state {
                State::Done => return Poll::Ready(None),
                State::Verified => {
                    self.state = State::Done;
                    return Poll::Ready(self.held.take().map(Ok));
                }
                State::Streaming => {}
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    self.seen += chunk.len() as u64;
                    if self.seen > self.size {
                        let size = self.size;
                        return self.fail(format!(
                            "the source sent more than the {size} bytes the manifest says"
                        ));
                    }
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    self.counter
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(prev) = self.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(prev)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // A dropped source connection: transient, retried by the caller.
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        crate::redact::reqwest_error(&e),
                    ))));
                }
                Poll::Ready(None) => {
                    if self.seen != self.size {
                        let (seen, size) = (self.seen, self.size);
                        return self.fail(format!(
                            "the source sent {seen} bytes, the manifest says {size}"
                        ));
                    }
                    let got = self.hasher.take().map(Hasher::finish);
                    if got.as_ref() != Some(&self.digest) {
                        let got = got.map(|d| d.to_string()).unwrap_or_default();
                        return self.fail(format!("the source's bytes hash to {got}"));
                    }
                    self.state = State::Verified;
                }
            }
        }
    }
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
