//! OCI distribution spec 1.1: manifests with a `subject`, the referrers API, and its tag-schema
//! fallback; plus manifest deletion (for ferry's short-lived claim tags).
//!
//! Spec sections followed (opencontainers/distribution-spec v1.1.0, `spec.md`):
//! - "Pushing Manifests with Subject": a registry that processes `subject` answers the PUT with
//!   an `OCI-Subject` header; without it the client MUST update the fallback tag.
//! - "Listing Referrers": `GET /v2/<name>/referrers/<digest>[?artifactType=…]` answers an image
//!   index; a 404 means the API is unsupported and the client falls back to the tag schema.
//! - "Referrers Tag Schema": tag `<alg>-<ref>` (`sha256-<hex>`) holds an image index of the
//!   referrers; clients read-modify-write it (the spec accepts the race this implies).
//! - "Deleting Manifests": `DELETE /v2/<name>/manifests/<digest>`.
//!
//! Everything read here is bounded ([`MAX_INDEX_BYTES`]) and validated before use.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::client::{Manifest, RegistryClient};
use super::digest::Digest;

/// `application/vnd.oci.image.index.v1+json`
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The largest referrers index ferry reads (4 MiB, the common registry manifest limit).
pub const MAX_INDEX_BYTES: usize = 4 * 1024 * 1024;

/// A descriptor as it appears in a referrers index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Referrer>,
}

/// Which way the registry keeps referrers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersPath {
    /// The registry processed `subject` (the referrers API).
    Api,
    /// The fallback tag `sha256-<hex>` was updated by ferry.
    FallbackTag,
}

/// The fallback tag of a subject digest: `sha256:abc…` → `sha256-abc…`.
pub fn fallback_tag(subject: &str) -> Result<String> {
    let (alg, hex) = subject
        .split_once(':')
        .ok_or_else(|| anyhow!("{subject:?} is not a digest"))?;
    if alg != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{subject:?} is not a sha256 digest");
    }
    Ok(format!("{alg}-{hex}"))
}

/// Each request's deadline for its whole answer (records and indexes are small).
const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn url(client: &RegistryClient, path: &str) -> Result<url::Url> {
    client
        .base()
        .join(path)
        .with_context(|| format!("bad registry path {path}"))
}

/// Pushes `manifest` (which has a `subject`) by digest, and makes it findable from the subject:
/// through the registry when it answers `OCI-Subject`, else by updating the fallback tag.
/// `referrer` is the descriptor to list (media type, artifact type, annotations).
pub async fn push_referrer(
    client: &RegistryClient,
    repository: &str,
    subject: &str,
    manifest: &Manifest,
    referrer: &Referrer,
) -> Result<ReferrersPath> {
    let what = format!("{}/{repository}@{}", client.host(), manifest.digest);
    let resp = client
        .send(
            Method::PUT,
            url(
                client,
                &format!("/v2/{repository}/manifests/{}", manifest.digest),
            )?,
            &[("Content-Type", manifest.media_type.clone())],
            Some(manifest.bytes.clone()),
            REQUEST_DEADLINE,
        )
        .await
        .with_context(|| format!("pushing {what}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = bounded_text(resp).await;
        bail!("pushing {what}: the registry answered {status}: {body}");
    }
    let processed = resp
        .headers()
        .get("oci-subject")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == subject);
    if processed {
        return Ok(ReferrersPath::Api);
    }
    // Fallback: read-modify-write the index under the subject's fallback tag.
    let tag = fallback_tag(subject)?;
    let mut index = match client.get_manifest(repository, &tag).await? {
        Some(m) => parse_index(&m.bytes)
            .with_context(|| format!("the referrers index {}/{repository}:{tag}", client.host()))?,
        None => Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.into()),
            manifests: Vec::new(),
        },
    };
    if !index.manifests.iter().any(|r| r.digest == referrer.digest) {
        index.manifests.push(referrer.clone());
    }
    index.media_type = Some(INDEX_MEDIA_TYPE.into());
    let bytes = bytes::Bytes::from(serde_json::to_vec(&index)?);
    anyhow::ensure!(
        bytes.len() <= MAX_INDEX_BYTES,
        "the referrers index of {subject} in {repository} would exceed {MAX_INDEX_BYTES} bytes"
    );
    let m = Manifest {
        digest: Digest::sha256_of(&bytes),
        bytes,
        media_type: INDEX_MEDIA_TYPE.into(),
    };
    client
        .put_manifest(repository, &tag, &m)
        .await
        .with_context(|| format!("updating the referrers fallback tag {repository}:{tag}"))?;
    Ok(ReferrersPath::FallbackTag)
}

