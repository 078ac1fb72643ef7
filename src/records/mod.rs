//! Release records: ferry's memory of what each environment ran, and how it ended.
//!
//! A record is an OCI 1.1 artifact whose `subject` is the image it describes, pushed to the
//! environment's own repository (`oci`: the encoding; `store`: pushing, finding, claims):
//! - found from the digest through the referrers API (ECR), or the spec's fallback tag
//!   `sha256-<hex>` on registries without it;
//! - found from the release through its own immutable tag
//!   `ferry-record_<environment>_<release>_<time>_<run>` (one tag per record, never moved:
//!   this also keeps "expire untagged images" lifecycle rules away from it);
//! - immutable: a new outcome is a new record; nothing is ever rewritten.
//!
//! Records need no AWS resource beyond the repository the environment already deploys from,
//! and the production run reads staging's with the pull permission promotion already needs.
//! Where configured, the writing environment signs each record with its KMS key (`signer`) and
//! readers verify it locally against pinned public keys (`sign`): the promotion gate ignores a
//! source record that is not validly signed by a key it trusts.

pub mod key;
pub mod oci;
pub mod sign;
pub mod signer;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema name inside every record.
pub const SCHEMA: &str = "ferry.release-record/v1";

/// How a run ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordResult {
    /// Rolled out and verified: this digest is good in this environment.
    Succeeded,
    /// Failed; every service this run changed went back to its previous revision.
    RolledBack,
    /// Failed; not known to be good.
    NeedsAttention,
}

impl RecordResult {
    /// The word used in annotations, tags, JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Succeeded => "succeeded",
            RecordResult::RolledBack => "rolled-back",
            RecordResult::NeedsAttention => "needs-attention",
        }
    }

    /// Parses [`RecordResult::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(RecordResult::Succeeded),
            "rolled-back" => Some(RecordResult::RolledBack),
            "needs-attention" => Some(RecordResult::NeedsAttention),
            _ => None,
        }
    }
}

/// What kind of run it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// A release new to this environment (built for it, or promoted into it).
    Deploy,
    /// A release this environment ran successfully before, older than what ran: its digest
    /// comes from this environment's own record.
    Rollback,
    /// The release that already runs, or one this environment ran before that is newer than
    /// what runs now, again from its own record.
    Redeploy,
}

impl RunKind {
    /// The word used in annotations, JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Deploy => "deploy",
            RunKind::Rollback => "rollback",
            RunKind::Redeploy => "redeploy",
        }
    }

    /// Parses [`RunKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deploy" => Some(RunKind::Deploy),
            "rollback" => Some(RunKind::Rollback),
            "redeploy" => Some(RunKind::Redeploy),
            _ => None,
        }
    }
}

/// One service's part in a recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// ECS cluster.
    pub cluster: String,
    /// ECS service.
    pub service: String,
    /// The task-definition revision it ran before the run.
    pub before: String,
    /// What it runs at the end of the run (as ECS said), when known.
    pub after: Option<String>,
    /// The image `before` ran (the release ferry replaced, which may predate ferry: going
    /// back to it is a rollback). Absent in records of ferry before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_image: Option<String>,
}

/// One smoke check's result, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeRecord {
    /// The check's URL.
    pub url: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it saw.
    pub detail: String,
}

/// One run's outcome in one environment: the record's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`SCHEMA`].
    pub schema: String,
    /// Unique id of the run (`<unix-ms>-<random>`).
    pub run: String,
    /// The environment.
    pub environment: String,
    /// The release tag.
    pub tag: String,
    /// Its version.
    pub version: String,
    /// The image digest every service was pinned to (the artifact's `subject`).
    pub digest: String,
    /// `registry/repository` of the environment.
    pub repository: String,
    /// Deploy, rollback or redeploy.
    pub kind: RunKind,
    /// How it ended.
    pub result: RecordResult,
    /// The release that ran before (when ferry had deployed it).
    pub previous_release: Option<String>,
    /// Each service, before and after.
    pub services: Vec<ServiceRecord>,
    /// Smoke checks.
    pub smoke: Vec<SmokeRecord>,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub ended_at: String,
    /// What started the run (`cli`, `release`, `workflow-dispatch`).
    pub trigger: String,
    /// The GitHub Actions run, when there was one.
    pub run_url: Option<String>,
    /// ferry's version.
    pub ferry_version: String,
    /// For a promotion: the record of the source environment this digest was promoted on.
    pub promoted_from: Option<Box<Record>>,
    /// The release candidate these bytes were built and verified as (a promoted image reports
    /// it), carried by every record of the digest so that no later record loses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_as: Option<String>,
    /// A release of several images: each image's digest by name (`digest` is the first's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
}

/// What a record says in a few fields, read from its manifest's annotations (no blob fetch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The environment.
    pub environment: String,
    /// The release tag.
    pub tag: String,
    /// The image digest.
    pub digest: String,
    /// How it ended.
    pub result: RecordResult,
    /// Deploy, rollback or redeploy.
    pub kind: RunKind,
    /// Run id.
    pub run: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds.
    pub ended_at: u64,
    /// The record manifest's digest (to read the whole record).
    pub record: String,
    /// Its signature, as checked against the reader's trusted keys (left out when unchecked).
    #[serde(skip_serializing_if = "sign::Trust::is_unchecked")]
    pub trust: sign::Trust,
    /// A release of several images: each image's digest by name, as the record says.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
}

/// `name@digest,…` of a set of images (the [`key::IMAGES`] annotation).
pub fn images_text(images: &BTreeMap<String, String>) -> String {
    images
        .iter()
        .map(|(n, d)| format!("{n}@{d}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`images_text`]; `None` when it is not that form.
pub fn parse_images(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in text.split(',') {
        let (name, digest) = part.split_once('@')?;
        let ok = !name.is_empty()
            && name.len() <= 64
            && crate::registry::digest::Digest::parse(digest).is_ok()
            && out.insert(name.to_string(), digest.to_string()).is_none();
        if !ok {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Unix seconds of an RFC 3339 time; `None` when it is not one.
pub fn unix_of(rfc3339: &str) -> Option<u64> {
    humantime::parse_rfc3339(rfc3339)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// RFC 3339 UTC (seconds) of Unix seconds.
pub fn rfc3339_of(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A new run id: `<unix-ms>-<8 hex>`.
pub fn new_run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{ms}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for r in [
            RecordResult::Succeeded,
            RecordResult::RolledBack,
            RecordResult::NeedsAttention,
        ] {
            assert_eq!(RecordResult::parse(r.as_str()), Some(r));
        }
        for k in [RunKind::Deploy, RunKind::Rollback, RunKind::Redeploy] {
            assert_eq!(RunKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(RecordResult::parse("ok"), None);
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339_of(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_of(&rfc3339_of(1_795_000_000)), Some(1_795_000_000));
        assert_eq!(unix_of("yesterday"), None);
    }
}
