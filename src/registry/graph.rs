//! The image graph below a top manifest, read from the source: every child manifest fetched
//! by digest and checked against its descriptor's size, every blob with its size, and the
//! manifests ordered by height so children are always pushed before their parents.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};

use super::client::{Manifest, RegistryClient, SourceCorrupt, LOOKUPS};
use super::digest::Digest;
use super::manifest::{self, Parsed};

/// One side of a copy.
pub struct Side<'a> {
    pub client: &'a RegistryClient,
    pub repository: &'a str,
}

/// Manifests in one image graph, at most.
const MAX_MANIFESTS: usize = 1000;
/// Depth of nested indexes, at most.
const MAX_DEPTH: usize = 8;

/// A blob the graph needs.
#[derive(Debug, Clone)]
pub(super) struct Blob {
    pub(super) size: u64,
    /// A foreign / non-distributable layer, with where its bytes are said to live.
    pub(super) foreign: Option<Vec<String>>,
}

/// One manifest of the graph, with what it references.
pub(super) struct Node {
    pub(super) manifest: Manifest,
    /// Longest path down to a leaf manifest: 0 for an image manifest.
    pub(super) height: usize,
}

/// The image graph below a top manifest.
pub(super) struct Graph {
    /// By height (children before parents); the top manifest last.
    pub(super) manifests: Vec<Node>,
    pub(super) blobs: BTreeMap<Digest, Blob>,
}

impl Graph {
    pub(super) fn children(&self) -> &[Node] {
        &self.manifests[..self.manifests.len() - 1]
    }
    pub(super) fn top(&self) -> &Node {
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
pub(super) async fn walk(src: &Side<'_>, top: Manifest) -> Result<Graph> {
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