/// The referrers of `subject` with `artifact_type`, through the API, or the fallback tag when
/// the registry has no API (404). Empty when there are none.
pub async fn list_referrers(
    client: &RegistryClient,
    repository: &str,
    subject: &str,
    artifact_type: &str,
) -> Result<(Vec<Referrer>, ReferrersPath)> {
    fallback_tag(subject)?;
    let mut u = url(client, &format!("/v2/{repository}/referrers/{subject}"))?;
    u.query_pairs_mut()
        .append_pair("artifactType", artifact_type);
    let what = format!("the referrers of {}/{repository}@{subject}", client.host());
    let resp = client
        .send(
            Method::GET,
            u,
            &[("Accept", INDEX_MEDIA_TYPE.to_string())],
            None,
            REQUEST_DEADLINE,
        )
        .await
        .with_context(|| format!("listing {what}"))?;
    let (index, path) = match resp.status() {
        StatusCode::NOT_FOUND => {
            let tag = fallback_tag(subject)?;
            match client.get_manifest(repository, &tag).await? {
                Some(m) => (parse_index(&m.bytes)?, ReferrersPath::FallbackTag),
                None => return Ok((Vec::new(), ReferrersPath::FallbackTag)),
            }
        }
        s if s.is_success() => {
            let body = bounded_bytes(resp, MAX_INDEX_BYTES)
                .await
                .with_context(|| format!("reading {what}"))?;
            (
                parse_index(&body).with_context(|| format!("parsing {what}"))?,
                ReferrersPath::Api,
            )
        }
        s => {
            let body = bounded_text(resp).await;
            bail!("listing {what}: the registry answered {s}: {body}");
        }
    };
    // A registry may ignore the filter (it says so with OCI-Filters-Applied): filter here too.
    Ok((
        index
            .manifests
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(artifact_type))
            .collect(),
        path,
    ))
}

/// Deletes a manifest by digest (and so every tag pointing at it). `false` when it was absent.
pub async fn delete_manifest(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
) -> Result<bool> {
    let what = format!("{}/{repository}@{digest}", client.host());
    let resp = client
        .send(
            Method::DELETE,
            url(client, &format!("/v2/{repository}/manifests/{digest}"))?,
            &[],
            None,
            REQUEST_DEADLINE,
        )
        .await
        .with_context(|| format!("deleting {what}"))?;
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(false),
        s if s.is_success() => Ok(true),
        s => {
            let body = bounded_text(resp).await;
            bail!("deleting {what}: the registry answered {s}: {body}")
        }
    }
}

/// Reads a response body, refusing more than `max` bytes.
pub async fn bounded_bytes(mut resp: reqwest::Response, max: usize) -> Result<bytes::Bytes> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        bail!("the answer is larger than {max} bytes");
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > max {
            bail!("the answer is larger than {max} bytes");
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

async fn bounded_text(resp: reqwest::Response) -> String {
    match bounded_bytes(resp, 2048).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => "(body too large)".into(),
    }
}

fn parse_index(bytes: &[u8]) -> Result<Index> {
    anyhow::ensure!(
        bytes.len() <= MAX_INDEX_BYTES,
        "a referrers index larger than {MAX_INDEX_BYTES} bytes"
    );
    let index: Index = serde_json::from_slice(bytes).context("not an OCI image index")?;
    anyhow::ensure!(
        index.schema_version == 2,
        "an image index with schemaVersion {} (expected 2)",
        index.schema_version
    );
    if let Some(mt) = &index.media_type {
        anyhow::ensure!(
            mt == INDEX_MEDIA_TYPE,
            "a referrers index of media type {mt} (expected {INDEX_MEDIA_TYPE})"
        );
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            fallback_tag(&d).unwrap(),
            format!("sha256-{}", "ab".repeat(32))
        );
        for bad in ["sha256:12", "md5:abc", "nodigest"] {
            assert!(fallback_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn indexes_are_validated() {
        assert!(parse_index(br#"{"schemaVersion":2,"manifests":[]}"#).is_ok());
        assert!(parse_index(br#"{"schemaVersion":1,"manifests":[]}"#).is_err());
        assert!(parse_index(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
        )
        .is_err());
        assert!(parse_index(b"<html>").is_err());
    }
}
