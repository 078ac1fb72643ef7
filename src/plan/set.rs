//! A release of several images: the set {image name → digest}. The first image is decided
//! the way a one-image release is (`super::memory`, the tag, the gate); this module decides
//! the others from the same source, so that the set moves together:
//! - a new pre-release: every image's release tag in its repository; a missing one refuses
//!   the release before anything changes, naming it;
//! - a promotion: the source record that passed the gate names the whole set, and only a
//!   record that covers every image counts;
//! - a re-run or rollback: this environment's own record of the release names the set.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::{DigestFrom, ImageRef, Plan};
use crate::config::{Environment, ImageEntry, ServiceConfig};
use crate::deploy::taskdef::Pins;
use crate::error::Failure;
use crate::registry::RegistryClient;

/// An image of the release after the first (the first is the plan's `source` and `target`).
#[derive(Debug, Clone, Serialize)]
pub struct SetImage {
    /// Its name in `[[images]]`.
    pub name: String,
    pub source: ImageRef,
    pub target: ImageRef,
}

impl Plan {
    /// The digest this run deploys for the image `name` of `env`.
    pub fn digest_of(&self, env: &Environment, name: &str) -> Option<&str> {
        if env.images.first().is_some_and(|i| i.name == name) {
            return self.source.digest.as_deref();
        }
        self.also
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.source.digest.as_deref())
    }

    /// What each container of `cfg` runs after this run: its image pinned by digest in `env`'s
    /// registry.
    pub fn pins(&self, env: &Environment, cfg: &ServiceConfig) -> Result<Pins> {
        let mut out = Vec::new();
        for pin in env.pins(cfg) {
            let digest = self.digest_of(env, &pin.image.name).ok_or_else(|| {
                anyhow!(
                    "the digest of image {} ({}/{}) could not be read: {}",
                    pin.image.name,
                    env.registry_host(),
                    pin.image.repository,
                    self.unresolved.join("; ")
                )
            })?;
            out.push((
                pin.container.to_string(),
                format!("{}/{}@{digest}", env.registry_host(), pin.image.repository),
            ));
        }
        Ok(Pins::new(out))
    }

    /// The set {name → digest} a record names, for a release of several images (empty for
    /// one image: its record's `digest` says it all).
    pub fn image_set(&self, env: &Environment) -> BTreeMap<String, String> {
        if env.images.len() < 2 {
            return BTreeMap::new();
        }
        env.images
            .iter()
            .filter_map(|i| {
                self.digest_of(env, &i.name)
                    .map(|d| (i.name.clone(), d.to_string()))
            })
            .collect()
    }
}

/// Where the set's images are read from: the plan's source environment and a client for it
/// (with the deploying environment's identity), and the deploying environment's own client.
pub struct Readers<'a> {
    pub source_env: &'a Environment,
    pub source: &'a RegistryClient,
    pub own: &'a RegistryClient,
}

/// Decides the digests of the images after the first, from where the first came.
pub async fn resolve(plan: &mut Plan, env: &Environment, r: &Readers<'_>) -> Result<()> {
    plan.also.clear();
    if env.images.len() < 2 {
        return Ok(());
    }
    // After a record of this environment (or its history) decided the first image, the set
    // comes from this environment's repositories; otherwise from the source's.
    let (src_env, src_client) = if plan.promote {
        (r.source_env, r.source)
    } else {
        (env, r.own)
    };
    let record_set = plan.record.as_ref().map(|s| s.images.clone());
    for img in env.images.iter().skip(1) {
        let src_img = src_env.image(&img.name).unwrap_or(img);
        let mut entry = SetImage {
            name: img.name.clone(),
            source: image_ref(src_env, src_img, plan.source.tag.clone()),
            target: image_ref(env, img, Some(plan.tag.clone())),
        };
        let from_record = match (plan.digest_from, &record_set) {
            (DigestFrom::SourceRecord | DigestFrom::OwnRecord, Some(set)) => {
                set.get(&img.name).cloned()
            }
            _ => None,
        };
        let digest = match (plan.digest_from, from_record) {
            (DigestFrom::Unknown, _) => None,
            (_, Some(d)) => {
                // The record vouches for these bytes: they must still be there.
                let m = src_client
                    .get_manifest(&src_img.repository, &d)
                    .await?
                    .ok_or_else(|| gone(plan, src_env, src_img, &d, src_client))?;
                entry.source.media_type = Some(m.media_type);
                Some(d)
            }
            (DigestFrom::SourceRecord, None) => {
                let rec = plan.record.as_ref();
                return Err(Failure::refused(format!(
                    "{}'s record of {} (record {}) does not name image {}: the set {} was not verified together in {}, so it cannot be promoted",
                    r.source_env.name,
                    plan.source.tag.as_deref().unwrap_or("?"),
                    rec.map_or("?", |s| s.record.as_str()),
                    img.name,
                    env.image_names().join(", "),
                    r.source_env.name
                ))
                .hint(format!(
                    "release a new candidate (vX.Y.Z-rc.N) with every image to {} first; its record will name the whole set",
                    r.source_env.name
                ))
                .into());
            }
            (from, None) => {
                // A new release, or one whose record predates this image: its release tag.
                let tag = entry.source.tag.clone().unwrap_or_else(|| plan.tag.clone());
                match src_client.resolve_tag(&src_img.repository, &tag).await? {
                    Some(d) => {
                        if from == DigestFrom::OwnRecord {
                            plan.notes.push(format!(
                                "{}'s record of {} does not name image {}; its tag {tag} ({}) is used",
                                env.name, plan.tag, img.name, d.digest
                            ));
                        }
                        entry.source.media_type = Some(d.media_type);
                        Some(d.digest)
                    }
                    None => return Err(missing(plan, src_env, src_img, &tag, src_client)),
                }
            }
        };
        entry.source.digest = digest;
        if plan.promote {
            if let Some(d) = r.own.resolve_tag(&img.repository, &plan.tag).await? {
                entry.target.digest = Some(d.digest);
                entry.target.media_type = Some(d.media_type);
            }
        } else {
            entry.target.digest.clone_from(&entry.source.digest);
            entry.target.media_type.clone_from(&entry.source.media_type);
        }
        plan.also.push(entry);
    }
    Ok(())
}

fn image_ref(env: &Environment, img: &ImageEntry, tag: Option<String>) -> ImageRef {
    ImageRef {
        environment: env.name.clone(),
        registry: env.registry_host(),
        repository: img.repository.clone(),
        tag,
        digest: None,
        media_type: None,
    }
}

fn missing(
    plan: &Plan,
    env: &Environment,
    img: &ImageEntry,
    tag: &str,
    client: &RegistryClient,
) -> anyhow::Error {
    Failure::invalid(format!(
        "release {} is missing image {}: no image tagged {tag} in {}/{}; nothing was changed",
        plan.tag,
        img.name,
        client.host(),
        img.repository
    ))
    .hint(format!(
        "push every image of the release under its tag before publishing it (the images of {}: {})",
        env.name,
        env.image_names().join(", ")
    ))
    .into()
}

fn gone(
    plan: &Plan,
    env: &Environment,
    img: &ImageEntry,
    digest: &str,
    client: &RegistryClient,
) -> anyhow::Error {
    Failure::refused(format!(
        "the record of {} names image {} as {digest}, but it is gone from {}/{} ({})",
        plan.tag,
        img.name,
        client.host(),
        img.repository,
        env.name
    ))
    .hint("a lifecycle rule may have expired it: exclude release tags (v*) from expiry, then copy the image back by digest with `ferry copy`")
    .into()
}
